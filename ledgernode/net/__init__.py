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
HANDSHAKE_TIMEOUT_S = 5.0
HANDSHAKE_MAX_BYTES = 1024
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
FRAME_MAX_BYTES = MESSAGE_MAX_BYTES
GOSSIP_MAX_RECORDS = 5_000
FRAME_LIMITS = codec.Limits(input_max_bytes=FRAME_MAX_BYTES, bin_max_bytes=FRAME_MAX_BYTES,
                            array_max_len=GOSSIP_MAX_RECORDS, map_max_len=0, depth_max=2)
PEER_PATH = "/v1/peer"
IDLE_CHECK_S = 1.0
REFUSED_LINE_S = 10.0


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

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

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
            try:
                async with self.session.ws_connect(
                        f"http://{host}:{port}{PEER_PATH}", max_msg_size=FRAME_MAX_BYTES,
                        heartbeat=10.0) as ws:
                    await asyncio.wait_for(self._client_handshake(ws, peer), HANDSHAKE_TIMEOUT_S)
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

    async def handle_inbound(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=FRAME_MAX_BYTES, heartbeat=10.0)
        await ws.prepare(request)
        self.inbound_ws.add(ws)
        try:
            peer = await asyncio.wait_for(self._server_handshake(ws), HANDSHAKE_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - whatever goes wrong, this peer is not admitted
            self.count("peer_refused")
            self.refusals.log(logging.WARNING, "peer_refused", "refused peer %s: %s", request.remote,
                              exc or type(exc).__name__)
            await ws.close(code=4001, message=b"not an authenticated validator")
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

    async def _server_handshake(self, ws: web.WebSocketResponse) -> int:
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

    async def start(self) -> None:
        self.session = ClientSession(timeout=ClientTimeout(total=None, connect=HANDSHAKE_TIMEOUT_S))
        self.tasks = [asyncio.create_task(self._dial_loop(peer)) for peer in self.peers]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for ws in list(self.inbound_ws):
            await ws.close()
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
