#!/usr/bin/env python3
"""Benchmark the LevelDB-backed Store: append rate, proof latency, size, memory.

    python scripts/bench_store.py [--leaves 1000000] [--block 1000] [--dir DIR]
                                  [--queries 2000] [--profile]

Appends synthetic leaves (distinct, canonically encoded ~200-byte envelopes,
unsigned: signing and checking records is not what is measured) to a fresh
store, one `Store.commit` per block with a dummy QC, exactly as a node commits
(one synced atomic batch per block). Then times inclusion and consistency proof
generation from the store at the final size over random queries, and their
verification separately. Prints progress, a summary, and one JSON line.

Targets: append >= 50,000 leaves/s, proof p99 <= 2 ms, peak RSS <= 300 MB.
Wall-clock figures on a shared 2-core machine include time other processes
hold the CPU, so main-thread CPU time is reported next to them: compare runs
with the same load. `--profile` runs the append phase under cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from ledgernode import codec, merkle
from ledgernode.blocks import QC, Block, CheckedBlock, Header
from ledgernode.records import Envelope, Record, record_id_of
from ledgernode.storage import Store

CHAIN = "bench"
T0 = 1_767_225_600_000
KEY_ID = "00" * 8
SIG = bytes(64)
SUBJECTS = 1_000
_NONCE_SLOT = b"\xc4\x10" + b"\xee" * 16


class Envelopes:
    """Distinct envelopes spliced from per-subject templates (only the nonce varies).

    The bytes (raw, record_bytes, record_id) are exact; the decoded `Record`
    object is shared per subject (its nonce is the template's), since the store
    reads only `record.subject` from it.
    """

    def __init__(self) -> None:
        self._templates: dict[int, tuple[Record, bytes, bytes, bytes, bytes]] = {}

    def _template(self, s: int) -> tuple[Record, bytes, bytes, bytes, bytes]:
        rec = Record(1, CHAIN, "trace.event", f"product-{s:04d}", {"activity": "shipped"},
                     (), T0, _NONCE_SLOT[2:], KEY_ID)
        rb = codec.encode(rec.to_map())
        env = codec.encode([rb, SIG])
        at, start = rb.index(_NONCE_SLOT) + 2, env.index(rb)
        return rec, rb[:at], rb[at + 16:], env[:start], env[start + len(rb):]

    def make(self, leaf: int) -> Envelope:
        s = leaf % SUBJECTS
        t = self._templates.get(s)
        if t is None:
            t = self._templates[s] = self._template(s)
        nonce = leaf.to_bytes(16, "big")
        rb = t[1] + nonce + t[2]
        return Envelope(t[0], rb, SIG, t[3] + rb + t[4], record_id_of(rb))


def build(store: Store, envs: list[Envelope], height: int) -> tuple[CheckedBlock, QC]:
    """What build_block/check_block produce for these envelopes, minus the state rules."""
    parent = store.head()
    frontier = store.frontier.copy()
    nodes: list[tuple[int, int, bytes]] = []
    for env in envs:
        nodes.extend(frontier.append(env.leaf_hash))
    header = Header(
        CHAIN, height, T0 + height, parent.block_hash if parent else bytes(32), 0,
        store.log_size, frontier.size, frontier.root(), bytes(32),
    )
    header = replace(header, raw=header.encode())
    return CheckedBlock(Block(header, tuple(envs)), nodes, {}, frontier), QC(
        height, 0, header.block_hash, tuple((i, SIG) for i in range(3)))


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def append_phase(store: Store, leaves: int, block: int) -> dict[str, float]:
    """Append `leaves` in blocks; wall time per step, plus main-thread CPU of the
    commits (the gap to wall is fsync, LevelDB write stalls and preemption) and
    the whole process's CPU (which adds LevelDB's background compaction thread)."""
    gen = Envelopes()
    t_gen = t_build = t_commit = cpu_commit = 0.0
    start, cpu_start, thread_start = time.perf_counter(), time.process_time(), time.thread_time()
    next_report = 100_000
    done, height = 0, 0
    while done < leaves:
        count = min(block, leaves - done)
        t0 = time.perf_counter()
        envs = [gen.make(i) for i in range(done, done + count)]
        t1 = time.perf_counter()
        height += 1
        checked, qc = build(store, envs, height)
        t2 = time.perf_counter()
        c2 = time.thread_time()
        store.commit(checked, qc)
        cpu_commit += time.thread_time() - c2
        t3 = time.perf_counter()
        t_gen += t1 - t0
        t_build += t2 - t1
        t_commit += t3 - t2
        done += count
        if done >= next_report or done == leaves:
            el = time.perf_counter() - start
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"  {done:>9,} leaves  {el:7.1f} s  {done / el:9,.0f} leaves/s  "
                  f"peak RSS {rss:6.1f} MB", flush=True)
            while next_report <= done:
                next_report += 100_000
    total = time.perf_counter() - start
    main_cpu = time.thread_time() - thread_start
    return {
        "append_s": total, "gen_s": t_gen, "build_s": t_build, "commit_s": t_commit,
        "commit_cpu_s": cpu_commit, "main_cpu_s": main_cpu,
        "other_threads_cpu_s": time.process_time() - cpu_start - main_cpu, "blocks": height,
    }


def _timed(fn, *args):  # type: ignore[no-untyped-def]
    w, c = time.perf_counter(), time.thread_time()
    out = fn(*args)
    return out, time.perf_counter() - w, time.thread_time() - c


def proof_phase(store: Store, queries: int, rng: random.Random) -> dict[str, float]:
    """Proof generation from the store and verification, each timed on its own:
    wall clock, and main-thread CPU (which excludes time the 2-core machine
    spends running other processes while we wait)."""
    n = store.log_size
    root = store.frontier.root()
    t: dict[str, list[float]] = {k: [] for k in (
        "inclusion_gen", "inclusion_gen_cpu", "inclusion_verify",
        "consistency_gen", "consistency_gen_cpu", "consistency_verify")}
    for _ in range(queries):
        i = rng.randrange(n)
        proof, wall, cpu = _timed(store.inclusion_proof, i, n)
        leaf = store.node(0, i)
        ok, vwall, _ = _timed(merkle.verify_inclusion, leaf, i, n, proof, root)
        assert ok, (i, n)
        t["inclusion_gen"].append(wall)
        t["inclusion_gen_cpu"].append(cpu)
        t["inclusion_verify"].append(vwall)
    for _ in range(queries):
        m = rng.randint(1, n)
        proof, wall, cpu = _timed(store.consistency_proof, m, n)
        old_root = merkle.root(store, m)
        ok, vwall, _ = _timed(merkle.verify_consistency, m, n, old_root, root, proof)
        assert ok, (m, n)
        t["consistency_gen"].append(wall)
        t["consistency_gen_cpu"].append(cpu)
        t["consistency_verify"].append(vwall)
    out = {}
    for k, values in t.items():
        out[f"{k}_p50_ms"] = pct(values, 50) * 1e3
        out[f"{k}_p99_ms"] = pct(values, 99) * 1e3
    return out


def leveldb_stats(store: Store) -> str:
    db = getattr(store.kv, "_db", None)  # LevelKV's plyvel handle, for the report only
    raw = db.get_property(b"leveldb.stats") if db is not None else None
    return raw.decode() if raw else ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leaves", type=int, default=1_000_000)
    ap.add_argument("--block", type=int, default=1_000)
    ap.add_argument("--dir", type=Path, default=None, help="store directory (must be new); default a temp dir, removed")
    ap.add_argument("--queries", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="cProfile the append phase and print the top functions")
    args = ap.parse_args(argv)

    tmp = None
    if args.dir is None:
        tmp = Path(tempfile.mkdtemp(prefix="bench_store_"))
        directory = tmp / "db"
    else:
        directory = args.dir
        if directory.exists() and any(directory.iterdir()):
            ap.error(f"{directory} is not empty")
    try:
        store = Store.open(directory)
        print(f"appending {args.leaves:,} leaves in blocks of {args.block:,} to {directory}", flush=True)
        if args.profile:
            prof = cProfile.Profile()
            app = prof.runcall(append_phase, store, args.leaves, args.block)
            pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(25)
        else:
            app = append_phase(store, args.leaves, args.block)
        assert store.log_size == args.leaves and store.frontier.root() == store.head().log_root
        stats = leveldb_stats(store)
        proofs = proof_phase(store, args.queries, random.Random(args.seed))
        store.close()
        size = dir_bytes(directory)
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rate = args.leaves / app["append_s"]
        store_rate = args.leaves / (app["build_s"] + app["commit_s"])
        print()
        print(stats.rstrip())
        print(f"append: {rate:,.0f} leaves/s overall ({app['append_s']:.1f} s wall, {app['blocks']:,} blocks)")
        print(f"  wall split: synthetic envelopes {app['gen_s']:.1f} s, frontier+header {app['build_s']:.1f} s, "
              f"Store.commit {app['commit_s']:.1f} s (of which main-thread CPU {app['commit_cpu_s']:.1f} s)")
        print(f"  store work only (frontier+header+commit): {store_rate:,.0f} leaves/s; "
              f"main thread CPU {app['main_cpu_s']:.1f} s, LevelDB background threads CPU "
              f"{app['other_threads_cpu_s']:.1f} s")
        for kind in ("inclusion", "consistency"):
            p = {k[len(kind) + 1:]: v for k, v in proofs.items() if k.startswith(kind)}
            print(f"{kind} proofs at size {args.leaves:,} ({args.queries:,} queries): generate wall "
                  f"p50 {p['gen_p50_ms']:.3f} ms p99 {p['gen_p99_ms']:.3f} ms (CPU p50 {p['gen_cpu_p50_ms']:.3f} "
                  f"p99 {p['gen_cpu_p99_ms']:.3f} ms); verify p50 {p['verify_p50_ms']:.3f} ms "
                  f"p99 {p['verify_p99_ms']:.3f} ms")
        print(f"store on disk: {size:,} bytes ({size / 1e6:.1f} MB, {size / args.leaves:.0f} B/leaf)")
        print(f"peak RSS: {rss_mb:.1f} MB")
        figures = {
            "leaves": args.leaves, "block": args.block, "blocks": app["blocks"],
            "append_leaves_per_s": round(rate), "store_only_leaves_per_s": round(store_rate),
            **{k: round(v, 2) for k, v in app.items() if k != "blocks"},
            **{k: round(v, 4) for k, v in proofs.items()},
            "store_bytes": size, "store_mb": round(size / 1e6, 1), "peak_rss_mb": round(rss_mb, 1),
            "targets_met": {
                "append": rate >= 50_000,
                "proof_p99": max(proofs["inclusion_gen_p99_ms"], proofs["consistency_gen_p99_ms"]) <= 2.0,
                "proof_p99_cpu": max(proofs["inclusion_gen_cpu_p99_ms"],
                                     proofs["consistency_gen_cpu_p99_ms"]) <= 2.0,
                "rss": rss_mb <= 300,
            },
        }
        print(json.dumps(figures, sort_keys=True))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
