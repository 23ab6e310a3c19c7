"""Whether this computer runs on its battery, and how full that is, read through psutil.

The contribution policy stops the pool's work on battery: a volunteer lends spare power,
not the charge they need to get home. :func:`read_battery` is the thin adapter; it never
raises, and says None where there is no battery or the OS will not tell.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import psutil

logger = logging.getLogger(__name__)


class BatteryReading(Protocol):
    """What :func:`read_battery` needs of a reading (``psutil``'s ``sbattery``)."""

    @property
    def percent(self) -> float:
        """Charge, 0–100."""
        ...

    @property
    def power_plugged(self) -> bool | None:
        """Whether on mains power; None when the OS cannot tell."""
        ...


@dataclass(frozen=True)
class BatteryState:
    """The battery as the OS reports it now."""

    on_battery: bool
    """Running on the battery (not plugged in). False when the OS cannot tell; see
    :func:`read_battery`."""
    percent: float | None
    """Charge, 0–100; None when unknown."""


def read_battery(
    sensors: Callable[[], BatteryReading | None] = psutil.sensors_battery,
) -> BatteryState | None:
    """Read the battery now; cheap enough to call every few seconds.

    When the OS has a battery but cannot tell whether the charger is connected (psutil's
    ``power_plugged`` is None; some Linux firmware never says), the state is *not on
    battery*. That is the less cautious guess, chosen on purpose: a machine that cannot
    tell once usually never can, so guessing "on battery" would stop the pool on it for
    good with nothing the volunteer could do about it. The charge is still reported, for
    the window to show; the policy's battery rules apply only to a known "on battery".

    Args:
        sensors: Reads the battery (``psutil.sensors_battery``; tests inject one).

    Returns:
        The battery's state, or None when the computer has no battery (a desktop) or the
        OS does not say (psutil has no support for it here, or reading it failed).
    """
    try:
        reading = sensors()
    except (NotImplementedError, OSError, psutil.Error) as exc:
        logger.debug("Could not read the battery: %s", exc)
        return None
    if reading is None:
        return None
    return BatteryState(
        on_battery=reading.power_plugged is False,
        percent=_charge_percent(reading.percent),
    )


def _charge_percent(value: object) -> float | None:
    """``value`` as a charge within 0–100, or None when it is no number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if math.isnan(value):
        return None
    # Some batteries report a little over 100 % while topping up.
    return min(100.0, max(0.0, float(value)))
