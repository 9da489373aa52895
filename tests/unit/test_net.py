"""Peer network (ledgernode.net): authenticated websocket links between validators.

Real sockets on 127.0.0.1: each PeerNetwork is served by its own aiohttp application
(route net.PEER_PATH -> handle_inbound) on a socket bound before the networks are
built, so every address is known up front and a restarted server gets its old port.
Validator keys and the 4-validator genesis come from tests.fixtures.Net.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from ledgernode import codec, crypto, net
from ledgernode.aio import ClientSession, WSMsgType, web
from ledgernode.consensus.messages import Prepare, Status, encode_message, signing_bytes
from ledgernode.errors import InvalidInput
from ledgernode.net import Faults, PeerNetwork, auth_bytes
from ledgernode.net.book import Book
from tests.fixtures import Net, seeded_key, until

LOCAL = "127.0.0.1"
NET = Net()  # 4 validators: quorum 3
CHAIN = NET.chain_id
STRANGER = seeded_key("net-stranger")  # not in the genesis
WAIT_S = 60.0  # a bound on waiting for something to happen, not an expected time
MARKER_HEIGHT = 10**6  # Status height of the markers that close a link's expected traffic


def bound_socket(port: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((LOCAL, port))
    s.listen(64)
    s.setblocking(False)
    return s


def status(height: int, sender: int) -> Status:
    return Status(CHAIN, height, sender)


def signed_prepare(sender: int, height: int = 1, round_: int = 0) -> Prepare:
    unsigned = Prepare(CHAIN, height, round_, crypto.sha256(b"block %d" % height), sender)
    sig = NET.validators[sender].sign(signing_bytes(unsigned))
    return Prepare(CHAIN, height, round_, unsigned.block_hash, sender, sig)


class Peer:
    """One validator's PeerNetwork, its server, and what it received."""

    def __init__(self, index: int, genesis: Any = None, key: crypto.PrivateKey | None = None,
                 queue_max: int = 1_000) -> None:
        self.index = index
        self.genesis = genesis or NET.genesis
        self.key = key or NET.validators[index]
        self.queue_max = queue_max
        self.sock = bound_socket()
        self.port: int = self.sock.getsockname()[1]
        self.messages: list[tuple[int, Any]] = []
        self.records: list[tuple[int, list[bytes]]] = []
        self.pn: PeerNetwork | None = None
        self.runner: web.AppRunner | None = None

    @property
    def net(self) -> PeerNetwork:
        assert self.pn is not None
        return self.pn

    def build(self, peers: dict[int, int], **kwargs: Any) -> PeerNetwork:
        self.pn = PeerNetwork(self.genesis, self.key,
                              {j: (LOCAL, port) for j, port in peers.items()},
                              lambda peer, msg: self.messages.append((peer, msg)),
                              self._on_records, self.queue_max, **kwargs)
        return self.pn

    async def _on_records(self, peer: int, raws: list[bytes]) -> None:
        self.records.append((peer, raws))

    async def serve(self) -> None:
        if self.sock is None:
            self.sock = bound_socket(self.port)
        app = web.Application()
        app.router.add_get(net.PEER_PATH, self.net.handle_inbound)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()

    async def halt(self) -> None:
        """Stop dialling, close inbound links, close the server (its port is free again)."""
        if self.pn is not None:
            await self.pn.stop()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None  # type: ignore[assignment]

    def from_(self, sender: int) -> list[Any]:
        return [m for p, m in self.messages if p == sender]


Factory = Callable[..., Awaitable[dict[int, Peer]]]


@pytest.fixture
async def cluster() -> AsyncIterator[Factory]:
    """cluster(indexes, **peer_kwargs): serve and start validators that dial each other."""
    started: list[Peer] = []

    async def make(indexes: list[int], dial: bool = True, **kwargs: Any) -> dict[int, Peer]:
        peers = {i: Peer(i, **kwargs) for i in indexes}
        for p in peers.values():
            p.build({j: q.port for j, q in peers.items() if j != p.index})
            await p.serve()
            started.append(p)
        if dial:
            for p in peers.values():
                await p.net.start()
        return peers

    yield make
    for p in started:  # stop every network first, so no server waits on a live link
        if p.pn is not None:
            await p.pn.stop()
            p.pn = None
    for p in started:
        await p.halt()


