"""Authenticated peer links between validators over websockets.

Theory of operation. Every node listens on its peer address and dials every
other validator; a link is used in one direction only: we *send* on the links
we dialled and *receive* on the links others dialled to us. Each link starts
with a handshake that both sides sign with their validator keys over
(chain_id, both indexes, both fresh nonces), so a link proves who is at the
other end and cannot be replayed. Anything else is refused and counted.

Frames are canonical msgpack `[tag, body]`: tag "m" carries one encoded
consensus message, tag "r" a list of record envelopes (gossip). Outbound
frames wait in a bounded per-peer queue (oldest dropped when full: consensus
re-sends what matters). Dialling retries with capped exponential backoff.
`Faults` drops, delays or partitions traffic for tests.

Hostile clients. Anyone can reach the peer port; until a connection has
authenticated it may cost the node only a few KiB and a few seconds:

- `serve()` listens behind a gate (`_Gate`) that sees each connection from the
  moment it is accepted. Past PREAUTH_CONNECTIONS_MAX unauthenticated
  connections in total, or PREAUTH_PER_ADDRESS_MAX from one source address, a
  new one is closed at once (before aiohttp builds anything for it). An
  admitted one is aborted if it has not authenticated PREAUTH_LIFETIME_S after
  it was accepted (slow or silent HTTP included), or once it has sent more than
  PREAUTH_BYTES_MAX bytes (request line, headers and websocket frames).
- `handle_inbound` (also usable on any aiohttp app, without the gate) reads the
  handshake with a frame limit of HANDSHAKE_MAX_BYTES, under a deadline of
  HANDSHAKE_TIMEOUT_S from the accept (or from the request, without the gate),
  and applies the same connection caps. Only after the signature verified does
  it raise the link's frame limit to FRAME_MAX_BYTES (`_raise_frame_limit`).
- Every refused connection is counted once in `counters` (the node's /metrics
  ledgernode_events_total{event=...}): `peer_refused` (a failed or late
  handshake), `peer_preauth_total_full`, `peer_preauth_address_full`,
  `peer_preauth_timeout`, `peer_preauth_too_large`. Each is logged through one
  `Throttle`: at most one WARNING per cause per REFUSED_LINE_S, however many
  arrive. (A request for a websocket subprotocol is refused before aiohttp
  sees it: aiohttp would log a WARNING of its own for each.)
- The dialler gives connecting, the upgrade and the handshake HANDSHAKE_TIMEOUT_S
  in all, and reads frames of HANDSHAKE_MAX_BYTES only: the server sends
  nothing else. Frames over FRAME_MAX_BYTES are dropped before sending
  (`send_frame_too_large_dropped`): the receiver would close the link on them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from .. import codec, crypto
from ..aio import ClientSession, ClientTimeout, WSMsgType, web
from ..consensus.messages import MESSAGE_MAX_BYTES, Message, decode_message, encode_message
from ..errors import InvalidInput
from ..genesis import Genesis
from ..logs import Throttle

log = logging.getLogger("ledgernode.net")

AUTH_PREFIX = b"ledgernode:peer-auth\n"
NONCE_BYTES = 16
HANDSHAKE_TIMEOUT_S = 5.0  # from accept to authenticated, HTTP upgrade included
HANDSHAKE_MAX_BYTES = 4_096  # largest frame before authentication: hello/auth/auth-ok are ~100-250 bytes
CLOSE_TIMEOUT_S = 1.0  # how long a refused peer gets to answer our close frame
PREAUTH_LIFETIME_S = HANDSHAKE_TIMEOUT_S + CLOSE_TIMEOUT_S  # the gate aborts an unauthenticated connection then
PREAUTH_BYTES_MAX = 8_192  # all an unauthenticated connection may send: upgrade request (~300) + auth frame
PREAUTH_CONNECTIONS_MAX = 64  # unauthenticated connections at once, in total
PREAUTH_PER_ADDRESS_MAX = 8  # ... and from one source address
HEARTBEAT_S = 10.0  # websocket ping interval on every link
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
# The largest legitimate frame is ["m", message] with a message of MESSAGE_MAX_BYTES (decode_message
# refuses longer ones): msgpack adds 8 bytes around it (fixarray, fixstr "m", bin32 header). A gossip
# frame holds at most GOSSIP_MAX_RECORDS envelopes of at most ENVELOPE_MAX_BYTES (+3 bytes each):
# about 78 MiB. The margin below covers the framing with room to spare (tests/unit/test_net_limits.py).
FRAME_OVERHEAD_MAX_BYTES = 64
FRAME_MAX_BYTES = MESSAGE_MAX_BYTES + FRAME_OVERHEAD_MAX_BYTES
GOSSIP_MAX_RECORDS = 5_000
FRAME_LIMITS = codec.Limits(input_max_bytes=FRAME_MAX_BYTES, bin_max_bytes=FRAME_MAX_BYTES,
                            array_max_len=GOSSIP_MAX_RECORDS, map_max_len=0, depth_max=2)
PEER_PATH = "/v1/peer"
IDLE_CHECK_S = 1.0
LISTEN_BACKLOG = 128  # connections the kernel queues before we accept them (aiohttp's default)
REFUSED_LINE_S = 10.0
INBOUND_LINKS_PER_VALIDATOR_MAX = 2  # authenticated links one validator may hold to us at once


def auth_bytes(chain: str, signer: int, other: int, their_nonce: bytes, my_nonce: bytes) -> bytes:
    return AUTH_PREFIX + codec.encode([chain, signer, other, their_nonce, my_nonce])


@dataclass
class Faults:
    """Test-only traffic faults, applied to what this node sends and receives."""

    drop: float = 0.0
    delay_ms: int = 0
    groups: list[set[int]] = field(default_factory=list)  # partition: talk only within a group

    def blocks(self, me: int, peer: int) -> bool:
        if not self.groups:
            return False
        mine = next((g for g in self.groups if me in g), {me})
        return peer not in mine

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Faults:
        drop = spec.get("drop", 0.0)
        delay = spec.get("delay_ms", 0)
        groups = spec.get("partition", [])
        if isinstance(drop, bool) or not isinstance(drop, (int, float)) or not 0 <= drop <= 1:
            raise InvalidInput("bad_faults", "drop must be a number in [0, 1]")
        if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= 60_000:
            raise InvalidInput("bad_faults", "delay_ms must be an int in [0, 60000]")
        if not isinstance(groups, list) or not all(
                isinstance(g, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in g)
                for g in groups):
            raise InvalidInput("bad_faults", "partition must be a list of lists of validator indexes")
        return cls(float(drop), delay, [set(g) for g in groups])


def _ws_max_msg_size(frame_max_bytes: int) -> int:
    """aiohttp's max_msg_size for frames of up to `frame_max_bytes`: it refuses a frame of
    max_msg_size bytes or more (aiohttp 3.14 _websocket/reader_py.py), so one more."""
    return frame_max_bytes + 1


def _raise_frame_limit(ws: web.WebSocketResponse, request: web.Request, frame_max_bytes: int) -> None:
    """From now on, let a prepared server websocket take frames of up to `frame_max_bytes`.

    aiohttp fixes max_msg_size when prepare() builds the connection's frame reader (the compiled
    reader keeps it in a C field) and offers no way to change it. So this builds a second reader
    of the same class, over the same queue of parsed messages, with the new limit, and makes the
    connection feed its bytes to that one. It is the one place that touches aiohttp's private
    attributes (checked against aiohttp 3.14.5; tests/unit/test_net_limits.py fails if they change):
    WebSocketResponse._parser (the reader; the response keeps it alive), WebSocketResponse._reader
    (the message queue) and RequestHandler._payload_parser (what data_received feeds).

    Call it only when the peer cannot have sent anything past the last frame read: bytes the old
    reader holds unparsed are not carried over. The handshake is lock-step (the dialler waits for
    auth-ok), so an honest validator has not; one that did only breaks its own link.
    """
    protocol = request.protocol
    old = getattr(ws, "_parser", None)
    queue = getattr(ws, "_reader", None)
    if old is None or queue is None or getattr(protocol, "_payload_parser", None) is not old:
        raise RuntimeError("aiohttp's websocket internals changed: review net._raise_frame_limit")
    new = type(old)(queue, _ws_max_msg_size(frame_max_bytes), compress=_WS_COMPRESS, decode_text=_WS_DECODE_TEXT)
    ws._parser = new
    protocol._payload_parser = new


_WS_COMPRESS = False  # links carry signed msgpack: nothing to gain, and no inflating of hostile input
_WS_DECODE_TEXT = True  # aiohttp's default (text frames are refused anyway)


@dataclass
class _Pending:
    """One connection that has not authenticated yet."""

    address: str
    deadline: float  # loop time
    received: int = 0  # bytes, counted by the gate
    counted: bool = False  # its refusal is counted (once per connection, under the first cause)


class PreAuth:
    """The unauthenticated connections of one node, by transport: how many, from where, until when."""

    def __init__(self, total_max: int = PREAUTH_CONNECTIONS_MAX,
                 per_address_max: int = PREAUTH_PER_ADDRESS_MAX) -> None:
        self.total_max, self.per_address_max = total_max, per_address_max
        self.pending: dict[object, _Pending] = {}
        self.per_address: dict[str, int] = {}

    def enter(self, key: object, address: str, deadline: float) -> str | None:
        """Admit a connection, or return why not (a counter name): the caps are full."""
        if len(self.pending) >= self.total_max:
            return "peer_preauth_total_full"
        if self.per_address.get(address, 0) >= self.per_address_max:
            return "peer_preauth_address_full"
        self.pending[key] = _Pending(address, deadline)
        self.per_address[address] = self.per_address.get(address, 0) + 1
        return None

    def get(self, key: object) -> _Pending | None:
        return self.pending.get(key)

    def leave(self, key: object) -> None:
        """The connection authenticated or ended (idempotent)."""
        entry = self.pending.pop(key, None)
        if entry is not None:
            left = self.per_address[entry.address] - 1
            if left:
                self.per_address[entry.address] = left
            else:
                del self.per_address[entry.address]

    def __len__(self) -> int:
        return len(self.pending)


async def _close_refused(ws: web.WebSocketResponse, transport: asyncio.BaseTransport) -> None:
    """Send a refused peer our close frame; give up after CLOSE_TIMEOUT_S. A peer that does not
    read would keep the socket open while our frames wait to be sent: it is aborted."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await ws.close(code=4001, message=b"not an authenticated validator")
    except Exception:  # noqa: BLE001 - timed out, or the connection is gone already
        pass
    if isinstance(transport, asyncio.WriteTransport) and transport.get_write_buffer_size():
        transport.abort()


