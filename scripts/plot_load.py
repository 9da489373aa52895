"""Throughput and p99 latency against offered load: runs `python -m ledgernode bench`
at several offered rates, prints one JSON line per rate and draws the figures as an
SVG chart with ledgernode/charts.py (the plotter `bench --plot` uses too).

    python scripts/plot_load.py --seconds 10 --out docs/bench_load.svg > docs/bench_load.jsonl
    python scripts/plot_load.py --from docs/bench_load.jsonl --out docs/bench_load.svg   # redraw only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from ledgernode.charts import Chart, Series, document

RATES = [500, 1000, 2000, 3000, 4000, 0]  # records/s offered; 0: as fast as possible


def run(rate: int, seconds: float) -> dict:
    cmd = [sys.executable, "-m", "ledgernode", "bench", "--seconds", str(seconds), "--json", "--no-single"]
    if rate:
        cmd += ["--rate", str(rate)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(seconds: float) -> list[dict]:
    points = []
    for rate in RATES:
        result = run(rate, seconds)
        # submitted counts the warm-up too, which runs at the same offered load
        offered = rate or result["submitted"] / (seconds + result.get("warmup_s", 0.0))
        point = {"offered_per_s": round(offered), "records_per_s": result["records_per_s"],
                 "p99_ms": result["latency_ms"]["p99"], "ratio": result["ratio"]}
        print(json.dumps(point), flush=True)
        points.append(point)
    return points


def chart(points: list[dict]) -> Chart:
    return Chart("ledgernode bench: 4 nodes on one 2-core machine", "offered load (records/s)",
                 Series("committed on all 4 nodes (records/s)", "#1f77b4",
                        tuple((p["offered_per_s"], p["records_per_s"]) for p in points)),
                 Series("p99 submit-to-commit (ms)", "#d62728", tuple((p["offered_per_s"], p["p99_ms"]) for p in points),
                        dashed=True),
                 "throughput (records/s)", "p99 latency (ms)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--from", dest="source", default=None,
                        help="draw the JSON lines of an earlier run instead of running bench")
    parser.add_argument("--out", default="docs/bench_load.svg")
    args = parser.parse_args()
    if args.source:
        points = [json.loads(line) for line in Path(args.source).read_text().splitlines() if line.strip()]
    else:
        points = measure(args.seconds)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(document([chart(points)]), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
