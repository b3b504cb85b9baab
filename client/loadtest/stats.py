"""Small mergeable statistics: a log-bucket histogram for latencies, and percentiles."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

# Buckets 2 % wide: a percentile read from the histogram is within 1 % of the true value.
_GROWTH = 1.02
_LOG_GROWTH = math.log(_GROWTH)
_FLOOR_MS = 0.01


class Histogram:
    """Counts of values (milliseconds) in logarithmic buckets; add, merge, subtract, JSON."""

    __slots__ = ("buckets", "count", "maximum", "total")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.maximum = 0.0

    def add(self, value_ms: float) -> None:
        key = int(math.log(max(value_ms, _FLOOR_MS) / _FLOOR_MS) / _LOG_GROWTH)
        self.buckets[key] = self.buckets.get(key, 0) + 1
        self.count += 1
        self.total += value_ms
        if value_ms > self.maximum:
            self.maximum = value_ms

    def copy(self) -> Histogram:
        other = Histogram()
        other.merge(self)
        return other

    def merge(self, other: Histogram) -> None:
        for key, n in other.buckets.items():
            self.buckets[key] = self.buckets.get(key, 0) + n
        self.count += other.count
        self.total += other.total
        self.maximum = max(self.maximum, other.maximum)

    def since(self, earlier: Histogram) -> Histogram:
        """What was added after `earlier` (a copy of this histogram taken before)."""
        delta = Histogram()
        for key, n in self.buckets.items():
            d = n - earlier.buckets.get(key, 0)
            if d:
                delta.buckets[key] = d
        delta.count = self.count - earlier.count
        delta.total = self.total - earlier.total
        delta.maximum = self.maximum  # an upper bound for the interval
        return delta

    def percentile(self, q: float) -> float | None:
        if not self.count:
            return None
        rank = q / 100 * self.count
        seen = 0
        for key in sorted(self.buckets):
            seen += self.buckets[key]
            if seen >= rank:
                # geometric middle of the bucket
                return _FLOOR_MS * _GROWTH ** (key + 0.5)
        return self.maximum

    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def summary(self) -> dict[str, float | int | None]:
        return {
            "count": self.count,
            "p50": _round(self.percentile(50)),
            "p95": _round(self.percentile(95)),
            "max": _round(self.maximum) if self.count else None,
            "mean": _round(self.mean()),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "buckets": {str(k): v for k, v in self.buckets.items()},
            "count": self.count,
            "total": self.total,
            "max": self.maximum,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Histogram:
        histogram = cls()
        histogram.buckets = {int(k): int(v) for k, v in data["buckets"].items()}
        histogram.count = int(data["count"])
        histogram.total = float(data["total"])
        histogram.maximum = float(data["max"])
        return histogram


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile of plain values (None for no values)."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Iterable[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