def _address(transport: Any) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if isinstance(peer, (tuple, list)) and peer else "unknown"


class _Gate(asyncio.Protocol):
    """Stands in front of aiohttp's protocol for one accepted connection on the peer port.

    Refuses it at once past the caps (no aiohttp handler is built for it), aborts it
    PREAUTH_LIFETIME_S after the accept or past PREAUTH_BYTES_MAX received if it has not
    authenticated by then, and otherwise passes every call through. Authentication is
    `PeerNetwork.preauth.leave(transport)`, done by the handshake.
    """

    def __init__(self, network: PeerNetwork, factory: Callable[[], asyncio.Protocol]) -> None:
        self.network, self.factory = network, factory
        self.inner: asyncio.Protocol | None = None
        self.transport: Any = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        net, loop = self.network, asyncio.get_running_loop()
        address = _address(transport)
        cause = net.preauth.enter(transport, address, loop.time() + HANDSHAKE_TIMEOUT_S)
        if cause is not None:
            net.refuse(cause, address, f"{len(net.preauth)} unauthenticated connections open")
            transport.abort()
            return
        self.timer = loop.call_later(PREAUTH_LIFETIME_S, self._expire)
        self.inner = self.factory()
        self.inner.connection_made(transport)

    def _expire(self) -> None:
        entry = self.network.preauth.get(self.transport)
        if entry is not None:
            self.network.refuse_pending(entry, "peer_preauth_timeout",
                                        f"not authenticated {PREAUTH_LIFETIME_S:g} s after connecting")
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.inner is None:
            return
        entry = self.network.preauth.get(self.transport)
        if entry is not None:
            entry.received += len(data)
            if entry.received > PREAUTH_BYTES_MAX:
                self.network.refuse_pending(entry, "peer_preauth_too_large",
                                            f"sent more than {PREAUTH_BYTES_MAX} bytes before authenticating")
                self.transport.abort()
                return
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.inner is not None:
            self.network.preauth.leave(self.transport)
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


