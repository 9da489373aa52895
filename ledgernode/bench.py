"""`python -m ledgernode bench`: throughput against the signature-verification bound.

Starts a temporary devnet, measures one core's Ed25519 verify rate with the
library the node uses, pre-signs every record before the timed window, then
lets C concurrent clients submit batches (and, in a second phase, single
records). A record counts only once every node has committed it: a monitor
polls every node's height and reads each block fully committed everywhere.
The first quarter of each phase's length (at most WARMUP_MAX_S) is a warm-up
under the same load that is not counted: until the first blocks commit, the
nodes admit and verify records but nothing is committed yet, and counting
that ramp would understate the rate the network sustains. The warm-up also
lasts until the first records have committed on every node (at most
FIRST_COMMIT_MAX_S): on a slow or busy machine that takes longer than a
quarter of a short run, and a window opened before it would count the ramp.
Progress goes to stderr (a line a second per phase: committed records/s over
that second, latency, ETA of the phase); the last line on stdout is one JSON
object. `--plot FILE` also writes those per-second figures as an SVG chart
per phase (ledgernode/charts.py): throughput and p50 latency over time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import codec, crypto, devnet, maptree, tls
from .charts import Chart, Series, document
from .progress import Progress, duration_text
from .times import now_ms
from .aio import ClientSession, ClientTimeout, TCPConnector
from .records import sign_record
from .threadcpu import stat_cpu_s

VERIFY_SAMPLE_S = 0.5
VERIFY_SAMPLES = 3  # before the load, and as many after it
MONITOR_EVERY_S = 0.1
LATENCY_SAMPLE_EVERY = 2  # read every 2nd committed block for submit-to-commit latencies
SIGN_MAX_RECORDS = 400_000
SINGLE_PHASE_MAX_S = 5.0
SINGLE_RATE_GUESS = 3_000  # per second, to size the single phase's pool (warm-up included)
DRAIN_S = 3.0
SETTLE_MAX_S = 60.0
HEALTH_MAX_S = 120.0  # nodes answering /healthz; a busy machine starts four Pythons slowly
WARMUP_MAX_S = 5.0  # load before the measured window: a quarter of it, at most this
FIRST_COMMIT_MAX_S = 120.0  # ... and until the first records commit everywhere, at most this
INFLIGHT_MAX = 8_000
REQUEST_TIMEOUT_S = 60.0
RECORD_RATE_GUESS = 6_000  # per second, to size the pre-signed pool
PROGRESS_EVERY_S = 1.0  # one progress line (and one plotted point) per phase this often
TIMELINE_MAX_POINTS = 3_600  # plotted points kept per phase (an hour of progress lines)
EVENT_RE = re.compile(r'^ledgernode_events_total\{event="([a-z_]+)"\} (\d+)$', re.MULTILINE)
THREAD_CPU_RE = re.compile(r'^ledgernode_thread_cpu_seconds_total\{threads="([a-z0-9-]+)"\} ([0-9.]+)$', re.MULTILINE)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def verify_rate_one_core(seconds: float = VERIFY_SAMPLE_S) -> float:
    """Ed25519 verifications per second on this core, through crypto.PublicKey.verify."""
    key = crypto.generate_private_key()
    msgs = [os.urandom(200) for _ in range(512)]
    sigs = [key.sign(m) for m in msgs]
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for m, s in zip(msgs, sigs):
            assert key.public.verify(s, m)
        done += len(msgs)
    return done / (time.perf_counter() - start)


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used so far; None where /proc is missing."""
    try:
        return stat_cpu_s(Path(f"/proc/{pid}/stat"))
    except OSError:
        return None


def presign(key: crypto.PrivateKey, chain: str, count: int, tag: str) -> list[bytes]:
    now = now_ms()
    body = {"content_hash": bytes(32), "media_type": "application/octet-stream", "size": 1, "title": "bench"}
    out = []
    progress = Progress("bench: signing", count, "records")
    for i in range(count):
        out.append(sign_record(key, chain, "evidence.notarize", f"bench-{tag}-{i}", body, now, os.urandom(16)))
        line = progress.update(i + 1) if i % 1_000 == 999 or i + 1 == count else None  # the clock read sparingly
        if line is not None:
            log(line)
    return out


