"""Peer network limits (ledgernode.net) against hostile, unauthenticated clients.

What an unauthenticated connection may cost a node: frames of HANDSHAKE_MAX_BYTES, PREAUTH_BYTES_MAX
bytes in all, HANDSHAKE_TIMEOUT_S (the gate: PREAUTH_LIFETIME_S) of time, and one of
PREAUTH_CONNECTIONS_MAX slots (PREAUTH_PER_ADDRESS_MAX per source address). After the handshake,
frames of up to FRAME_MAX_BYTES, the largest legitimate message with a margin. Each refusal is
counted and logged at most once per cause per REFUSED_LINE_S.

Real sockets on 127.0.0.1; raw clients connect from other loopback addresses (127.0.0.2 and up)
where a test needs distinct sources. The aiohttp internals that `net.handshake.raise_frame_limit` relies
on are pinned by the tests marked "aiohttp internals": they fail if an aiohttp upgrade changes them.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from ledgernode import codec, net
from ledgernode.aio import ClientSession, WSMsgType, web
from ledgernode.consensus.messages import MESSAGE_MAX_BYTES, Status, encode_message
from ledgernode.logs import Throttle
from ledgernode.net import PreAuth, PeerNetwork, auth_bytes
from ledgernode.records import ENVELOPE_MAX_BYTES
from tests.fixtures import Net
from tests.fixtures import until

LOCAL = "127.0.0.1"
NET = Net()
CHAIN = NET.chain_id
WAIT_S = 60.0  # bounds a wait for something to happen; not an expected duration
SHORT_S = 0.3  # a handshake deadline shortened for a test


class Node:
    """One PeerNetwork (validator `index`) and what it received."""

    def __init__(self, index: int, peers: dict[int, tuple[str, int]] | None = None) -> None:
        self.messages: list[tuple[int, Any]] = []
        self.records: list[tuple[int, list[bytes]]] = []
        self.net = PeerNetwork(NET.genesis, NET.validators[index], peers or {},
                               lambda peer, msg: self.messages.append((peer, msg)), self._on_records)
        self.port = 0

    async def _on_records(self, peer: int, raws: list[bytes]) -> None:
        self.records.append((peer, raws))


@pytest.fixture
async def nodes() -> AsyncIterator[Callable[..., Awaitable[Node]]]:
    """nodes(index, gate=True): a served PeerNetwork (behind the gate, or on a plain app)."""
    made: list[tuple[Node, web.AppRunner | None]] = []

    async def make(index: int, gate: bool = True, peers: dict[int, tuple[str, int]] | None = None) -> Node:
        node = Node(index, peers)
        runner = None
        if gate:
            _, node.port = await node.net.serve((LOCAL, 0))
        else:
            app = web.Application()
            app.router.add_get(net.PEER_PATH, node.net.handle_inbound)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            site = web.TCPSite(runner, LOCAL, 0)
            await site.start()
            node.port = site.port
        made.append((node, runner))
        return node

    yield make
    for node, runner in made:
        await node.net.stop()
        if runner is not None:
            await runner.cleanup()


def upgrade_request(port: int, extra_headers: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {net.PEER_PATH} HTTP/1.1\r\nHost: {LOCAL}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"{extra_headers}\r\n").encode()


def frame_header(length: int) -> bytes:
    """A masked binary frame's header declaring `length` bytes (all-zero mask: the payload goes as is)."""
    return bytes([0x82, 0x80 | 127]) + struct.pack(">Q", length) + b"\0\0\0\0"


async def raw(port: int, source: str = LOCAL) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(LOCAL, port, local_addr=(source, 0)), WAIT_S)


async def closed_by_node(reader: asyncio.StreamReader, timeout: float = WAIT_S) -> float:
    """Read until the node ends the connection; return when (s from now). Fails after `timeout`."""
    start = time.monotonic()
    try:
        while await asyncio.wait_for(reader.read(65536), timeout):
            pass
    except (ConnectionError, OSError):
        pass
    return time.monotonic() - start


