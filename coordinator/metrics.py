"""Counters, gauges and histograms in the Prometheus text format, without a client library.

The coordinator's metrics are few and their label values bounded (services from the
catalogue, status classes, transports), so a dict per metric is all the bookkeeping needed.
Updates happen on the event loop; rendering reads a snapshot (``/metrics``).
See https://prometheus.io/docs/instrumenting/exposition_formats/ for the format.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence

LabelValues = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    pairs = [f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Metric:
    """A named metric with help text and label names."""

    kind = "untyped"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)

    def samples(self) -> Iterable[str]:
        """The metric's sample lines."""
        raise NotImplementedError

    def render(self) -> str:
        """``# HELP``, ``# TYPE`` and the samples."""
        head = f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.kind}\n"
        return head + "".join(line + "\n" for line in self.samples())


class Counter(Metric):
    """A count that only goes up."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[LabelValues, float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        """Add ``amount`` to the series with these label values."""
        self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        """The series' count (0 when never counted)."""
        return self._values.get(labels, 0.0)

    def series(self) -> dict[LabelValues, float]:
        """Every series' count, by its label values (a copy)."""
        return dict(self._values)

    def samples(self) -> Iterable[str]:  # noqa: D102
        for labels, value in sorted(self._values.items()):
            yield f"{self.name}{_labels(self.label_names, labels)} {_number(value)}"


class Gauge(Metric):
    """A value read when the metrics are rendered."""

    kind = "gauge"

    def __init__(
        self,
        name: str,
        help_text: str,
        read: Callable[[], dict[LabelValues, float]],
        labels: Sequence[str] = (),
    ) -> None:
        super().__init__(name, help_text, labels)
        self._read = read

    def samples(self) -> Iterable[str]:  # noqa: D102
        for labels, value in sorted(self._read().items()):
            yield f"{self.name}{_labels(self.label_names, labels)} {_number(value)}"


DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
"""Seconds: from a loopback round trip to a long language-model answer."""


class Histogram(Metric):
    """Observations counted into cumulative buckets, with their sum and count."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        super().__init__(name, help_text, labels)
        self._bounds = tuple(sorted(buckets))
        self._series: dict[LabelValues, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, *labels: str) -> None:
        """Count one observation in the series with these label values."""
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = ([0] * (len(self._bounds) + 1), [0.0])
        counts, total = series
        counts[bisect.bisect_left(self._bounds, value)] += 1
        total[0] += value

    def count(self, *labels: str) -> int:
        """How many observations the series has."""
        series = self._series.get(labels)
        return sum(series[0]) if series is not None else 0

    def totals(self) -> tuple[int, float]:
        """How many observations all series have together, and their sum."""
        count = 0
        total = 0.0
        for counts, series_total in self._series.values():
            count += sum(counts)
            total += series_total[0]
        return count, total

    def samples(self) -> Iterable[str]:  # noqa: D102
        for labels, (counts, total) in sorted(self._series.items()):
            running = 0
            for bound, count in zip((*self._bounds, math.inf), counts, strict=True):
                running += count
                le = f'le="{_number(bound)}"'
                yield f"{self.name}_bucket{_labels(self.label_names, labels, le)} {running}"
            yield f"{self.name}_sum{_labels(self.label_names, labels)} {_number(total[0])}"
            yield f"{self.name}_count{_labels(self.label_names, labels)} {running}"


class MetricsRegistry:
    """The metrics one ``/metrics`` page shows, in the order they were added."""

    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self) -> None:
        self._metrics: list[Metric] = []

    def add(self, metric: Metric) -> None:
        """Show ``metric`` on the page."""
        if any(existing.name == metric.name for existing in self._metrics):
            raise ValueError(f"a metric named {metric.name} is already registered")
        self._metrics.append(metric)

    def render(self) -> str:
        """The whole page."""
        return "".join(metric.render() for metric in self._metrics)
