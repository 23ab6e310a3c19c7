"""The service catalogue the coordinator places: loaded from a file, or the built-in default."""

from coordinator.catalog.loader import DEFAULT_CATALOG, CatalogError, load_catalog

__all__ = ["DEFAULT_CATALOG", "CatalogError", "load_catalog"]