async def upgraded(port: int, source: str = LOCAL) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw websocket client past the upgrade (the node's hello is left unread)."""
    reader, writer = await raw(port, source)
    writer.write(upgrade_request(port))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def auth_frame(hello: list[Any], claim: int) -> list[Any]:
    mine = os.urandom(net.NONCE_BYTES)
    key = NET.validators[claim]
    sig = key.sign(auth_bytes(CHAIN, key.public.raw, hello[2], hello[3], mine))
    return ["auth", CHAIN, key.public.raw, hello[2], hello[3], mine, sig]


async def authenticate(ws: Any, claim: int) -> None:
    hello = codec.decode(await ws.receive_bytes())
    await ws.send_bytes(codec.encode(auth_frame(hello, claim)))
    assert codec.decode(await ws.receive_bytes())[0] == "auth-ok"


# -- the limits, as numbers ---------------------------------------------------------------


def test_every_limit_is_what_the_docs_say() -> None:
    assert net.HANDSHAKE_MAX_BYTES == 4_096
    assert net.PREAUTH_BYTES_MAX == 8_192
    assert net.PREAUTH_CONNECTIONS_MAX == 64 and net.PREAUTH_PER_ADDRESS_MAX == 8
    assert net.HANDSHAKE_TIMEOUT_S == 5.0 and net.PREAUTH_LIFETIME_S == net.HANDSHAKE_TIMEOUT_S + net.CLOSE_TIMEOUT_S
    assert net.FRAME_MAX_BYTES == MESSAGE_MAX_BYTES + net.FRAME_OVERHEAD_MAX_BYTES


def test_the_largest_legitimate_frames_fit_under_frame_max_bytes() -> None:
    # a consensus message is refused by decode_message past MESSAGE_MAX_BYTES; its frame adds a
    # constant for any message of 64 KiB or more (bin32 header), measured here on a small one
    body = b"\0" * 70_000
    framing = len(codec.encode(["m", body])) - len(body)
    assert framing == 8
    assert MESSAGE_MAX_BYTES + framing <= net.FRAME_MAX_BYTES
    # a gossip frame: at most GOSSIP_MAX_RECORDS envelopes of at most ENVELOPE_MAX_BYTES each
    one, two = (len(codec.encode(["r", [b"\0" * ENVELOPE_MAX_BYTES] * k])) for k in (1, 2))
    per_record = two - one
    assert per_record == ENVELOPE_MAX_BYTES + 3
    worst_gossip = one + (net.GOSSIP_MAX_RECORDS - 1) * per_record + 2  # array16 -> array32 header
    assert worst_gossip <= net.FRAME_MAX_BYTES
    # the handshake messages are tiny next to HANDSHAKE_MAX_BYTES
    key = b"\0" * 32
    hello = ["hello", "c" * 64, key, b"\0" * net.NONCE_BYTES]
    auth = ["auth", "c" * 64, key, key, b"\0" * net.NONCE_BYTES, b"\0" * net.NONCE_BYTES, b"\0" * 64]
    assert max(len(codec.encode(m)) for m in (hello, auth, ["auth-ok", b"\0" * 64])) < 300


def test_preauth_counts_per_address_and_in_total() -> None:
    p = PreAuth(total_max=3, per_address_max=2)
    a1, a2, b1, b2 = object(), object(), object(), object()
    assert p.enter(a1, "A", 1.0) is None and p.enter(a2, "A", 1.0) is None
    assert p.enter(object(), "A", 1.0) == "peer_preauth_address_full"
    assert p.enter(b1, "B", 1.0) is None
    assert p.enter(b2, "B", 1.0) == "peer_preauth_total_full"
    p.leave(a1)
    p.leave(a1)  # idempotent
    assert len(p) == 2 and p.per_address == {"A": 1, "B": 1}
    assert p.enter(b2, "B", 1.0) is None
    for k in (a2, b1, b2):
        p.leave(k)
    assert len(p) == 0 and p.per_address == {}


# -- aiohttp internals (net.handshake.raise_frame_limit) ------------------------------------------


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[int, list[Any]]]:
    """A websocket that takes frames of up to 100 bytes, then of up to 1000 after a b"raise"."""
    seen: list[Any] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=net.handshake.ws_max_msg_size(100), compress=net.handshake.WS_COMPRESS)
        await ws.prepare(request)
        while (msg := await ws.receive()).type == WSMsgType.BINARY:
            seen.append(len(msg.data))
            if msg.data == b"raise":
                net.handshake.raise_frame_limit(ws, request, 1000)
            await ws.send_bytes(b"ok")
        seen.append(("ended", msg.type, getattr(msg.data, "code", None)))  # the error's close code
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, LOCAL, 0)
    await site.start()
    yield site.port, seen
    await runner.cleanup()


