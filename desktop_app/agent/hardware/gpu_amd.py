"""AMD GPUs through ROCm's ``rocm-smi`` command (Linux)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shared import GpuInfo

from .gpu import GpuProbeResult

logger = logging.getLogger(__name__)

ROCM_SMI_ARGS = ("--showproductname", "--showmeminfo", "vram", "--json")
"""What we ask ``rocm-smi`` for: product names and VRAM totals, as JSON."""

_TIMEOUT_S = 15.0

CommandRunner = Callable[[Sequence[str]], str]
"""Runs a command and returns its standard output; raises ``OSError`` or
``subprocess.SubprocessError`` when it cannot run or fails."""


def run_command(command: Sequence[str]) -> str:
    """Run ``command`` and return its standard output.

    Args:
        command: The program and its arguments.

    Returns:
        Standard output as text.

    Raises:
        OSError: The program could not be started.
        subprocess.SubprocessError: It failed or took longer than 15 seconds.
    """
    result = subprocess.run(
        list(command), capture_output=True, text=True, timeout=_TIMEOUT_S, check=True
    )
    return result.stdout


def _field(card: Mapping[str, Any], *names: str) -> str | None:
    """A card's field by any of ``names``, ignoring case (rocm-smi versions differ)."""
    lowered = {str(key).strip().lower(): value for key, value in card.items()}
    for name in names:
        value = lowered.get(name.lower())
        if value is not None and str(value).strip() and str(value).strip().lower() != "n/a":
            return str(value).strip()
    return None


def parse_rocm_smi_json(output: str) -> list[GpuInfo]:
    """Read the GPUs from ``rocm-smi --showproductname --showmeminfo vram --json``.

    Args:
        output: The command's standard output. Warnings printed before the JSON object
            (some rocm-smi versions do) are skipped.

    Returns:
        One entry per ``cardN`` object, in card order.

    Raises:
        ValueError: The output holds no JSON object.
    """
    start = output.find("{")
    if start < 0:
        raise ValueError("rocm-smi printed no JSON object")
    data, _end = json.JSONDecoder().raw_decode(output[start:])
    if not isinstance(data, dict):
        raise ValueError("rocm-smi JSON is not an object")
    system = data.get("system")
    driver = _field(system, "Driver version") if isinstance(system, dict) else None
    cards = [
        (key, value)
        for key, value in data.items()
        if str(key).startswith("card") and str(key)[4:].isdigit() and isinstance(value, dict)
    ]
    cards.sort(key=lambda item: int(str(item[0])[4:]))
    gpus: list[GpuInfo] = []
    for _key, card in cards:
        name = _field(card, "Card Series", "Card series", "Card Model", "Card model")
        memory_text = _field(card, "VRAM Total Memory (B)")
        memory = int(memory_text) if memory_text and memory_text.isdigit() else None
        gpus.append(
            GpuInfo(
                vendor="amd",
                name=(name or "AMD GPU")[:256],
                memory=memory,
                driver=_field(card, "Driver version") or driver,
            )
        )
    return gpus


class AmdGpuProbe:
    """Finds AMD GPUs by asking ``rocm-smi``, when ROCm is installed."""

    def __init__(
        self,
        runner: CommandRunner = run_command,
        which: Callable[[str], str | None] = shutil.which,
    ) -> None:
        """Create the probe. Nothing runs until :meth:`probe`.

        Args:
            runner: Runs the command and returns its output (tests inject one).
            which: Finds an executable on PATH.
        """
        self._runner = runner
        self._which = which

    def probe(self) -> GpuProbeResult:
        """List the AMD GPUs, or say plainly why none can be seen."""
        executable = self._which("rocm-smi")
        if executable is None:
            return GpuProbeResult(notes=["No AMD ROCm tools found (rocm-smi is not on PATH)."])
        try:
            output = self._runner([executable, *ROCM_SMI_ARGS])
        except (OSError, subprocess.SubprocessError) as exc:
            logger.warning("rocm-smi failed: %s", exc)
            return GpuProbeResult(notes=[f"rocm-smi is installed but did not answer ({exc})."])
        try:
            gpus = parse_rocm_smi_json(output)
        except ValueError as exc:
            logger.warning("Unreadable rocm-smi output: %s", exc)
            return GpuProbeResult(notes=[f"rocm-smi answered something we cannot read ({exc})."])
        if not gpus:
            return GpuProbeResult(notes=["rocm-smi is installed but reports no AMD GPU."])
        return GpuProbeResult(gpus=gpus)