class PeerNetwork:
    def __init__(
        self,
        genesis: Genesis,
        index: int,
        key: crypto.PrivateKey,
        peers: dict[int, tuple[str, int]],
        on_message: Callable[[int, Message], None],
        on_records: Callable[[int, list[bytes]], Awaitable[None]],
        queue_max: int = 10_000,
        queue_max_bytes: int = 256 << 20,
    ) -> None:
        self.genesis, self.index, self.key = genesis, index, key
        self.peers = peers
        self.on_message, self.on_records = on_message, on_records
        self.queue_max, self.queue_max_bytes = queue_max, queue_max_bytes
        self.queued_bytes: dict[int, int] = {i: 0 for i in peers}
        self.queues: dict[int, deque[bytes]] = {i: deque(maxlen=queue_max) for i in peers}
        self.wakeups: dict[int, asyncio.Event] = {i: asyncio.Event() for i in peers}
        self.state: dict[int, str] = {i: "connecting" for i in peers}
        self.inbound: dict[int, int] = {}
        self.counters: dict[str, int] = {}
        self.refusals = Throttle(log, REFUSED_LINE_S)  # one line per cause per interval: a flood stays quiet
        self.faults = Faults()
        self.tasks: list[asyncio.Task[None]] = []
        self.session: ClientSession | None = None
        self.inbound_ws: set[web.WebSocketResponse] = set()
        self.preauth = PreAuth()
        self.runner: web.AppRunner | None = None
        self.listener: asyncio.AbstractServer | None = None

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def refuse(self, cause: str, address: str, why: object) -> None:
        """Count a refused connection under `cause` and log it, at most once per cause per REFUSED_LINE_S."""
        self.count(cause)
        self.refusals.log(logging.WARNING, cause, "refused peer %s (%s): %s", address, cause, str(why)[:200])

    def refuse_pending(self, entry: _Pending, cause: str, why: object) -> None:
        """`refuse` an admitted connection, unless it was refused already (the handshake and the
        gate may both see one go wrong: it is counted once, under the first cause)."""
        if not entry.counted:
            entry.counted = True
            self.refuse(cause, entry.address, why)

    # -- sending -----------------------------------------------------------------

    def send(self, to: int | None, msg: Message) -> None:
        frame = codec.encode(["m", encode_message(msg)])
        for peer in ([to] if to is not None else list(self.peers)):
            self._enqueue(peer, frame)

    def gossip(self, envelopes: list[bytes]) -> None:
        for start in range(0, len(envelopes), GOSSIP_MAX_RECORDS):
            frame = codec.encode(["r", envelopes[start: start + GOSSIP_MAX_RECORDS]])
            for peer in self.peers:
                self._enqueue(peer, frame)

    def _enqueue(self, peer: int, frame: bytes) -> None:
        if peer not in self.queues:
            return
        if len(frame) > FRAME_MAX_BYTES:  # the peer would close the link on it
            self.count("send_frame_too_large_dropped")
            return
        if self.faults.blocks(self.index, peer) or (self.faults.drop and random.random() < self.faults.drop):
            self.count("fault_dropped")
            return
        if self.faults.delay_ms:
            asyncio.get_running_loop().call_later(self.faults.delay_ms / 1000, self._push, peer, frame)
        else:
            self._push(peer, frame)

    def _push(self, peer: int, frame: bytes) -> None:
        """Queue a frame; drop the oldest ones while the queue is over its count or bytes."""
        queue = self.queues[peer]
        if len(queue) == queue.maxlen:
            self.queued_bytes[peer] -= len(queue[0])  # append below drops it
            self.count("send_queue_full_dropped")
        queue.append(frame)
        self.queued_bytes[peer] += len(frame)
        while self.queued_bytes[peer] > self.queue_max_bytes and len(queue) > 1:
            self.queued_bytes[peer] -= len(queue.popleft())
            self.count("send_queue_full_dropped")
        self.wakeups[peer].set()

    async def _dial_loop(self, peer: int) -> None:
        backoff = BACKOFF_MIN_S
        host, port = self.peers[peer]
        assert self.session is not None
        while True:
            ws = None
            try:
                # one deadline for connecting, the upgrade and the handshake: whoever answers
                # at a peer's address cannot hold the link; it sends only handshake frames
                async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                    ws = await self.session.ws_connect(
                        f"http://{host}:{port}{PEER_PATH}", max_msg_size=_ws_max_msg_size(HANDSHAKE_MAX_BYTES),
                        heartbeat=HEARTBEAT_S)
                    await self._client_handshake(ws, peer)
                self.state[peer] = "up"
                log.info("link to validator %d up (%s:%d)", peer, host, port)
                backoff = BACKOFF_MIN_S
                await self._drain(ws, peer)
                self.state[peer] = "down"  # the peer closed the link
                log.info("link to validator %d lost: it closed the connection", peer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                # any failure of one link is that link's problem: note it, back off, redial
                if self.state.get(peer) == "up":
                    log.info("link to validator %d lost: %s", peer, exc)
                self.state[peer] = "down"
            finally:
                if ws is not None:
                    await ws.close()
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _drain(self, ws: Any, peer: int) -> None:
        """Send queued frames until the link closes (a reader task notices the close)."""
        queue, wake = self.queues[peer], self.wakeups[peer]
        reader = asyncio.create_task(self._read_until_closed(ws))
        try:
            while not reader.done() and not ws.closed:
                while queue:
                    frame = queue[0]
                    await ws.send_bytes(frame)
                    if queue and queue[0] is frame:  # not already dropped meanwhile
                        queue.popleft()
                        self.queued_bytes[peer] -= len(frame)
                wake.clear()
                if not queue:
                    try:
                        await asyncio.wait_for(wake.wait(), IDLE_CHECK_S)
                    except asyncio.TimeoutError:
                        pass
        finally:
            reader.cancel()

    async def _read_until_closed(self, ws: Any) -> None:
        async for _ in ws:  # the server sends nothing after the handshake
            self.count("unexpected_frame")

    async def _client_handshake(self, ws: Any, peer: int) -> None:
        hello = codec.decode(await ws.receive_bytes(), _HANDSHAKE_LIMITS)
        if not (isinstance(hello, list) and len(hello) == 4 and hello[0] == "hello"
                and hello[1] == self.genesis.chain_id and hello[2] == peer
                and isinstance(hello[3], bytes) and len(hello[3]) == NONCE_BYTES):
            raise InvalidInput("bad_handshake", f"validator {peer} sent a bad hello")
        their_nonce, my_nonce = hello[3], os.urandom(NONCE_BYTES)
        sig = self.key.sign(auth_bytes(self.genesis.chain_id, self.index, peer, their_nonce, my_nonce))
        await ws.send_bytes(codec.encode(["auth", self.genesis.chain_id, self.index, peer,
                                          their_nonce, my_nonce, sig]))
        reply = codec.decode(await ws.receive_bytes(), _HANDSHAKE_LIMITS)
        expected = auth_bytes(self.genesis.chain_id, peer, self.index, my_nonce, their_nonce)
        if not (isinstance(reply, list) and len(reply) == 2 and reply[0] == "auth-ok"
                and isinstance(reply[1], bytes)
                and self.genesis.validators[peer].pubkey.verify(reply[1], expected)):
            raise InvalidInput("bad_handshake", f"validator {peer} failed to authenticate")

    # -- receiving ---------------------------------------------------------------

    async def handle_inbound(self, request: web.Request) -> web.StreamResponse:
        """The PEER_PATH route: handshake, then receive frames until the link closes.

        Behind the gate (`serve`) the connection was admitted when it was accepted; on an app
        without the gate it is admitted here, under the same caps, with its deadline counted
        from now."""
        transport = request.transport
        if transport is None:  # the client is gone already
            return web.Response(status=400)
        address = _address(transport)
        loop = asyncio.get_running_loop()
        admitted_here = self.preauth.get(transport) is None
        if admitted_here:
            cause = self.preauth.enter(transport, address, loop.time() + HANDSHAKE_TIMEOUT_S)
            if cause is not None:
                self.refuse(cause, address, f"{len(self.preauth)} unauthenticated connections open")
                refused = web.Response(status=503, text="too many unauthenticated connections\n")
                refused.force_close()
                return refused
        entry = self.preauth.get(transport)
        assert entry is not None
        if "Sec-WebSocket-Protocol" in request.headers:
            # validators ask for no subprotocol, and aiohttp would log a WARNING for every such
            # request (with the client's text in it): refused here, counted and throttled instead
            self.refuse_pending(entry, "peer_refused", "asked for a websocket subprotocol")
            if admitted_here:
                self.preauth.leave(transport)
            refused = web.Response(status=400, text="no subprotocols here\n")
            refused.force_close()
            return refused
        ws = web.WebSocketResponse(max_msg_size=_ws_max_msg_size(HANDSHAKE_MAX_BYTES), heartbeat=HEARTBEAT_S,
                                   compress=_WS_COMPRESS, timeout=CLOSE_TIMEOUT_S)
        self.inbound_ws.add(ws)
        try:
            async with asyncio.timeout_at(entry.deadline):
                await ws.prepare(request)
                peer = await self._server_handshake(ws, request)
        except Exception as exc:  # noqa: BLE001 - whatever goes wrong, this peer is not admitted
            self.refuse_pending(entry, "peer_refused", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            if ws.prepared:
                await _close_refused(ws, transport)
            self.inbound_ws.discard(ws)
            return ws
        finally:
            # behind the gate, a refused connection counts as unauthenticated until it has closed
            if admitted_here:
                self.preauth.leave(transport)
        if self.inbound.get(peer, 0) >= INBOUND_LINKS_PER_VALIDATOR_MAX:
            # a validator needs one link to us (two while a redial overlaps a dying one);
            # more would only let one key spend our file descriptors and memory
            self.count("peer_links_over_cap")
            await ws.close(code=4002, message=b"too many links from this validator")
            self.inbound_ws.discard(ws)
            return ws
        self.inbound[peer] = self.inbound.get(peer, 0) + 1
        try:
            async for frame in ws:
                if frame.type != WSMsgType.BINARY:
                    self.count("bad_frame")
                    continue
                await self._on_frame(peer, frame.data)  # records: verified before the next frame
        finally:
            self.inbound[peer] -= 1
            self.inbound_ws.discard(ws)
        return ws

    async def _server_handshake(self, ws: web.WebSocketResponse, request: web.Request) -> int:
        nonce = os.urandom(NONCE_BYTES)
        await ws.send_bytes(codec.encode(["hello", self.genesis.chain_id, self.index, nonce]))
        msg = await ws.receive()
        if msg.type != WSMsgType.BINARY:
            raise InvalidInput("bad_handshake", "expected a binary auth frame")
        auth = codec.decode(msg.data, _HANDSHAKE_LIMITS)
        if not (isinstance(auth, list) and len(auth) == 7 and auth[0] == "auth"
                and auth[1] == self.genesis.chain_id and auth[3] == self.index
                and isinstance(auth[2], int) and not isinstance(auth[2], bool)
                and 0 <= auth[2] < self.genesis.n and auth[2] != self.index
                and auth[4] == nonce and isinstance(auth[5], bytes) and len(auth[5]) == NONCE_BYTES
                and isinstance(auth[6], bytes)):
            raise InvalidInput("bad_handshake", "malformed auth or unknown validator")
        peer, their_nonce, sig = auth[2], auth[5], auth[6]
        signed = auth_bytes(self.genesis.chain_id, peer, self.index, nonce, their_nonce)
        if not self.genesis.validators[peer].pubkey.verify(sig, signed):
            raise InvalidInput("bad_handshake", f"auth signature of validator {peer} does not verify")
        mine = self.key.sign(auth_bytes(self.genesis.chain_id, self.index, peer, their_nonce, nonce))
        # authenticated: no longer counted against the caps, and frames up to FRAME_MAX_BYTES from
        # now on. Both before auth-ok, the first thing the dialler waits for before it sends more.
        self.preauth.leave(request.transport)
        _raise_frame_limit(ws, request, FRAME_MAX_BYTES)
        await ws.send_bytes(codec.encode(["auth-ok", mine]))
        return peer

    async def _on_frame(self, peer: int, data: bytes) -> None:
        if self.faults.blocks(self.index, peer):
            self.count("fault_dropped")
            return
        try:
            frame = codec.decode(data, FRAME_LIMITS)
            if not (isinstance(frame, list) and len(frame) == 2):
                raise InvalidInput("bad_frame", "frame must be [tag, body]")
            tag, body = frame
            if tag == "m" and isinstance(body, bytes):
                self.on_message(peer, decode_message(body))
            elif tag == "r" and isinstance(body, list) and all(isinstance(b, bytes) for b in body):
                await self.on_records(peer, body)
            else:
                raise InvalidInput("bad_frame", f"unknown frame tag {tag!r}")
        except InvalidInput as exc:
            self.count(f"peer_input_{exc.code}")

    # -- lifecycle ---------------------------------------------------------------

    async def serve(self, address: tuple[str, int], backlog: int = LISTEN_BACKLOG) -> tuple[str, int]:
        """Listen for validators on `address` (host, port; port 0 picks one): PEER_PATH behind
        the pre-auth gate. Returns the address bound; `stop()` closes it.

        This is the node's peer port. `handle_inbound` also works on an app of one's own, but
        then nothing bounds a connection that has not reached the handler yet (silent or slow
        HTTP), nor the bytes of its request."""
        app = web.Application()  # no route reads a body: the only one is a websocket
        app.router.add_get(PEER_PATH, self.handle_inbound)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=CLOSE_TIMEOUT_S)
        await runner.setup()
        server = runner.server
        assert server is not None
        try:
            self.listener = await asyncio.get_running_loop().create_server(
                lambda: _Gate(self, server), address[0], address[1], backlog=backlog)
        except BaseException:
            await runner.cleanup()
            raise
        self.runner = runner
        host, port = self.listener.sockets[0].getsockname()[:2]
        return host, port

    async def start(self) -> None:
        self.session = ClientSession(timeout=ClientTimeout(total=None, connect=HANDSHAKE_TIMEOUT_S))
        self.tasks = [asyncio.create_task(self._dial_loop(peer)) for peer in self.peers]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.listener is not None:
            self.listener.close()  # no new connections
            for transport in list(self.preauth.pending):  # nor any half-open one
                if isinstance(transport, asyncio.BaseTransport):
                    transport.abort()
        for ws in list(self.inbound_ws):
            await ws.close()
        if self.runner is not None:
            await self.runner.cleanup()  # ends whatever is still connected
            self.runner = None
        if self.listener is not None:
            try:
                await asyncio.wait_for(self.listener.wait_closed(), CLOSE_TIMEOUT_S)
            except asyncio.TimeoutError:
                pass  # Python 3.12+ also waits for connections: all were closed or aborted above
            self.listener = None
        if self.session is not None:
            await self.session.close()

    def peer_states(self) -> dict[int, dict[str, Any]]:
        return {
            peer: {"out": self.state[peer], "in": self.inbound.get(peer, 0) > 0,
                   "queued": len(self.queues[peer])}
            for peer in self.peers
        }


_HANDSHAKE_LIMITS = codec.Limits(input_max_bytes=HANDSHAKE_MAX_BYTES, str_max_bytes=256,
                                 bin_max_bytes=128, array_max_len=8, map_max_len=0, depth_max=1)
