"""Throughput and p99 latency against offered load: runs `python -m ledgernode bench`
at several offered rates and plots the figures (needs matplotlib, a tool of this
script only, not of ledgernode).

    python scripts/plot_load.py --seconds 10 --out docs/bench_load.png
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

RATES = [500, 1000, 2000, 3000, 4000, 0]  # records/s offered; 0: as fast as possible


def run(rate: int, seconds: float) -> dict:
    cmd = [sys.executable, "-m", "ledgernode", "bench", "--seconds", str(seconds), "--json", "--no-single"]
    if rate:
        cmd += ["--rate", str(rate)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", default="docs/bench_load.png")
    args = parser.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("this script needs matplotlib: pip install matplotlib", file=sys.stderr)
        return 2
    points = []
    for rate in RATES:
        result = run(rate, args.seconds)
        # submitted counts the warm-up too, which runs at the same offered load
        offered = rate or result["submitted"] / (args.seconds + result.get("warmup_s", 0.0))
        points.append((offered, result["records_per_s"], result["latency_ms"]["p99"], result["ratio"]))
        print(json.dumps({"offered_per_s": round(offered), "records_per_s": result["records_per_s"],
                          "p99_ms": result["latency_ms"]["p99"], "ratio": result["ratio"]}), flush=True)
    fig, ax1 = plt.subplots(figsize=(7, 4.2))
    xs = [p[0] for p in points]
    ax1.plot(xs, [p[1] for p in points], "o-", color="tab:blue", label="committed on all 4 nodes (records/s)")
    ax1.set_xlabel("offered load (records/s)")
    ax1.set_ylabel("throughput (records/s)", color="tab:blue")
    ax2 = ax1.twinx()
    ax2.plot(xs, [p[2] for p in points], "s--", color="tab:red", label="p99 submit-to-commit (ms)")
    ax2.set_ylabel("p99 latency (ms)", color="tab:red")
    ax1.set_title("ledgernode bench: 4 nodes on one 2-core machine")
    fig.legend(loc="upper left", bbox_to_anchor=(0.12, 0.88), fontsize=8)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
