"""Prometheus histograms with fixed buckets, rendered in the text exposition format.

A histogram counts each observation in the first bucket whose upper bound is at least
the value (`le` is "less than or equal"), plus one implicit `+Inf` bucket; rendering
makes the counts cumulative, as the format requires, and adds `_sum` and `_count`.
Labelled histograms keep one set of counts per label values; the number of label sets
is bounded (`series_max`): once full, observations with new label values are counted
under `OVERFLOW_LABEL` in every label, so a client choosing labels cannot grow memory.
The bucket bounds of the node's series are named constants in ledgernode/metrics.py
and ledgernode/api/timing.py.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

SERIES_MAX = 256  # label sets one histogram keeps (routes x methods fit well below it)
OVERFLOW_LABEL = "other"  # the label value that stands for every set past `series_max`


@dataclass
class Counts:
    """One label set's observations: per-bucket counts (not cumulative) and their sum."""

    buckets: list[int]
    total: float = 0.0
    count: int = 0


def bound_text(bound: float) -> str:
    """A bucket bound as the `le` label shows it: `+Inf`, an integer without a fraction
    (`1`, `16777216`), else the shortest text that reads back as the same float."""
    if math.isinf(bound):
        return "+Inf"
    if float(bound).is_integer():
        return str(int(bound))
    return repr(float(bound))


def value_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass
class Histogram:
    name: str
    help_text: str
    bounds: tuple[float, ...]  # finite upper bounds, increasing; +Inf is implicit
    label_names: tuple[str, ...] = ()
    series_max: int = SERIES_MAX
    series: dict[tuple[str, ...], Counts] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert self.bounds and list(self.bounds) == sorted(set(self.bounds)), "bounds must increase"
        assert all(math.isfinite(b) for b in self.bounds), "+Inf is implicit"
        assert self.series_max >= 1
        if not self.label_names:  # one series, shown (all zero) before its first observation
            self.series[()] = Counts([0] * (len(self.bounds) + 1))

    def bucket_index(self, value: float) -> int:
        """The bucket `value` falls in: the first bound >= value; len(bounds) is +Inf."""
        return bisect.bisect_left(self.bounds, value)

    def observe(self, value: float, *labels: str) -> None:
        assert len(labels) == len(self.label_names), (labels, self.label_names)
        if math.isnan(value):
            return  # no bucket holds it, and it would poison _sum
        counts = self.series.get(labels)
        if counts is None:
            if len(self.series) >= self.series_max:
                labels = (OVERFLOW_LABEL,) * len(self.label_names)
            counts = self.series.setdefault(labels, Counts([0] * (len(self.bounds) + 1)))
        counts.buckets[self.bucket_index(value)] += 1
        counts.total += value
        counts.count += 1

    def render(self) -> str:
        """# HELP, # TYPE and every sample, one line each, ending with a newline."""
        lines = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} histogram"]
        for labels, counts in sorted(self.series.items()):
            pairs = [f'{k}="{_escape(v)}"' for k, v in zip(self.label_names, labels)]
            running = 0
            for bound, n in zip((*self.bounds, math.inf), counts.buckets):
                running += n
                le = ",".join([*pairs, f'le="{bound_text(bound)}"'])
                lines.append(f"{self.name}_bucket{{{le}}} {running}")
            tail = "{" + ",".join(pairs) + "}" if pairs else ""
            lines.append(f"{self.name}_sum{tail} {value_text(counts.total)}")
            lines.append(f"{self.name}_count{tail} {counts.count}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    """A label value in the exposition format: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
