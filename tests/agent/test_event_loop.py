from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from desktop_app.agent import event_loop


def test_the_agent_runs_on_uvloop_where_it_is_installed() -> None:
    async def which_loop() -> type[asyncio.AbstractEventLoop]:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop())

    assert issubclass(event_loop.run(which_loop()), uvloop.Loop)


def test_without_uvloop_it_runs_on_asyncios_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # importing uvloop now fails, as on Windows
    assert event_loop.loop_factory() is None

    async def answer() -> int:
        return 42

    assert event_loop.run(answer()) == 42
