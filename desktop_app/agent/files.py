"""Files that must never be half-written: atomic replace, and corrupt files kept aside."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)


def atomic_write_text(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never a mix.

    The temporary file is created with ``mode`` from the start (a secret is never briefly
    readable by others), flushed to disk, then renamed over ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if os.name == "posix":
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def set_aside(path: Path, reason: str) -> Path:
    """Rename a file that cannot be read to ``<name>.corrupt-<time>`` and say so in the log.

    Returns:
        Where the file now is, so callers can tell the person.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000_000:09d}"
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    os.replace(path, target)
    log.warning("%s could not be read (%s); kept it as %s and started afresh", path, reason, target)
    return target