@dataclass(frozen=True)
class Sample:
    """One progress line's figures: seconds since the phase started, records/s committed
    on every node over the last interval, and the median latency sampled in it."""

    t_s: float
    records_per_s: float
    latency_p50_ms: float | None


@dataclass
class Phase:
    name: str
    envelopes: list[bytes]
    batch: int
    clients: int
    seconds: float
    rate: float | None  # offered records/s, None for as fast as possible
    inflight_max: int = 8_000  # submitted but not yet committed everywhere (closed loop)
    warmup_s: float = 0.0  # load before the measured window opens (not counted)
    window_open: bool = False  # latencies are sampled only once it is
    log_size_at_start: int = 0
    submitted_at: dict[int, float] = field(default_factory=dict)  # batch index -> time sent
    # Made before the timed window, so the client spends as little of the machine
    # as it can while the nodes are measured: request bodies, and which batch
    # each envelope (base64, as blocks show it) was sent in.
    bodies: list[bytes] = field(default_factory=list)
    batch_of: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    started_s: float = 0.0  # the first request (monotonic)
    opened_s: float | None = None  # when the measured window opened (monotonic)
    timeline: list[Sample] = field(default_factory=list)
    committed: int = 0
    committed_after_drain: int = 0
    submitted: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def prepare(self) -> None:
        size = max(1, self.batch)
        for k in range(0, len(self.envelopes), size):
            chunk = self.envelopes[k: k + size]
            self.bodies.append(codec.encode(chunk) if self.batch > 1 else chunk[0])
            for env in chunk:
                self.batch_of[base64.b64encode(env).decode()] = k // size


