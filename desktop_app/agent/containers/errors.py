"""Failures a volunteer can meet while the agent runs containers, each with a plain sentence."""

from __future__ import annotations

from desktop_app.agent.errors import AgentError
from shared import DockerInfo

_GB = 1000**3


class ContainerRuntimeError(AgentError):
    """Something stopped a service container from running."""


class DockerUnavailable(ContainerRuntimeError):
    """The Docker engine is missing, not running, or refuses this user.

    Attributes:
        info: Docker's status, with the sentence and fix from ``classify_docker_error``.
    """

    def __init__(self, info: DockerInfo) -> None:
        """Create the error.

        Args:
            info: Docker's status; its ``message`` becomes this error's message.
        """
        super().__init__("Docker is not available", info.message or "Docker is not available.")
        self.info = info


class ImageNotFound(ContainerRuntimeError):
    """The registry does not have the image the coordinator assigned."""

    def __init__(self, image: str) -> None:
        """Create the error.

        Args:
            image: The image reference that was not found.
        """
        super().__init__(
            "Image not found",
            f"The image {image} was not found in its registry. Nothing to do on this "
            "computer: the pool's operator has to fix the service; the agent keeps trying.",
        )
        self.image = image


class PullFailed(ContainerRuntimeError):
    """Downloading an image failed for another reason (network, registry, disk)."""

    def __init__(self, image: str, reason: str) -> None:
        """Create the error.

        Args:
            image: The image reference.
            reason: What Docker or the registry said.
        """
        super().__init__(
            "Download failed",
            f"Downloading the image {image} failed: {reason.rstrip('.')}. "
            "The agent will try again; check the internet connection if this persists.",
        )
        self.image = image
        self.reason = reason


class PullCancelled(ContainerRuntimeError):
    """A download was stopped because the service is no longer wanted here."""

    def __init__(self, image: str) -> None:
        """Create the error.

        Args:
            image: The image reference.
        """
        super().__init__("Download stopped", f"Stopped downloading {image}.")
        self.image = image


class NotEnoughDisk(ContainerRuntimeError):
    """Docker's disk has less free space than the service needs."""

    def __init__(self, image: str, needed: int, free: int) -> None:
        """Create the error.

        Args:
            image: The image that would have been downloaded.
            needed: Bytes the service needs free.
            free: Bytes free on Docker's disk.
        """
        super().__init__(
            "Not enough disk space",
            f"Not enough disk space for {image}: it needs {needed / _GB:.1f} GB free and "
            f"Docker's disk has {free / _GB:.1f} GB. Free up space (or remove unused Docker "
            "images) and the agent will try again.",
        )
        self.image = image
        self.needed = needed
        self.free = free


class GpuNotAvailable(ContainerRuntimeError):
    """The service needs a GPU that this machine cannot or may not give it."""

    def __init__(self, service: str, reason: str) -> None:
        """Create the error.

        Args:
            service: The service that needs the GPU.
            reason: Why the GPU cannot be used, as a sentence.
        """
        super().__init__("GPU not available", f"The service {service} needs a GPU. {reason}")
        self.service = service


class DockerOperationFailed(ContainerRuntimeError):
    """Docker answered but refused to create, start or stop a container."""

    def __init__(self, action: str, reason: str) -> None:
        """Create the error.

        Args:
            action: What the agent tried, e.g. ``"start the container rma-rag"``.
            reason: What Docker said.
        """
        super().__init__(
            "Docker refused",
            f"Docker could not {action}: {reason.rstrip('.')}. The agent will try again.",
        )
        self.action = action
        self.reason = reason


class CapabilityRefused(ContainerRuntimeError):
    """The service asks for a Linux capability this app never grants."""

    def __init__(self, service: str, capabilities: list[str]) -> None:
        """Create the error.

        Args:
            service: The service that asked.
            capabilities: The capabilities refused.
        """
        names = ", ".join(capabilities)
        super().__init__(
            "Permission refused",
            f"The service {service} asks for powers over this computer ({names}) that this "
            "app never gives a container, so it will not run here.",
        )
        self.service = service
