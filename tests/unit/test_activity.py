"""Activity (ledgernode.activity) and Throttle (ledgernode.logs): what the operator reads."""

from __future__ import annotations

import json
import logging

import pytest

from ledgernode import logs
from ledgernode.activity import Activity


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_commit_lines_are_at_most_one_per_second_with_a_summary(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    act = Activity(logging.getLogger("t"), clock)
    for h in range(1, 41):
        clock.t += 0.0625  # 16 blocks a second (exact in binary: no rounding at the edges)
        act.committed(h, 10, 0)
    got = lines(caplog)
    assert len(got) == 2, got  # at 1.0 s and 2.0 s of the 2.5 s
    assert got[0] == "committed height 16 (10 records, round 0); 16 blocks, 160 records in the last 1.0 s"
    clock.t += 5
    act.flush()  # a tick writes what is due even when commits stopped
    assert lines(caplog)[-1].startswith("committed height 40 (10 records, round 0); 8 blocks, 80 records")
    act.flush()
    assert len(lines(caplog)) == 3


def test_catch_up_progress_and_end(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    act = Activity(logging.getLogger("t"), clock)
    for h in range(11, 31):
        clock.t += 0.125
        act.fetched(h, 100, target=50)
    act.live(31)
    got = lines(caplog)
    assert got[0] == "catching up from height 10 to 50"
    assert got[1] == "catching up: height 19 of 50, 800 records/s, 8.0 blocks/s, ETA 4 s", got
    assert got[-1].startswith("caught up at height 31: 20 blocks, 2000 records in ")


def test_refusals_log_once_per_code_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    act = Activity(logging.getLogger("t"), clock)
    for total in range(1, 101):
        act.rejected("bad_signature", total)
    act.rejected("duplicate", 1)
    clock.t += 10.0
    act.rejected("bad_signature", 101)
    assert lines(caplog) == ["refused input: bad_signature (1 so far)", "refused input: duplicate (1 so far)",
                             "refused input: bad_signature (101 so far) (+99 more in the last 10 s)"]


def test_throttle_forgets_the_oldest_cause_past_its_bound() -> None:
    t = logs.Throttle(logging.getLogger("t"), 10.0)
    for i in range(logs.THROTTLE_CAUSES_MAX + 5):
        assert t.log(logging.DEBUG, f"cause-{i}", "x", now_s=0.0)
    assert len(t._causes) == logs.THROTTLE_CAUSES_MAX
    assert t.log(logging.DEBUG, "cause-0", "x", now_s=1.0)  # forgotten, so logged again


def test_configure_json_lines_and_quiet_aiohttp_server(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logs.configure("warning", "json")
        logging.getLogger("ledgernode.node").info("hidden")
        logging.getLogger("ledgernode.node").warning("shown %d", 7)
        logging.getLogger("aiohttp.server").error("Error handling request")
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        doc = json.loads(err[0])
        assert doc["level"] == "warning" and doc["logger"] == "ledgernode.node" and doc["msg"] == "shown 7"
        with pytest.raises(ValueError, match="log level"):
            logs.configure("loud", "text")
        with pytest.raises(ValueError, match="log format"):
            logs.configure("info", "xml")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        logging.getLogger("aiohttp.server").setLevel(logging.NOTSET)