def all_up(peers: dict[int, Peer]) -> bool:
    return all(st["out"] == "up" and st["in"] for p in peers.values() for st in p.net.peer_states().values())


async def markers_through(peers: dict[int, Peer]) -> None:
    """Send a marker on every link and wait until all arrived, then drop them from what each
    peer received. A link delivers in order (messages and gossip alike), so whatever was sent
    on it before its marker has arrived by then."""
    others = {p.index: sorted(set(peers) - {p.index}) for p in peers.values()}
    for p in peers.values():
        for q in others[p.index]:
            p.net.send(q, status(MARKER_HEIGHT, p.index))

    def is_marker(msg: Any) -> bool:
        return isinstance(msg, Status) and msg.height == MARKER_HEIGHT

    def markers_from(p: Peer) -> list[int]:
        return sorted(sender for sender, msg in p.messages if is_marker(msg))

    await until(lambda: all(markers_from(p) == others[p.index] for p in peers.values()),
                what="a marker on every link")
    for p in peers.values():
        p.messages[:] = [(sender, msg) for sender, msg in p.messages if not is_marker(msg)]


# -- links and delivery ----------------------------------------------------------------


async def test_links_come_up_and_messages_reach_the_right_peers(cluster: Factory) -> None:
    peers = await cluster([0, 1, 2])
    await until(lambda: all_up(peers), what="all links up")
    states = peers[0].net.peer_states()
    assert set(states) == {1, 2}
    assert states[1] == {"key": pub(1).hex(), "out": "up", "in": True, "queued": 0}

    peers[0].net.send(1, status(5, 0))
    prep = signed_prepare(2)
    peers[2].net.send(0, prep)
    await until(lambda: peers[1].messages and peers[0].messages, what="direct messages")
    peers[1].net.send(None, status(9, 1))  # to everyone
    await until(lambda: len(peers[0].messages) >= 2 and peers[2].messages, what="broadcast")
    # Nothing else arrives: a marker on every link, sent last; each link is ordered, so once
    # every marker is in, anything else sent on any link would have arrived before it.
    await markers_through(peers)

    assert peers[1].messages == [(0, status(5, 0))]
    assert peers[0].messages == [(2, prep), (1, status(9, 1))]
    assert peers[2].messages == [(1, status(9, 1))]
    received = peers[0].messages[0][1]
    assert isinstance(received, Prepare) and received.sig == prep.sig
    assert NET.genesis.validators[2].pubkey.verify(received.sig, signing_bytes(received))
    assert all(p.records == [] for p in peers.values())


async def test_messages_on_one_link_arrive_in_order(cluster: Factory) -> None:
    peers = await cluster([0, 1])
    await until(lambda: all_up(peers), what="links up")
    for h in range(200):
        peers[0].net.send(1, status(h, 0))
    await until(lambda: len(peers[1].messages) == 200, what="200 messages")
    assert [m.height for m in peers[1].from_(0)] == list(range(200))


async def test_send_to_an_unknown_index_or_to_self_is_ignored(cluster: Factory) -> None:
    peers = await cluster([0, 1])
    await until(lambda: all_up(peers), what="links up")
    peers[0].net.send(0, status(1, 0))  # ourselves: not a peer
    peers[0].net.send(3, status(2, 0))  # a validator we have no link to
    peers[0].net.send(17, status(3, 0))  # not a validator at all
    peers[0].net.send(1, status(4, 0))
    await until(lambda: peers[1].messages, what="the good message")
    assert peers[1].messages == [(0, status(4, 0))]


async def test_gossip_delivers_envelope_lists(cluster: Factory) -> None:
    peers = await cluster([0, 1, 2])
    await until(lambda: all_up(peers), what="links up")
    batch = [b"envelope-a", b"envelope-b", os.urandom(300)]
    peers[1].net.gossip(batch)
    await until(lambda: peers[0].records and peers[2].records, what="gossip")
    assert peers[0].records == [(1, batch)]
    assert peers[2].records == [(1, batch)]
    assert peers[1].records == [] and all(p.messages == [] for p in peers.values())


