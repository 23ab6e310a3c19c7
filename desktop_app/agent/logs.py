"""Logging for the agent's programs: stderr, and a rotating file in the platform's log folder."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
from pathlib import Path

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_LOG_BYTES = 1_000_000
LOG_BACKUPS = 5


def configure_logging(
    level: str, log_dir: Path | None, file_name: str, *, console: bool = True
) -> Path | None:
    """Log to stderr and, when there is a log folder, to ``log_dir/file_name`` (rotated).

    Args:
        level: The lowest level logged.
        log_dir: The log folder; None for stderr only.
        file_name: The log file's name in ``log_dir``.
        console: Whether to log to stderr too (commands that print their own words don't).

    Returns:
        The log file, or None when logging to stderr only.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler()] if console else []
    path = None
    if log_dir is not None:
        path = log_dir / file_name
        handlers.append(
            logging.handlers.RotatingFileHandler(
                path, maxBytes=MAX_LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
            )
        )
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    # httpx logs every request at INFO; a heartbeat every 30 s would drown what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return path


def add_log_level_argument(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` (default ``RMA_LOG_LEVEL`` or INFO), refused with a message if unknown."""
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=os.environ.get("RMA_LOG_LEVEL", "INFO").upper(),
        help="how much to log (RMA_LOG_LEVEL; default %(default)s)",
    )
