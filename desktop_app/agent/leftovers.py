"""Removing the pool's containers when the app is not running (``rma-desktop --quit``).

The app stops its containers when it quits. An uninstaller runs ``rma-desktop --quit``
first; after asking a running app to quit, it removes whatever a crashed or killed app
left behind, so uninstalling never leaves the pool's work running on the computer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from desktop_app.agent.containers import (
    ContainerRuntimeError,
    DockerGateway,
    DockerUnavailable,
)
from desktop_app.agent.containers.security import owner_labels
from desktop_app.agent.identity import read_installation_id

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0


class LeftoversError(RuntimeError):
    """The pool's containers could not be removed; the message says why."""


def remove_leftover_containers(
    state_dir: Path, gateway_factory: Callable[[], DockerGateway] = DockerGateway
) -> str:
    """Stop and remove every container this installation started; keeps its volumes.

    Args:
        state_dir: The agent's state folder, which holds the installation id that labels
            the containers (no id: this installation never started one).
        gateway_factory: Builds the Docker adapter.

    Returns:
        A sentence saying what was done.

    Raises:
        LeftoversError: Docker answered but a container could not be removed.
    """
    installation = read_installation_id(state_dir)
    if installation is None:
        return "This computer has not run any of the pool's containers."
    gateway = gateway_factory()
    containers = None
    try:
        containers = gateway.list_containers(owner_labels(installation))
        for container in containers:
            gateway.stop_container(container.id, STOP_TIMEOUT_S)
            gateway.remove_container(container.id)
    except DockerUnavailable as exc:
        if containers is None:  # it did not answer at all: a stopped Docker runs nothing
            return "Docker is not running, so none of the pool's containers are."
        raise LeftoversError(
            f"Docker stopped answering while the pool's containers were removed: {exc.message}"
        ) from None
    except ContainerRuntimeError as exc:
        raise LeftoversError(f"The pool's containers could not be removed: {exc.message}") from None
    finally:
        gateway.close()
    if not containers:
        return "None of the pool's containers were left running."
    log.info("Removed %d container(s) left by the pool.", len(containers))
    return f"Stopped and removed {len(containers)} of the pool's containers left running."