async def test_gossip_splits_large_lists_into_frames(cluster: Factory) -> None:
    peers = await cluster([0, 1])
    await until(lambda: all_up(peers), what="links up")
    batch = [i.to_bytes(4, "big") for i in range(net.GOSSIP_MAX_RECORDS + 3)]
    peers[0].net.gossip(batch)
    await until(lambda: len(peers[1].records) == 2, what="two gossip frames")
    assert [len(raws) for _, raws in peers[1].records] == [net.GOSSIP_MAX_RECORDS, 3]
    assert [r for _, raws in peers[1].records for r in raws] == batch


async def test_gossip_of_nothing_sends_nothing() -> None:
    pn = PeerNetwork(NET.genesis, NET.validators[0], {1: (LOCAL, 1)}, lambda *a: None, lambda *a: None)
    pn.gossip([])
    assert pn.peer_states()[1]["queued"] == 0


# -- faults ----------------------------------------------------------------------------


async def test_drop_all_drops_everything_and_counts_it(cluster: Factory) -> None:
    peers = await cluster([0, 1, 2])
    await until(lambda: all_up(peers), what="links up")
    peers[0].net.faults = Faults(drop=1.0)
    for h in range(5):
        peers[0].net.send(None, status(h, 0))
    peers[0].net.gossip([b"x"])
    assert peers[0].net.counters["fault_dropped"] == 12  # 6 frames x 2 peers
    assert all(st["queued"] == 0 for st in peers[0].net.peer_states().values())
    peers[0].net.faults = Faults()
    peers[0].net.send(None, status(99, 0))  # a marker: links are ordered
    await until(lambda: peers[1].messages and peers[2].messages, what="marker")
    assert peers[1].messages == [(0, status(99, 0))] and peers[2].messages == [(0, status(99, 0))]
    assert peers[1].records == [] and peers[2].records == []


async def test_drop_zero_drops_nothing() -> None:
    pn = PeerNetwork(NET.genesis, NET.validators[0], {1: (LOCAL, 1)}, lambda *a: None, lambda *a: None)
    pn.faults = Faults(drop=0.0)
    for h in range(50):
        pn.send(1, status(h, 0))
    assert pn.peer_states()[1]["queued"] == 50 and "fault_dropped" not in pn.counters


async def test_partition_blocks_traffic_both_ways(cluster: Factory) -> None:
    peers = await cluster([0, 1, 2])
    await until(lambda: all_up(peers), what="links up")
    peers[0].net.faults = Faults(groups=[{0, 1}, {2, 3}])  # only node 0 knows about it

    peers[0].net.send(None, status(1, 0))  # 0 -> 2 blocked on send, 0 -> 1 passes
    assert peers[0].net.counters["fault_dropped"] == 1
    peers[2].net.send(0, status(2, 2))  # 2 -> 0 blocked when node 0 receives it
    peers[1].net.send(0, status(3, 1))  # 1 -> 0 passes
    await until(lambda: peers[0].net.counters["fault_dropped"] == 2, what="inbound drop")
    await until(lambda: peers[1].messages and peers[0].messages, what="in-group traffic")
    assert peers[1].messages == [(0, status(1, 0))]
    assert peers[0].messages == [(1, status(3, 1))]

    peers[0].net.faults = Faults()  # heal; markers prove the earlier frames are gone
    peers[0].net.send(2, status(10, 0))
    peers[2].net.send(0, status(11, 2))
    await until(lambda: peers[2].messages and len(peers[0].messages) == 2, what="markers after heal")
    assert peers[2].messages == [(0, status(10, 0))]
    assert peers[0].messages[-1] == (2, status(11, 2))


async def test_delay_delays_delivery(cluster: Factory) -> None:
    peers = await cluster([0, 1])
    await until(lambda: all_up(peers), what="links up")
    peers[0].net.faults = Faults(delay_ms=300)
    start = time.monotonic()
    for h in range(3):
        peers[0].net.send(1, status(h, 0))
    assert peers[0].net.peer_states()[1]["queued"] == 0  # not even queued yet
    await until(lambda: len(peers[1].messages) == 3, what="delayed messages")
    elapsed = time.monotonic() - start
    assert elapsed >= 0.28  # at least the delay; a slow machine only adds to it (until() bounds it)
    assert [m.height for _, m in peers[1].messages] == [0, 1, 2]  # order kept


