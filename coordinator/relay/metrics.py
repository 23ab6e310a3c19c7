"""The relay's figures on ``/metrics``: requests, latency, retries, failures, tunnels."""

from __future__ import annotations

from collections import Counter as Tally

from coordinator.metrics import Counter, Gauge, Histogram, LabelValues, MetricsRegistry
from coordinator.relay.hub import TunnelHub


class RelayMetrics:
    """Counts every relayed request; reads the tunnels when the page is rendered."""

    def __init__(self, hub: TunnelHub, registry: MetricsRegistry) -> None:
        self._hub = hub
        self.requests = Counter(
            "rma_relay_requests_total",
            "Requests relayed (or refused) by service, HTTP status and outcome.",
            ("service", "status", "outcome"),
        )
        self.duration = Histogram(
            "rma_relay_request_duration_seconds",
            "Time from an end user's request to the end of its answer, by service.",
            ("service",),
        )
        self.retries = Counter(
            "rma_relay_retries_total",
            "Requests sent to another worker after the first failed before answering.",
            ("service",),
        )
        self.worker_failures = Counter(
            "rma_relay_worker_failures_total",
            "Workers failing a relayed request, by service and reason.",
            ("service", "reason"),
        )
        for metric in (self.requests, self.duration, self.retries, self.worker_failures):
            registry.add(metric)
        registry.add(
            Gauge(
                "rma_relay_in_flight",
                "Requests being answered through the tunnels now.",
                self._in_flight,
            )
        )
        registry.add(
            Gauge(
                "rma_tunnels_open",
                "Workers' open tunnels, by transport.",
                self._tunnels,
                ("transport",),
            )
        )
        registry.add(
            Gauge(
                "rma_relay_workers_banned",
                "Workers left out of routing for a while after failing requests.",
                lambda: {(): float(len(self._hub.banned()))},
            )
        )

    def finished(
        self, service: str, status: int, outcome: str, seconds: float, attempts: int
    ) -> None:
        """One request is over: count it and its duration."""
        self.requests.inc(service, str(status), outcome)
        if attempts:
            self.duration.observe(seconds, service)

    def retried(self, service: str) -> None:
        """A request goes to another worker."""
        self.retries.inc(service)

    def worker_failed(self, service: str, reason: str) -> None:
        """A worker failed a request."""
        self.worker_failures.inc(service, reason)

    def _in_flight(self) -> dict[LabelValues, float]:
        return {(): float(sum(tunnel.outstanding for tunnel in self._hub.tunnels()))}

    def _tunnels(self) -> dict[LabelValues, float]:
        counts = Tally(tunnel.transport for tunnel in self._hub.tunnels())
        return {(transport,): float(counts[transport]) for transport in ("websocket", "long-poll")}
