"""Protocol versions and the rules for peers of other versions.

Versions are whole numbers. Version 1 is the seed agents' protocol, which sent no version at
all; an agent that omits ``protocol_version`` is taken to speak version 1. The rules:

- An agent older than :data:`MIN_SUPPORTED_AGENT_VERSION` is refused with HTTP 426 and a
  sentence telling the volunteer to update.
- An agent newer than :data:`PROTOCOL_VERSION` is accepted: the coordinator answers in its
  own version (every response carries it) and newer agents must speak down to it.
"""

from __future__ import annotations

from typing import Final

PROTOCOL_VERSION: Final = 2
"""The version this code speaks."""

SEED_PROTOCOL_VERSION: Final = 1
"""The version assumed for agents that send none (the seed's ``worker_agent.py``)."""

MIN_SUPPORTED_AGENT_VERSION: Final = 1
"""The oldest agent protocol the coordinator still serves."""


class AgentTooOldError(ValueError):
    """An agent speaks a protocol version the coordinator no longer serves."""

    def __init__(self, agent_version: int) -> None:
        super().__init__(
            f"This worker speaks protocol version {agent_version}, but the coordinator needs "
            f"version {MIN_SUPPORTED_AGENT_VERSION} or newer. Please update the RMA Compute "
            "app (or rma-worker) to the latest release."
        )
        self.agent_version = agent_version


def check_agent_version(agent_version: int | None) -> int:
    """Return the effective protocol version of an agent, or raise if it is too old.

    Args:
        agent_version: The ``protocol_version`` the agent sent, or ``None`` if it sent none.

    Returns:
        The version to record for this agent.

    Raises:
        AgentTooOldError: The agent is older than :data:`MIN_SUPPORTED_AGENT_VERSION`.
    """
    effective = SEED_PROTOCOL_VERSION if agent_version is None else agent_version
    if effective < MIN_SUPPORTED_AGENT_VERSION:
        raise AgentTooOldError(effective)
    return effective
