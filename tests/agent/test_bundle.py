"""The frozen app's build settings and the list of modules it must bundle."""

from __future__ import annotations

import importlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from desktop_app.agent import bundle
from desktop_app.agent.bundle import (
    BUILD_CONFIG_FILE,
    BuildConfig,
    BuildConfigError,
    lazy_modules,
    load_build_config,
    make_build_config,
)

BUILT = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)


def test_the_build_settings_round_trip_through_the_bundle(tmp_path: Path) -> None:
    written = make_build_config("https://pool.example.org/ ", BUILT)
    assert written.coordinator_url == "https://pool.example.org"
    (tmp_path / BUILD_CONFIG_FILE).write_text(written.to_json())
    loaded = load_build_config(tmp_path)
    assert loaded == BuildConfig("https://pool.example.org", BUILT, tmp_path / BUILD_CONFIG_FILE)


def test_a_build_without_an_address_uses_the_apps_default(tmp_path: Path) -> None:
    for blank in (None, "", "   "):
        assert make_build_config(blank, BUILT).coordinator_url is None
    (tmp_path / BUILD_CONFIG_FILE).write_text(make_build_config(None, BUILT).to_json())
    assert load_build_config(tmp_path).coordinator_url is None


@pytest.mark.parametrize("url", ["pool.example.org", "ftp://pool.example.org", "http://x:0x"])
def test_a_bad_address_fails_the_build_with_the_variables_name(url: str) -> None:
    with pytest.raises(BuildConfigError, match="RMA_BUILD_COORDINATOR_URL"):
        make_build_config(url)


@pytest.mark.parametrize(
    "text",
    [
        "{broken",
        "[]",
        json.dumps({"coordinator_url": 5}),
        json.dumps({"coordinator_url": "not a url"}),
        json.dumps({"coordinator_url": "https://ok.example.org", "built_at": "yesterday"}),
    ],
)
def test_damaged_build_settings_are_ignored_so_the_app_still_starts(
    tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / BUILD_CONFIG_FILE).write_text(text)
    assert load_build_config(tmp_path) == BuildConfig()
    assert "Ignoring the build settings" in caplog.text


def test_no_file_and_no_frozen_bundle_mean_no_build_settings(tmp_path: Path) -> None:
    assert load_build_config(tmp_path) == BuildConfig()
    assert bundle.bundle_dir() is None  # the tests run from source
    assert load_build_config() == BuildConfig()


def test_a_frozen_app_reads_its_bundle_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundle.sys, "frozen", True, raising=False)
    monkeypatch.setattr(bundle.sys, "_MEIPASS", str(tmp_path), raising=False)
    config = make_build_config("https://a.example", BUILT)
    (tmp_path / BUILD_CONFIG_FILE).write_text(config.to_json())
    assert bundle.is_frozen() and bundle.bundle_dir() == tmp_path
    assert load_build_config().coordinator_url == "https://a.example"


def test_each_platform_bundles_its_own_backends() -> None:
    linux, mac, windows = lazy_modules("linux"), lazy_modules("darwin"), lazy_modules("win32")
    for common in ("docker", "pynvml", "httptools", "websockets.asyncio.client"):
        assert common in linux and common in mac and common in windows
    assert "jeepney" in linux and "uvloop" in linux and "keyring.backends.SecretService" in linux
    assert "uvloop" in mac and "keyring.backends.macOS" in mac and "jeepney" not in mac
    assert "uvloop" not in windows and "keyring.backends.Windows" in windows
    assert lazy_modules("linux2") == linux


def test_every_module_listed_for_this_platform_exists() -> None:
    # The list is what build.spec bundles and the self-test imports: a typo here would
    # pass the build and fail every frozen self-test.
    for name in lazy_modules("linux"):
        importlib.import_module(name)
