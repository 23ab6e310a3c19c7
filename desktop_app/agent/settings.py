"""What the volunteer chose: kept in the platform's config folder, written atomically.

A settings file that cannot be read is never fatal: it is kept aside next to the original
(``settings.json.corrupt-<time>``), the defaults are used, and :class:`SettingsLoad` carries a
sentence the window shows. A file from a newer version with fields this one does not know
is read (the unknown fields are ignored), not refused.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from desktop_app.agent.containers import ResourceLimits
from desktop_app.agent.files import atomic_write_text, set_aside
from desktop_app.agent.schedule import ContributionRules

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"
DEFAULT_COORDINATOR_URL = "http://localhost:8080"
"""Where a build without a preset looks for the pool (a coordinator on this computer)."""
COORDINATOR_ENV = "RMA_COORDINATOR_URL"
"""The environment variable packaged builds and tests use to preset the pool's address."""

GIB = 1024**3

CpuLimitKind = Literal["none", "cores", "percent"]


def check_coordinator_url(value: str) -> str:
    """Return ``value`` without surrounding blanks or a trailing slash if it is a pool address.

    Raises:
        ValueError: With a sentence saying what is wrong with it.
    """
    url = value.strip().rstrip("/")
    if not url:
        raise ValueError("Enter the pool's address, for example https://pool.example.org.")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(
            f"{value.strip()!r} is not a web address; it should look like https://pool.example.org."
        )
    try:
        parts.port  # noqa: B018 - reading it validates it
    except ValueError:
        raise ValueError(
            f"The port in {value.strip()!r} is not a number from 1 to 65535."
        ) from None
    return url


