"""GET /v1/events: committed records and blocks as Server-Sent Events (docs/protocol.md
section 14; the wire format is ledgernode/sse.py).

Theory of operation. Nothing is pushed into per-subscriber buffers: each subscriber has a
`Cursor` (the block it streams, the next leaf, the id of the last event it covered) and
pulls from the store. When the cursor is below the head it takes the next aligned
`Chunk` of its block (at most limits.events_buffer_events_max records) through
`service.read` (the API's reader thread), writes that chunk's events in one write, and
moves on; the block event follows the block's last record. At the head it sleeps until
the hub's watcher, woken by the node at each commit (`service.wait_height`), wakes every
subscriber, or until a heartbeat is due. Chunks are cached and loaded once however many
subscribers ask (they all start at the same leaf of a new block), so a commit costs one
store read, not one per subscriber.

Bounds: limits.events_subscribers_max streams (one more: 503 too_many_subscribers); a
write the client does not take within limits.events_send_timeout_ms makes it a slow
subscriber: it gets a `cutoff` event naming where to resume and is closed. The per-answer
SEND_TIMEOUT_MS of api/connections.py bounds only what aiohttp writes after a handler
returns; a stream is written by its handler, under this module's per-write timeout.
When the node stops, every stream gets `cutoff` with reason node_stopping and ends.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter, OrderedDict
from dataclasses import dataclass

from .. import access, families
from ..access import Reader
from ..aio import web
from ..config import Limits
from ..errors import InvalidInput
from ..genesis import Genesis
from ..members import AnyDept
from ..records import decode_envelope
from ..service import Backpressure, NodeService
from ..sse import (
    AfterBlock, AfterLeaf, BlockEvent, Cutoff, Event, EventId, Heartbeat, RecordEvent, decode_event_id,
    encode_event, event_name,
)
from ..storage import Store, Tip
from .auth import READER
from .errors import ApiError
from .inputs import bad, subject as checked_subject

log = logging.getLogger(__name__)

TYPES_MAX = 64  # entries of one `types` filter
CHUNKS_CACHED_MAX = 16  # chunks kept for subscribers that ask next (a few blocks' worth)
WATCH_TIMEOUT_S = 60.0  # the watcher's longest wait for a commit before it looks again
DISCONNECT_CHECK_MS = 1_000  # an idle stream looks this often whether its client went away
STOP_LINGER_MS = 1_000  # how long the last event of a stopping node may take to go out
CUTOFF_REASONS = ("slow", "node_stopping", "key_revoked")
CONTENT_TYPE = "text/event-stream"

EVENTS_HUB: web.AppKey[EventHub] = web.AppKey("events_hub")


# -- what a subscriber asks for ----------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    """Which record events a stream carries: exact types, `prefix.*` families, one subject.
    Block, heartbeat and cutoff events always flow."""

    types: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    subject: str | None = None

    def admits(self, record_type: str, subject: str) -> bool:
        if self.subject is not None and subject != self.subject:
            return False
        if not self.types and not self.prefixes:
            return True
        return record_type in self.types or record_type.startswith(self.prefixes)


def decode_filter(types: str | None, subject: str | None) -> Filter:
    """`types=cert.*,data.grant` (comma list: a registered type or `family.*`), `subject=`."""
    exact: set[str] = set()
    prefixes: list[str] = []
    if types is not None:
        items = types.split(",")
        if len(items) > TYPES_MAX:
            raise bad("bad_filter", f"types lists at most {TYPES_MAX} entries")
        for item in items:
            if item.endswith(".*") and any(name.startswith(item[:-1]) for name in families.TYPES):
                prefixes.append(item[:-1])
            elif item in families.TYPES:
                exact.add(item)
            else:
                raise bad("bad_filter", f"types: {item[:80]!r} is neither a record type nor family.* "
                          f"(types: {', '.join(families.TYPES)})")
    who = None if subject is None else checked_subject(subject)
    return Filter(frozenset(exact), tuple(prefixes), who)


def decode_after(query: str | None, header: str | None) -> EventId | None:
    """Where to resume: `?after=` (for curl and tests) or else the Last-Event-ID header."""
    text = query if query is not None else (header or None)
    if text is None:
        return None
    try:
        return decode_event_id(text)
    except ValueError as exc:
        raise bad("bad_event_id", f"{text[:40]!r}: {exc}") from None


# -- where a subscriber is ---------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """Next: block `height`'s records from `leaf` (its first is `start`), then its block
    event. `last` is the id of the last event covered: the resume point."""

    height: int
    start: int
    leaf: int
    last: EventId


def cursor_at(store: Store, after: EventId | None) -> Cursor:
    """The cursor that resumes right after `after` (None: at the head, new events only);
    400 for an id beyond the head."""
    tip = store.tip
    match after:
        case None:
            return Cursor(tip.height + 1, tip.log_size, tip.log_size, AfterBlock(tip.height))
        case AfterBlock(height=height):
            if height > tip.height:
                raise InvalidInput("event_id_ahead", f"b{height} is beyond the head (height {tip.height})", 400)
            start = store.load_header(height).log_size if height else 0
            return Cursor(height + 1, start, start, after)
        case AfterLeaf(leaf=leaf):
            if leaf >= tip.log_size:
                raise InvalidInput("event_id_ahead", f"leaf {leaf} is beyond the head (log size {tip.log_size})",
                                   400)
            height = store.height_of_leaf(leaf)
            return Cursor(height, store.load_header(height).log_start, leaf + 1, after)


# -- what is read from the store -------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One committed record as its event shows it."""

    record_id: str
    type: str
    subject: str
    leaf: int
    # who may see it where reads are authenticated (access.sensitive_readers; None: any key)
    readers: frozenset[str] | None


