"""Many workers registered through the real ``POST /api/worker/register``, quickly.

No agent runs behind them: they are rows in the registry, as a large pool's machines are to
the coordinator. Give the coordinator a long heartbeat interval and they stay ``online``
for that long without a heartbeat (three missed intervals make a worker offline).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from shared import PROTOCOL_VERSION

CAPABILITIES_BY_TIER = {
    1: {
        "cpu_cores": 16,
        "ram": "64GB",
        "storage": "1TB",
        "gpu_memory": "24GB",
        "gpu_type": "NVIDIA GeForce RTX 4090",
        "gpu_driver": "nvidia",
    },
    2: {"cpu_cores": 4, "ram": "8GB", "storage": "100GB"},
    3: {"cpu_cores": 1, "ram": "3GB"},
}
"""Hardware that qualifies for each tier; the workers take them in turn."""


@dataclass(frozen=True)
class SimulatedWorker:
    worker_id: str
    token: str
    name: str
    tier: int


def simulated_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:04d}"


def register_workers(
    coordinator_url: str, count: int, prefix: str = "sim", *, start: int = 0, threads: int = 16
) -> list[SimulatedWorker]:
    """Register ``count`` workers named ``<prefix>-<start>``… (four digits), tiers 1, 2, 3 in
    turn, from ``threads`` threads.

    Raises:
        AssertionError: A registration was refused; the message has the answer.
    """

    def register(client: httpx.Client, index: int) -> SimulatedWorker:
        name = simulated_name(prefix, index)
        response = client.post(
            "/api/worker/register",
            json={
                "capabilities": CAPABILITIES_BY_TIER[index % 3 + 1],
                "name": name,
                "agent_version": "simulated 1.0",
                "protocol_version": PROTOCOL_VERSION,
            },
        )
        assert response.status_code == 200, f"registering {name}: {response.text}"
        body = response.json()
        return SimulatedWorker(body["worker_id"], body["worker_token"], name, body["tier"])

    limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
    with (
        httpx.Client(base_url=coordinator_url, timeout=30, limits=limits) as client,
        ThreadPoolExecutor(threads) as executor,
    ):
        return list(
            executor.map(lambda index: register(client, index), range(start, start + count))
        )
