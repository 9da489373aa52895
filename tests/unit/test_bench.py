"""`bench`'s progress lines and its --plot file (ledgernode.bench), without a devnet:
tests/integration/test_bench.py runs the real thing."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ledgernode.bench import DRAIN_S, Phase, Sample, progress_line, write_plot

SVG = "{http://www.w3.org/2000/svg}"


def phase(name: str = "batch") -> Phase:
    p = Phase(name, [], 500, 4, seconds=20.0, rate=None, warmup_s=5.0)
    p.submitted, p.committed = 12_000, 9_500
    return p


def test_progress_lines_say_the_rate_latency_and_when_the_phase_ends() -> None:
    p = phase()
    line = progress_line(p, 2.0, 4_250.4, None, 7, now_s=102.0)
    assert line == (f"bench[batch]:   2.0 s warming up  submitted 12,000  committed on all nodes 9,500 "
                    f"(4,250 records/s)  latency p50 -  height 7  ETA at least {3 + 20 + DRAIN_S:.0f} s")
    p.opened_s = 100.0
    line = progress_line(p, 12.0, 4_900.0, 1_234.5, 30, now_s=110.0)
    assert line.endswith(f"(4,900 records/s)  latency p50 1,234 ms  height 30  ETA {10 + DRAIN_S:.0f} s"), line
    assert "measuring" in line


def test_plot_writes_an_svg_with_throughput_and_latency_for_each_phase(tmp_path: Path) -> None:
    phases = [phase("batch"), phase("single")]
    for p in phases:
        p.started_s, p.opened_s = 10.0, 15.0
        p.timeline = [Sample(float(t), 4_000.0 + 10 * t, None if t < 6 else 800.0 + t) for t in range(1, 26)]
    out = tmp_path / "plots" / "bench.svg"
    write_plot(out, phases, nodes=4)
    root = ET.parse(out).getroot()
    charts = root.findall(f"{SVG}g[@class='chart']")
    titles = [c.get("data-title", "") for c in charts]
    assert [t.split("]")[0] for t in titles] == ["ledgernode bench [batch", "ledgernode bench [single"]
    for c in charts:
        series = {g.get("data-label"): g for g in c.findall(f"{SVG}g[@class='series']")}
        assert set(series) == {"committed on every node (records/s)", "p50 submit-to-commit (ms)"}
        assert len(series["committed on every node (records/s)"].findall(f"{SVG}circle")) == 25
        assert len(series["p50 submit-to-commit (ms)"].findall(f"{SVG}circle")) == 20  # none in the warm-up
        assert "measured window opens" in [t.text for t in c.iter(f"{SVG}text")]