@dataclass(frozen=True)
class Chunk:
    """Records [first, first + len(rows)) of block `height`: its aligned chunk `index` of
    `size` records (the last chunk of a block, or of an empty one, may hold fewer)."""

    height: int
    block_hash: str
    log_start: int
    log_size: int
    log_root: str
    time_ms: int
    first: int
    rows: tuple[Row, ...]

    @property
    def ends_block(self) -> bool:
        return self.first + len(self.rows) == self.log_size


def load_chunk(store: Store, registry: AnyDept, height: int, index: int, size: int, genesis: Genesis) -> Chunk:
    """On the reader thread: one chunk of a committed block, each record's type and subject
    decoded from its envelope (records.py; the subject is the record list it joined), and
    who may read it where reads are authenticated (ledgernode/access.py), as of the head
    now (a chunk is kept briefly: CHUNKS_CACHED_MAX)."""
    header = store.load_header(height)
    first = min(header.log_start + index * size, header.log_size)
    end = min(first + size, header.log_size)
    envs = (decode_envelope(raw, registry) for raw in store.load_envelopes(first, end))
    members, tip = store.members(genesis), store.head()
    now_ms = tip.time if tip is not None else 0
    rows = tuple(Row(env.record_id.hex(), env.record.type, env.record.subject, first + i,
                     access.sensitive_readers(env, store, members, now_ms))
                 for i, env in enumerate(envs))
    return Chunk(height, header.block_hash.hex(), header.log_start, header.log_size, header.log_root.hex(),
                 header.time, first, rows)


def chunk_index(cursor: Cursor, size: int) -> int:
    return (cursor.leaf - cursor.start) // size


def advance(chunk: Chunk, cursor: Cursor, flt: Filter, reader: Reader | None = None) -> tuple[list[Event], Cursor]:
    """The events of `chunk` from the cursor on (its block event if the chunk ends the
    block), and the cursor after them. Skipped records move the resume point too, those the
    filter leaves out as those the reader may not see (ledgernode/access.py)."""
    events: list[Event] = []
    leaf, last = cursor.leaf, cursor.last
    for row in chunk.rows:
        if row.leaf < leaf:
            continue
        if flt.admits(row.type, row.subject) and (reader is None or access.admitted(reader, row.readers)):
            events.append(RecordEvent(row.record_id, row.type, row.subject, chunk.height, row.leaf,
                                      chunk.block_hash))
        leaf, last = row.leaf + 1, AfterLeaf(row.leaf)
    if not chunk.ends_block:
        return events, Cursor(cursor.height, cursor.start, leaf, last)
    events.append(BlockEvent(chunk.height, chunk.block_hash, chunk.log_size - chunk.log_start, chunk.log_size,
                             chunk.log_root, chunk.time_ms))
    return events, Cursor(chunk.height + 1, chunk.log_size, chunk.log_size, AfterBlock(chunk.height))


def heartbeat(tip: Tip, cursor: Cursor) -> Heartbeat:
    header = tip.header
    return Heartbeat(tip.height, tip.log_size, tip.frontier.root().hex(),
                     None if header is None else header.block_hash.hex(), cursor.last.text())


