"""The service catalogue: operators' mistakes are errors that name the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared import ServiceCatalog, ServiceSpec

GIB = 1024**3

RAG = {"name": "rag", "image": "ghcr.io/org/rag:1.4", "port": 8000, "tiers": [2]}


def test_full_service_entry() -> None:
    spec = ServiceSpec.model_validate(
        {
            **RAG,
            "replicas": 3,
            "env": {"MODE": "prod"},
            "gpu": False,
            "min_ram": "2GiB",
            "min_disk": 10 * GIB,
            "min_cpu_cores": 2,
            "health_path": "/health",
            "volumes": ["/data"],
            "cap_add": ["CHOWN"],
            "sensitive": True,
            "description": "Finds answers in the advice library.",
        }
    )
    assert spec.min_ram == 2 * GIB
    assert spec.min_disk == 10 * GIB
    assert spec.sensitive


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "Rag Service"}, "name"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"tiers": []}, "tiers"),
        ({"tiers": [4]}, "tiers"),
        ({"replicas": -1}, "replicas"),
        ({"min_ram": "lots"}, "min_ram"),
        ({"image": "has space"}, "image"),
        ({"volumes": ["relative/path"]}, "volumes"),
        ({"cap_add": ["sys_admin"]}, "cap_add"),
        ({"cap_add": ["ALL"]}, "cap_add"),
        ({"cap_add": ["SYS_ADMIN"]}, "cap_add"),
        ({"health_path": "health"}, "health_path"),
        ({"replica": 2}, "replica"),
    ],
)
def test_mistakes_name_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ServiceCatalog.model_validate({"services": [{**RAG, **change}]})
    locations = [".".join(str(part) for part in error["loc"]) for error in caught.value.errors()]
    assert any(field in location for location in locations), locations


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValidationError, match="more than once"):
        ServiceCatalog.model_validate({"services": [RAG, RAG]})


def test_get_by_name() -> None:
    catalog = ServiceCatalog.model_validate({"services": [RAG]})
    assert catalog.get("rag") is not None
    assert catalog.get("ner") is None
