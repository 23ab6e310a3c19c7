"""The AMD backend with an injected rocm-smi runner."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

import pytest

from desktop_app.agent.hardware.gpu_amd import AmdGpuProbe, parse_rocm_smi_json

# rocm-smi 6.x, `--showproductname --showmeminfo vram --json`, two cards (trimmed GUIDs).
ROCM_SMI_TWO_CARDS = """{"card0": {"VRAM Total Memory (B)": "25753026560", \
"VRAM Total Used Memory (B)": "1124073472", \
"Card Series": "Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]", \
"Card Model": "0x744c", "Card Vendor": "Advanced Micro Devices, Inc. [AMD/ATI]", \
"Card SKU": "EXT94393", "Subsystem ID": "0x5315", "Device Rev": "0xc8", "Node ID": "1", \
"GUID": "45068", "GFX Version": "gfx1100"}, \
"card1": {"VRAM Total Memory (B)": "68702699520", "VRAM Total Used Memory (B)": "10747904", \
"Card Series": "AMD Instinct MI210", "Card Model": "0x740f", \
"Card Vendor": "Advanced Micro Devices, Inc. [AMD/ATI]", "Card SKU": "D67301", \
"Subsystem ID": "0x0c34", "Device Rev": "0x02", "Node ID": "2", "GUID": "11349", \
"GFX Version": "gfx90a"}}
"""

# rocm-smi 5.x spelled the keys in lower case and printed a warning first.
ROCM_SMI_5_WITH_WARNING = """WARNING: One or more commands failed
{"card0": {"VRAM Total Memory (B)": "17163091968", "VRAM Total Used Memory (B)": "9252864", \
"Card series": "Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]", "Card model": "0x73bf", \
"Card vendor": "Advanced Micro Devices, Inc. [AMD/ATI]", "Card SKU": "D4120300"}, \
"system": {"Driver version": "6.2.4"}}
"""


class Runner:
    def __init__(self, output: str | None = None, error: Exception | None = None) -> None:
        self.output = output
        self.error = error
        self.commands: list[list[str]] = []

    def __call__(self, command: Sequence[str]) -> str:
        self.commands.append(list(command))
        if self.error is not None:
            raise self.error
        assert self.output is not None
        return self.output


def on_path(name: str) -> str | None:
    return f"/opt/rocm/bin/{name}" if name == "rocm-smi" else None


def test_two_cards() -> None:
    runner = Runner(ROCM_SMI_TWO_CARDS)
    result = AmdGpuProbe(runner=runner, which=on_path).probe()
    assert runner.commands == [
        ["/opt/rocm/bin/rocm-smi", "--showproductname", "--showmeminfo", "vram", "--json"]
    ]
    assert [(gpu.vendor, gpu.name, gpu.memory) for gpu in result.gpus] == [
        ("amd", "Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]", 25_753_026_560),
        ("amd", "AMD Instinct MI210", 68_702_699_520),
    ]
    assert result.notes == []


def test_older_rocm_smi_with_warning_and_driver_version() -> None:
    gpus = parse_rocm_smi_json(ROCM_SMI_5_WITH_WARNING)
    assert len(gpus) == 1
    assert gpus[0].name == "Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]"
    assert gpus[0].memory == 17_163_091_968
    assert gpus[0].driver == "6.2.4"


def test_cards_are_in_numeric_order() -> None:
    text = '{"card10": {"Card Series": "B"}, "card2": {"Card Series": "A"}}'
    assert [gpu.name for gpu in parse_rocm_smi_json(text)] == ["A", "B"]


def test_no_rocm_smi_is_a_note() -> None:
    runner = Runner("{}")
    result = AmdGpuProbe(runner=runner, which=lambda _name: None).probe()
    assert result.gpus == []
    assert result.notes == ["No AMD ROCm tools found (rocm-smi is not on PATH)."]
    assert runner.commands == []


def test_rocm_smi_failure_is_a_note() -> None:
    error = subprocess.CalledProcessError(2, ["rocm-smi"], stderr="ERROR: no GPU")
    result = AmdGpuProbe(runner=Runner(error=error), which=on_path).probe()
    assert result.gpus == []
    assert len(result.notes) == 1 and "did not answer" in result.notes[0]


@pytest.mark.parametrize("output", ["", "not json at all", "[1, 2]"])
def test_unreadable_output_is_a_note(output: str) -> None:
    result = AmdGpuProbe(runner=Runner(output), which=on_path).probe()
    assert result.gpus == []
    assert len(result.notes) == 1 and "cannot read" in result.notes[0]


def test_no_cards_is_a_note() -> None:
    result = AmdGpuProbe(runner=Runner('{"system": {}}'), which=on_path).probe()
    assert result.gpus == []
    assert result.notes == ["rocm-smi is installed but reports no AMD GPU."]


def test_real_runner_runs_a_real_program() -> None:
    from desktop_app.agent.hardware.gpu_amd import run_command

    assert run_command(["echo", "{}"]).strip() == "{}"
    with pytest.raises(subprocess.CalledProcessError):
        run_command(["false"])
