"""The runtime when no Docker engine answers: a state and a sentence, never an exception."""

from __future__ import annotations

from pathlib import Path

from desktop_app.agent.containers import ContainerRuntime, DockerGateway, RuntimeConfig
from shared import ServiceAssignment


def test_no_engine_is_reported_per_service_and_stop_all_copes(tmp_path: Path) -> None:
    host = f"unix://{tmp_path}/no-such-docker.sock"
    gateway = DockerGateway(environ={"DOCKER_HOST": host}, timeout_s=2)
    runtime = ContainerRuntime(gateway, RuntimeConfig(worker="offline"))
    seen: list[object] = []
    runtime.subscribe(seen.append)
    desired = [
        ServiceAssignment(service="rag", image="127.0.0.1:1/rag:1", port=8000),
        ServiceAssignment(service="ner", image="127.0.0.1:1/ner:1"),
    ]
    reports = runtime.adopt_or_clean(desired)
    assert [(r.service, r.state) for r in reports] == [("rag", "error"), ("ner", "error")]
    assert all(r.message and f"DOCKER_HOST={host}" in r.message for r in reports)
    assert runtime.docker is not None
    assert (runtime.docker.usable, runtime.docker.status) == (False, "not_running")
    assert runtime.local_url("rag") is None
    assert runtime.reconcile(desired) == reports
    assert len(seen) == 1  # listeners hear of changes, not of every pass
    runtime.stop_all()
    assert runtime.reports == []