# -- subscribers and the hub -------------------------------------------------------------------


class Subscriber:
    """One open stream: woken at each commit and when the node stops."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()

    async def sleep(self, timeout_s: float) -> None:
        """Until woken or `timeout_s` is up."""
        try:
            await asyncio.wait_for(self.wake.wait(), max(0.0, timeout_s))
        except TimeoutError:
            pass


class EventHub:
    """The streams of one API application, the chunks they share, and their counters."""

    def __init__(self, service: NodeService, limits: Limits) -> None:
        self.service, self.limits = service, limits
        self.registry = AnyDept.of(service.genesis)
        self.subscribers: set[Subscriber] = set()
        self.cache: OrderedDict[tuple[int, int], Chunk] = OrderedDict()
        self.loading: dict[tuple[int, int], asyncio.Future[Chunk]] = {}
        self.watcher: asyncio.Task[None] | None = None
        self.closing = False
        self.sent: Counter[str] = Counter()  # events written, by event name
        self.cutoffs: Counter[str] = Counter()  # streams the node ended, by reason

    # -- membership ------------------------------------------------------------------

    def join(self) -> Subscriber:
        if self.closing:
            raise Backpressure("the node is stopping; subscribe to another node or retry")
        if len(self.subscribers) >= self.limits.events_subscribers_max:
            raise ApiError(503, "too_many_subscribers",
                           f"this node serves at most {self.limits.events_subscribers_max} event streams; "
                           "retry later or ask another node")
        sub = Subscriber()
        self.subscribers.add(sub)
        if self.watcher is None:
            self.watcher = asyncio.get_running_loop().create_task(self._watch())
        return sub

    async def _watch(self) -> None:
        """Wake every subscriber when the committed height moves (the node's hook)."""
        seen = self.service.store.height
        while True:
            await self.service.wait_height(seen, WATCH_TIMEOUT_S)
            height = self.service.store.height
            if height != seen:
                seen = height
                for sub in self.subscribers:
                    sub.wake.set()

    async def stop(self, app: web.Application | None = None) -> None:
        """The node stops (the app's on_shutdown): every stream says so and ends."""
        self.closing = True
        for sub in self.subscribers:
            sub.wake.set()
        if self.watcher is not None:
            self.watcher.cancel()
            await asyncio.gather(self.watcher, return_exceptions=True)

    # -- chunks, shared ----------------------------------------------------------------

    async def chunk(self, height: int, index: int) -> Chunk:
        key = (height, index)
        cached = self.cache.get(key)
        if cached is not None:
            self.cache.move_to_end(key)
            return cached
        loading = self.loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(self.service.read(
                load_chunk, self.service.store, self.registry, height, index, self.limits.events_buffer_events_max,
                self.service.genesis))
            self.loading[key] = loading
            loading.add_done_callback(lambda done: self._loaded(key, done))
        # shielded: a subscriber that goes away does not cancel the others' read
        return await asyncio.shield(loading)

    def _loaded(self, key: tuple[int, int], done: asyncio.Future[Chunk]) -> None:
        self.loading.pop(key, None)
        if done.cancelled() or done.exception() is not None:
            return
        self.cache[key] = done.result()
        while len(self.cache) > CHUNKS_CACHED_MAX:
            self.cache.popitem(last=False)

    # -- one stream --------------------------------------------------------------------

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """GET /v1/events: 400 for a bad id or filter, 503 when full, else the stream."""
        after = decode_after(request.query.get("after"), request.headers.get("Last-Event-ID"))
        flt = decode_filter(request.query.get("types"), request.query.get("subject"))
        cursor = cursor_at(self.service.store, after)
        sub = self.join()
        try:
            resp = web.StreamResponse(headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
            resp.content_type = CONTENT_TYPE
            resp.force_close()  # a stream ends with its connection
            await resp.prepare(request)
            try:
                await self._run(sub, request, resp, cursor, flt)
            except ConnectionError:  # the client went away
                pass
            except Exception:  # noqa: BLE001 - the answer has begun: end the stream, keep the node
                log.exception("event stream failed; closing it")
            return resp
        finally:
            self.subscribers.discard(sub)

    async def _run(self, sub: Subscriber, request: web.Request, resp: web.StreamResponse, cursor: Cursor,
                   flt: Filter) -> None:
        loop = asyncio.get_running_loop()
        heartbeat_s = self.limits.events_heartbeat_ms / 1000
        size = self.limits.events_buffer_events_max
        wrote_at = -math.inf  # the first idle moment sends a heartbeat at once
        while True:
            sub.wake.clear()  # before the head is read: a commit after it wakes the sleep below
            if self.closing:
                await self._end(request, resp, Cutoff("node_stopping", cursor.last.text()), STOP_LINGER_MS)
                return
            if request.transport is None or request.transport.is_closing():
                return
            if not self._still_reader(request[READER]):
                await self._end(request, resp, Cutoff("key_revoked", cursor.last.text()), STOP_LINGER_MS)
                return
            tip = self.service.store.tip
            if cursor.height <= tip.height:
                try:
                    chunk = await self.chunk(cursor.height, chunk_index(cursor, size))
                except Backpressure as exc:  # the reader thread is full: try again shortly
                    await sub.sleep(exc.retry_after_s)
                    continue
                events, cursor = advance(chunk, cursor, flt, request[READER])
                if not await self._send(resp, events):
                    await self._end(request, resp, Cutoff("slow", cursor.last.text()),
                                    self.limits.events_send_timeout_ms)
                    return
                wrote_at = loop.time()
                continue
            if loop.time() - wrote_at >= heartbeat_s:
                if not await self._send(resp, [heartbeat(tip, cursor)]):
                    await self._end(request, resp, Cutoff("slow", cursor.last.text()),
                                    self.limits.events_send_timeout_ms)
                    return
                wrote_at = loop.time()
            await sub.sleep(min(wrote_at + heartbeat_s - loop.time(), DISCONNECT_CHECK_MS / 1000))

    def _still_reader(self, reader: Reader | None) -> bool:
        """A stream of a node whose reads are authenticated ends once its key is revoked."""
        if reader is None:
            return True
        store = self.service.store
        return access.reader_of(store.members(self.service.genesis), reader.key_id, store.log_size,
                                reader.via) is not None

    async def _send(self, resp: web.StreamResponse, events: list[Event]) -> bool:
        """Write `events` in one write; False if the client did not take it in time."""
        if not events:
            return True
        data = b"".join(encode_event(e) for e in events)
        try:
            async with asyncio.timeout(self.limits.events_send_timeout_ms / 1000):
                await resp.write(data)
        except TimeoutError:
            return False
        for e in events:
            self.sent[event_name(e)] += 1
        return True

    async def _end(self, request: web.Request, resp: web.StreamResponse, cutoff: Cutoff, linger_ms: int) -> None:
        """The last event, then the end of the stream; a client that does not take them
        within `linger_ms` loses the connection (its own last id is where it resumes)."""
        self.cutoffs[cutoff.reason] += 1
        self.sent["cutoff"] += 1
        try:
            async with asyncio.timeout(linger_ms / 1000):
                await resp.write_eof(encode_event(cutoff))
        except (TimeoutError, ConnectionError):
            if request.transport is not None:
                request.transport.abort()

    # -- metrics -----------------------------------------------------------------------

    def render_metrics(self) -> str:
        p = "ledgernode_stream"
        lines = [
            f"# HELP {p}_subscribers Event streams (GET /v1/events) open now.",
            f"# TYPE {p}_subscribers gauge", f"{p}_subscribers {len(self.subscribers)}",
            f"# HELP {p}_subscribers_max Most event streams open at once (limits.events_subscribers_max).",
            f"# TYPE {p}_subscribers_max gauge", f"{p}_subscribers_max {self.limits.events_subscribers_max}",
            f"# HELP {p}_events_sent_total Events written to event streams, by event.",
            f"# TYPE {p}_events_sent_total counter",
        ]
        lines += [f'{p}_events_sent_total{{event="{name}"}} {self.sent[name]}'
                  for name in ("record", "block", "heartbeat", "cutoff")]
        lines += [f"# HELP {p}_cutoffs_total Event streams the node ended, by reason (slow: a write not "
                  "taken within limits.events_send_timeout_ms).", f"# TYPE {p}_cutoffs_total counter"]
        lines += [f'{p}_cutoffs_total{{reason="{r}"}} {self.cutoffs[r]}' for r in CUTOFF_REASONS]
        return "\n".join(lines) + "\n"


__all__ = ["EVENTS_HUB", "EventHub", "Filter", "Cursor", "Chunk", "advance", "cursor_at", "decode_after",
           "decode_filter", "load_chunk"]