def test_partition_blocks() -> None:
    f = Faults(groups=[{0, 1}, {2}])
    assert not f.blocks(0, 1) and not f.blocks(1, 0)
    assert f.blocks(0, 2) and f.blocks(2, 0) and f.blocks(1, 2)
    assert f.blocks(3, 0) and f.blocks(3, 2)  # in no group: isolated
    assert not f.blocks(2, 2)
    assert not Faults().blocks(0, 3)


def test_faults_from_spec_accepts_good_specs() -> None:
    assert Faults.from_spec({}) == Faults()
    f = Faults.from_spec({"drop": 0.25, "delay_ms": 40, "partition": [[0, 1], [2, 3]]})
    assert f == Faults(0.25, 40, [{0, 1}, {2, 3}])
    one = Faults.from_spec({"drop": 1, "delay_ms": 60_000, "partition": []})
    assert one.drop == 1.0 and isinstance(one.drop, float) and one.delay_ms == 60_000
    assert Faults.from_spec({"drop": 0}).drop == 0.0


def test_fault_drops_replay_from_their_seed() -> None:
    def drops(seed: int) -> list[bool]:
        f = Faults.from_spec({"drop": 0.5, "seed": seed})
        return [f.drops() for _ in range(64)]
    assert drops(7) == drops(7) and drops(7) != drops(8)
    assert 0 < sum(drops(7)) < 64
    assert not any(Faults.from_spec({"seed": 7}).drops() for _ in range(64))  # drop 0: never