async def test_aiohttp_internals_frame_limits_are_exact_and_can_be_raised(
        echo_server: tuple[int, list[Any]]) -> None:
    port, seen = echo_server
    async with ClientSession() as session:
        async with session.ws_connect(f"http://{LOCAL}:{port}/ws") as ws:
            await ws.send_bytes(b"x" * 100)  # exactly the limit
            assert await ws.receive_bytes() == b"ok"
            await ws.send_bytes(b"raise")
            assert await ws.receive_bytes() == b"ok"
            await ws.send_bytes(b"y" * 1000)  # exactly the raised limit
            assert await ws.receive_bytes() == b"ok"
            await ws.send_bytes(b"z" * 1001)
            msg = await asyncio.wait_for(ws.receive(), WAIT_S)
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)
    await until(lambda: seen and isinstance(seen[-1], tuple), what="the server side closed")
    assert seen[:3] == [100, 5, 1000]
    assert seen[-1] == ("ended", WSMsgType.ERROR, 1009)  # message too big


async def test_aiohttp_internals_frame_limit_is_exact_before_it_is_raised(
        echo_server: tuple[int, list[Any]]) -> None:
    port, seen = echo_server
    async with ClientSession() as session:
        async with session.ws_connect(f"http://{LOCAL}:{port}/ws") as ws:
            await ws.send_bytes(b"x" * 101)
            msg = await asyncio.wait_for(ws.receive(), WAIT_S)
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)
            assert ws.close_code == 1009
    await until(lambda: seen, what="the server side closed")
    assert seen == [("ended", WSMsgType.ERROR, 1009)]


async def test_aiohttp_internals_a_huge_declared_frame_is_refused_from_its_header(
        echo_server: tuple[int, list[Any]]) -> None:
    """The reader refuses a frame by its declared length, before any payload byte is buffered."""
    port, seen = echo_server
    reader, writer = await raw(port)
    writer.write(f"GET /ws HTTP/1.1\r\nHost: {LOCAL}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                 f"Sec-WebSocket-Version: 13\r\n\r\n".encode())
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    writer.write(frame_header(90 << 20))  # the header only
    await until(lambda: seen, what="the server side closed")
    assert seen == [("ended", WSMsgType.ERROR, 1009)]
    await closed_by_node(reader)
    writer.close()


async def test_aiohttp_internals_raise_frame_limit_refuses_what_it_does_not_recognise() -> None:
    class Fake:
        _parser = None
        _reader = None
        protocol = None

    with pytest.raises(RuntimeError, match="internals changed"):
        net.handshake.raise_frame_limit(Fake(), Fake(), 1000)  # type: ignore[arg-type]


# -- before authentication -----------------------------------------------------------------


@pytest.mark.parametrize("gate", [True, False], ids=["gate", "plain-app"])
async def test_a_first_frame_past_handshake_max_bytes_is_refused(nodes: Any, gate: bool) -> None:
    server = await nodes(0, gate=gate)
    async with ClientSession() as session:
        async with session.ws_connect(f"http://{LOCAL}:{server.port}{net.PEER_PATH}") as ws:
            await ws.receive_bytes()  # hello
            await ws.send_bytes(b"\0" * (net.HANDSHAKE_MAX_BYTES + 1))
            msg = await asyncio.wait_for(ws.receive(), WAIT_S)
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)
    await until(lambda: server.net.counters.get("peer_refused", 0) == 1, what="peer_refused")
    await until(lambda: len(server.net.preauth) == 0 and not server.net.inbound_ws, what="forgotten")


async def test_a_first_frame_of_handshake_max_bytes_reaches_the_handshake(nodes: Any) -> None:
    """Exactly HANDSHAKE_MAX_BYTES passes the frame limit; the handshake then refuses it (close 4001)."""
    server = await nodes(0, gate=False)
    async with ClientSession() as session:
        async with session.ws_connect(f"http://{LOCAL}:{server.port}{net.PEER_PATH}") as ws:
            await ws.receive_bytes()
            await ws.send_bytes(b"\0" * net.HANDSHAKE_MAX_BYTES)
            msg = await asyncio.wait_for(ws.receive(), WAIT_S)
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)
            assert ws.close_code == 4001
    await until(lambda: server.net.counters.get("peer_refused", 0) == 1, what="peer_refused")


