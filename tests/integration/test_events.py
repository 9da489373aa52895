"""GET /v1/events against a real 4-validator devnet: records arrive as events with the right
fields, a reconnect with Last-Event-ID misses nothing and repeats nothing, filters, the
subscriber cap, a subscriber that never reads is cut off while the node stays healthy,
and the SDK's events() resumes by itself across a node's restart."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest

from ledgernode import codec, crypto
from ledgernode.client import AsyncClient, Client
from ledgernode.records import sign_record
from ledgernode.sse import BlockEvent, Event, EventParser, Heartbeat, RecordEvent, event_id

from tests.fixtures import until

from .procs import WAIT_TIMEOUT_S as WAIT_S, Cluster, running, wait_until

# Short intervals so that a stream provably outlives the API's keep-alive and head timeouts.
LIMITS = {"events_subscribers_max": 3, "events_heartbeat_ms": 300, "events_send_timeout_ms": 1_000,
          "keepalive_timeout_ms": 1_000, "header_timeout_ms": 2_000}
BULK_RECORDS = 10_000  # about 5 MB of record events: more than a loopback socket's kernel buffers
SUBJECT_CHARS = 256


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running(tmp_path_factory.mktemp("events"), limits=LIMITS) as c:
        yield c


class Stream:
    """One raw SSE connection read line by line (urllib), for what the SDK hides."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=60)
        self.parser = EventParser()

    def next(self) -> Event:
        while True:
            line = self.resp.readline()
            assert line, "the stream ended"
            event = self.parser.feed(line.decode().rstrip("\r\n"))
            if event is not None:
                return event

    def until_block(self, height: int, heartbeats: bool = False) -> list[Event]:
        out: list[Event] = []
        while True:
            event = self.next()
            if heartbeats or not isinstance(event, Heartbeat):
                out.append(event)
            if isinstance(event, BlockEvent) and event.height >= height:
                return out

    def close(self) -> None:
        self.resp.close()


def _metric(c: Cluster, i: int, name: str) -> float:
    with urllib.request.urlopen(c.api(i) + "/metrics", timeout=60) as resp:
        text = resp.read().decode()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} is not in /metrics"
    return float(found.group(1))


def _submit(c: Cluster, subject: str) -> dict[str, object]:
    status, doc = c.submit(0, c.record(subject), wait=True)
    assert status == 200, doc
    return doc


def test_records_arrive_as_events_and_a_reconnect_misses_nothing(devnet: Cluster) -> None:
    c = devnet
    head = c.get(0, "/v1/status")["height"]
    live = Stream(c.api(1) + "/v1/events")
    first = live.next()
    assert isinstance(first, Heartbeat) and first.position == f"b{first.height}"
    beats = [live.next() for _ in range(6)]  # 1.8 s idle: past keepalive_timeout_ms and header_timeout_ms
    assert all(isinstance(b, Heartbeat) for b in beats)
    done = [_submit(c, f"live-{k}") for k in range(3)]
    seen = [e for e in live.until_block(int(str(done[-1]["height"]))) if isinstance(e, RecordEvent)]
    mine = [e for e in seen if e.subject.startswith("live-")] if seen else []
    assert [e.id for e in mine] == [d["id"] for d in done]
    for event, answer in zip(mine, done):
        assert event.type == "evidence.notarize" and event.subject.startswith("live-")
        assert (event.height, event.leaf_index, event.block_hash) == \
            (answer["height"], answer["leaf_index"], answer["block_hash"])
    # dropped right after the first of them: resume from its id, then more records commit
    live.close()
    more = [_submit(c, f"later-{k}") for k in range(2)]
    top = int(str(more[-1]["height"]))
    resumed = Stream(c.api(1) + "/v1/events", {"Last-Event-ID": str(mine[0].leaf_index)}).until_block(top)
    everything = Stream(c.api(2) + f"/v1/events?after=b{head}").until_block(top)
    cut = [event_id(e) for e in everything].index(str(mine[0].leaf_index))
    assert resumed == everything[cut + 1:]
    ids = [event_id(e) for e in everything]
    assert len(ids) == len(set(ids))  # nothing twice
    records = [e for e in everything if isinstance(e, RecordEvent)]
    assert [e.leaf_index for e in records] == list(range(records[0].leaf_index, records[-1].leaf_index + 1))


def test_filters_leave_blocks_and_heartbeats_flowing(devnet: Cluster) -> None:
    c = devnet
    head = c.get(0, "/v1/status")["height"]
    answers = [_submit(c, s) for s in ("filter-a", "filter-b", "filter-a")]
    top = int(str(answers[-1]["height"]))
    only_a = Stream(c.api(3) + f"/v1/events?after=b{head}&subject=filter-a").until_block(top)
    assert [e.id for e in only_a if isinstance(e, RecordEvent)] == [answers[0]["id"], answers[2]["id"]]
    assert [e.height for e in only_a if isinstance(e, BlockEvent)] == list(range(head + 1, top + 1))
    none = Stream(c.api(3) + f"/v1/events?after=b{head}&types=cert.*").until_block(top)
    assert not [e for e in none if isinstance(e, RecordEvent)]
    status, doc = c.request(3, "GET", "/v1/events?types=nonsense")
    assert status == 400 and doc["error"]["code"] == "bad_filter"
    status, doc = c.request(3, "GET", f"/v1/events?after={10**9}")
    assert status == 400 and doc["error"]["code"] == "event_id_ahead"


