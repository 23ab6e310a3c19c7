"""The RMA Compute Pool coordinator: registry, tiers, liveness and admin API."""

__version__ = "0.1.0"
