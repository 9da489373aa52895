"""The benchmark is not a timed test: this only checks that a short run works end to end."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys

EXPECTED_KEYS = {"nodes", "seconds", "committed", "records_per_s", "latency_ms", "verify_per_s_one_core",
                 "cores", "bound_records_per_s", "ratio"}


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


def test_bench_two_seconds_prints_one_json_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ledgernode", "bench", "--nodes", "4", "--seconds", "2", "--json",
         "--base-port", str(_free_base_port())],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert EXPECTED_KEYS <= set(result)
    assert set(result["latency_ms"]) == {"p50", "p99"}
    assert result["nodes"] == 4 and result["seconds"] == 2
    assert result["committed"] > 0 and result["verify_per_s_one_core"] > 0
    bound = result["verify_per_s_one_core"] * result["cores"] / result["nodes"]
    assert abs(result["bound_records_per_s"] - bound) < 1
    assert abs(result["ratio"] - result["records_per_s"] / result["bound_records_per_s"]) < 0.01
    assert "bench[" in proc.stderr  # progress while it runs