def test_the_subscriber_cap_answers_503(devnet: Cluster) -> None:
    c = devnet
    streams = [Stream(c.api(2) + "/v1/events") for _ in range(LIMITS["events_subscribers_max"])]
    for s in streams:
        assert isinstance(s.next(), Heartbeat)
    status, doc = c.request(2, "GET", "/v1/events")
    assert status == 503 and doc["error"]["code"] == "too_many_subscribers"
    for s in streams:
        s.close()
    wait_until("the closed streams to leave", lambda: (_metric(c, 2, "ledgernode_stream_subscribers") == 0, None))
    again = Stream(c.api(2) + "/v1/events")
    assert isinstance(again.next(), Heartbeat)
    again.close()


def _bulk(c: Cluster, count: int) -> None:
    """`count` records with the longest subjects, in batches the node takes at once."""
    envelopes = []
    for k in range(count):
        subject = f"bulk-{k}-".ljust(SUBJECT_CHARS, "x")
        body = {"content_hash": crypto.sha256(subject.encode()), "media_type": "text/plain", "size": 1,
                "title": "bulk"}
        envelopes.append(sign_record(c.client, "gov-itest", "evidence.notarize", subject, body,
                                     int(time.time() * 1000), os.urandom(16)))
    for start in range(0, count, 2_500):
        status, doc = c.request(0, "POST", "/v1/records/batch?wait=1", codec.encode(envelopes[start:start + 2_500]),
                                "application/msgpack")
        assert status == 200 and all(r.get("status") == "committed" for r in doc["results"]), str(doc)[:500]


def test_a_subscriber_that_never_reads_is_cut_off_and_the_node_stays_healthy(devnet: Cluster) -> None:
    c = devnet
    head = c.get(1, "/v1/status")["height"]
    sock = socket.create_connection(("127.0.0.1", c.api_ports[1]))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET /v1/events?after=b{head} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    try:  # and never read a byte
        _bulk(c, BULK_RECORDS)
        wait_until("the slow stream to be cut off",
                   lambda: (_metric(c, 1, 'ledgernode_stream_cutoffs_total{reason="slow"}') >= 1, None))
        wait_until("it to leave", lambda: (_metric(c, 1, "ledgernode_stream_subscribers") == 0, None))
    finally:
        sock.close()
    assert _metric(c, 1, 'ledgernode_stream_events_sent_total{event="record"}') < 10 * BULK_RECORDS
    status, _ = c.request(1, "GET", "/healthz")
    assert status == 200
    fresh = Stream(c.api(1) + "/v1/events")
    assert isinstance(fresh.next(), Heartbeat)
    fresh.close()


def test_the_sdk_resumes_by_itself_across_a_node_restart(devnet: Cluster) -> None:
    c = devnet
    head = c.get(0, "/v1/status")["height"]

    async def scenario() -> None:
        got: list[Event] = []
        async with AsyncClient(c.api(3)) as client:

            async def consume() -> None:
                async for event in client.events(after=f"b{head}", subject="sdk"):
                    got.append(event)

            task = asyncio.create_task(consume())
            try:
                first = await asyncio.to_thread(_submit, c, "sdk")
                await until(lambda: any(isinstance(e, RecordEvent) for e in got), "a record event", task, WAIT_S)
                await asyncio.to_thread(c.kill, 3, signal.SIGTERM)  # the node ends its streams and stops
                second = await asyncio.to_thread(_submit, c, "sdk")
                await asyncio.to_thread(c.start, 3)
                await until(lambda: sum(isinstance(e, RecordEvent) for e in got) >= 2, "two record events", task,
                            WAIT_S)
                top = int(str(second["height"]))
                await until(lambda: any(isinstance(e, BlockEvent) and e.height >= top for e in got),
                            "the top block's event", task, WAIT_S)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        records = [e for e in got if isinstance(e, RecordEvent)]
        assert [e.id for e in records] == [first["id"], second["id"]]
        blocks = [e.height for e in got if isinstance(e, BlockEvent)]
        assert blocks == sorted(set(blocks)) and blocks[0] == head + 1  # each once, in order

    asyncio.run(scenario())
    sync = Client(c.api(0)).events(after=f"b{head}", subject="sdk", heartbeats=True)
    ids = []
    for event in sync:
        if isinstance(event, RecordEvent):
            ids.append(event.id)
        if isinstance(event, Heartbeat):
            break  # caught up with the head
    assert len(ids) == 2
    sync.close()
