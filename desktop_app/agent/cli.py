"""``rma-worker``: the agent without a GUI, for servers and VPS machines."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from desktop_app import __version__
from desktop_app.agent import event_loop
from desktop_app.agent.agent import Agent, AgentConfig
from desktop_app.agent.containers import (
    ContainerRuntime,
    DockerGateway,
    ResourceLimits,
    RuntimeConfig,
)
from desktop_app.agent.credentials import (
    add_credential_store_argument,
    default_credential_store,
)
from desktop_app.agent.hardware import CapabilityProbe
from desktop_app.agent.hardware.host import cpu_load
from desktop_app.agent.identity import IdentityStore, load_or_create_installation_id
from desktop_app.agent.logs import add_log_level_argument, configure_logging
from desktop_app.agent.paths import AppPaths
from shared.units import parse_bytes

log = logging.getLogger("rma-worker")

DEFAULT_COORDINATOR = "http://localhost:8080"
LOG_FILE = "rma-worker.log"


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="rma-worker",
        description="Contribute this machine to the RMA Compute Pool (no GUI).",
    )
    parser.add_argument(
        "--coordinator",
        default=os.environ.get("RMA_COORDINATOR_URL")
        or os.environ.get("COORDINATOR_URL")
        or DEFAULT_COORDINATOR,
        help="the coordinator's URL (RMA_COORDINATOR_URL; default %(default)s)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="keep identity, logs and settings in this folder instead of the user's folders",
    )
    parser.add_argument(
        "--test-capabilities",
        action="store_true",
        help="print the detected capabilities as JSON and exit",
    )
    parser.add_argument(
        "--enrollment-token",
        default=os.environ.get("RMA_ENROLLMENT_TOKEN"),
        help="the pool's enrollment secret, if its operator requires one (RMA_ENROLLMENT_TOKEN)",
    )
    parser.add_argument("--name", help="the name admins see (default: the host name)")
    parser.add_argument(
        "--max-retry-delay",
        type=float,
        default=60.0,
        help="longest wait in seconds between attempts to reach the coordinator (%(default)s)",
    )
    add_credential_store_argument(parser)
    parser.add_argument(
        "--cpus",
        type=float,
        default=None,
        help="most CPU cores each of the pool's containers may use, e.g. 2 or 1.5 (no limit)",
    )
    parser.add_argument(
        "--memory",
        default=None,
        help="most memory each of the pool's containers may use, e.g. 4GiB (no limit)",
    )
    parser.add_argument(
        "--no-gpu", action="store_true", help="never give the pool's containers the GPU"
    )
    parser.add_argument(
        "--tunnel",
        choices=["auto", "websocket", "long-poll"],
        default="auto",
        help="how the relay tunnel reaches the coordinator: a WebSocket, HTTP long-polling "
        "where a proxy blocks WebSockets, or auto (WebSocket, then long-polling; %(default)s)",
    )
    add_log_level_argument(parser)
    parser.add_argument("--version", action="version", version=f"rma-worker {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the worker until SIGTERM or Ctrl-C; then leave the pool and exit 0."""
    parser = build_parser()
    args = parser.parse_args(argv)
    memory = parse_bytes(args.memory) if args.memory is not None else None
    if args.memory is not None and memory is None:
        parser.error(f"--memory {args.memory!r} is not a size; write e.g. 4GiB")
    if args.cpus is not None and args.cpus <= 0:
        parser.error("--cpus must be more than 0")
    if args.max_retry_delay <= 0:
        parser.error("--max-retry-delay must be more than 0")
    paths = AppPaths.under(args.state_dir) if args.state_dir else AppPaths.for_user()
    probe = CapabilityProbe()
    if args.test_capabilities:
        configure_logging("WARNING", None, LOG_FILE)
        report = probe.probe(paths.state_dir if paths.state_dir.exists() else Path.home())
        print(report.capabilities.model_dump_json(indent=2))
        for note in report.notes:
            print(f"note: {note}", file=sys.stderr)
        return 0

    paths.ensure()
    configure_logging(args.log_level, paths.log_dir, LOG_FILE)
    credentials = default_credential_store(paths.state_dir, prefer=args.credential_store)
    log.info("rma-worker %s; worker token kept in %s", __version__, credentials.description)
    agent = Agent(
        AgentConfig(
            coordinator_url=args.coordinator,
            name=args.name,
            enrollment_token=args.enrollment_token,
            max_retry_delay=args.max_retry_delay,
            tunnel_transport=args.tunnel,
        ),
        identities=IdentityStore(paths.state_dir, credentials),
        probe=lambda: probe.probe(paths.state_dir),
        load_sampler=cpu_load,
        containers=ContainerRuntime(
            DockerGateway(),
            RuntimeConfig(
                worker=load_or_create_installation_id(paths.state_dir),
                limits=ResourceLimits(
                    cpus=args.cpus, memory_bytes=memory, gpu_allowed=not args.no_gpu
                ),
            ),
        ),
    )
    return event_loop.run(_run_until_signalled(agent))


async def _run_until_signalled(agent: Agent) -> int:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, agent.stop)
        except (NotImplementedError, RuntimeError):  # Windows: no loop signal handlers
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(agent.stop))
    try:
        return await agent.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)


if __name__ == "__main__":
    sys.exit(main())
