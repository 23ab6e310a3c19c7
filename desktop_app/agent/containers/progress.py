"""Sum Docker's per-layer pull progress into one "bytes done of bytes total".

Docker streams one event per layer (``{"id": "5fc0…", "status": "Downloading",
"progressDetail": {"current": 98304, "total": 8391326}}``) and downloads a few layers at a
time, so totals become known layer by layer. Pure, so it is unit-tested on recorded streams.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_DONE_STATUSES = frozenset(
    {"Verifying Checksum", "Download complete", "Extracting", "Pull complete"}
)
"""After these a layer's download is complete (``Extracting`` counts its own bytes, which
are not download progress)."""
_LOCAL_STATUSES = frozenset({"Already exists"})
"""Layers Docker already has: nothing to download."""


@dataclass(frozen=True)
class PullProgress:
    """How far a pull has come."""

    bytes_done: int
    """Bytes downloaded so far, over the layers whose size is known."""
    bytes_total: int
    """Bytes to download, over the layers whose size is known so far."""
    complete_totals: bool
    """Whether the size of every layer that needs downloading is known yet."""

    @property
    def fraction(self) -> float | None:
        """Done over total, once every layer's size is known (before that it could shrink)."""
        if not self.complete_totals or self.bytes_total <= 0:
            return None
        return min(1.0, self.bytes_done / self.bytes_total)


class PullProgressTracker:
    """Folds Docker's pull events into :class:`PullProgress`."""

    def __init__(self) -> None:
        # layer id -> [done, total, finished]; total 0 while unknown, finished 0 or 1.
        self._layers: dict[str, list[int]] = {}
        self._local: set[str] = set()

    def update(self, event: Mapping[str, Any]) -> PullProgress:
        """Take one decoded event from ``pull(stream=True, decode=True)``.

        Args:
            event: The event; events without a layer ``id`` (digest, status lines) change
                nothing.

        Returns:
            The progress after this event.
        """
        layer = event.get("id")
        status = str(event.get("status", ""))
        if isinstance(layer, str) and layer and not status.startswith(("Pulling from", "Digest")):
            if status in _LOCAL_STATUSES:
                self._local.add(layer)
                self._layers.pop(layer, None)
            elif layer not in self._local:
                entry = self._layers.setdefault(layer, [0, 0, 0])
                detail = event.get("progressDetail")
                if status == "Downloading" and isinstance(detail, Mapping):
                    current, total = detail.get("current"), detail.get("total")
                    if isinstance(total, int) and total > 0:
                        entry[1] = total
                    if isinstance(current, int) and current >= 0:
                        entry[0] = min(current, entry[1]) if entry[1] else current
                elif status in _DONE_STATUSES:
                    # A tiny layer may finish before Docker said its size.
                    entry[1] = entry[1] or entry[0]
                    entry[0] = entry[1]
                    entry[2] = 1
        return self.progress

    @property
    def progress(self) -> PullProgress:
        """The progress so far."""
        done = sum(entry[0] for entry in self._layers.values())
        total = sum(entry[1] for entry in self._layers.values())
        complete = bool(self._layers) and all(
            entry[1] > 0 or entry[2] for entry in self._layers.values()
        )
        return PullProgress(bytes_done=done, bytes_total=total, complete_totals=complete)
