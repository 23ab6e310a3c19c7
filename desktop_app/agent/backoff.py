"""Retry delays that grow, with jitter, so a pool of workers does not stampede a coordinator."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Exponential backoff with "equal jitter": half the delay fixed, half random.

    Delays go initial, 2x, 4x, ... up to ``maximum``; each is drawn from
    ``[d/2, d]`` so thousands of workers that lost the coordinator at the same moment
    spread out when they retry, yet none retries in a tight loop.
    """

    def __init__(
        self,
        *,
        initial: float = 1.0,
        maximum: float = 60.0,
        multiplier: float = 2.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if initial <= 0 or maximum < initial or multiplier < 1:
            raise ValueError("need 0 < initial <= maximum and multiplier >= 1")
        self._initial = initial
        self._maximum = maximum
        self._multiplier = multiplier
        self._rand = rand
        self._attempt = 0

    @property
    def attempts(self) -> int:
        """Failures since the last success."""
        return self._attempt

    def next_delay(self) -> float:
        """The delay before the next try, and count one more failure."""
        ceiling = min(self._maximum, self._initial * self._multiplier**self._attempt)
        self._attempt += 1
        return ceiling / 2 + self._rand() * ceiling / 2

    def reset(self) -> None:
        """Forget past failures after a success."""
        self._attempt = 0
