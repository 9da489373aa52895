"""The event stream: ids, filters, SSE framing (ledgernode/sse.py), resume logic against a
real store, and GET /v1/events over HTTP against the API fake (api/events.py)."""

from __future__ import annotations

import asyncio

import pytest

from ledgernode import aio
from ledgernode.api.events import (
    EVENTS_HUB, Cursor, Filter, advance, chunk_index, cursor_at, decode_after, decode_filter, heartbeat, load_chunk,
)
from ledgernode.client import (
    EVENTS_BACKOFF_MAX_S, EVENTS_BACKOFF_S, EVENTS_RECONNECTS_MAX, ApiError, AsyncClient, EventFeed, TransportError,
)
from ledgernode.config import Limits
from ledgernode.errors import InvalidInput
from ledgernode.members import AnyDept
from ledgernode.records import decode_envelope
from ledgernode.sse import (
    AfterBlock, AfterLeaf, BlockEvent, Cutoff, Event, EventParser, Heartbeat, RecordEvent, decode_event_id,
    encode_event, event_id,
)
from ledgernode.storage import Store
from tests.fixtures import Net, commit_records, until
from tests.unit.api_fake import LIMITS, FakeNode, error_of, notarize, serve

# -- ids and filters -------------------------------------------------------------------------


def test_event_ids_are_leaf_indexes_or_b_and_a_height() -> None:
    assert decode_event_id("0") == AfterLeaf(0) and decode_event_id("41") == AfterLeaf(41)
    assert decode_event_id("b0") == AfterBlock(0) and decode_event_id("b7") == AfterBlock(7)
    assert AfterLeaf(41).text() == "41" and AfterBlock(7).text() == "b7"
    for bad in ["", "-1", "01", "b", "b01", "B7", "1.5", " 1", "x", "9" * 21, "b" + "9" * 21, "٣"]:
        with pytest.raises(ValueError):
            decode_event_id(bad)


def test_after_prefers_the_query_and_answers_400_for_a_bad_id() -> None:
    assert decode_after(None, None) is None and decode_after(None, "") is None
    assert decode_after("b3", "9") == AfterBlock(3) and decode_after(None, "9") == AfterLeaf(9)
    with pytest.raises(InvalidInput) as caught:
        decode_after("nine", None)
    assert caught.value.status == 400 and caught.value.code == "bad_event_id"


def test_filters_take_types_families_and_a_subject() -> None:
    flt = decode_filter("cert.*,share.grant", None)
    assert flt == Filter(frozenset({"share.grant"}), ("cert.",), None)
    assert flt.admits("cert.revoke", "C-1") and flt.admits("share.grant", "D")
    assert not flt.admits("share.revoke", "D") and not flt.admits("evidence.notarize", "C-1")
    assert decode_filter(None, None).admits("anything", "at all")
    by_subject = decode_filter(None, "LIC-1")
    assert by_subject.admits("cert.issue", "LIC-1") and not by_subject.admits("cert.issue", "LIC-2")
    for bad in ["", "cert", "nope.*", "cert.issue,", ",".join(["cert.issue"] * 65)]:
        with pytest.raises(InvalidInput) as caught:
            decode_filter(bad, None)
        assert caught.value.code == "bad_filter" and caught.value.status == 400
    with pytest.raises(InvalidInput):
        decode_filter(None, "x" * 257)


# -- framing -----------------------------------------------------------------------------------


EVENTS: list[Event] = [
    RecordEvent("ab" * 32, "cert.issue", "证书-1\n", 3, 17, "cd" * 32),
    BlockEvent(3, "cd" * 32, 4, 18, "ef" * 32, 1_767_225_600_000),
    Heartbeat(3, 18, "ef" * 32, "cd" * 32, "b3"),
    Heartbeat(0, 0, "e3" * 32, None, "b0"),
    Cutoff("slow", "17"),
]


def _parse(data: bytes) -> list[Event]:
    parser, out = EventParser(), []
    for line in data.decode("ascii").split("\n"):
        event = parser.feed(line)
        if event is not None:
            out.append(event)
    return out


def test_events_round_trip_through_their_sse_framing() -> None:
    wire = b"".join(encode_event(e) for e in EVENTS)
    assert _parse(wire) == EVENTS
    first = encode_event(EVENTS[0]).decode("ascii")
    assert first.startswith("event: record\nid: 17\ndata: {") and first.endswith("}\n\n")
    assert first.count("\n") == 4  # the subject's newline is escaped inside the JSON
    assert [event_id(e) for e in EVENTS] == ["17", "b3", "b3", "b0", "17"]