class VolunteerSettings(BaseModel):
    """Everything the volunteer can set. Immutable; change with ``model_copy(update=...)``."""

    model_config = ConfigDict(extra="ignore", frozen=True, validate_default=True)

    version: int = 1
    """The file format's version."""
    joined: bool = False
    """The volunteer went through the first-run check and agreed to join."""
    contributing: bool = True
    """The big switch: False while the volunteer has paused contribution."""
    snoozed_until: AwareDatetime | None = None
    """A snooze: paused until this moment, then contributing again by itself."""
    coordinator_url: str | None = None
    """The pool's address; None uses the preset (``RMA_COORDINATOR_URL``) or the default."""
    enrollment_token: Annotated[str, Field(max_length=256)] | None = None
    """The pool's enrollment code, when its organiser requires one."""
    cpu_limit_kind: CpuLimitKind = "none"
    """How CPU use is limited: not at all, to a number of cores, or to a share of the machine."""
    cpu_limit_value: Annotated[float, Field(gt=0, le=1024)] = 2.0
    """Cores (for ``cores``) or percent of all cores (for ``percent``)."""
    memory_limit_gib: Annotated[float, Field(gt=0, le=65536)] | None = None
    """The most memory the pool's containers may use, in GiB; None for no limit."""
    gpu_enabled: bool = True
    """Whether the pool may use this computer's graphics card."""
    notifications: bool = True
    """Whether to show desktop notifications for what matters."""
    rules: ContributionRules = ContributionRules()
    """When the pool may use this computer: idle only, weekly windows, battery, load."""
    start_at_login: bool = True
    """Start the tray app when the volunteer logs in (applied once they have joined)."""

    @field_validator("coordinator_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else check_coordinator_url(value)

    @model_validator(mode="after")
    def _percent_at_most_100(self) -> VolunteerSettings:
        if self.cpu_limit_kind == "percent" and self.cpu_limit_value > 100:
            raise ValueError("a CPU share is at most 100 percent")
        return self

    def coordinator(
        self, environ: Mapping[str, str] | None = None, built_in: str | None = None
    ) -> str:
        """The pool's address in effect.

        Args:
            environ: The environment; its ``RMA_COORDINATOR_URL`` presets the address.
            built_in: The address the installed app was built with, if any.

        Returns:
            The volunteer's own choice, else the environment's preset, else the built-in
            address, else :data:`DEFAULT_COORDINATOR_URL`.
        """
        return self.coordinator_and_source(environ, built_in)[0]

    def coordinator_and_source(
        self, environ: Mapping[str, str] | None = None, built_in: str | None = None
    ) -> tuple[str, str]:
        """:meth:`coordinator`, and where it comes from in words (the self-test shows both)."""
        if self.coordinator_url:
            return self.coordinator_url, "your setting"
        preset = (environ if environ is not None else os.environ).get(COORDINATOR_ENV, "")
        if preset.strip():
            try:
                return check_coordinator_url(preset), COORDINATOR_ENV
            except ValueError as exc:
                log.warning("Ignoring %s: %s", COORDINATOR_ENV, exc)
        if built_in:
            return built_in, "built into this app"
        return DEFAULT_COORDINATOR_URL, "the default"

    def cpu_cores_limit(self, machine_cores: int | None) -> float | None:
        """The CPU limit in cores for each container, or None for none.

        Args:
            machine_cores: The computer's logical cores (needed for a percentage).
        """
        if self.cpu_limit_kind == "cores":
            return self.cpu_limit_value
        if self.cpu_limit_kind == "percent" and machine_cores:
            share = min(self.cpu_limit_value, 100.0) / 100.0
            # Docker refuses a limit below 0.01 CPU; never give a container less.
            return max(0.01, round(machine_cores * share, 2))
        return None

    def resource_limits(self, machine_cores: int | None) -> ResourceLimits:
        """The limits the container runtime enforces."""
        memory = None
        if self.memory_limit_gib is not None:
            memory = int(self.memory_limit_gib * GIB)
        return ResourceLimits(
            cpus=self.cpu_cores_limit(machine_cores),
            memory_bytes=memory,
            gpu_allowed=self.gpu_enabled,
        )

    def paused_until(self, now: datetime) -> tuple[bool, datetime | None]:
        """Whether the volunteer has paused contribution at ``now``, and until when.

        Returns:
            ``(paused, until)``: ``until`` is the end of a snooze, None for a pause that
            lasts until the volunteer resumes.
        """
        if not self.contributing:
            return True, None
        if self.snoozed_until is not None and self.snoozed_until > now:
            return True, self.snoozed_until
        return False, None


@dataclass(frozen=True)
class SettingsLoad:
    """Settings read from disk, and a sentence for the window if something was wrong."""

    settings: VolunteerSettings
    notice: str | None = None


class SettingsStore:
    """Reads and writes :class:`VolunteerSettings` in one file. Constructing it does no I/O."""

    def __init__(self, config_dir: Path) -> None:
        """Keep the settings in ``config_dir/settings.json``."""
        self._path = config_dir / SETTINGS_FILE

    @property
    def path(self) -> Path:
        """The settings file."""
        return self._path

    def load(self) -> SettingsLoad:
        """Read the settings; defaults (and a notice) when the file is missing or unreadable.

        An unreadable file is moved aside (see the module's description).
        """
        settings, problem = self.peek()
        return SettingsLoad(settings) if problem is None else self._start_afresh(problem)

    def peek(self) -> tuple[VolunteerSettings, str | None]:
        """Read the settings without changing anything on disk (``--self-test`` uses this).

        Returns:
            The settings (the defaults when the file is missing or unusable), and what is
            wrong with the file, or None.
        """
        try:
            text = self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return VolunteerSettings(), None
        except (OSError, UnicodeDecodeError) as exc:
            return VolunteerSettings(), f"it could not be read: {exc}"
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("it does not hold a set of settings")
            return VolunteerSettings.model_validate(data), None
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'file'}: {error['msg']}"
                for error in exc.errors()[:3]
            )
            return VolunteerSettings(), f"some values are not valid ({problems})"
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            return VolunteerSettings(), f"it is damaged ({exc})"

    def save(self, settings: VolunteerSettings) -> None:
        """Write the settings atomically (readers never see half a file).

        Raises:
            OSError: The folder cannot be written; the old file is untouched.
        """
        text = json.dumps(settings.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
        atomic_write_text(self._path, text, mode=0o600)

    def _start_afresh(self, reason: str) -> SettingsLoad:
        try:
            kept = set_aside(self._path, reason)
        except OSError as exc:
            log.warning("Could not move the unreadable settings file aside: %s", exc)
            return SettingsLoad(
                VolunteerSettings(),
                f"Your settings file could not be used ({reason}), so the defaults are in "
                f"use. It is still at {self._path}.",
            )
        return SettingsLoad(
            VolunteerSettings(),
            f"Your settings file could not be used ({reason}), so the defaults are in use. "
            f"The old file was kept as {kept.name} in {kept.parent}.",
        )
