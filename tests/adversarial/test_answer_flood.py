"""A flood of heavy auditor answers against a real validator (ledgernode/reads.py).

Four `python -m ledgernode run` processes (tests/integration/procs.py's Cluster). One
subject gets HEAVY_RECORDS records, so that one `GET /v1/subjects/<subject>?limit=1000`
answer costs the node about a tenth of a second of CPU and is about 1.9 MB of JSON.
Then FLOOD_CLIENTS threads ask node 0 for that answer over and over, each on its own
keep-alive connection and without honouring Retry-After, for FLOOD_S seconds, while one
steady writer (procs.SteadyClient) submits one record at a time to node 0 and waits for its commit,
and a probe asks node 0's /healthz and /metrics.

Before the answers were built on the `api-read` thread, each ran on the node's event
loop and a flood like this one held consensus, the peer links and /healthz behind it
(measured with Reads.run calling its function inline, as before: node 0 committed 1
block in FLOOD_S, a writer record took 11 s, /healthz 5.3 s; with the api-read thread:
60 to 90 blocks, writer records under 0.4 s, /healthz under 0.15 s, and about 40 answers
served against 13,000 to 32,000 refused, on this 2-core machine idle or busy).
Now at most READS_INFLIGHT_MAX are queued or running and one more is 503 `backpressure`
with Retry-After, counted as `reads_refused`. The test checks, on node 0 (the flooded
node: its own height, its own /healthz, its own admission of the writer's records):

- the chain kept committing: node 0's height advanced by HEIGHT_ADVANCE_MIN or more during
  the flood, every record the writer submitted was committed within COMMIT_WITHIN_MS, and
  every node has them afterwards;
- /healthz answered within HEALTH_MAX_S every time it was asked during the flood;
- every flood request got either 503 `backpressure` (JSON error body, integer Retry-After)
  or 200 with the complete answer (`total` and the number of `records` are HEAVY_RECORDS;
  one of them is checked offline against the genesis), and both kinds occurred;
- `/metrics` counted every refusal (`reads_refused` equals the 503s the clients saw), the
  in-flight gauge never read above READS_INFLIGHT_MAX and is back at 0 afterwards.

All the flood comes from 127.0.0.1, which the per-address read bucket (docs/security.md
section 10) would refuse with 429 long before the answer queue fills: the nodes run with
that bucket opened wide (NO_READ_LIMIT), so what is measured is the queue's own defence.

Everything is bounded: FLOOD_CLIENTS threads, at most REQUESTS_PER_CLIENT_MAX requests
each, FLOOD_S of flooding, a timeout on every request and a deadline on every wait; only
127.0.0.1 is contacted, and the Cluster stops its processes by PID.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from ledgernode.auditing.answers import verify_answer
from ledgernode.reads import READS_INFLIGHT_MAX
from tests.integration.procs import Cluster, SteadyClient, running, wait_until

pytestmark = pytest.mark.slow

FLOODED = 0  # the node under attack
SUBJECT = "flood-case-1"
HEAVY_RECORDS = 1_000  # the subject's records: one answer holds all of them (the page limit)
HEAVY_PATH = f"/v1/subjects/{SUBJECT}?limit={HEAVY_RECORDS}"
LOAD_BATCH = 250  # records per POST /v1/records/batch while loading the subject
FLOOD_CLIENTS = 32
FLOOD_S = 8.0
REQUESTS_PER_CLIENT_MAX = 2_000  # a bound on the count, whatever the node's pace
REQUEST_TIMEOUT_S = 30.0  # one flood request; bounds a stalled node, not an expected time
COMMIT_WITHIN_MS = 15_000  # each writer record must be committed within this (?wait timeout)
HEIGHT_ADVANCE_MIN = 10  # blocks node 0 must commit during the flood
PROBE_EVERY_S = 0.1
HEALTH_MAX_S = 2.0  # /healthz during the flood (answers on the loop: up to 5.3 s, see the docstring)
WAIT_S = 60.0  # deadline for conditions after the flood (never an expected time)


NO_READ_LIMIT = {"read_rate_per_s": 10**9, "read_burst": 10**9}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with running(tmp_path, limits=NO_READ_LIMIT) as c:
        yield c


def metrics(c: Cluster, i: int = FLOODED) -> str:
    with urllib.request.urlopen(c.api(i) + "/metrics", timeout=REQUEST_TIMEOUT_S) as resp:
        return str(resp.read().decode())


def metric(text: str, series: str) -> int:
    found = re.search(rf"^{re.escape(series)} ([0-9]+)$", text, re.MULTILINE)
    return int(found.group(1)) if found else 0


REFUSED = 'ledgernode_events_total{event="reads_refused"}'
INFLIGHT = "ledgernode_reads_inflight"


def load_subject(c: Cluster) -> set[str]:
    """HEAVY_RECORDS records about SUBJECT, committed at every node; their ids."""
    ids: list[str] = []
    for start in range(0, HEAVY_RECORDS, LOAD_BATCH):
        envs = [c.record(SUBJECT) for _ in range(min(LOAD_BATCH, HEAVY_RECORDS - start))]
        body = json.dumps({"envelopes": [base64.b64encode(e).decode() for e in envs]}).encode()
        status, doc = c.request(FLOODED, "POST", "/v1/records/batch?wait=1", body)
        assert status == 200, (status, doc)
        assert all(item.get("status") in ("committed", "pending") for item in doc["results"]), doc
        ids += [str(item["id"]) for item in doc["results"]]
    for i in range(c.n):
        wait_until(f"node {i} to hold all {HEAVY_RECORDS} records about {SUBJECT}", lambda: (
            (doc := c.get(i, f"/v1/subjects/{SUBJECT}?limit=1"))["total"] == HEAVY_RECORDS, doc["total"]))
    assert len(set(ids)) == HEAVY_RECORDS
    return set(ids)


def check_complete(doc: Any) -> None:
    assert doc["format"] == "ledgernode-answer/2" and doc["kind"] == "subject", doc.get("format")
    assert doc["total"] == HEAVY_RECORDS and len(doc["records"]) == HEAVY_RECORDS, (
        doc["total"], len(doc["records"]))
    assert doc["next_from"] is None, doc["next_from"]


@dataclass
class Flood:
    """FLOOD_CLIENTS threads asking for the heavy answer until `deadline`."""

    c: Cluster
    deadline: float
    ok: int = 0
    refused: int = 0
    retry_after: set[str] = field(default_factory=set)
    ok_latencies: list[float] = field(default_factory=list)
    problems: list[Any] = field(default_factory=list)  # anything but a complete 200 or a proper 503
    sample: Any = None  # one complete answer, checked offline afterwards
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        threads = [threading.Thread(target=self._client, daemon=True) for _ in range(FLOOD_CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(0.0, self.deadline - time.monotonic()) + REQUEST_TIMEOUT_S + 5)
        assert not any(t.is_alive() for t in threads), "a flood client's last request never returned"

    def _client(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.c.api_ports[FLOODED], timeout=REQUEST_TIMEOUT_S)
        try:
            for _ in range(REQUESTS_PER_CLIENT_MAX):
                if time.monotonic() >= self.deadline:
                    return
                start = time.monotonic()
                try:
                    conn.request("GET", HEAVY_PATH)
                    resp = conn.getresponse()
                    raw = resp.read()
                except (OSError, http.client.HTTPException) as exc:
                    with self.lock:
                        self.problems.append(repr(exc))
                    conn.close()  # http.client reconnects on the next request
                    continue
                self._judge(resp, raw, time.monotonic() - start)
        finally:
            conn.close()

    def _judge(self, resp: http.client.HTTPResponse, raw: bytes, took: float) -> None:
        try:
            doc = json.loads(raw)
            assert resp.getheader("Content-Type", "").startswith("application/json")
            if resp.status == 503:
                retry = resp.getheader("Retry-After", "")
                assert retry.isdigit() and int(retry) >= 1, f"Retry-After {retry!r}"
                assert set(doc) == {"error"} and doc["error"]["code"] == "backpressure", doc
                assert doc["error"]["message"], doc
                with self.lock:
                    self.refused += 1
                    self.retry_after.add(retry)
                return
            assert resp.status == 200, (resp.status, doc)
            check_complete(doc)
            with self.lock:
                self.ok += 1
                self.ok_latencies.append(took)
                if self.sample is None:
                    self.sample = doc
        except (AssertionError, ValueError, KeyError, TypeError) as exc:
            with self.lock:
                self.problems.append((resp.status, repr(exc)[:300], raw[:300]))


class Probe:
    """/healthz (timed) and the in-flight gauge of node 0, every PROBE_EVERY_S."""

    def __init__(self, c: Cluster) -> None:
        self.c = c
        self.health: list[float] = []
        self.health_failures: list[Any] = []
        self.inflight: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                status, doc = self.c.request(FLOODED, "GET", "/healthz", timeout=REQUEST_TIMEOUT_S)
                took = time.monotonic() - start
                if (status, doc) != (200, {"ok": True}):
                    self.health_failures.append((status, doc))
                self.health.append(took)
                self.inflight.append(metric(metrics(self.c), INFLIGHT))
            except OSError as exc:
                self.health_failures.append(repr(exc))
            self.stop.wait(PROBE_EVERY_S)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=REQUEST_TIMEOUT_S * 2 + 5)
        assert not self.thread.is_alive(), "the probe's last request never returned"


def test_a_flood_of_heavy_answers_is_refused_in_part_and_does_not_stall_the_chain(cluster: Cluster) -> None:
    c = cluster
    t_load = time.monotonic()
    heavy_ids = load_subject(c)
    t_load = time.monotonic() - t_load
    start = time.monotonic()
    check_complete(c.get(FLOODED, HEAVY_PATH))  # alone: never refused
    alone_s = time.monotonic() - start
    before = metrics(c)
    assert metric(before, REFUSED) == 0 and metric(before, INFLIGHT) == 0, before

    h0 = c.get(FLOODED, "/v1/status")["height"]
    probe = Probe(c)
    flood = Flood(c, time.monotonic() + FLOOD_S)
    writer = SteadyClient(c, "flood-writer", nodes=(FLOODED,), wait_ms=COMMIT_WITHIN_MS)
    probe.thread.start()
    try:
        flood.run()
    finally:
        h1 = c.get(FLOODED, "/v1/status")["height"]
        writer.finish()
        probe.finish()
    rounds = [c.get(FLOODED, f"/v1/blocks/{h}")["qc"]["round"] for h in range(h0 + 1, h1 + 1)]
    summary = {
        "load_s": round(t_load, 2), "answer_alone_s": round(alone_s, 3),
        "answers_200": flood.ok, "refused_503": flood.refused, "retry_after": sorted(flood.retry_after),
        "answer_200_median_s": round(sorted(flood.ok_latencies)[len(flood.ok_latencies) // 2], 3)
        if flood.ok_latencies else None,
        "answer_200_max_s": round(max(flood.ok_latencies, default=0), 3),
        "height": [h0, h1], "blocks_after_round_0": sum(1 for r in rounds if r > 0),
        "writes": len(writer.ids) + len(writer.failures),
        "write_commit_max_s": round(max(writer.latencies, default=0), 3),
        "healthz_probes": len(probe.health), "healthz_max_s": round(max(probe.health, default=0), 3),
        "inflight_seen_max": max(probe.inflight, default=0),
    }
    print("answer flood:", json.dumps(summary))

    # The chain kept committing at the flooded node, and every writer record was committed in time.
    assert h1 - h0 >= HEIGHT_ADVANCE_MIN, summary
    assert writer.ids and not writer.failures, (writer.failures[:3], summary)
    assert all(t <= COMMIT_WITHIN_MS / 1000 for t in writer.latencies), summary
    written = writer.ids
    for i in range(c.n):
        wait_until(f"node {i} to hold every writer record", lambda: (
            not (missing := [rid for rid in written
                             if c.request(i, "GET", f"/v1/records/{rid}")[1].get("status") != "committed"]),
            missing[:3]), timeout=WAIT_S)

    # /healthz kept answering at once during the flood.
    assert not probe.health_failures, probe.health_failures[:3]
    assert len(probe.health) >= FLOOD_S / (HEALTH_MAX_S + PROBE_EVERY_S) - 1, summary
    assert max(probe.health) <= HEALTH_MAX_S, summary

    # Every flood request got a proper answer, and the node both served and refused.
    assert not flood.problems, (len(flood.problems), flood.problems[:5])
    assert flood.refused > 0 and flood.ok > 0, summary
    check_complete(flood.sample)
    verdict = verify_answer(flood.sample, "subject", c.genesis)
    assert verdict.valid, verdict.checks[-1]
    assert {r["id"] for r in flood.sample["records"]} == heavy_ids

    # The refusals were counted, the gauge stayed within the bound and is back at 0.
    assert 0 < max(probe.inflight) <= READS_INFLIGHT_MAX, summary
    after = wait_until("the in-flight gauge back at 0", lambda: (
        metric(text := metrics(c), INFLIGHT) == 0, text), timeout=WAIT_S)
    assert metric(after, REFUSED) == flood.refused, (metric(after, REFUSED), summary)
    assert metric(after, 'ledgernode_api_rejected_total{reason="backpressure"}') == flood.refused
    check_complete(c.get(FLOODED, HEAVY_PATH))  # and a lone ask is served again
    for i in range(c.n):
        assert "Traceback" not in (c.root / f"node{i}" / "node.log").read_text(errors="replace"), i
