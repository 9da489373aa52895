"""Peer links: dialling, bounded send queues, receiving frames (the package's doc: net/__init__.py).

Frames are canonical msgpack `[tag, body]`: tag "m" carries one encoded consensus
message, tag "r" a list of record envelopes (gossip). Outbound frames wait in a
bounded per-peer queue (oldest dropped when full: consensus re-sends what matters).
Dialling retries with capped exponential backoff. A link is used in one direction
only: we send on the links we dialled and receive on the links others dialled to us.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from typing import Any, Awaitable, Callable

from .. import codec, crypto
from ..aio import ClientSession, ClientTimeout, WSMsgType, web
from ..consensus.messages import MESSAGE_MAX_BYTES, Message, decode_message, encode_message
from ..errors import InvalidInput
from ..genesis import Genesis
from ..logs import Throttle
from ..tls import Tls, peer_fingerprint
from . import handshake
from .book import Book
from .faults import Faults
from .gate import Gate, Pending, PreAuth, address_of

log = logging.getLogger("ledgernode.net")

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


class PeerNetwork:
    def __init__(
        self,
        genesis: Genesis,
        key: crypto.PrivateKey,
        peers: dict[int, tuple[str, int]],
        on_message: Callable[[int, Message], None],
        on_records: Callable[[int, list[bytes]], Awaitable[None]],
        queue_max: int = 10_000,
        queue_max_bytes: int = 256 << 20,
        *,
        book: Book | None = None,
        admits: Callable[[bytes], bool] | None = None,
        tls: Tls | None = None,
    ) -> None:
        """`peers`: link id (`book`; by default the genesis's validators) -> address, the nodes
        dialled. Inbound links are taken from those nodes and from the keys `admits` (by
        default the genesis's validators; a node passes its current sets, roster.py)."""
        self.genesis, self.key = genesis, key
        self.tls = tls  # None: plain links; else TLS both ways, bound into the handshake
        self.book = book or Book(v.pubkey.raw for v in genesis.validators)
        self.index = self.book.name(key.public.raw)  # our own link id: test faults name us by it
        self.admits = admits or (lambda pubkey: genesis.validator_set.index_of(pubkey) is not None)
        self.peers = peers
        self.on_message, self.on_records = on_message, on_records
        self.queue_max, self.queue_max_bytes = queue_max, queue_max_bytes
        # per peer, made by `_track` (at start and when `set_peers` adds one)
        self.queued_bytes: dict[int, int] = {}
        self.queues: dict[int, deque[bytes]] = {}
        self.wakeups: dict[int, asyncio.Event] = {}
        self.redials: dict[int, asyncio.Event] = {}  # set when the peer's address changed
        self.state: dict[int, str] = {}
        self.inbound: dict[int, int] = {}
        self.counters: dict[str, int] = {}
        self.refusals = Throttle(log, REFUSED_LINE_S)  # one line per cause per interval: a flood stays quiet
        self.faults = Faults()
        self.dialers: dict[int, asyncio.Task[None]] = {}  # one dial loop per configured peer
        self.retiring: set[asyncio.Task[None]] = set()  # dial loops of peers no longer dialled, ending
        self.stopping = False
        self.outbound: dict[int, Any] = {}  # the websocket of each peer's link while it is up
        self.session: ClientSession | None = None
        self.inbound_ws: set[web.WebSocketResponse] = set()
        self.inbound_links: dict[web.WebSocketResponse, int] = {}  # authenticated inbound links, by link id
        self.closing: set[asyncio.Task[bool]] = set()  # closes `prune` started
        self.preauth = PreAuth()
        self.runner: web.AppRunner | None = None
        self.listener: asyncio.AbstractServer | None = None
        for peer in peers:
            self._track(peer)

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def refuse(self, cause: str, address: str, why: object) -> None:
        """Count a refused connection under `cause` and log it, at most once per cause per REFUSED_LINE_S."""
        self.count(cause)
        self.refusals.log(logging.WARNING, cause, "refused peer %s (%s): %s", address, cause, str(why)[:200])

    def refuse_pending(self, entry: Pending, cause: str, why: object) -> None:
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
        if peer not in self.queues:  # a validator we have no address for (its node is not in [peers])
            self.count("send_no_address_dropped")
            return
        if len(frame) > FRAME_MAX_BYTES:  # the peer would close the link on it
            self.count("send_frame_too_large_dropped")
            return
        if self.faults.blocks(self.index, peer) or self.faults.drops():
            self.count("fault_dropped")
            return
        if self.faults.delay_ms:
            asyncio.get_running_loop().call_later(self.faults.delay_ms / 1000, self._push, peer, frame)
        else:
            self._push(peer, frame)

    def _push(self, peer: int, frame: bytes) -> None:
        """Queue a frame; drop the oldest ones while the queue is over its count or bytes."""
        queue = self.queues.get(peer)
        if queue is None:  # no longer dialled (`set_peers`) while the frame was delayed
            return
        if len(queue) == queue.maxlen:
            self.queued_bytes[peer] -= len(queue[0])  # append below drops it
            self.count("send_queue_full_dropped")
        queue.append(frame)
        self.queued_bytes[peer] += len(frame)
        while self.queued_bytes[peer] > self.queue_max_bytes and len(queue) > 1:
            self.queued_bytes[peer] -= len(queue.popleft())
            self.count("send_queue_full_dropped")
        self.wakeups[peer].set()

    def _dialling(self, peer: int) -> bool:
        """Is the running task the dial loop of `peer` (not one `set_peers` retired)?"""
        return self.dialers.get(peer) is asyncio.current_task()

    async def _dial_loop(self, peer: int) -> None:
        backoff = BACKOFF_MIN_S
        assert self.session is not None
        while self._dialling(peer):
            ws = None
            host, port = self.peers[peer]  # read again each time: `set_peers` may have changed it
            self.redials[peer].clear()
            try:
                # one deadline for connecting, the upgrade and the handshake: whoever answers
                # at a peer's address cannot hold the link; it sends only handshake frames
                async with asyncio.timeout(handshake.HANDSHAKE_TIMEOUT_S):
                    ws = await self.session.ws_connect(
                        f"{'https' if self.tls else 'http'}://{_host_in_url(host)}:{port}{PEER_PATH}",
                        max_msg_size=handshake.ws_max_msg_size(handshake.HANDSHAKE_MAX_BYTES), heartbeat=HEARTBEAT_S,
                        ssl=self.tls.peer_client_context() if self.tls else True)
                    await handshake.dial(ws, self.genesis.chain_id, self.key, self.book.key(peer), self._seen(ws))
                if self.peers.get(peer) != (host, port):
                    continue  # its address changed while we dialled the old one (`finally` closes it)
                self.state[peer] = "up"
                self.outbound[peer] = ws
                log.info("link to peer %d up (%s:%d, key %s)", peer, host, port, self.book.key(peer).key_id)
                backoff = BACKOFF_MIN_S
                await self._drain(ws, peer)
                if not self._dialling(peer):
                    return  # no longer dialled (`finally` closes the link)
                self.state[peer] = "down"
                if self.redials[peer].is_set():
                    log.info("link to peer %d closed: its address changed", peer)
                else:
                    log.info("link to peer %d lost: it closed the connection", peer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                # any failure of one link is that link's problem: note it, back off, redial
                if not self._dialling(peer):
                    return
                if self.state.get(peer) == "up":
                    log.info("link to peer %d lost: %s", peer, exc)
                self.state[peer] = "down"
            finally:
                if ws is not None:
                    if self.outbound.get(peer) is ws:
                        del self.outbound[peer]
                    await ws.close()
            if not self._dialling(peer):
                return
            if await self._redialled(peer, backoff * (0.5 + random.random())):
                backoff = BACKOFF_MIN_S  # a new address: try it now, not after the old one's backoff
            else:
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _redialled(self, peer: int, wait_s: float) -> bool:
        """Wait out a backoff; True (at once) if the peer's address changed meanwhile."""
        try:
            async with asyncio.timeout(wait_s):
                await self.redials[peer].wait()
            return True
        except TimeoutError:
            return False

    # -- peer addresses (node config, reloaded on SIGHUP: ledgernode/peers.py) -------------

    def set_peers(self, peers: dict[int, tuple[str, int]]) -> list[str]:
        """Dial these addresses from now on; one line per change. A link up at a changed
        address is closed and the new one dialled at once (a dial in progress to the old
        one ends within its handshake deadline first); a peer no longer listed is not
        dialled any more (its queued frames are dropped); a new one is dialled."""
        changes = []
        for peer in sorted(set(self.peers) | set(peers)):
            old, new = self.peers.get(peer), peers.get(peer)
            if old == new:
                continue
            if new is None:
                self._forget(peer)
                changes.append(f"peer {peer}: {_text(old)} no longer dialled")
                continue
            self.peers[peer] = new
            if old is None:
                self._track(peer)
                changes.append(f"peer {peer}: dialled at {_text(new)}")
            else:
                changes.append(f"peer {peer}: {_text(old)} -> {_text(new)}")
                self.redials[peer].set()  # the link's drain ends, its dial loop closes it and redials
                self.wakeups[peer].set()
        return changes + self.prune()

    def prune(self) -> list[str]:
        """Close the inbound links of keys we no longer link with: neither dialled (`[peers]`)
        nor admitted (a validator of the sets kept). Call it when either changes; the
        handshake alone would let a link outlive the reason it was taken."""
        closed = []
        for ws, peer in list(self.inbound_links.items()):
            if peer in self.peers or self.admits(self.book.key(peer).raw):
                continue
            del self.inbound_links[ws]
            task = asyncio.create_task(ws.close(code=4003, message=b"no longer a validator nor a configured peer"))
            self.closing.add(task)
            task.add_done_callback(self.closing.discard)
            self.count("peer_links_pruned")
            closed.append(f"peer {peer}: its inbound link closed (no validator of the current sets, not in [peers])")
        return closed

    def _track(self, peer: int) -> None:
        self.queued_bytes[peer] = 0
        self.queues[peer] = deque(maxlen=self.queue_max)
        self.wakeups[peer] = asyncio.Event()
        self.redials[peer] = asyncio.Event()
        self.state[peer] = "connecting"
        if self.session is not None and not self.stopping:  # started: dial it now
            self.dialers[peer] = asyncio.create_task(self._dial_loop(peer))

    def _forget(self, peer: int) -> None:
        task = self.dialers.pop(peer, None)
        if task is not None:
            task.cancel()
            self.retiring.add(task)  # awaited by `stop`; it also ends on its own (`_dialling`)
            task.add_done_callback(self.retiring.discard)
        del self.peers[peer]
        for table in (self.queued_bytes, self.queues, self.wakeups, self.redials, self.state):
            table.pop(peer, None)

    async def _drain(self, ws: Any, peer: int) -> None:
        """Send queued frames until the link closes (a reader task notices the close), the
        peer's address changes or it is no longer dialled (`set_peers`)."""
        queue, wake, redial = self.queues[peer], self.wakeups[peer], self.redials[peer]
        reader = asyncio.create_task(self._read_until_closed(ws))
        try:
            while not reader.done() and not ws.closed and not redial.is_set() and self._dialling(peer):
                while queue:
                    frame = queue[0]
                    await ws.send_bytes(frame)
                    if queue and queue[0] is frame and peer in self.queued_bytes:  # not dropped meanwhile
                        queue.popleft()
                        self.queued_bytes[peer] -= len(frame)
                wake.clear()
                if not queue:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
                    # arrives as the wait ends, and `_forget` cancels this task
                    try:
                        async with asyncio.timeout(IDLE_CHECK_S):
                            await wake.wait()
                    except TimeoutError:
                        pass
        finally:
            reader.cancel()

    async def _read_until_closed(self, ws: Any) -> None:
        async for _ in ws:  # the server sends nothing after the handshake
            self.count("unexpected_frame")

    # -- receiving ---------------------------------------------------------------

    async def handle_inbound(self, request: web.Request) -> web.StreamResponse:
        """The PEER_PATH route: handshake, then receive frames until the link closes.

        Behind the gate (`serve`) the connection was admitted when it was accepted; on an app
        without the gate it is admitted here, under the same caps, with its deadline counted
        from now."""
        transport = request.transport
        if transport is None:  # the client is gone already
            return web.Response(status=400)
        address = address_of(transport)
        loop = asyncio.get_running_loop()
        admitted_here = self.preauth.get(transport) is None
        if admitted_here:
            cause = self.preauth.enter(transport, address, loop.time() + handshake.HANDSHAKE_TIMEOUT_S)
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
        ws = web.WebSocketResponse(max_msg_size=handshake.ws_max_msg_size(handshake.HANDSHAKE_MAX_BYTES),
                                   heartbeat=HEARTBEAT_S, compress=handshake.WS_COMPRESS,
                                   timeout=handshake.CLOSE_TIMEOUT_S)
        self.inbound_ws.add(ws)
        try:
            async with asyncio.timeout_at(entry.deadline):
                await ws.prepare(request)
                pubkey = await handshake.answer(ws, self.genesis.chain_id, self.key, self._admit,
                                                lambda: self._authenticated(ws, request),
                                                self.tls.fingerprint if self.tls else b"")
                peer = self.book.name(pubkey)
        except Exception as exc:  # noqa: BLE001 - whatever goes wrong, this peer is not admitted
            why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.refuse_pending(entry, "peer_refused", why)
            if ws.prepared:
                await handshake.close_refused(ws, transport)
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
        self.inbound_links[ws] = peer
        try:
            async for frame in ws:
                if frame.type != WSMsgType.BINARY:
                    self.count("bad_frame")
                    continue
                await self._on_frame(peer, frame.data)  # records: verified before the next frame
        finally:
            self.inbound[peer] -= 1
            self.inbound_ws.discard(ws)
            self.inbound_links.pop(ws, None)
        return ws

    def _seen(self, ws: Any) -> bytes:
        """The channel binding of an outbound link: the fingerprint of the certificate the
        peer presented (b"" on a plain link)."""
        if self.tls is None:
            return b""
        seen = peer_fingerprint(ws.get_extra_info("ssl_object"))
        if seen is None:
            raise InvalidInput("bad_handshake", "the peer presented no TLS certificate")
        return seen

    def _admit(self, pubkey: bytes) -> crypto.PublicKey | None:
        """The key of a node that may link to us: one we dial, or one `admits` (a validator of
        the current set we have no address for yet still sends us its votes)."""
        link = self.book.get(pubkey)
        if link in self.peers or self.admits(pubkey):
            return self.book.key(self.book.name(pubkey))
        return None

    def _authenticated(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        """No longer counted against the pre-auth caps, and frames up to FRAME_MAX_BYTES."""
        self.preauth.leave(request.transport)
        handshake.raise_frame_limit(ws, request, FRAME_MAX_BYTES)

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
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=handshake.CLOSE_TIMEOUT_S)
        await runner.setup()
        server = runner.server
        assert server is not None
        try:
            self.listener = await asyncio.get_running_loop().create_server(
                lambda: Gate(self, server), address[0], address[1], backlog=backlog,
                ssl=self.tls.peer_server_context() if self.tls else None,
                ssl_handshake_timeout=handshake.HANDSHAKE_TIMEOUT_S if self.tls else None)
        except BaseException:
            await runner.cleanup()
            raise
        self.runner = runner
        host, port = self.listener.sockets[0].getsockname()[:2]
        return host, port

    async def start(self) -> None:
        self.session = ClientSession(timeout=ClientTimeout(total=None, connect=handshake.HANDSHAKE_TIMEOUT_S))
        self.dialers = {peer: asyncio.create_task(self._dial_loop(peer)) for peer in self.peers}

    async def stop(self) -> None:
        self.stopping = True  # `set_peers` dials nothing new from now on
        tasks = [*self.dialers.values(), *self.retiring]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.listener is not None:
            self.listener.close()  # no new connections
            for transport in list(self.preauth.pending):  # nor any half-open one
                if isinstance(transport, asyncio.Transport):
                    transport.abort()
        for ws in list(self.inbound_ws):
            await ws.close()
        await asyncio.gather(*self.closing, return_exceptions=True)
        if self.runner is not None:
            await self.runner.cleanup()  # ends whatever is still connected
            self.runner = None
        if self.listener is not None:
            try:
                await asyncio.wait_for(self.listener.wait_closed(), handshake.CLOSE_TIMEOUT_S)
            except asyncio.TimeoutError:
                pass  # Python 3.12+ also waits for connections: all were closed or aborted above
            self.listener = None
        if self.session is not None:
            await self.session.close()

    def link_up(self, pubkey: bytes) -> bool:
        """Is our link to the node of this key up (can we send to it)?"""
        link = self.book.get(pubkey)
        return link is not None and self.state.get(link) == "up"

    def peer_states(self) -> dict[int, dict[str, Any]]:
        return {
            peer: {"key": self.book.key(peer).raw.hex(), "out": self.state[peer],
                   "in": self.inbound.get(peer, 0) > 0, "queued": len(self.queues[peer])}
            for peer in self.peers
        }


def _host_in_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host  # an IPv6 address in a URL is bracketed


def _text(address: tuple[str, int] | None) -> str:
    return "-" if address is None else f"{address[0]}:{address[1]}"
