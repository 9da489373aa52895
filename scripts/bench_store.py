#!/usr/bin/env python3
"""Benchmark the LevelDB-backed Store with the state map: append rate, proofs, answers, size, memory.

    python scripts/bench_store.py [--records 1000000] [--subjects 200000] [--block 1000]
                                  [--queries 2000] [--dir DIR] [--no-paging] [--profile]

Append: synthetic `trace.event` records of the bench genesis' one client (distinct,
canonically encoded ~210-byte envelopes that decode under the genesis, with zero
signatures: signing and checking records is not what is measured), each about a
random one of `--subjects` subjects (seeded), except that `--ten-subjects` reserved
subjects get exactly 10 records each at random places in the log. One
`Store.commit` per block with a dummy QC, exactly as a node commits (one synced
atomic batch per block), each block carrying its state-map change computed by
`blocks.map_change`, the function `build_block` and `check_block` call (block 1
adds the genesis' initial map). The map change is timed on its own.

Then, at the final size, over `--queries` random subjects: (a) the proof of a
subject's map entry (`get` + `prove`, and its verification separately) and (b) the
assembly of a whole proven answer (`subject_history`) for a 10-record subject.
The answers are built from the unsigned records and a dummy QC: assembly checks
neither, so it costs what it costs a node; they would not verify.

Size: the LevelDB directory as it is after the append, then after a full
compaction, per record, with the keys per record by prefix (counted from the
commit batches) and LevelDB's on-disk estimate per prefix. After the compaction the
queries run again: the first run shares the machine with LevelDB compacting the
append on its own thread, the second finds it idle (a node at rest).

Paging (`--no-paging` skips it): a separate store whose one subject has
`--paging-records` (100,000) SIGNED records, committed through `build_block`
with real QCs of the genesis' validators; every page of `--page` (100) records
from `subject_history` is checked with `verify_answer` and must be valid and
claim "records A-B of N".

The collector runs with the node's policy (`node.tune_gc`: start-up's objects frozen,
the young generation collected every 50,000 allocations), as in a node's process.

Targets: proof p99 <= 2 ms, 10-record answer p99 <= 2 ms, peak RSS <= 300 MB.
Peak RSS (ru_maxrss) counts the pages of LevelDB's table files, which it reads
through mmap, so anonymous and file-backed RSS are reported apart (from /proc).
Wall-clock figures on a shared 2-core machine include time other processes
hold the CPU, so main-thread CPU time is reported next to them: compare runs
with the same load. `--profile` runs the append phase under cProfile.
Prints progress, a summary, and one JSON line.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import pstats
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from collections.abc import Callable
from typing import Any, TypeVar

from ledgernode import blocks, codec, crypto, genesis as genesis_mod, maptree, merkle, statemap
from ledgernode.auditing.answers import subject_history, verify_answer
from ledgernode.blocks import QC, Block, CheckedBlock, Header, build_block, vote_bytes
from ledgernode.records import Envelope, Record, decode_envelope, record_id_of, sign_record
from ledgernode.node import tune_gc
from ledgernode.storage import NODE_LEVEL_STORED_MIN, Store

CHAIN = "bench"
T0 = 1_767_225_600_000
SIG = bytes(64)
RECORD_TYPE = "trace.event"
ACTIVITY = "shipped"
SUBJECTS = 200_000
TEN = 10  # records of each reserved subject: what answer assembly is timed on
TEN_SUBJECTS = 200
VALIDATORS = 4
PAGING_SUBJECT = "batch-paged"
_NONCE_SLOT = b"\xc4\x10" + b"\xee" * 16  # bin8 of 16 bytes, a placeholder nonce
_T = TypeVar("_T")
PREFIXES = ("b/", "q/", "e/", "r/", "n/", "h/", "t/", "l/", "p/", "m/")


# -- the bench chain ----------------------------------------------------------------------


def _key(label: str) -> crypto.PrivateKey:
    return crypto.private_key_from_seed(hashlib.sha256(f"bench-store:{label}".encode()).digest())


def bench_keys() -> tuple[list[crypto.PrivateKey], crypto.PrivateKey]:
    """(validator keys, the one client key): deterministic."""
    return [_key(f"validator-{i}") for i in range(VALIDATORS)], _key("client")


def bench_genesis() -> genesis_mod.Genesis:
    validators, client = bench_keys()
    raw = genesis_mod.build(
        CHAIN,
        [{"dept": f"dept{i}", "name": f"Dept {i}", "pubkey": k.public.raw.hex()} for i, k in enumerate(validators)],
        [{"dept": "dept0", "pubkey": client.public.raw.hex(), "roles": ["trace.*"]}])
    return genesis_mod.parse(raw)


def real_qc(validators: list[crypto.PrivateKey], g: genesis_mod.Genesis, header: Header) -> QC:
    msg = vote_bytes(g.chain_id, header.height, 0, header.block_hash)
    return QC(header.height, 0, header.block_hash, tuple((i, validators[i].sign(msg)) for i in range(g.quorum)))


class Subjects:
    """Which subject each appended record is about, in append order: uniform over
    `subjects` names (seeded), except `reserved * TEN` records at random places that
    give `reserved` subjects exactly TEN records each. Every name has the same length."""

    def __init__(self, records: int, subjects: int, reserved: int, seed: int) -> None:
        rng = random.Random(seed)
        reserved = min(reserved, records // TEN)
        self.subjects, self.reserved = subjects, reserved
        self.width = len(str(max(subjects, reserved, 1) - 1))
        self._reserved_at = {pos: i % reserved for i, pos in enumerate(rng.sample(range(records), reserved * TEN))}
        self._rng = random.Random(seed + 1)

    def name(self, s: int) -> str:
        return f"item-{s:0{self.width}d}"

    def ten_name(self, r: int) -> str:
        return f"tenr-{r:0{self.width}d}"

    @property
    def name_chars(self) -> int:
        return 5 + self.width

    def next(self, i: int) -> str:
        """The subject of the i-th appended record; called once per i, in order."""
        r = self._reserved_at.get(i)
        return self.ten_name(r) if r is not None else self.name(self._rng.randrange(self.subjects))


class Envelopes:
    """Distinct envelopes spliced from one template: only the nonce (the leaf number)
    and the subject (all of one length) vary. The bytes are exactly codec.encode's
    (tests/unit/test_bench_store.py checks), the record decodes under the bench
    genesis (its chain, its client's key, a valid body); the signature is zeros."""

    def __init__(self, key_id: str, name_chars: int) -> None:
        self.key_id, self.name_chars = key_id, name_chars
        self.body = {"activity": ACTIVITY}
        slot = "~" * name_chars
        rec = Record(1, CHAIN, RECORD_TYPE, slot, self.body, (), T0, _NONCE_SLOT[2:], key_id)
        rb = codec.encode(rec.to_map())
        at_nonce, sb = rb.index(_NONCE_SLOT) + 2, slot.encode()
        at_subject = rb.index(sb)
        assert rb.count(sb) == 1 and at_nonce + 16 <= at_subject, "nonce comes before subject in key order"
        env = codec.encode([rb, SIG])
        start = env.index(rb)
        self._parts = (rb[:at_nonce], rb[at_nonce + 16:at_subject], rb[at_subject + len(sb):],
                       env[:start], env[start + len(rb):])

    def make(self, leaf: int, subject: str) -> Envelope:
        assert len(subject) == self.name_chars and subject.isascii()
        a, b, c, head, tail = self._parts
        nonce = leaf.to_bytes(16, "big")
        rb = a + nonce + b + subject.encode() + c
        rec = Record(1, CHAIN, RECORD_TYPE, subject, self.body, (), T0, nonce, self.key_id)
        return Envelope(rec, rb, SIG, head + rb + tail, record_id_of(rb))


def grow(store: Store, envs: list[Envelope]) -> tuple[merkle.Frontier, list[tuple[int, int, bytes]]]:
    frontier = store.frontier.copy()
    nodes: list[tuple[int, int, bytes]] = []
    for env in envs:
        nodes.extend(frontier.append(env.leaf_hash))
    return frontier, nodes


def assemble(store: Store, g: genesis_mod.Genesis, envs: list[Envelope], frontier: merkle.Frontier,
             nodes: list[tuple[int, int, bytes]], change: Any, quorum: int) -> tuple[CheckedBlock, QC]:
    """What build_block/check_block produce for these envelopes, minus the state rules; a dummy QC."""
    parent = store.head()
    height = store.height + 1
    header = Header(CHAIN, height, T0 + height, parent.block_hash if parent else bytes(32), 0,
                    store.log_size, frontier.size, frontier.root(), g.valset_hash, change.root)
    header = replace(header, raw=header.encode())
    return CheckedBlock(Block(header, tuple(envs)), nodes, {}, frontier, change), QC(
        height, 0, header.block_hash, tuple((i, SIG) for i in range(quorum)))


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def rss_mb() -> float:
    """Peak resident set (ru_maxrss), file-backed pages included."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_ANON_PEAK = [0.0]


def rss_now() -> tuple[float, float]:
    """(anonymous, file-backed) resident MB now, from /proc (Linux; zeros elsewhere). The
    file-backed part is mostly LevelDB's table files, which it reads through mmap: page
    cache the kernel may drop, but counted in RSS. Also tracks the sampled anonymous peak."""
    found = {}
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssFile:")):
                    found[line.split(":")[0]] = int(line.split()[1]) / 1024
    except OSError:
        pass
    anon = found.get("RssAnon", 0.0)
    _ANON_PEAK[0] = max(_ANON_PEAK[0], anon)
    return anon, found.get("RssFile", 0.0)


def _timed(fn: Callable[..., _T], *args: Any) -> tuple[_T, float, float]:
    """fn(*args), its wall time and its main-thread CPU time."""
    w, c = time.perf_counter(), time.thread_time()
    out = fn(*args)
    return out, time.perf_counter() - w, time.thread_time() - c


# -- append ---------------------------------------------------------------------------------


def append_phase(store: Store, records: int, block: int, subjects: int = SUBJECTS, ten_subjects: int = TEN_SUBJECTS,
                 seed: int = 1, g: genesis_mod.Genesis | None = None) -> dict[str, Any]:
    """Append `records` in blocks, each with its state-map change; wall time per step,
    main-thread CPU of the map change and of the commits (the gap to wall is fsync,
    LevelDB write stalls and preemption), and the whole process's CPU (which adds
    LevelDB's background compaction thread). Also counts the keys each batch writes."""
    g = g or bench_genesis()
    layout = Subjects(records, subjects, ten_subjects, seed)
    gen = Envelopes(bench_keys()[1].public.key_id, layout.name_chars)
    t_gen = t_frontier = t_map = t_commit = cpu_map = cpu_commit = 0.0
    keys = dict.fromkeys(PREFIXES, 0)
    map_node_bytes = 0
    start, cpu_start, thread_start = time.perf_counter(), time.process_time(), time.thread_time()
    next_report = 100_000
    done, base, blocks_done = 0, store.log_size, 0
    while done < records:
        count = min(block, records - done)
        t0 = time.perf_counter()
        envs = [gen.make(base + i, layout.next(i)) for i in range(done, done + count)]
        t1 = time.perf_counter()
        frontier, nodes = grow(store, envs)
        t2, c2 = time.perf_counter(), time.thread_time()
        change = blocks.map_change(tuple(envs), store.log_size, store.head(), store, g)
        t3, c3 = time.perf_counter(), time.thread_time()
        checked, qc = assemble(store, g, envs, frontier, nodes, change, g.quorum)
        t4, c4 = time.perf_counter(), time.thread_time()
        store.commit(checked, qc)
        t5, c5 = time.perf_counter(), time.thread_time()
        t_gen += t1 - t0
        t_frontier += (t2 - t1) + (t4 - t3)
        t_map += t3 - t2
        cpu_map += c3 - c2
        t_commit += t5 - t4
        cpu_commit += c5 - c4
        blocks_done += 1
        done += count
        keys["b/"] += 1
        keys["q/"] += 1
        keys["m/"] = 1  # m/head, rewritten by every block
        for p in ("e/", "r/"):
            keys[p] += count
        keys["n/"] += sum(1 for level, _, _ in nodes if level >= NODE_LEVEL_STORED_MIN)
        keys["h/"] += sum(1 for level, _, _ in nodes if level == NODE_LEVEL_STORED_MIN)  # one per 16 leaves
        keys["t/"] += len(change.batch.nodes)
        keys["l/"] += len(change.list_nodes)
        keys["p/"] += len(change.positions)
        map_node_bytes += sum(map(len, change.batch.nodes.values()))
        if done >= next_report or done == records:
            el = time.perf_counter() - start
            anon, file_backed = rss_now()
            print(f"  {done:>9,} records  {el:7.1f} s  {done / el:9,.0f} records/s  "
                  f"(map change {t_map / el:4.0%} of wall)  peak RSS {rss_mb():6.1f} MB (now anon "
                  f"{anon:.0f} + file {file_backed:.0f})", flush=True)
            while next_report <= done:
                next_report += 100_000
    total = time.perf_counter() - start
    main_cpu = time.thread_time() - thread_start
    return {
        "append_s": total, "gen_s": t_gen, "frontier_header_s": t_frontier, "map_s": t_map, "map_cpu_s": cpu_map,
        "commit_s": t_commit, "commit_cpu_s": cpu_commit, "main_cpu_s": main_cpu,
        "other_threads_cpu_s": time.process_time() - cpu_start - main_cpu, "blocks": blocks_done,
        "keys": keys, "map_node_bytes": map_node_bytes, "layout": layout,
    }


# -- queries --------------------------------------------------------------------------------


def _entry(state: maptree.StateMap, name: str) -> tuple[bytes, bytes | None, statemap.Proof]:
    p = statemap.path("subject", name)
    return p, state.get(p), state.prove(p)


def query_phase(store: Store, g: genesis_mod.Genesis, layout: Subjects, queries: int,
                rng: random.Random) -> dict[str, float]:
    """(a) A subject's map entry with its proof, over random subjects; its verification
    timed apart. (b) A whole proven answer for a random 10-record subject."""
    head = store.head()
    assert head is not None
    state = store.map_at(head.state)
    t: dict[str, list[float]] = {k: [] for k in ("entry", "entry_cpu", "entry_verify", "answer", "answer_cpu")}
    absent = siblings = 0
    for _ in range(queries):
        (p, value, proof), wall, cpu = _timed(_entry, state, layout.name(rng.randrange(layout.subjects)))
        ok, vwall, _ = _timed(statemap.verify, head.state, p, value, proof)
        assert ok
        absent += value is None
        siblings += len(proof.siblings)
        t["entry"].append(wall)
        t["entry_cpu"].append(cpu)
        t["entry_verify"].append(vwall)
    answer_bytes = 0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_majflt
    if layout.reserved:
        for _ in range(queries):
            name = layout.ten_name(rng.randrange(layout.reserved))
            doc, wall, cpu = _timed(subject_history, store, g, name, 0, 100)
            assert doc["total"] == TEN and len(doc["records"]) == TEN and doc["next_from"] is None, name
            t["answer"].append(wall)
            t["answer_cpu"].append(cpu)
        answer_bytes = len(json.dumps(doc))
    rss_now()
    out: dict[str, float] = {"entries_absent": absent, "entry_siblings_mean": siblings / max(queries, 1),
                             "answer_json_bytes": answer_bytes,
                             "answer_major_faults": resource.getrusage(resource.RUSAGE_SELF).ru_majflt - faults}
    for k, values in t.items():
        if values:
            out[f"{k}_p50_ms"] = pct(values, 50) * 1e3
            out[f"{k}_p99_ms"] = pct(values, 99) * 1e3
    return out


# -- size -------------------------------------------------------------------------------


def _plyvel(store: Store) -> Any:
    return getattr(store.kv, "_db", None)  # LevelKV's plyvel handle, for the report only


def leveldb_stats(store: Store) -> str:
    db = _plyvel(store)
    raw = db.get_property(b"leveldb.stats") if db is not None else None
    return raw.decode() if raw else ""


def size_phase(store: Store, directory: Path, compact: bool) -> dict[str, Any]:
    """Directory bytes as the append left them, then after a full compaction (timed),
    with LevelDB's estimate of the bytes each key prefix takes on disk."""
    out: dict[str, Any] = {"as_is_bytes": dir_bytes(directory)}
    db = _plyvel(store)
    if db is None or not compact:
        return out
    # The whole key range, spelled out: plyvel's compact_range() without bounds only
    # flushed the memtable here (measured: 0.2 s on a 1.2 GB store, no level compacted).
    _, wall, _ = _timed(lambda: db.compact_range(start=b"\x00", stop=b"\xff"))
    out["compact_s"] = wall
    out["compacted_bytes"] = dir_bytes(directory)
    out["files_per_level"] = [int(db.get_property(f"leveldb.num-files-at-level{i}".encode())) for i in range(7)]
    out["prefix_disk_bytes"] = {p: db.approximate_size(p.encode(), p[0].encode() + b"0") for p in PREFIXES}
    return out


# -- paging ---------------------------------------------------------------------------------


def paging_phase(directory: Path, records: int, block: int, page: int) -> dict[str, Any]:
    """One subject with `records` signed records, committed through build_block with real
    QCs; every page is built by subject_history and checked by verify_answer."""
    g = bench_genesis()
    validators, client = bench_keys()
    t0 = time.perf_counter()
    raws = [sign_record(client, CHAIN, RECORD_TYPE, PAGING_SUBJECT, {"activity": f"step {i}"}, T0,
                        i.to_bytes(16, "big")) for i in range(records)]
    sign_s = time.perf_counter() - t0
    store = Store.open(directory)
    try:
        t0 = time.perf_counter()
        for at in range(0, records, block):
            envs = [decode_envelope(raw, g) for raw in raws[at:at + block]]
            parent = store.head()
            checked, rejected = build_block(envs, parent, store, store.frontier, g,
                                            T0 + store.height + 1, 0, sigs_checked=True)
            assert not rejected and len(checked.block.envelopes) == len(envs), [e.message for _, e in rejected]
            store.commit(checked, real_qc(validators, g, checked.block.header))
        commit_s = time.perf_counter() - t0
        del raws
        print(f"  paging store: {records:,} signed records ({sign_s:.1f} s to sign), committed in "
              f"{store.height:,} blocks in {commit_s:.1f} s", flush=True)
        builds, verifies, claims = [], [], []
        for start in range(0, records, page):
            doc, wall, _ = _timed(subject_history, store, g, PAGING_SUBJECT, start, page)
            verdict, vwall, _ = _timed(verify_answer, doc, "subject", g)
            end = min(start + page, records)
            claim = verdict.facts.get("claim", {}).get("en", "")
            assert verdict.valid, (start, [c for c in verdict.checks if not c["ok"]])
            assert f"records {start + 1}-{end} of {records} about {PAGING_SUBJECT}" in claim, claim
            builds.append(wall)
            verifies.append(vwall)
            if start == 0 or end == records:
                claims.append(claim)
            if len(builds) % 200 == 0:
                rss_now()
                print(f"  {len(builds):>6,} pages verified", flush=True)
    finally:
        store.close()
    return {
        "paging_records": records, "page": page, "pages": len(builds), "pages_valid": len(builds),
        "paging_sign_s": sign_s, "paging_commit_s": commit_s,
        "page_build_median_ms": statistics.median(builds) * 1e3, "page_build_p99_ms": pct(builds, 99) * 1e3,
        "page_verify_median_ms": statistics.median(verifies) * 1e3, "page_verify_p99_ms": pct(verifies, 99) * 1e3,
        "paging_total_s": sum(builds) + sum(verifies), "claims": claims,
    }


# -- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", "--leaves", dest="records", type=int, default=1_000_000)
    ap.add_argument("--subjects", type=int, default=SUBJECTS)
    ap.add_argument("--ten-subjects", type=int, default=TEN_SUBJECTS,
                    help=f"subjects given exactly {TEN} records each, for the answer timing")
    ap.add_argument("--block", type=int, default=1_000,
                    help="records per block (a node's blocks hold up to min(limits, genesis) = 2,000 by default)")
    ap.add_argument("--dir", type=Path, default=None, help="store directory (must be new); default a temp dir, removed")
    ap.add_argument("--queries", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-compact", action="store_true", help="report the size as the append left it only")
    ap.add_argument("--paging", action=argparse.BooleanOptionalAction, default=True,
                    help="the signed 100,000-record subject paged through and verified (default on)")
    ap.add_argument("--paging-records", type=int, default=100_000)
    ap.add_argument("--page", type=int, default=100, help="records per page (subject_history's default)")
    ap.add_argument("--profile", action="store_true", help="cProfile the append phase and print the top functions")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench_store_"))
    if args.dir is None:
        directory = tmp / "db"
    else:
        directory = args.dir
        if directory.exists() and any(directory.iterdir()):
            ap.error(f"{directory} is not empty")
    g = bench_genesis()
    try:
        store = Store.open(directory)
        tune_gc()
        print(f"appending {args.records:,} records about {args.subjects:,} random subjects (+ "
              f"{min(args.ten_subjects, args.records // TEN):,} of exactly {TEN}) in blocks of {args.block:,} "
              f"with the state map to {directory}", flush=True)
        run = (args.records, args.block, args.subjects, args.ten_subjects, args.seed, g)
        if args.profile:
            prof = cProfile.Profile()
            app = prof.runcall(append_phase, store, *run)
            pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(30)
        else:
            app = append_phase(store, *run)
        head = store.head()
        assert head is not None and store.log_size == args.records and store.frontier.root() == head.log_root
        append_rss, append_anon = rss_mb(), rss_now()
        stats = leveldb_stats(store)
        print("queries ...", flush=True)
        q = query_phase(store, g, app["layout"], args.queries, random.Random(args.seed + 2))
        size = size_phase(store, directory, not args.no_compact)
        # Once compacted, LevelDB's thread is idle: the same queries again, on a node at rest.
        rested = query_phase(store, g, app["layout"], args.queries, random.Random(args.seed + 2)) \
            if "compacted_bytes" in size else None
        store.close()
        paging = None
        if args.paging:
            print(f"paging: {args.paging_records:,} signed records about one subject, pages of {args.page}", flush=True)
            paging = paging_phase(tmp / "paging", args.paging_records, args.block, args.page)
        end_anon, end_file = rss_now()
        peak = rss_mb()

        n = args.records
        rate, cpu_rate = n / app["append_s"], n / app["main_cpu_s"]
        store_s = app["frontier_header_s"] + app["map_s"] + app["commit_s"]
        rest_s = app["frontier_header_s"] + app["commit_s"]
        map_share = app["map_s"] / app["append_s"]
        keys = app["keys"]
        print()
        print(stats.rstrip())
        print(f"append with the state map: {rate:,.0f} records/s wall, {cpu_rate:,.0f} records per main-thread "
              f"CPU second ({app['append_s']:.1f} s wall, {app['main_cpu_s']:.1f} s main-thread CPU, "
              f"{app['blocks']:,} blocks of {args.block:,})")
        print(f"  wall split: synthetic envelopes {app['gen_s']:.1f} s, "
              f"frontier+header {app['frontier_header_s']:.1f} s, "
              f"map change (blocks.map_change) {app['map_s']:.1f} s = {map_share:.0%} of wall (main-thread CPU "
              f"{app['map_cpu_s']:.1f} s), Store.commit {app['commit_s']:.1f} s (main-thread CPU "
              f"{app['commit_cpu_s']:.1f} s)")
        print(f"  store work (frontier+header+map+commit): {n / store_s:,.0f} records/s; of which the map change "
              f"alone {n / app['map_s']:,.0f} records/s and the rest {n / rest_s:,.0f} records/s; LevelDB "
              f"background threads CPU {app['other_threads_cpu_s']:.1f} s")
        print(f"  map keys written per record: t/ {keys['t/'] / n:.2f} ({app['map_node_bytes'] / n:.0f} value bytes), "
              f"l/ {keys['l/'] / n:.2f}, p/ {keys['p/'] / n:.2f}")
        print(f"map entry proof ({args.queries:,} random subjects, {q['entries_absent']:.0f} absent, "
              f"{q['entry_siblings_mean']:.1f} siblings on average): get+prove wall p50 {q['entry_p50_ms']:.3f} ms "
              f"p99 {q['entry_p99_ms']:.3f} ms (CPU p50 {q['entry_cpu_p50_ms']:.3f} p99 {q['entry_cpu_p99_ms']:.3f} "
              f"ms); verify p50 {q['entry_verify_p50_ms']:.3f} ms p99 {q['entry_verify_p99_ms']:.3f} ms")
        if "answer_p50_ms" in q:
            print(f"answer assembly, subject_history of a {TEN}-record subject ({args.queries:,} queries, unsigned "
                  f"records and a dummy QC: assembly checks neither): wall p50 {q['answer_p50_ms']:.3f} ms p99 "
                  f"{q['answer_p99_ms']:.3f} ms (CPU p50 {q['answer_cpu_p50_ms']:.3f} p99 "
                  f"{q['answer_cpu_p99_ms']:.3f} ms); {q['answer_json_bytes']:,.0f} bytes of JSON; "
                  f"{q['answer_major_faults']:,.0f} major page faults (reads of mmapped tables) over the queries")
        if rested is not None and "answer_p50_ms" in rested:
            print(f"  the same queries after the full compaction (LevelDB idle): answer wall p50 "
                  f"{rested['answer_p50_ms']:.3f} ms p99 {rested['answer_p99_ms']:.3f} ms (CPU p99 "
                  f"{rested['answer_cpu_p99_ms']:.3f} ms); map entry get+prove p99 {rested['entry_p99_ms']:.3f} ms")
        line = (f"store on disk as the append left it: {size['as_is_bytes']:,} bytes "
                f"({size['as_is_bytes'] / n:.0f} B/record)")
        if "compacted_bytes" in size:
            line += (f"; after a full compaction ({size['compact_s']:.1f} s): {size['compacted_bytes']:,} bytes "
                     f"({size['compacted_bytes'] / n:.0f} B/record; table files per level {size['files_per_level']})")
        print(line)
        print("  keys per record by prefix: " + ", ".join(f"{p} {keys[p] / n:.3f}" for p in PREFIXES if keys[p]))
        if "prefix_disk_bytes" in size:
            print("  on disk per record by prefix (LevelDB estimate): " + ", ".join(
                f"{p} {b / n:.0f} B" for p, b in size["prefix_disk_bytes"].items() if b))
        if paging:
            print(f"paging: {paging['pages']:,} pages of {paging['page']} over {paging['paging_records']:,} signed "
                  f"records, all valid; build median {paging['page_build_median_ms']:.1f} ms (p99 "
                  f"{paging['page_build_p99_ms']:.1f}), verify median {paging['page_verify_median_ms']:.1f} ms "
                  f"(p99 {paging['page_verify_p99_ms']:.1f}); first and last claims: " + " | ".join(paging["claims"]))
        print(f"peak RSS: {peak:.1f} MB (after the append: {append_rss:.1f} MB, of which anonymous "
              f"{append_anon[0]:.1f} MB and file-backed {append_anon[1]:.1f} MB, mostly LevelDB's mmapped tables); "
              f"anonymous peak sampled {_ANON_PEAK[0]:.1f} MB; at the end anonymous {end_anon:.1f} MB, "
              f"file-backed {end_file:.1f} MB")
        figures: dict[str, Any] = {
            "records": n, "subjects": args.subjects, "ten_subjects": app["layout"].reserved, "block": args.block,
            "map_descent": maptree.DESCENT,
            "blocks": app["blocks"], "append_records_per_s": round(rate),
            "append_records_per_main_cpu_s": round(cpu_rate),
            "store_only_records_per_s": round(n / store_s), "map_change_records_per_s": round(n / app["map_s"]),
            "rest_records_per_s": round(n / rest_s), "map_change_share_of_wall": round(map_share, 3),
            **{k: round(v, 2) for k, v in app.items() if k.endswith("_s")},
            "keys_per_record": {p: round(keys[p] / n, 3) for p in PREFIXES if keys[p]},
            **{k: round(v, 4) for k, v in q.items()},
            "store_bytes_as_is": size["as_is_bytes"], "bytes_per_record_as_is": round(size["as_is_bytes"] / n, 1),
            "peak_rss_mb": round(peak, 1), "append_rss_mb": round(append_rss, 1),
            "append_rss_anon_mb": round(append_anon[0], 1), "append_rss_file_mb": round(append_anon[1], 1),
            "rss_anon_peak_sampled_mb": round(_ANON_PEAK[0], 1), "answers_signed": False,
        }
        if "compacted_bytes" in size:
            figures.update(store_bytes_compacted=size["compacted_bytes"], compact_s=round(size["compact_s"], 1),
                           bytes_per_record_compacted=round(size["compacted_bytes"] / n, 1),
                           disk_bytes_per_record_by_prefix={p: round(b / n, 1) for p, b in
                                                            size["prefix_disk_bytes"].items() if b})
        if rested is not None:
            figures["after_compaction"] = {k: round(v, 4) for k, v in rested.items()}
        if paging:
            figures["paging"] = {k: round(v, 3) if isinstance(v, float) else v for k, v in paging.items()}
        figures["targets_met"] = {
            "entry_proof_p99": q["entry_p99_ms"] <= 2.0, "entry_proof_p99_cpu": q["entry_cpu_p99_ms"] <= 2.0,
            "answer_p99": q.get("answer_p99_ms", 0) <= 2.0, "answer_p99_cpu": q.get("answer_cpu_p99_ms", 0) <= 2.0,
            "answer_p99_at_rest": rested is None or rested.get("answer_p99_ms", 0) <= 2.0,
            "rss": peak <= 300, "rss_anon": _ANON_PEAK[0] <= 300,
            "paging_all_valid": paging is None or paging["pages_valid"] == paging["pages"],
        }
        print(json.dumps(figures, sort_keys=True))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