def test_the_parser_follows_the_sse_rules() -> None:
    text = (": a comment\n\nevent: future\ndata: {}\n\n"  # a comment; an event this reader does not know
            "event:cutoff\nid:9\ndata: {\"reason\":\"slow\",\ndata: \"resume\":\"9\"}\n\n")
    assert _parse(text.encode()) == [Cutoff("slow", "9")]
    parser = EventParser()
    with pytest.raises(ValueError):
        for _ in range(70):
            parser.feed("data: " + "x" * 1024)
    with pytest.raises(ValueError):
        _parse(b"event: record\ndata: {\"id\": 5}\n\n")


# -- resume against a real store -------------------------------------------------------------


def _store(net: Net) -> Store:
    """Blocks of 3, 1 and 5 records (subjects S0..S8; every third one a trace.event)."""
    store = Store.memory()
    n = 0
    for size in (3, 1, 5):
        raws = []
        for _ in range(size):
            if n % 3 == 2:
                raws.append(net.record(0, "trace.event", f"S{n}", {"activity": "step"}))
            else:
                raws.append(notarize(net, f"S{n}"))
            n += 1
        commit_records(net, store, raws)
    return store


def _drain(store: Store, net: Net, cursor: Cursor, flt: Filter, size: int) -> tuple[list[Event], Cursor]:
    out: list[Event] = []
    while cursor.height <= store.height:
        chunk = load_chunk(store, AnyDept.of(net.genesis), cursor.height, chunk_index(cursor, size), size, net.genesis)
        events, cursor = advance(chunk, cursor, flt)
        out += events
    return out, cursor


@pytest.mark.parametrize("size", [1, 2, 3, 1000])
def test_every_resume_point_misses_nothing_and_repeats_nothing(size: int) -> None:
    net = Net()
    store = _store(net)
    everything, end = _drain(store, net, cursor_at(store, AfterBlock(0)), Filter(), size)
    names = [event_id(e) for e in everything]
    assert names == ["0", "1", "2", "b1", "3", "b2", "4", "5", "6", "7", "8", "b3"]
    assert end.last == AfterBlock(3) and cursor_at(store, None) == end
    record = everything[4]
    assert isinstance(record, RecordEvent) and record.leaf_index == 3 and record.height == 2
    assert record.subject == "EV-S3" and record.type == "evidence.notarize"
    assert record.block_hash == store.load_header(2).block_hash.hex()
    assert record.id == decode_envelope(store.load_envelope(3), net.genesis).record_id.hex()
    block = everything[-1]
    assert isinstance(block, BlockEvent) and (block.records, block.log_size) == (5, 9)
    assert block.log_root == store.load_header(3).log_root.hex() and block.time_ms == store.load_header(3).time
    for i, name in enumerate(names):
        rest, _ = _drain(store, net, cursor_at(store, decode_event_id(name)), Filter(), size)
        assert rest == everything[i + 1:], name


def test_a_filtered_stream_keeps_blocks_and_its_position_moves_past_skipped_records() -> None:
    net = Net()
    store = _store(net)
    events, end = _drain(store, net, cursor_at(store, AfterBlock(0)), decode_filter("trace.*", None), 2)
    assert [event_id(e) for e in events] == ["2", "b1", "b2", "5", "8", "b3"]
    beat = heartbeat(store.tip, end)
    assert beat.position == "b3" and beat.height == 3 and beat.log_size == 9
    # mid-block, a skipped record is the resume point: the next chunk starts after it
    cursor = cursor_at(store, AfterBlock(2))
    chunk = load_chunk(store, AnyDept.of(net.genesis), 3, 1, 2, net.genesis)  # leaves 6 and 7, no trace.event
    events, moved = advance(chunk, cursor_at(store, AfterLeaf(5)), decode_filter("trace.*", None))
    assert events == [] and moved.last == AfterLeaf(7) and moved.leaf == 8
    chunk = load_chunk(store, AnyDept.of(net.genesis), 3, 0, 2, net.genesis)  # leaves 4 and 5
    events, cursor = advance(chunk, cursor, decode_filter(None, "EV-S4"))
    assert [event_id(e) for e in events] == ["4"] and cursor.last == AfterLeaf(5)


