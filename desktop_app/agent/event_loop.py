"""The agent's event loop: uvloop where it is installed, asyncio's own otherwise.

uvloop (libuv) runs the relay's many small socket reads and writes at a fraction of the
CPU of asyncio's pure-Python selector loop, and a volunteer's computer should spend its
cycles on the pool's work, not on passing it along. It does not exist on Windows, where
asyncio's proactor loop is used.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Uvloop's loop factory when uvloop can be imported, else None (asyncio's default)."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a new loop (like :func:`asyncio.run`)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
