"""Progress of long work in words a person reads at a glance: rates and ETAs.

Catch-up (ledgernode/activity.py) and `bench` (ledgernode/bench.py) print progress
lines with these; `Progress` also decides when a line is due, at most one per
`every_s`, so a fast loop does not flood stderr. Times are monotonic seconds from
the caller's clock, so tests drive them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

PROGRESS_LINE_S = 2.0  # at most one progress line this often


def duration_text(seconds: float) -> str:
    """`4 s`, `2 min 05 s`, `1 h 02 min`: rounded to the unit shown last."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    m = round(seconds / 60)
    return f"{m // 60} h {m % 60:02d} min"


def eta_text(remaining: float, per_s: float) -> str:
    """When `remaining` units are done at `per_s` units a second: `soon` when nothing
    remains, `unknown` while no rate is known yet."""
    if remaining <= 0:
        return "soon"
    if per_s <= 0:
        return "unknown"
    return duration_text(remaining / per_s)


@dataclass
class Progress:
    """Work of `total` units: `update(done)` gives a line when one is due (the first
    update after `every_s`, and the last unit), else None. The rate is over the whole
    run so far, the ETA from it."""

    label: str
    total: int
    unit: str
    every_s: float = PROGRESS_LINE_S
    clock: Callable[[], float] = time.monotonic
    start_s: float = field(init=False)
    last_line_s: float = field(init=False)

    def __post_init__(self) -> None:
        self.start_s = self.last_line_s = self.clock()

    def update(self, done: int) -> str | None:
        now = self.clock()
        if done < self.total and now - self.last_line_s < self.every_s:
            return None
        self.last_line_s = now
        return self.line(done, now)

    def line(self, done: int, now: float) -> str:
        elapsed = now - self.start_s
        per_s = done / elapsed if elapsed > 0 else 0.0
        pct = 100 * done / self.total if self.total else 100.0
        return (f"{self.label}: {done:,} of {self.total:,} {self.unit} ({pct:.0f}%), {per_s:,.0f} {self.unit}/s, "
                f"ETA {eta_text(self.total - done, per_s)}")