def test_ids_beyond_the_head_are_refused() -> None:
    net = Net()
    store = _store(net)
    for ahead in [AfterLeaf(9), AfterBlock(4)]:
        with pytest.raises(InvalidInput) as caught:
            cursor_at(store, ahead)
        assert caught.value.status == 400 and caught.value.code == "event_id_ahead"
    empty = Store.memory()
    assert cursor_at(empty, None) == cursor_at(empty, AfterBlock(0))
    assert heartbeat(empty.tip, cursor_at(empty, None)).block_hash is None


# -- over HTTP, against the API fake ----------------------------------------------------------


class Reader:
    """Events of one open stream, read line by line."""

    def __init__(self, resp: aio.ClientResponse) -> None:
        self.resp, self.parser = resp, EventParser()

    async def next(self) -> Event:
        while True:
            line = await asyncio.wait_for(self.resp.content.readline(), 60)
            if not line:
                raise EOFError("the stream ended")
            event = self.parser.feed(line.decode("utf-8").rstrip("\r\n"))
            if event is not None:
                return event

    async def take(self, n: int, heartbeats: bool = False) -> list[Event]:
        out: list[Event] = []
        while len(out) < n:
            event = await self.next()
            if heartbeats or not isinstance(event, Heartbeat):
                out.append(event)
        return out


def _ids(events: list[Event]) -> list[str]:
    return [event_id(e) for e in events]


async def _commit(node: FakeNode, net: Net, labels: list[str]) -> None:
    await node.submit([notarize(net, label) for label in labels])
    await node.commit()


async def test_live_events_then_resume_after_a_dropped_connection(node: FakeNode, net: Net) -> None:
    async with serve(node) as client:
        resp = await client.get("/v1/events")
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        live = Reader(resp)
        first = await live.next()  # a stream that starts idle says where it is at once
        assert isinstance(first, Heartbeat) and first.position == "b0" and first.block_hash is None
        await _commit(node, net, ["a", "b"])
        got = await live.take(3)
        assert _ids(got) == ["0", "1", "b1"]
        assert isinstance(got[0], RecordEvent) and got[0].subject == "EV-a" and got[0].height == 1
        resp.close()  # the connection drops after leaf 0 was seen: resume from it
        await _commit(node, net, ["c"])
        again = Reader(await client.get("/v1/events", headers={"Last-Event-ID": "0"}))
        assert _ids(await again.take(4)) == ["1", "b1", "2", "b2"]
        again.resp.close()
        hub = client.app[EVENTS_HUB] if client.app is not None else None
        assert hub is not None
        await until(lambda: not hub.subscribers, "the closed streams to be noticed")
        metrics = hub.render_metrics()
        assert 'ledgernode_stream_events_sent_total{event="record"} 4' in metrics
        assert "ledgernode_stream_subscribers 0" in metrics


async def test_filters_and_bad_requests(node: FakeNode, net: Net) -> None:
    async with serve(node) as client:
        await _commit(node, net, ["x", "y"])
        await node.submit([net.record(0, "trace.event", "LOT-1", {"activity": "step"})])
        await node.commit()
        stream = Reader(await client.get("/v1/events?after=b0&types=trace.*"))
        assert _ids(await stream.take(3)) == ["b1", "2", "b2"]
        stream.resp.close()
        stream = Reader(await client.get("/v1/events", params={"after": "b0", "subject": "EV-y"}))
        assert _ids(await stream.take(3)) == ["1", "b1", "b2"]
        stream.resp.close()
        await error_of(await client.get("/v1/events?after=07"), 400, "bad_event_id")
        await error_of(await client.get("/v1/events", headers={"Last-Event-ID": "b9"}), 400, "event_id_ahead")
        await error_of(await client.get("/v1/events?types=nope"), 400, "bad_filter")


async def test_subscribers_past_the_limit_get_503_and_stopping_cuts_streams_off(node: FakeNode, net: Net) -> None:
    limits = Limits(**{**LIMITS.__dict__, "events_subscribers_max": 2})
    client_cm = serve(node, limits)
    client = await client_cm.__aenter__()
    try:
        open_ = [Reader(await client.get("/v1/events")) for _ in range(2)]
        for reader in open_:
            assert isinstance(await reader.next(), Heartbeat)
        await error_of(await client.get("/v1/events"), 503, "too_many_subscribers")
        assert client.app is not None
        await client.app[EVENTS_HUB].stop()
        for reader in open_:
            end = await reader.next()
            assert end == Cutoff("node_stopping", "b0")
            with pytest.raises(EOFError):
                await reader.next()
    finally:
        await client_cm.__aexit__(None, None, None)


