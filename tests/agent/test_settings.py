"""The volunteer's settings file: defaults, round trip, presets, and damage kept aside."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from desktop_app.agent.settings import (
    DEFAULT_COORDINATOR_URL,
    SettingsStore,
    VolunteerSettings,
    check_coordinator_url,
)

GIB = 1024**3


def test_missing_file_gives_defaults_without_a_notice(tmp_path: Path) -> None:
    loaded = SettingsStore(tmp_path).load()
    assert loaded.settings == VolunteerSettings()
    assert loaded.notice is None
    assert not loaded.settings.joined


def test_round_trip_is_private_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "config")
    settings = VolunteerSettings(
        joined=True,
        contributing=False,
        snoozed_until=datetime(2026, 11, 22, 18, 0, tzinfo=UTC),
        coordinator_url="https://pool.example.org/",
        cpu_limit_kind="percent",
        cpu_limit_value=50,
        memory_limit_gib=4,
        gpu_enabled=False,
        notifications=False,
    )
    store.save(settings)
    assert store.load().settings == settings
    assert settings.coordinator_url == "https://pool.example.org"
    assert os.listdir(tmp_path / "config") == ["settings.json"]
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2]", b"\xff\xfe\x00garbage", b'{"cpu_limit_kind": "lots"}'],
    ids=["broken-json", "not-an-object", "not-utf8", "invalid-value"],
)
def test_corrupt_file_is_kept_aside_and_defaults_are_used(tmp_path: Path, content: bytes) -> None:
    store = SettingsStore(tmp_path)
    store.path.write_bytes(content)
    loaded = store.load()
    assert loaded.settings == VolunteerSettings()
    assert loaded.notice is not None and "defaults" in loaded.notice
    kept = [path for path in tmp_path.iterdir() if path.name.startswith("settings.json.corrupt-")]
    assert len(kept) == 1, list(tmp_path.iterdir())
    assert kept[0].read_bytes() == content  # nothing lost
    assert kept[0].name in loaded.notice
    assert not store.path.exists()
    # The next start is clean: the damaged file does not come back to haunt it.
    assert SettingsStore(tmp_path).load().notice is None


def test_fields_from_a_newer_version_are_ignored_not_refused(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path)
    store.path.write_text(json.dumps({"joined": True, "theme": "dark"}))
    loaded = store.load()
    assert loaded.notice is None and loaded.settings.joined


def test_coordinator_address_the_volunteers_then_the_preset_then_the_default() -> None:
    preset = {"RMA_COORDINATOR_URL": "https://preset.example.org/"}
    assert VolunteerSettings().coordinator({}) == DEFAULT_COORDINATOR_URL
    assert VolunteerSettings().coordinator(preset) == "https://preset.example.org"
    own = VolunteerSettings(coordinator_url="http://10.0.0.5:8080")
    assert own.coordinator(preset) == "http://10.0.0.5:8080"
    assert VolunteerSettings().coordinator({"RMA_COORDINATOR_URL": "not a url"}) == (
        DEFAULT_COORDINATOR_URL
    )


def test_an_installed_apps_built_in_address_comes_after_the_volunteers_and_the_preset() -> None:
    built_in = "https://built.example.org"
    preset = {"RMA_COORDINATOR_URL": "https://preset.example.org"}
    own = VolunteerSettings(coordinator_url="http://10.0.0.5:8080")
    assert VolunteerSettings().coordinator_and_source({}, built_in) == (
        built_in,
        "built into this app",
    )
    assert VolunteerSettings().coordinator_and_source(preset, built_in) == (
        "https://preset.example.org",
        "RMA_COORDINATOR_URL",
    )
    assert own.coordinator_and_source(preset, built_in) == ("http://10.0.0.5:8080", "your setting")
    assert VolunteerSettings().coordinator_and_source({}, None) == (
        DEFAULT_COORDINATOR_URL,
        "the default",
    )
    # A broken preset is ignored (and logged), so the build's address still applies.
    assert VolunteerSettings().coordinator({"RMA_COORDINATOR_URL": "nope"}, built_in) == built_in


def test_peek_reports_a_damaged_file_without_moving_it(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path)
    store.path.write_text("{not json")
    settings, problem = store.peek()
    assert settings == VolunteerSettings()
    assert problem is not None and "damaged" in problem
    assert store.path.read_text() == "{not json"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["settings.json"]
    store.path.write_text(json.dumps({"joined": "maybe"}))
    assert "joined" in (store.peek()[1] or "")
    store.path.unlink()
    assert store.peek() == (VolunteerSettings(), None)


@pytest.mark.parametrize(
    ("value", "phrase"),
    [
        ("", "Enter"),
        ("pool.example.org", "not a web address"),
        ("ftp://x.org", "not a web"),
        ("http://x.org:99999", "port"),
    ],
)
def test_bad_addresses_are_refused_with_a_sentence(value: str, phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase):
        check_coordinator_url(value)


def test_limits_in_cores_or_percent() -> None:
    assert VolunteerSettings().cpu_cores_limit(8) is None
    assert VolunteerSettings(cpu_limit_kind="cores", cpu_limit_value=1.5).cpu_cores_limit(8) == 1.5
    half = VolunteerSettings(cpu_limit_kind="percent", cpu_limit_value=50)
    assert half.cpu_cores_limit(8) == 4.0
    assert half.cpu_cores_limit(None) is None
    tiny = VolunteerSettings(cpu_limit_kind="percent", cpu_limit_value=0.1)
    assert tiny.cpu_cores_limit(1) == 0.01
    limits = VolunteerSettings(memory_limit_gib=2, gpu_enabled=False).resource_limits(4)
    assert limits.memory_bytes == 2 * GIB and not limits.gpu_allowed and limits.cpus is None
    with pytest.raises(ValidationError, match="100 percent"):
        VolunteerSettings(cpu_limit_kind="percent", cpu_limit_value=150)
    with pytest.raises(ValidationError):
        VolunteerSettings(memory_limit_gib=0)


def test_pause_and_snooze() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert VolunteerSettings().paused_until(now) == (False, None)
    assert VolunteerSettings(contributing=False).paused_until(now) == (True, None)
    later = now + timedelta(hours=1)
    assert VolunteerSettings(snoozed_until=later).paused_until(now) == (True, later)
    assert VolunteerSettings(snoozed_until=now).paused_until(now) == (False, None)
