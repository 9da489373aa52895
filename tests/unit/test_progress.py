"""Progress lines (ledgernode.progress): durations, ETAs, and at most one line per interval."""

from __future__ import annotations

from ledgernode.progress import Progress, duration_text, eta_text


class Clock:
    def __init__(self) -> None:
        self.t = 50.0

    def __call__(self) -> float:
        return self.t


def test_durations_read_at_a_glance() -> None:
    assert [duration_text(s) for s in (0, 0.4, 4.6, 59.4, 60, 125, 3599, 3600, 3725, 90_000)] == [
        "0 s", "0 s", "5 s", "59 s", "1 min 00 s", "2 min 05 s", "59 min 59 s", "1 h 00 min", "1 h 02 min",
        "25 h 00 min"]
    assert duration_text(-3) == "0 s"


def test_eta_from_what_remains_and_the_rate() -> None:
    assert eta_text(31, 8.0) == "4 s"  # 3.875 s
    assert eta_text(600, 2.0) == "5 min 00 s"
    assert eta_text(0, 8.0) == "soon" and eta_text(-2, 8.0) == "soon"
    assert eta_text(10, 0.0) == "unknown"


def test_progress_lines_are_bounded_in_frequency_and_end_with_the_last_unit() -> None:
    clock = Clock()
    p = Progress("signing", 640, "records", every_s=2.0, clock=clock)
    lines = []
    for done in range(1, 641):
        clock.t += 1 / 64  # 64 units a second (exact in binary): 10 s for the whole work
        line = p.update(done)
        if line is not None:
            lines.append(line)
    assert len(lines) == 5  # at 2, 4, 6, 8 s, and the last unit at 10 s
    assert lines[0] == "signing: 128 of 640 records (20%), 64 records/s, ETA 8 s", lines[0]
    assert lines[-1] == "signing: 640 of 640 records (100%), 64 records/s, ETA soon", lines[-1]