async def test_a_write_that_does_not_drain_cuts_the_subscriber_off(node: FakeNode, net: Net,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A write whose data went to the transport but whose drain never ends (as with a client
    that stopped reading): the stream ends with a cutoff naming the last event written."""
    limits = Limits(**{**LIMITS.__dict__, "events_send_timeout_ms": 200})
    real_write = aio.web.StreamResponse.write
    stalled = asyncio.Event()

    async def write(self: aio.web.StreamResponse, data: bytes) -> None:
        await real_write(self, data)
        if b"event: record" in data:
            stalled.set()
            await asyncio.Event().wait()  # the drain that never ends

    monkeypatch.setattr(aio.web.StreamResponse, "write", write)
    async with serve(node, limits) as client:
        assert client.app is not None
        hub = client.app[EVENTS_HUB]
        stream = Reader(await client.get("/v1/events"))
        assert isinstance(await stream.next(), Heartbeat)
        await _commit(node, net, ["p", "q"])
        got = await stream.take(4)
        assert _ids(got) == ["0", "1", "b1", "b1"] and got[-1] == Cutoff("slow", "b1")
        with pytest.raises(EOFError):
            await stream.next()
        assert stalled.is_set() and hub.cutoffs["slow"] == 1
        await until(lambda: not hub.subscribers, "the cut-off stream to leave")
        assert 'ledgernode_stream_cutoffs_total{reason="slow"} 1' in hub.render_metrics()
        assert (await client.get("/healthz")).status == 200


# -- the SDK ---------------------------------------------------------------------------------


def test_the_sdk_feed_keeps_the_last_id_and_bounds_its_retries() -> None:
    feed = EventFeed("cert.*", "LIC 1", "b0", heartbeats=False)
    assert feed.path == "/v1/events?types=cert.%2A&subject=LIC+1" and feed.headers()["Last-Event-ID"] == "b0"
    wire = b"".join(encode_event(e) for e in EVENTS)
    handed = [e for line in wire.split(b"\n") if (e := feed.feed(line + b"\n")) is not None]
    assert handed == [EVENTS[0], EVENTS[1]]  # heartbeats skipped, the cutoff kept inside
    assert feed.last == "17" and feed.headers()["Last-Event-ID"] == "17"
    delays = [feed.retry_delay(TransportError("reset")) for _ in range(EVENTS_RECONNECTS_MAX)]
    assert delays[0] == EVENTS_BACKOFF_S and delays == sorted(delays) and max(delays) <= EVENTS_BACKOFF_MAX_S
    with pytest.raises(TransportError):
        feed.retry_delay(TransportError("still down"))
    with pytest.raises(ApiError):
        EventFeed(None, None, None, False).retry_delay(ApiError(400, "bad_event_id", "no"))
    assert EventFeed(None, None, None, False).retry_delay(ApiError(503, "too_many_subscribers", "full")) > 0
    with pytest.raises(ValueError):
        EventFeed(None, None, "07", False)


async def test_the_async_sdk_reconnects_after_a_cutoff(node: FakeNode, net: Net,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    limits = Limits(**{**LIMITS.__dict__, "events_send_timeout_ms": 200})
    real_write = aio.web.StreamResponse.write
    stalls = [1]  # the first stream's first record write never drains

    async def write(self: aio.web.StreamResponse, data: bytes) -> None:
        await real_write(self, data)
        if b"event: record" in data and stalls:
            stalls.pop()
            await asyncio.Event().wait()

    monkeypatch.setattr(aio.web.StreamResponse, "write", write)
    async with serve(node, limits) as client:
        await _commit(node, net, ["r1"])
        got: list[Event] = []
        async with AsyncClient(str(client.make_url(""))) as sdk:
            async def consume() -> None:
                async for event in sdk.events(after="b0"):
                    got.append(event)

            task = asyncio.create_task(consume())
            await until(lambda: len(got) >= 2, "the first block", task)
            await _commit(node, net, ["r2"])
            await until(lambda: len(got) >= 4, "the second block after the reconnect", task)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert _ids(got) == ["0", "b1", "1", "b2"]
        assert client.app is not None and client.app[EVENTS_HUB].cutoffs["slow"] == 1