class Bench:
    def __init__(self, apis: list[str], pids: list[int], ca_file: Path | None = None) -> None:
        self.apis = apis
        self.pids = pids
        self.ssl_context = tls.client_context(ca_file) if ca_file is not None else None  # a --tls devnet
        self.seen_height = 0
        self.stop_submit = asyncio.Event()

    async def _post(self, session: ClientSession, api: str, body: bytes, batch: bool) -> int:
        path = "/v1/records/batch" if batch else "/v1/records"
        async with session.post(api + path, data=body,
                                headers={"Content-Type": "application/msgpack"}) as resp:
            await resp.read()
            return resp.status

    async def _client(self, session: ClientSession, phase: Phase, worker: int, cursor: list[int]) -> None:
        start = time.monotonic()
        while not self.stop_submit.is_set():
            i = cursor[0]
            chunk = phase.envelopes[i: i + phase.batch]
            if not chunk:
                return
            cursor[0] += len(chunk)
            if phase.rate:
                due = start + i / phase.rate  # the batch holding record i leaves at i / rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if self.stop_submit.is_set():
                    return
            while phase.submitted - phase.committed > phase.inflight_max and not self.stop_submit.is_set():
                await asyncio.sleep(0.01)  # closed loop: do not queue more than the window
            index = i // max(1, phase.batch)
            phase.submitted_at[index] = time.monotonic()
            api = self.apis[(worker + index) % len(self.apis)]
            try:
                status = await self._post(session, api, phase.bodies[index], phase.batch > 1)
            except (OSError, asyncio.TimeoutError) as exc:
                phase.errors[type(exc).__name__] = phase.errors.get(type(exc).__name__, 0) + 1
                continue
            if status == 503:
                phase.errors["503"] = phase.errors.get("503", 0) + 1
                await asyncio.sleep(0.05)
            phase.submitted += len(chunk)

    async def _monitor(self, session: ClientSession, phase: Phase, until: list[float]) -> None:
        """Count records committed on every node (the smallest log size: every record in
        this devnet is ours); read one block in LATENCY_SAMPLE_EVERY for latencies.
        Runs until the time in until[0] (set once the window closes)."""
        while time.monotonic() < until[0]:
            statuses = []
            for api in self.apis:
                async with session.get(api + "/v1/status") as resp:
                    statuses.append(await resp.json())
            now = time.monotonic()
            phase.committed = min(st["log_size"] for st in statuses) - phase.log_size_at_start
            top = min(st["height"] for st in statuses)
            while self.seen_height < top:
                self.seen_height += 1
                if self.seen_height % LATENCY_SAMPLE_EVERY or not phase.window_open:
                    continue
                async with session.get(f"{self.apis[-1]}/v1/blocks/{self.seen_height}") as resp:
                    block = await resp.json()
                for env in block["envelopes"]:
                    t = phase.submitted_at.get(phase.batch_of.get(env, -1))
                    if t is not None:
                        phase.latencies.append(now - t)
            await asyncio.sleep(MONITOR_EVERY_S)
        phase.committed_after_drain = phase.committed

    async def _counters(self, session: ClientSession) -> tuple[Counter[str], Counter[str]]:
        """Summed over the nodes' /metrics: events by name, and CPU microseconds by kind of
        thread (ledgernode/threadcpu.py)."""
        events: Counter[str] = Counter()
        cpu_us: Counter[str] = Counter()
        for api in self.apis:
            async with session.get(api + "/metrics") as resp:
                text = await resp.text()
            for match in EVENT_RE.finditer(text):
                events[match.group(1)] += int(match.group(2))
            for match in THREAD_CPU_RE.finditer(text):
                cpu_us[match.group(1)] += round(float(match.group(2)) * 1e6)
        return events, cpu_us

    def _nodes_cpu_s(self) -> float | None:
        times = [process_cpu_s(pid) for pid in self.pids]
        return None if None in times else sum(t for t in times if t is not None)

    async def _settle(self, session: ClientSession) -> int:
        """Wait (bounded) until every node holds the same log, an empty mempool and
        all its peer links: a phase must not time a node still dialling its peers."""
        deadline = time.monotonic() + SETTLE_MAX_S
        while True:
            statuses = []
            for api in self.apis:
                async with session.get(api + "/v1/status") as resp:
                    statuses.append(await resp.json())
            sizes = {st["log_size"] for st in statuses}
            links_up = all(p["out"] == "up" and p["in"] for st in statuses for p in st["peers"].values())
            if len(sizes) == 1 and links_up and not any(st["mempool"] for st in statuses):
                return sizes.pop()
            if time.monotonic() > deadline:
                raise RuntimeError(f"bench: nodes did not settle in {SETTLE_MAX_S} s: {statuses}")
            await asyncio.sleep(0.2)

    async def _first_commit(self, phase: Phase, monitor: asyncio.Task[None], start: float) -> None:
        """Wait (bounded) until the monitor has seen records committed on every node."""
        deadline = start + FIRST_COMMIT_MAX_S
        while phase.committed <= 0:
            if monitor.done():
                await monitor  # raises what stopped it
                raise RuntimeError("bench: the monitor stopped before the first commit")
            if time.monotonic() > deadline:
                raise RuntimeError(f"bench[{phase.name}]: no record committed on every node within "
                                   f"{FIRST_COMMIT_MAX_S} s of the first request (submitted {phase.submitted:,}, "
                                   f"errors {phase.errors})")
            await asyncio.sleep(MONITOR_EVERY_S)

    async def _progress(self, phase: Phase, start: float) -> None:
        """A line a second: what was submitted and committed, the commit rate and latency
        over that second (a point of the plot), and when the phase ends."""
        last_s, last_committed, last_latency = start, 0, 0
        while not self.stop_submit.is_set():
            await asyncio.sleep(PROGRESS_EVERY_S)
            now = time.monotonic()
            per_s = (phase.committed - last_committed) / max(now - last_s, 1e-6)
            fresh = sorted(phase.latencies[last_latency:])
            p50 = round(fresh[len(fresh) // 2] * 1000, 1) if fresh else None
            last_s, last_committed, last_latency = now, phase.committed, len(phase.latencies)
            if len(phase.timeline) < TIMELINE_MAX_POINTS:
                phase.timeline.append(Sample(round(now - start, 3), round(per_s, 1), p50))
            log(progress_line(phase, now - start, per_s, p50, self.seen_height, now))

    async def run(self, phase: Phase) -> dict[str, Any]:
        self.stop_submit.clear()
        phase.prepare()
        timeout = ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with ClientSession(timeout=timeout, connector=TCPConnector(ssl=self.ssl_context or True)) as session:
            phase.log_size_at_start = await self._settle(session)
            cpu_at_start = self._nodes_cpu_s()
            events_at_start, threads_at_start = await self._counters(session)
            start = phase.started_s = time.monotonic()
            cursor = [0]
            # One monitor from start to end of the drain, so every commit is seen when
            # it happens. The warm-up fills the pipeline (the first block commits a
            # second or two in, later on a busy machine: the warm-up lasts until it has)
            # and is not counted; throughput counts what was
            # committed between the window's opening and its closing, read from the
            # monitor's last poll, so each edge is exact to one block (unbiased).
            until = [float("inf")]
            monitor = asyncio.create_task(self._monitor(session, phase, until))
            progress = asyncio.create_task(self._progress(phase, start))
            clients = [asyncio.create_task(self._client(session, phase, w, cursor)) for w in range(phase.clients)]
            await asyncio.sleep(phase.warmup_s)
            await self._first_commit(phase, monitor, start)
            opened = phase.opened_s = time.monotonic()
            committed_at_open, phase.window_open = phase.committed, True
            await asyncio.sleep(phase.seconds)
            self.stop_submit.set()
            committed = phase.committed - committed_at_open
            until[0] = time.monotonic() + DRAIN_S
            await asyncio.gather(*clients, return_exceptions=True)
            progress.cancel()
            await monitor
            cpu_at_end = self._nodes_cpu_s()
            events, threads = await self._counters(session)
            events.subtract(events_at_start)
            threads.subtract(threads_at_start)
        cpu_us = None
        by_thread: dict[str, float] = {}
        if cpu_at_start is not None and cpu_at_end is not None and phase.committed_after_drain:
            # CPU every node spent per record, averaged over nodes: the figure to compare
            # with one signature check (1e6 / verify rate), whatever the machine's speed.
            per_record = phase.committed_after_drain * len(self.pids)
            cpu_us = round((cpu_at_end - cpu_at_start) * 1e6 / per_record, 1)
            # ... and where it went, by kind of thread (ledgernode/threadcpu.py)
            by_thread = {kind: round(us / per_record, 1) for kind, us in sorted(threads.items())}
        lat = sorted(phase.latencies)
        pct = (lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 1)) if lat else (lambda q: None)
        return {"warmup_s": round(opened - start, 3), "committed": committed,
                "records_per_s": round(committed / phase.seconds, 1),
                "submitted": phase.submitted, "latency_ms": {"p50": pct(0.50), "p99": pct(0.99)},
                "errors": phase.errors, "node_cpu_us_per_record": cpu_us,
                "node_cpu_us_per_record_by_thread": by_thread,
                # 1.0 when every node checks each record's signature exactly once
                "signature_checks_per_record": round(
                    events["signatures_checked"] / events["records_committed"], 3)
                if events["records_committed"] else None}


def progress_line(phase: Phase, elapsed_s: float, per_s: float, p50_ms: float | None, height: int,
                  now_s: float) -> str:
    """One progress line of a phase; its ETA is when the phase ends (the window, then the
    drain). Before the window opens that is a lower bound: the warm-up lasts until the
    first records commit everywhere."""
    if phase.opened_s is not None:
        stage, eta = "measuring", duration_text(phase.opened_s + phase.seconds + DRAIN_S - now_s)
    else:
        stage = "warming up"
        eta = "at least " + duration_text(max(0.0, phase.warmup_s - elapsed_s) + phase.seconds + DRAIN_S)
    latency = "-" if p50_ms is None else f"{p50_ms:,.0f} ms"
    return (f"bench[{phase.name}]: {elapsed_s:5.1f} s {stage}  submitted {phase.submitted:,}  "
            f"committed on all nodes {phase.committed:,} ({per_s:,.0f} records/s)  latency p50 {latency}  "
            f"height {height}  ETA {eta}")


def phase_chart(phase: Phase, nodes: int) -> Chart:
    """A phase's progress figures over time, with the opening of its measured window."""
    points = phase.timeline
    marks = () if phase.opened_s is None else ((round(phase.opened_s - phase.started_s, 3), "measured window opens"),)
    return Chart(f"ledgernode bench [{phase.name}]: {nodes} nodes, batch {phase.batch}, {phase.clients} clients",
                 "seconds since the first request",
                 Series("committed on every node (records/s)", "#1f77b4",
                        tuple((p.t_s, p.records_per_s) for p in points)),
                 Series("p50 submit-to-commit (ms)", "#d62728", tuple((p.t_s, p.latency_p50_ms) for p in points),
                        dashed=True),
                 "throughput (records/s)", "latency (ms)", marks)


def write_plot(path: Path, phases: list[Phase], nodes: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document([phase_chart(p, nodes) for p in phases]), encoding="utf-8")
    log(f"bench: wrote {path}")


def _launch(root: Path, nodes: int, base_port: int, limits: dict[str, int],
            with_tls: bool = False) -> tuple[Any, dict[int, Any]]:
    net = devnet.prepare(root, nodes, base_port, tls=with_tls)
    for node in net.nodes:  # the devnet config ends with its (empty) [limits] table
        with (root / node.config).open("a") as f:
            f.writelines(f"{name} = {value}\n" for name, value in limits.items() if value)
    devnet.check_ports(net)
    procs = {node.index: devnet.start_node(net, node) for node in net.nodes}
    if not devnet.wait_healthy(net, procs, threading.Event(), set(), HEALTH_MAX_S):
        raise RuntimeError("bench: nodes did not become healthy")
    return net, procs


def bench(nodes: int, seconds: float, clients: int, batch: int, rate: float | None,
          base_port: int, single: bool = True, verify_threads: int = 0,
          block_max_records: int = 0, inflight_max: int = INFLIGHT_MAX,
          plot: Path | None = None, with_tls: bool = False) -> dict[str, Any]:
    log("bench: measuring one core's Ed25519 verify rate (node's library)")
    samples = [verify_rate_one_core(VERIFY_SAMPLE_S) for _ in range(VERIFY_SAMPLES)]
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="ledgernode-bench-") as tmp:
        root = Path(tmp)
        net, procs = _launch(root, nodes, base_port, {"verify_threads": verify_threads,
                                                       "block_max_records": block_max_records}, with_tls)
        try:
            key = crypto.load_private_key(root / net.clients[0].key_file)
            warmup = min(WARMUP_MAX_S, seconds / 4)
            want = int(min(SIGN_MAX_RECORDS, (rate or RECORD_RATE_GUESS) * (seconds + warmup) * 1.2))
            log(f"bench: pre-signing {want:,} records before the timed window")
            envs = presign(key, net.chain_id, want, "b")
            runner = Bench([n.api for n in net.nodes], [p.pid for p in procs.values()], net.ca_file)
            phases = [Phase("batch" if batch > 1 else "single", envs, batch, clients, seconds, rate, inflight_max,
                            warmup)]
            main = asyncio.run(runner.run(phases[0]))
            result = {"nodes": nodes, "seconds": seconds, "clients": clients, "batch": batch, "tls": with_tls,
                      "verify_threads": verify_threads or cores, "inflight_max": inflight_max,
                      "block_max_records": block_max_records or None,
                      "offered_per_s": rate, **main}
            if single and batch > 1:
                s_secs = min(SINGLE_PHASE_MAX_S, seconds)
                envs1 = presign(key, net.chain_id, int(s_secs * 1.25 * SINGLE_RATE_GUESS), "s")
                phases.append(Phase("single", envs1, 1, max(clients, 8), s_secs, None, warmup_s=s_secs / 4))
                result["single"] = asyncio.run(runner.run(phases[-1]))
        finally:
            devnet.stop_nodes(procs)
        if plot is not None:
            write_plot(plot, phases, nodes)
    # The machine's speed drifts; sample the verify rate before and after the load
    # and take the median, so the bound and the throughput come from one run.
    samples += [verify_rate_one_core(VERIFY_SAMPLE_S) for _ in range(VERIFY_SAMPLES)]
    verify_per_s = statistics.median(samples)
    bound = verify_per_s * cores / nodes
    result.update({"verify_per_s_one_core": round(verify_per_s, 1), "cores": cores,
                   "map_descent": maptree.DESCENT,
                   "bound_records_per_s": round(bound, 1),
                   "verify_samples_per_s": [round(x) for x in samples],
                   "ratio": round(result["records_per_s"] / bound, 3)})
    if result.get("node_cpu_us_per_record"):
        # How many signature checks' worth of CPU a node spends per record (1.0 is the bound).
        result["cpu_per_record_in_verifies"] = round(result["node_cpu_us_per_record"] * verify_per_s / 1e6, 2)
    return result


def main(args: Any) -> int:
    result = bench(args.nodes, args.seconds, args.clients, args.batch, args.rate, args.base_port,
                   single=not args.no_single, verify_threads=args.verify_threads,
                   block_max_records=args.block_max_records, inflight_max=args.inflight_max,
                   plot=Path(args.plot) if args.plot else None, with_tls=args.tls)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0

