"""The volunteer's side of the RMA Compute Pool: the headless agent and the tray app."""

__version__ = "0.1.0"
