"""The tray app's Qt views: a thin layer over the engine (``Contribution``)."""