@pytest.mark.parametrize("spec", [
    {"drop": -0.01}, {"drop": 1.01}, {"drop": "0.5"}, {"drop": None}, {"drop": math.nan},
    {"drop": math.inf}, {"drop": [0.5]},
    {"delay_ms": -1}, {"delay_ms": 60_001}, {"delay_ms": 1.5}, {"delay_ms": "10"}, {"delay_ms": None},
    {"partition": "0,1"}, {"partition": [0, 1]}, {"partition": [[0, "1"]]}, {"partition": [[0.5]]},
    {"partition": {"0": [1]}}, {"partition": [[0], None]}, {"partition": None},
    {"seed": -1}, {"seed": 2**64}, {"seed": "1"}, {"seed": 1.0},
])
def test_faults_from_spec_refuses_bad_specs(spec: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as err:
        Faults.from_spec(spec)
    assert err.value.code == "bad_faults"
    assert next(iter(spec)) in err.value.message


@pytest.mark.parametrize("spec", [{"drop": True}, {"delay_ms": True}, {"partition": [[True, 2]]}, {"seed": True}])
def test_faults_from_spec_refuses_booleans(spec: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        Faults.from_spec(spec)


# -- bounded send queues and reconnecting ----------------------------------------------


def test_send_queue_is_bounded_and_drops_the_oldest() -> None:
    got: list[Any] = []
    pn = PeerNetwork(NET.genesis, NET.validators[0], {1: (LOCAL, 1), 2: (LOCAL, 2)},
                     lambda *a: got.append(a), lambda *a: got.append(a), queue_max=3)
    for h in range(5):
        pn.send(1, status(h, 0))
    states = pn.peer_states()
    assert states[1]["queued"] == 3 and states[2]["queued"] == 0
    assert states[1]["out"] == "connecting" and states[1]["in"] is False
    assert pn.counters["send_queue_full_dropped"] == 2
    kept = [codec.decode(frame) for frame in pn.queues[1]]
    assert kept == [["m", encode_message(status(h, 0))] for h in (2, 3, 4)]


async def test_reconnect_after_the_peer_restarts_and_queue_stays_bounded(cluster: Factory) -> None:
    peers = await cluster([0, 1], queue_max=4)
    a, b = peers[0], peers[1]
    await until(lambda: all_up(peers), what="links up")
    a.net.send(1, status(0, 0))
    await until(lambda: b.messages, what="first message")

    await b.halt()  # validator 1 goes away entirely
    await until(lambda: a.net.peer_states()[1]["out"] == "down", what="link down")
    assert a.net.peer_states()[1]["in"] is False
    for h in range(1, 11):
        a.net.send(1, status(h, 0))
    assert a.net.peer_states()[1]["queued"] == 4
    assert a.net.counters["send_queue_full_dropped"] == 6

    b2 = Peer(1, queue_max=4)  # validator 1 comes back on its old port with a fresh process
    b2.sock.close()
    b2.sock, b2.port = bound_socket(b.port), b.port
    b2.build({0: a.port})
    await b2.serve()
    await b2.net.start()
    try:
        # redialling goes on (backoff capped at BACKOFF_MAX_S) until the peer is back
        await until(lambda: len(b2.messages) == 4, what="queued messages after reconnect")
        assert b2.messages == [(0, status(h, 0)) for h in (7, 8, 9, 10)]
        await until(lambda: all(st["out"] == "up" and st["in"] for st in a.net.peer_states().values())
                    and b2.net.peer_states()[0]["out"] == "up", what="links up again")
        assert a.net.peer_states()[1]["queued"] == 0
        a.net.send(1, status(11, 0))
        b2.net.send(0, status(12, 1))
        await until(lambda: len(b2.messages) == 5 and a.messages, what="traffic after reconnect")
        assert a.messages == [(1, status(12, 1))]
    finally:
        await b2.net.stop()
        await b2.halt()


async def test_dialling_a_dead_address_marks_the_link_down() -> None:
    dead = bound_socket()
    port = dead.getsockname()[1]
    dead.close()  # nothing listens here
    pn = PeerNetwork(NET.genesis, NET.validators[0], {1: (LOCAL, port)}, lambda *a: None, lambda *a: None)
    await pn.start()
    try:
        await until(lambda: pn.peer_states()[1]["out"] == "down", what="down")
    finally:
        await pn.stop()


async def test_a_node_of_no_genesis_key_links_with_the_nodes_that_name_it() -> None:
    """A node that joins (its key in no genesis) links with a validator whose [peers] names
    it, both ways; it is link n on the validator (the first key named after the genesis)."""
    joined = crypto.generate_private_key()
    books = [Book(v.pubkey.raw for v in NET.genesis.validators) for _ in range(2)]
    books[0].name(joined.public.raw)
    old, new = Peer(0), Peer(NET.n, key=joined)
    old.build({NET.n: new.port}, book=books[0])
    new.build({0: old.port}, book=books[1])
    assert new.net.index == NET.n and old.net.book.get(joined.public.raw) == NET.n
    try:
        for p in (old, new):
            await p.serve()
            await p.net.start()
        await until(lambda: old.net.peer_states()[NET.n]["out"] == "up" and new.net.peer_states()[0]["out"] == "up",
                    what="both links up")
        old.net.send(NET.n, status(5, 0))
        new.net.send(0, status(6, NET.n))
        await until(lambda: old.messages and new.messages, what="a message each way")
        assert old.messages == [(NET.n, status(6, NET.n))] and new.messages == [(0, status(5, 0))]
    finally:
        for p in (old, new):
            await p.halt()


async def test_a_key_admitted_by_the_set_links_in_without_an_address() -> None:
    """A validator we have no address for yet (added by governance, its node not in our
    [peers]) may still send to us: `admits` takes its key."""
    joined = crypto.generate_private_key()
    admitted: set[bytes] = set()
    old, new = Peer(0), Peer(NET.n, key=joined)
    old.build({}, admits=admitted.__contains__)
    new.build({0: old.port})
    try:
        await old.serve()
        await new.net.start()
        await until(lambda: old.net.counters.get("peer_refused", 0) >= 1, what="refused while not admitted")
        admitted.add(joined.public.raw)
        await until(lambda: new.net.peer_states()[0]["out"] == "up", what="admitted")
        new.net.send(0, status(6, 0))
        await until(lambda: old.messages, what="its message")
        assert old.messages == [(NET.n, status(6, 0))] and old.net.book.key(NET.n) == joined.public
        assert old.net.prune() == []  # still admitted: nothing closed
        refused = old.net.counters.get("peer_refused", 0)
        admitted.clear()  # it left the set
        assert len(old.net.prune()) == 1 and old.net.counters["peer_links_pruned"] == 1
        await until(lambda: new.net.peer_states()[0]["out"] != "up", what="its link closed")
        await until(lambda: old.net.counters.get("peer_refused", 0) > refused, what="its redial refused")
        assert not old.net.inbound.get(NET.n)
    finally:
        for p in (old, new):
            await p.halt()


# -- refusing strangers ----------------------------------------------------------------


async def server_only(cluster: Factory) -> Peer:
    peers = await cluster([0], dial=False)
    return peers[0]


async def expect_refused(server: Peer, auth: Callable[[list[Any]], Any] | bytes | str) -> None:
    """Connect as a raw client; answer the hello with `auth(hello)`; expect close 4001."""
    before = server.net.counters.get("peer_refused", 0)
    async with ClientSession() as session:
        async with session.ws_connect(f"http://{LOCAL}:{server.port}{net.PEER_PATH}") as ws:
            hello = codec.decode(await ws.receive_bytes())
            assert hello[:3] == ["hello", CHAIN, server.key.public.raw]
            assert isinstance(hello[3], bytes) and len(hello[3]) == net.NONCE_BYTES
            if isinstance(auth, str):
                await ws.send_str(auth)
            elif isinstance(auth, bytes):
                await ws.send_bytes(auth)
            else:
                await ws.send_bytes(codec.encode(auth(hello)))
            msg = await asyncio.wait_for(ws.receive(), WAIT_S)
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED), msg
            assert ws.close_code == 4001
    await until(lambda: server.net.counters.get("peer_refused", 0) == before + 1, what="peer_refused")
    await until(lambda: not server.net.inbound_ws, what="refused socket forgotten")
    assert not any(server.net.inbound.values())


def auth_frame(hello: list[Any], key: crypto.PrivateKey, chain: str = CHAIN, to: bytes | None = None,
               echo: bytes | None = None, claim: bytes | None = None) -> list[Any]:
    """The auth answer to `hello` signed by `key`, naming `claim` (default: key's own public key)."""
    server_key, server_nonce = hello[2], hello[3]
    mine = os.urandom(net.NONCE_BYTES)
    claim = key.public.raw if claim is None else claim
    to = server_key if to is None else to
    echo = server_nonce if echo is None else echo
    sig = key.sign(auth_bytes(chain, claim, server_key, server_nonce, mine))
    return ["auth", chain, claim, to, echo, mine, sig]


def pub(i: int) -> bytes:
    return NET.genesis.validators[i].pubkey.raw


async def test_a_correct_raw_handshake_is_accepted(cluster: Factory) -> None:
    """The wire format the docstring describes, done by hand, links as validator 2."""
    server = await server_only(cluster)
    async with ClientSession() as session:
        async with session.ws_connect(f"http://{LOCAL}:{server.port}{net.PEER_PATH}") as ws:
            hello = codec.decode(await ws.receive_bytes())
            frame = auth_frame(hello, NET.validators[2])
            await ws.send_bytes(codec.encode(frame))
            reply = codec.decode(await ws.receive_bytes())
            assert reply[0] == "auth-ok"
            expected = auth_bytes(CHAIN, pub(0), pub(2), frame[5], hello[3])
            assert NET.genesis.validators[0].pubkey.verify(reply[1], expected)
            await until(lambda: server.net.peer_states() == {} and server.net.inbound.get(2) == 1,
                        what="inbound link")
            await ws.send_bytes(codec.encode(["m", encode_message(status(3, 2))]))
            await ws.send_bytes(codec.encode(["r", [b"rec"]]))
            await until(lambda: server.messages and server.records, what="frames")
    assert server.messages == [(2, status(3, 2))]
    assert server.records == [(2, [b"rec"])]
    await until(lambda: server.net.inbound.get(2) == 0, what="inbound link closed")
    assert "peer_refused" not in server.net.counters


async def test_bad_frames_after_the_handshake_are_counted_and_skipped(cluster: Factory) -> None:
    server = await server_only(cluster)
    async with ClientSession() as session:
        async with session.ws_connect(f"http://{LOCAL}:{server.port}{net.PEER_PATH}") as ws:
            hello = codec.decode(await ws.receive_bytes())
            await ws.send_bytes(codec.encode(auth_frame(hello, NET.validators[1])))
            assert codec.decode(await ws.receive_bytes())[0] == "auth-ok"
            await ws.send_str("hello?")  # text frame
            await ws.send_bytes(b"\xc1")  # not msgpack
            await ws.send_bytes(codec.encode(["x", b""]))  # unknown tag
            await ws.send_bytes(codec.encode(["m", codec.encode(["status"])]))  # bad message
            await ws.send_bytes(codec.encode(["r", [b"ok", 5]]))  # gossip of non-bytes
            await ws.send_bytes(codec.encode(["m"]))  # not [tag, body]
            await ws.send_bytes(codec.encode(["m", encode_message(status(8, 1))]))
            await until(lambda: server.messages, what="the good frame")
    assert server.messages == [(1, status(8, 1))] and server.records == []
    c = server.net.counters
    assert c["bad_frame"] == 1
    assert c["peer_input_bad_frame"] == 3
    assert c["peer_input_bad_message"] == 1
    assert sum(v for k, v in c.items() if k.startswith("peer_input_")) == 5
    assert "peer_refused" not in c


async def test_key_of_no_validator_and_not_in_peers_is_refused(cluster: Factory) -> None:
    server = await server_only(cluster)
    await expect_refused(server, lambda hello: auth_frame(hello, STRANGER))


async def test_claiming_another_validators_key_is_refused(cluster: Factory) -> None:
    server = await server_only(cluster)
    await expect_refused(server, lambda hello: auth_frame(hello, NET.validators[1], claim=pub(2)))


@pytest.mark.parametrize("claim", ["own", "short", "long", "int"])
async def test_claiming_the_servers_own_key_or_no_key_is_refused(cluster: Factory, claim: str) -> None:
    server = await server_only(cluster)
    claimed: Any = {"own": pub(0), "short": pub(1)[:31], "long": pub(1) + b"\0", "int": 1}[claim]
    key = NET.validators[0] if claim == "own" else NET.validators[1]
    await expect_refused(server, lambda hello: auth_frame(hello, key, claim=claimed))


async def test_wrong_chain_id_in_auth_is_refused(cluster: Factory) -> None:
    server = await server_only(cluster)
    await expect_refused(server, lambda hello: auth_frame(hello, NET.validators[1], chain="gov-other"))


async def test_wrong_nonce_echo_is_refused(cluster: Factory) -> None:
    server = await server_only(cluster)
    await expect_refused(server, lambda hello: auth_frame(hello, NET.validators[1],
                                                          echo=os.urandom(net.NONCE_BYTES)))


async def test_auth_addressed_to_another_validator_is_refused(cluster: Factory) -> None:
    server = await server_only(cluster)
    await expect_refused(server, lambda hello: auth_frame(hello, NET.validators[1], to=pub(2)))


async def test_replayed_auth_is_refused(cluster: Factory) -> None:
    """An auth frame that worked once does not work on a new link (fresh server nonce)."""
    server = await server_only(cluster)
    async with ClientSession() as session:
        async with session.ws_connect(f"http://{LOCAL}:{server.port}{net.PEER_PATH}") as ws:
            hello = codec.decode(await ws.receive_bytes())
            recorded = auth_frame(hello, NET.validators[1])
            await ws.send_bytes(codec.encode(recorded))
            assert codec.decode(await ws.receive_bytes())[0] == "auth-ok"
    await expect_refused(server, lambda hello: recorded)


@pytest.mark.parametrize("bad", [
    "text instead of binary",
    b"\xc1",  # not msgpack
    codec.encode(["auth"]),
    codec.encode({"auth": 1}),
    codec.encode(["auth-ok", b"x" * 64]),
    codec.encode("auth"),
])
async def test_malformed_auth_frame_is_refused(cluster: Factory, bad: bytes | str) -> None:
    server = await server_only(cluster)
    await expect_refused(server, bad)


@pytest.mark.parametrize("mutate", ["bool_index", "short_nonce", "sig_not_bytes", "extra_field"])
async def test_malformed_auth_fields_are_refused(cluster: Factory, mutate: str) -> None:
    server = await server_only(cluster)

    def frame(hello: list[Any]) -> list[Any]:
        f = auth_frame(hello, NET.validators[1])
        if mutate == "bool_index":
            f[2] = True
        elif mutate == "short_nonce":
            f[5] = f[5][:8]
        elif mutate == "sig_not_bytes":
            f[6] = f[6].hex()
        else:
            f.append(0)
        return f

    await expect_refused(server, frame)


async def test_oversized_auth_frame_is_refused(cluster: Factory) -> None:
    server = await server_only(cluster)
    await expect_refused(server, codec.encode(["auth", "x" * 2000]))


async def test_networks_of_different_chains_never_link() -> None:
    other = Net(chain_id="gov-other")  # the same validator keys, another chain id
    ours, theirs = Peer(0), Peer(1, genesis=other.genesis)
    ours.build({1: theirs.port})
    theirs.build({0: ours.port})
    try:
        for p in (ours, theirs):
            await p.serve()
            await p.net.start()
        # each side's hello names its chain: the dialler refuses it and hangs up, which the
        # server counts as a refused peer; neither link ever comes up
        await until(lambda: ours.net.counters.get("peer_refused", 0) >= 1
                    and theirs.net.counters.get("peer_refused", 0) >= 1, what="refusals")
        await until(lambda: ours.net.peer_states()[1]["out"] == "down"
                    and theirs.net.peer_states()[0]["out"] == "down", what="links down")
        refused = {p: p.net.counters["peer_refused"] for p in (ours, theirs)}
        ours.net.send(1, status(1, 0))
        theirs.net.send(0, Status("gov-other", 1, 1))
        # Each side keeps redialling: two more refusals on each server mean a whole dial
        # attempt each way began after the sends, with the frame waiting in its queue; a link
        # that came up would have sent it at once.
        await until(lambda: all(p.net.counters["peer_refused"] >= refused[p] + 2 for p in (ours, theirs)),
                    what="two more refused dial attempts each way")
        assert ours.messages == [] and theirs.messages == []
        assert ours.net.peer_states()[1]["queued"] == 1 and theirs.net.peer_states()[0]["queued"] == 1
        assert all(st["out"] != "up" and not st["in"]
                   for p in (ours, theirs) for st in p.net.peer_states().values())
    finally:
        await ours.halt()
        await theirs.halt()


async def test_impostor_server_is_not_trusted(cluster: Factory) -> None:
    """We dial validator 1's address, but whoever answers cannot sign as validator 1."""
    impostor = Peer(1, key=STRANGER)  # a PeerNetwork holding the wrong key for index 1
    impostor.build({})
    handled = [0]  # dial attempts the impostor's server has seen to their end
    accept = impostor.net.handle_inbound

    async def counting(request: web.Request) -> web.WebSocketResponse:
        try:
            return await accept(request)
        finally:
            handled[0] += 1

    impostor.net.handle_inbound = counting  # type: ignore[method-assign]
    await impostor.serve()
    dialer = Peer(0)
    dialer.build({1: impostor.port})
    await dialer.serve()
    await dialer.net.start()
    try:
        await until(lambda: impostor.net.counters.get("peer_refused", 0) >= 1
                    or dialer.net.peer_states()[1]["out"] == "down", what="refusal")
        assert dialer.net.peer_states()[1]["out"] != "up"
        seen = handled[0]
        dialer.net.send(1, status(1, 0))
        # The dialler keeps redialling: two more attempts seen to their end mean a whole one
        # began after the send, with the frame in its queue; had it trusted the impostor, it
        # would have sent the frame at once.
        await until(lambda: handled[0] >= seen + 2, what="two more dial attempts")
        assert impostor.messages == [] and impostor.records == []
        assert dialer.net.peer_states()[1]["queued"] == 1  # never sent on any link
        assert dialer.net.peer_states()[1]["out"] != "up"
    finally:
        await dialer.halt()
        await impostor.halt()


async def test_stop_closes_inbound_links(cluster: Factory) -> None:
    peers = await cluster([0, 1])
    await until(lambda: all_up(peers), what="links up")
    stopped = peers[1].net
    await stopped.stop()
    peers[1].pn = None
    await until(lambda: not peers[0].net.peer_states()[1]["in"], what="inbound gone")
    assert not stopped.inbound_ws
    assert all(t.done() for t in stopped.dialers.values())