async def test_a_huge_first_frame_costs_the_node_almost_nothing(nodes: Any) -> None:
    """90 MiB declared: the node hangs up after at most PREAUTH_BYTES_MAX (the gate) and before
    buffering more than a handshake frame."""
    server = await nodes(0)
    reader, writer = await upgraded(server.port, "127.0.0.2")
    writer.write(frame_header(90 << 20))
    sent = 0
    chunk = b"\0" * 65536
    with pytest.raises((ConnectionError, OSError)):
        while sent < 90 << 20:  # bounded: 1440 chunks at most
            writer.write(chunk)
            await asyncio.wait_for(writer.drain(), WAIT_S)
            sent += len(chunk)
    writer.close()
    # what the kernel buffers on the way is not the node's memory: a few socket buffers at most
    assert sent < 16 << 20
    await until(lambda: server.net.counters.get("peer_refused", 0) + server.net.counters.get(
        "peer_preauth_too_large", 0) >= 1, what="the refusal counted")


async def test_the_gate_aborts_a_connection_that_sends_more_than_preauth_bytes_max(nodes: Any) -> None:
    server = await nodes(0)
    reader, writer = await raw(server.port)
    writer.write(upgrade_request(server.port, "".join(f"X-Pad-{i}: {'p' * 1000}\r\n" for i in range(9))))
    await closed_by_node(reader)
    writer.close()
    assert server.net.counters.get("peer_preauth_too_large") == 1
    await until(lambda: len(server.net.preauth) == 0, what="forgotten")


