"""``rma-coordinator``: serve the coordinator."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from coordinator import __version__
from coordinator.app import create_app
from coordinator.catalog import CatalogError, load_catalog
from coordinator.settings import CoordinatorSettings

log = logging.getLogger("coordinator")


def build_parser() -> argparse.ArgumentParser:
    """The command line; every flag can also be set by its ``RMA_*`` environment variable."""
    parser = argparse.ArgumentParser(
        prog="rma-coordinator",
        description="Serve the RMA Compute Pool coordinator (registry, tiers, admin API).",
    )
    parser.add_argument("--host", help="address to listen on (RMA_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (RMA_PORT, default 8080)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="where the registry database and generated admin token live (RMA_DATA_DIR, "
        "default: the platform's user data dir)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        help="seconds between worker heartbeats (RMA_HEARTBEAT_INTERVAL, default 30)",
    )
    parser.add_argument(
        "--catalog",
        type=Path,
        help="the service catalogue, a .json or .toml file (RMA_CATALOG, default: the "
        "built-in catalogue)",
    )
    parser.add_argument(
        "--placement-grace",
        type=float,
        help="seconds a worker that went offline, paused or drained keeps its services "
        "before they move (RMA_PLACEMENT_GRACE, default 300)",
    )
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING (RMA_LOG_LEVEL, default INFO)")
    parser.add_argument("--version", action="version", version=f"rma-coordinator {__version__}")
    return parser


def load_settings(argv: list[str] | None = None) -> CoordinatorSettings:
    """Settings from the environment, overridden by the flags given."""
    args = build_parser().parse_args(argv)
    overrides = {
        "host": args.host,
        "port": args.port,
        "data_dir": args.data_dir,
        "heartbeat_interval": args.heartbeat_interval,
        "catalog": args.catalog,
        "placement_grace": args.placement_grace,
        "log_level": args.log_level,
    }
    return CoordinatorSettings(**{k: v for k, v in overrides.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    """Run the coordinator until interrupted."""
    try:
        settings = load_settings(argv)
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            print(f"rma-coordinator: setting {field} {error['msg']}", file=sys.stderr)
        return 2
    try:
        catalog = load_catalog(settings.catalog)
    except CatalogError as exc:
        print(f"rma-coordinator: {exc.describe()}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    log.info("Data dir: %s", settings.data_dir)
    uvicorn.run(
        create_app(settings, catalog=catalog),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
