import os
import stat
from pathlib import Path

import pytest

from desktop_app.agent.paths import AppPaths


def test_under_puts_all_four_folders_inside_root(tmp_path: Path) -> None:
    paths = AppPaths.under(tmp_path)
    assert all(folder.parent == tmp_path for folder in paths.all())
    assert len(set(paths.all())) == 4


def test_building_paths_touches_nothing(tmp_path: Path) -> None:
    AppPaths.under(tmp_path / "x")
    AppPaths.for_user()
    assert not (tmp_path / "x").exists()


def test_for_user_uses_the_app_name() -> None:
    paths = AppPaths.for_user(app_name="RMA Compute Test", app_author="RMA")
    assert all("RMA Compute Test" in str(folder) for folder in paths.all())


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_ensure_creates_private_folders(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    loose = tmp_path / "state"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    paths = AppPaths.under(tmp_path).ensure()
    for folder in paths.all():
        assert folder.is_dir()
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755  # the root given is left alone


def test_ensure_is_idempotent(tmp_path: Path) -> None:
    paths = AppPaths.under(tmp_path)
    assert paths.ensure() is paths
    paths.ensure()
