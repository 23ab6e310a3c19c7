"""The service catalogue file: JSON or TOML, the built-in default, and refusals that name the
file and each bad field, through ``rma-coordinator`` itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import coordinator.cli
from coordinator.catalog import DEFAULT_CATALOG, CatalogError, load_catalog
from coordinator.catalog.loader import field_path

GIB = 1024**3

SEED_SERVICES = {
    "vllm",
    "ollama-vision",
    "rag",
    "notes",
    "ner",
    "ocr",
    "postgres",
    "redis",
    "chromadb",
    "neo4j",
}

TOML = """
[[services]]
name = "rag"
image = "ghcr.io/org/rag:1.4"
port = 8000
tiers = [1, 2]
replicas = 2
min_ram = "2GiB"
env = { MODE = "prod" }

[[services]]
name = "cache"
image = "redis:7"
port = 6379
tiers = [3]
"""


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Stand in for uvicorn: record the app ``rma-coordinator`` would serve."""
    apps: list[Any] = []
    monkeypatch.setattr(coordinator.cli.uvicorn, "run", lambda app, **_kwargs: apps.append(app))
    monkeypatch.setattr(coordinator.cli.logging, "basicConfig", lambda **_kwargs: None)
    return apps


def test_toml_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(TOML, encoding="utf-8")
    catalog = load_catalog(path)
    assert [s.name for s in catalog.services] == ["rag", "cache"]
    rag = catalog.services[0]
    assert (rag.tiers, rag.replicas, rag.min_ram, rag.env) == ([1, 2], 2, 2 * GIB, {"MODE": "prod"})


def test_json_catalogue_same_as_toml(tmp_path: Path) -> None:
    toml_path = tmp_path / "catalog.toml"
    toml_path.write_text(TOML, encoding="utf-8")
    json_path = tmp_path / "catalog.JSON"  # the extension is read in any case
    json_path.write_text(json.dumps(load_catalog(toml_path).model_dump(mode="json")))
    assert load_catalog(json_path) == load_catalog(toml_path)


def test_default_catalogue_holds_the_seed_services() -> None:
    catalog = load_catalog()
    assert {s.name for s in catalog.services} == SEED_SERVICES
    by_name = {s.name: s for s in catalog.services}
    assert by_name["vllm"].image.startswith("vllm/vllm-openai")
    assert (by_name["vllm"].port, by_name["vllm"].gpu) == (8000, True)
    assert by_name["vllm"].min_gpu_memory == 8 * GIB
    assert by_name["ollama-vision"].image.startswith("ollama/ollama")
    assert (by_name["ollama-vision"].port, by_name["ollama-vision"].gpu) == (11434, True)
    for name in ("vllm", "ollama-vision"):
        assert by_name[name].tiers == [1]
    for name in ("rag", "notes", "ner", "ocr"):
        assert by_name[name].tiers == [1, 2]
        assert by_name[name].image.startswith("ghcr.io/rma-tool/")
        assert by_name[name].sensitive
    for name in ("postgres", "redis", "chromadb", "neo4j"):
        assert by_name[name].tiers == [3]
    postgres = by_name["postgres"]
    assert (postgres.image, postgres.volumes) == ("postgres:16", ["/var/lib/postgresql/data"])
    assert set(postgres.cap_add) == {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"}
    assert postgres.sensitive
    assert by_name["redis"].image == "redis:7"
    assert by_name["chromadb"].image.startswith("chromadb/chroma")
    assert by_name["neo4j"].image == "neo4j:5"
    assert {s.name for s in catalog.services if s.sensitive} == {
        "rag",
        "notes",
        "ner",
        "ocr",
        "postgres",
    }
    assert all(s.description.endswith(".") for s in catalog.services)
    assert "operators replace" in DEFAULT_CATALOG.read_text(encoding="utf-8").lower()


def test_field_paths_read_like_the_file() -> None:
    assert field_path(("services", 2, "port")) == "services[2].port"
    assert field_path(("services", 0, "tiers", 1)) == "services[0].tiers[1]"
    assert field_path(()) == "(the whole file)"


def bad_port_catalogue(path: Path) -> Path:
    services = [
        {"name": f"s{n}", "image": "example.org/s:1", "port": 8000 + n, "tiers": [2]}
        for n in range(3)
    ]
    services[2]["port"] = 70000
    services[0]["tiers"] = [5]
    path.write_text(json.dumps({"services": services}), encoding="utf-8")
    return path


def test_bad_catalogue_stops_the_coordinator_naming_file_and_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], served: list[Any]
) -> None:
    path = bad_port_catalogue(tmp_path / "catalog.json")
    assert coordinator.cli.main(["--catalog", str(path), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert "services[2].port: Input should be less than or equal to 65535" in err
    assert "services[0].tiers[0]: Input should be less than or equal to 3" in err
    assert "Traceback" not in err
    assert served == []


def test_catalogue_from_the_environment(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    served: list[Any],
) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(TOML.replace("port = 6379", 'port = "many"'), encoding="utf-8")
    monkeypatch.setenv("RMA_CATALOG", str(path))
    assert coordinator.cli.main(["--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"The service catalogue {path} cannot be used" in err
    assert "services[1].port: Input should be a valid integer" in err


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("catalog.toml", "[[services]\nname = 1", "not valid TOML"),
        ("catalog.json", '{"services": [', "not valid JSON: Expecting value (line 1"),
        ("catalog.yaml", "services: []", "must end in .json or .toml"),
        ("catalog.json", "[]", "(the whole file): Input should be a valid dictionary"),
        ("catalog.json", '{"services": [], "extra": 1}', "extra: Extra inputs are not permitted"),
        ("catalog.json", None, "the file does not exist"),
        ("catalog.json", b"\xff\xfe{", "not UTF-8"),
    ],
)
def test_unreadable_catalogues_are_refused_plainly(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    served: list[Any],
    name: str,
    content: str | bytes | None,
    problem: str,
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert any(problem in line for line in caught.value.problems), caught.value.problems
    assert coordinator.cli.main(["--catalog", str(path)]) == 2
    err = capsys.readouterr().err
    assert problem in err and str(path) in err and "Traceback" not in err


def test_duplicate_service_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(TOML + TOML, encoding="utf-8")
    with pytest.raises(CatalogError, match="appears more than once"):
        load_catalog(path)


def test_a_good_catalogue_is_served(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], served: list[Any]
) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(TOML, encoding="utf-8")
    argv = ["--catalog", str(path), "--placement-grace", "60", "--data-dir", str(tmp_path)]
    assert coordinator.cli.main(argv) == 0
    assert len(served) == 1
    assert capsys.readouterr().err == ""
    settings = coordinator.cli.load_settings(argv)
    assert (settings.catalog, settings.placement_grace) == (path, 60.0)


def test_placement_grace_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert coordinator.cli.load_settings([]).placement_grace == 300.0
    monkeypatch.setenv("RMA_PLACEMENT_GRACE", "30")
    assert coordinator.cli.load_settings([]).placement_grace == 30.0


def test_negative_grace_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert coordinator.cli.main(["--placement-grace", "-1"]) == 2
    assert "placement_grace" in capsys.readouterr().err
