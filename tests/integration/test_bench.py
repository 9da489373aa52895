"""The benchmark is not a timed test: this only checks that a short run works end to end.

Nothing here depends on the machine's speed: the bench's warm-up lasts until the first
records have committed on every node, and if a short measured window still saw no commit
(a busy machine), the run is repeated with a window twice as long, up to a generous deadline.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

EXPECTED_KEYS = {"nodes", "seconds", "committed", "records_per_s", "latency_ms", "verify_per_s_one_core",
                 "cores", "bound_records_per_s", "ratio"}
FIRST_SECONDS = 2
BENCH_DEADLINE_S = 900.0  # for every run together; a run on an idle machine takes about 20 s


def _free_base_port() -> int:
    """A base port whose API (base+i) and peer (base+100+i) ports are all free now."""
    for _ in range(50):
        base = random.randrange(20_000, 40_000)
        ports = [base + i for i in range(4)] + [base + 100 + i for i in range(4)]
        try:
            for p in ports:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port block")


def _bench(seconds: int, timeout: float, plot: Path) -> tuple[dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "ledgernode", "bench", "--nodes", "4", "--seconds", str(seconds), "--json",
         "--base-port", str(_free_base_port()), "--plot", str(plot)],
        capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert EXPECTED_KEYS <= set(result)
    assert set(result["latency_ms"]) == {"p50", "p99"}
    assert result["nodes"] == 4 and result["seconds"] == seconds
    assert result["verify_per_s_one_core"] > 0
    # The warm-up is at least a quarter of the run (at most 5 s), longer if the first commit is later.
    assert result["warmup_s"] >= min(5.0, seconds / 4)
    assert result["committed"] >= 0
    bound = result["verify_per_s_one_core"] * result["cores"] / result["nodes"]
    assert abs(result["bound_records_per_s"] - bound) < 1
    assert abs(result["ratio"] - result["records_per_s"] / result["bound_records_per_s"]) < 0.01
    assert abs(result["records_per_s"] - result["committed"] / seconds) < 0.1
    assert "bench[" in proc.stderr and "records/s" in proc.stderr and "ETA" in proc.stderr  # progress while it runs
    # --plot: one chart per phase (batch, then single), each with both series
    charts = ET.parse(plot).getroot().findall("{http://www.w3.org/2000/svg}g[@class='chart']")
    assert len(charts) == 2
    for chart in charts:
        labels = {g.get("data-label") for g in chart.findall("{http://www.w3.org/2000/svg}g[@class='series']")}
        assert labels == {"committed on every node (records/s)", "p50 submit-to-commit (ms)"}
    return result, proc.stderr


def test_bench_short_run_prints_one_json_line(tmp_path: Path) -> None:
    deadline = time.monotonic() + BENCH_DEADLINE_S
    seconds, runs = FIRST_SECONDS, []
    while True:
        result, stderr = _bench(seconds, timeout=max(120.0, deadline - time.monotonic()), plot=tmp_path / "bench.svg")
        runs.append({k: result[k] for k in ("seconds", "warmup_s", "committed", "submitted", "errors")})
        if result["committed"] > 0:
            break
        assert time.monotonic() < deadline, (
            f"no bench run counted a committed record in its measured window within {BENCH_DEADLINE_S} s; "
            f"runs: {runs}; last progress: {stderr[-1500:]}")
        seconds *= 2  # a busy machine: the same run with a longer window
    assert result["committed"] > 0 and result["records_per_s"] > 0
    # where the nodes' CPU went, by kind of thread; the kinds add up to about the total
    # (the two are read moments apart: a tick or so each side)
    by_thread = result["node_cpu_us_per_record_by_thread"]
    assert {"main", "disk", "verify"} <= by_thread.keys(), by_thread
    if result["node_cpu_us_per_record"]:
        assert sum(by_thread.values()) <= result["node_cpu_us_per_record"] * 1.5 + 50, result