async def test_the_gate_ends_silent_and_slow_connections_at_the_deadline(
        nodes: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(net.handshake, "HANDSHAKE_TIMEOUT_S", SHORT_S)
    monkeypatch.setattr(net.gate, "PREAUTH_LIFETIME_S", SHORT_S + net.CLOSE_TIMEOUT_S)
    server = await nodes(0)
    silent = await raw(server.port)
    slow = await raw(server.port)
    slow[1].write(b"GET /v1/peer HTTP/1.1\r\nHost: x\r\n")  # and never the rest
    upgraded_only = await upgraded(server.port)  # reaches the handler: its own deadline ends it
    took = await asyncio.gather(*(closed_by_node(r, timeout=WAIT_S) for r, _ in (silent, slow, upgraded_only)))
    for _, w in (silent, slow, upgraded_only):
        w.close()
    assert all(t < WAIT_S for t in took)
    c = server.net.counters
    assert c.get("peer_preauth_timeout") == 2, c  # silent and slow: aiohttp never called the handler
    assert c.get("peer_refused") == 1, c  # upgraded: refused by the handshake deadline (close 4001)
    await until(lambda: len(server.net.preauth) == 0, what="forgotten")


async def test_plain_app_handshake_deadline_ends_an_upgraded_idle_client(
        nodes: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(net.handshake, "HANDSHAKE_TIMEOUT_S", SHORT_S)
    server = await nodes(0, gate=False)
    async with ClientSession() as session:
        async with session.ws_connect(f"http://{LOCAL}:{server.port}{net.PEER_PATH}") as ws:
            await ws.receive_bytes()  # hello; then say nothing
            msg = await asyncio.wait_for(ws.receive(), WAIT_S)
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)
            assert ws.close_code == 4001
    assert server.net.counters.get("peer_refused") == 1
    await until(lambda: len(server.net.preauth) == 0 and not server.net.inbound_ws, what="forgotten")


async def test_the_gate_caps_unauthenticated_connections_per_address(nodes: Any) -> None:
    server = await nodes(0)
    held = [await raw(server.port, "127.0.0.2") for _ in range(net.PREAUTH_PER_ADDRESS_MAX)]
    await until(lambda: len(server.net.preauth) == net.PREAUTH_PER_ADDRESS_MAX, what="all admitted")
    extra = await raw(server.port, "127.0.0.2")
    assert await closed_by_node(extra[0]) < WAIT_S
    other = await raw(server.port, "127.0.0.3")  # another address still gets in
    await until(lambda: len(server.net.preauth) == net.PREAUTH_PER_ADDRESS_MAX + 1, what="other admitted")
    assert server.net.counters == {"peer_preauth_address_full": 1}
    for _, w in [*held, extra, other]:
        w.close()
    await until(lambda: len(server.net.preauth) == 0, what="all forgotten")


async def test_the_gate_caps_unauthenticated_connections_in_total(nodes: Any) -> None:
    server = await nodes(0)
    server.net.preauth = PreAuth(total_max=5, per_address_max=2)
    sources = [f"127.0.0.{i}" for i in range(2, 5)]  # room for 6 by address, 5 in total
    held = [await raw(server.port, s) for s in sources for _ in range(2)]
    await until(lambda: server.net.counters.get("peer_preauth_total_full") == 1, what="one refused")
    assert len(server.net.preauth) == 5
    ended = await asyncio.gather(*(asyncio.wait_for(r.read(1), 0.5) for r, _ in held), return_exceptions=True)
    # exactly one of them was closed at once (EOF or reset); the others are still open (timed out)
    assert sum(1 for e in ended if e == b"" or isinstance(e, ConnectionError)) == 1, ended
    for _, w in held:
        w.close()
    await until(lambda: len(server.net.preauth) == 0, what="all forgotten")


async def test_plain_app_caps_unauthenticated_connections_with_a_503(nodes: Any) -> None:
    server = await nodes(0, gate=False)
    server.net.preauth = PreAuth(total_max=64, per_address_max=2)
    held = [await upgraded(server.port, "127.0.0.2") for _ in range(2)]
    reader, writer = await raw(server.port, "127.0.0.2")
    writer.write(upgrade_request(server.port))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
    assert head.startswith(b"HTTP/1.1 503"), head
    await closed_by_node(reader)
    assert server.net.counters == {"peer_preauth_address_full": 1}
    for _, w in [*held, (reader, writer)]:
        w.close()
    await until(lambda: len(server.net.preauth) == 0, what="all forgotten")


async def test_refusals_log_one_line_per_cause_per_interval(nodes: Any, caplog: pytest.LogCaptureFixture) -> None:
    server = await nodes(0)
    assert server.net.refusals.interval_s == net.REFUSED_LINE_S == 10.0
    server.net.refusals = Throttle(logging.getLogger("ledgernode.net"), 3600.0)  # however slow this test runs
    server.net.preauth = PreAuth(total_max=64, per_address_max=1)
    caplog.set_level(logging.WARNING, logger="ledgernode.net")
    first = await raw(server.port, "127.0.0.2")
    for _ in range(20):  # bounded: 20 refused connections
        r, w = await raw(server.port, "127.0.0.2")
        await closed_by_node(r)
        w.close()
    for _ in range(5):  # and 5 refused handshakes (binary garbage instead of auth)
        async with ClientSession() as session:
            async with session.ws_connect(f"http://{LOCAL}:{server.port}{net.PEER_PATH}") as ws:
                await ws.receive_bytes()
                await ws.send_bytes(b"\xc1")
                await asyncio.wait_for(ws.receive(), WAIT_S)
    await until(lambda: server.net.counters.get("peer_refused") == 5, what="5 refused handshakes")
    assert server.net.counters["peer_preauth_address_full"] == 20
    lines = [r.getMessage() for r in caplog.records if r.name == "ledgernode.net"]
    assert len(lines) == 2, lines
    assert any("peer_preauth_address_full" in line and "127.0.0.2" in line for line in lines)
    assert any("(peer_refused)" in line for line in lines)
    first[1].close()


# -- after authentication ------------------------------------------------------------------


async def test_after_the_handshake_frames_up_to_frame_max_bytes_pass_the_gate(nodes: Any) -> None:
    """A validator's link is no longer unauthenticated: big frames pass, and it holds no slot."""
    server = await nodes(0)
    big = [os.urandom(ENVELOPE_MAX_BYTES) for _ in range(64)]  # a 1 MiB gossip frame
    async with ClientSession() as session:
        async with session.ws_connect(f"http://{LOCAL}:{server.port}{net.PEER_PATH}") as ws:
            await authenticate(ws, 2)
            assert len(server.net.preauth) == 0
            await ws.send_bytes(codec.encode(["r", big]))
            await ws.send_bytes(codec.encode(["m", encode_message(Status(CHAIN, 7, 2))]))
            await until(lambda: server.records and server.messages, what="frames")
    assert server.records == [(2, big)] and server.messages == [(2, Status(CHAIN, 7, 2))]
    assert "peer_refused" not in server.net.counters


async def test_two_gated_validators_link_up_and_talk(nodes: Any) -> None:
    a = await nodes(0, peers={1: (LOCAL, 1)})  # port fixed below, before dialling starts
    b = await nodes(1, peers={0: (LOCAL, a.port)})
    a.net.peers[1] = (LOCAL, b.port)
    await a.net.start()
    await b.net.start()
    await until(lambda: a.net.peer_states()[1] == {"key": NET.genesis.validators[1].pubkey.raw.hex(), "out": "up", "in": True, "queued": 0}
                and b.net.peer_states()[0]["out"] == "up" and b.net.peer_states()[0]["in"], what="links up")
    a.net.send(1, Status(CHAIN, 3, 0))
    b.net.gossip([os.urandom(ENVELOPE_MAX_BYTES) for _ in range(100)])
    await until(lambda: b.messages and a.records, what="delivery both ways")
    assert b.messages == [(0, Status(CHAIN, 3, 0))] and len(a.records[0][1]) == 100
    assert len(a.net.preauth) == 0 and len(b.net.preauth) == 0
    assert not any(k.startswith("peer_") for k in {**a.net.counters, **b.net.counters})


async def test_a_frame_over_frame_max_bytes_is_dropped_before_sending(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(net.links, "FRAME_MAX_BYTES", 1_000)
    node = Node(0, {1: (LOCAL, 1)})
    node.net.gossip([b"\0" * 2_000])
    node.net.send(1, Status(CHAIN, 1, 0))
    assert node.net.counters == {"send_frame_too_large_dropped": 1}
    assert node.net.peer_states()[1]["queued"] == 1


# -- the dialling side ---------------------------------------------------------------------


async def test_a_dial_to_a_server_that_never_answers_gives_up_at_the_deadline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Whoever answers at a peer's address cannot hold the link: accept, say nothing."""
    monkeypatch.setattr(net.handshake, "HANDSHAKE_TIMEOUT_S", SHORT_S)
    accepted: list[float] = []
    writers: list[asyncio.StreamWriter] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(time.monotonic())
        writers.append(writer)

    server = await asyncio.start_server(mute, LOCAL, 0)
    port = server.sockets[0].getsockname()[1]
    node = Node(0, {1: (LOCAL, port)})
    await node.net.start()
    try:
        await until(lambda: len(accepted) >= 3, what="the dialler redialling")
        assert node.net.peer_states()[1]["out"] == "down"
    finally:
        await node.net.stop()
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()


async def test_a_dialled_server_cannot_send_a_big_hello(nodes: Any) -> None:
    """The dialler reads only handshake frames: a 1 MiB "hello" ends the attempt."""
    sent: list[bool] = []

    async def impostor(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        try:
            await ws.send_bytes(codec.encode(["hello", CHAIN, 1, b"\0" * 16, b"\0" * (1 << 20)]))
            sent.append(True)
            await ws.receive()
        finally:
            await ws.close()
        return ws

    app = web.Application()
    app.router.add_get(net.PEER_PATH, impostor)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, LOCAL, 0)
    await site.start()
    node = Node(0, {1: (LOCAL, site.port)})
    await node.net.start()
    try:
        await until(lambda: len(sent) >= 2, what="two attempts")
        assert node.net.peer_states()[1]["out"] == "down"
    finally:
        await node.net.stop()
        await runner.cleanup()


async def test_stop_closes_the_listener_and_unauthenticated_connections(nodes: Any) -> None:
    server = await nodes(0)
    reader, writer = await raw(server.port)
    await until(lambda: len(server.net.preauth) == 1, what="admitted")
    await server.net.stop()
    assert await closed_by_node(reader) < WAIT_S
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection(LOCAL, server.port)


async def test_a_subprotocol_request_is_refused_quietly(nodes: Any, caplog: pytest.LogCaptureFixture) -> None:
    """aiohttp logs a WARNING with the client's text for each unknown subprotocol: never reached."""
    server = await nodes(0)
    server.net.refusals = Throttle(logging.getLogger("ledgernode.net"), 3600.0)
    caplog.set_level(logging.DEBUG)
    for _ in range(10):  # bounded
        reader, writer = await raw(server.port)
        writer.write(upgrade_request(server.port, "Sec-WebSocket-Protocol: evil\r\n"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
        assert head.startswith(b"HTTP/1.1 400"), head
        await closed_by_node(reader)
        writer.close()
    assert server.net.counters == {"peer_refused": 10}
    assert [r.name for r in caplog.records if r.levelno >= logging.WARNING] == ["ledgernode.net"]
    await until(lambda: len(server.net.preauth) == 0, what="forgotten")


# -- peer addresses changed while running (`set_peers`, reloaded on SIGHUP: ledgernode/peers.py) --


def _dead_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as s:
        s.bind((LOCAL, 0))
        return int(s.getsockname()[1])


async def test_a_changed_address_is_dialled_at_once_not_after_the_backoff(
        nodes: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(net.links, "BACKOFF_MIN_S", 600.0)  # without the redial, no second try in the test
    monkeypatch.setattr(net.links, "BACKOFF_MAX_S", 600.0)
    dead = _dead_port()
    a = await nodes(0, peers={1: (LOCAL, dead)})
    b = await nodes(1, peers={})
    await a.net.start()
    await until(lambda: a.net.peer_states()[1]["out"] == "down", what="the dial to a dead address failing")
    changes = a.net.set_peers({1: (LOCAL, b.port)})
    assert changes == [f"peer 1: {LOCAL}:{dead} -> {LOCAL}:{b.port}"]
    await until(lambda: a.net.peer_states()[1]["out"] == "up" and b.net.peer_states() == {}
                and b.net.inbound.get(0) == 1, what="the link at the new address")
    assert a.net.set_peers({1: (LOCAL, b.port)}) == []  # the same addresses change nothing

    # The validator moves while its link is up: the old link is closed, the new address dialled.
    moved = await nodes(1, peers={})
    assert a.net.set_peers({1: (LOCAL, moved.port)}) == [f"peer 1: {LOCAL}:{b.port} -> {LOCAL}:{moved.port}"]
    await until(lambda: moved.net.inbound.get(0) == 1 and not b.net.inbound.get(0)
                and a.net.peer_states()[1]["out"] == "up", what="the link moved to the new address")


async def test_a_peer_no_longer_listed_is_not_dialled_and_a_new_one_is(nodes: Any) -> None:
    b = await nodes(1, peers={})
    a = await nodes(0, peers={1: (LOCAL, b.port)})
    await a.net.start()
    await until(lambda: a.net.peer_states()[1]["out"] == "up", what="link up")
    assert a.net.set_peers({}) == [f"peer 1: {LOCAL}:{b.port} no longer dialled"]
    assert a.net.peer_states() == {}
    a.net.send(1, Status(CHAIN, 1, 0))  # to a peer not dialled any more: dropped, no error
    a.net.gossip([b"\0" * 10])
    await until(lambda: not b.net.inbound.get(0), what="the old link closed")
    assert a.net.set_peers({1: (LOCAL, b.port)}) == [f"peer 1: dialled at {LOCAL}:{b.port}"]
    await until(lambda: a.net.peer_states()[1]["out"] == "up" and b.net.inbound.get(0) == 1, what="dialled again")


async def test_a_peer_removed_and_added_again_at_once_has_one_dial_loop(nodes: Any) -> None:
    b = await nodes(1, peers={})
    a = await nodes(0, peers={1: (LOCAL, b.port)})
    await a.net.start()
    await until(lambda: a.net.peer_states()[1]["out"] == "up", what="link up")
    old = a.net.dialers[1]
    a.net.send(1, Status(CHAIN, 1, 0))  # a frame in flight as the reload comes
    a.net.set_peers({})
    a.net.set_peers({1: (LOCAL, b.port)})
    await until(lambda: old.done(), what="the retired dial loop ending")
    await until(lambda: a.net.peer_states()[1]["out"] == "up" and b.net.inbound.get(0) == 1,
                what="one link again")
    assert a.net.dialers[1] is not old and a.net.queued_bytes[1] >= 0 and not a.net.retiring


async def test_after_stop_a_reload_dials_nothing(nodes: Any) -> None:
    a = await nodes(0, peers={})
    await a.net.start()
    await a.net.stop()
    assert a.net.set_peers({1: (LOCAL, _dead_port())}) == [f"peer 1: dialled at {LOCAL}:{a.net.peers[1][1]}"]
    assert a.net.dialers == {}
