"""The headless agent: everything a worker does, without Qt.

The tray app, ``rma-worker`` and the tests all drive :class:`Agent`.
"""

from desktop_app.agent.agent import Agent, AgentConfig, AgentStatus

__all__ = ["Agent", "AgentConfig", "AgentStatus"]
