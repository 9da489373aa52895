"""Hostile clients on a validator's peer port, against a real 4-node cluster (tests/integration/procs.py).

The attacker holds no validator key. It speaks raw TCP, HTTP and websocket frames to node 0's
peer port on 127.0.0.1 from other loopback source addresses (127.0.0.2 and up: all of 127/8 is
the loopback interface), so node 0 can tell it apart from the honest validators, which dial from
127.0.0.1. Meanwhile a steady client submits records to node 1 with ?wait=1 and each must commit
within COMMIT_WITHIN_S; node 0's resident memory (VmRSS of its PID) is sampled throughout.

Every attack is bounded in count (connections) and in time (ATTACK_MAX_S, IDLE_HOLD_MAX_S), and
targets only 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import struct
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from ledgernode import net
from tests.integration.procs import Cluster, SteadyClient, wait_until

ATTACKED = 0  # the node whose peer port is attacked
CLIENT_NODE = 1  # where the steady client submits
TARGET = "127.0.0.1"
BIG_FRAMES = 12  # concurrent connections, each sending one huge first frame
BIG_FRAME_BYTES = 90 << 20  # what each declares and sends, unless the node hangs up first
BIG_SOURCE = "127.0.0.2"
CHUNK = b"\0" * (1 << 20)  # one buffer, sent again and again: the attacker itself stays small
IDLE_WS_SOURCES = [f"127.0.0.{i}" for i in range(3, 8)]  # 5 addresses
IDLE_WS_PER_SOURCE = 8  # upgrade to a websocket, read the hello, never authenticate
RSS_MAX_BYTES = 400 << 20
TAKEN_MAX_BYTES = 16 << 20  # payload a big-frame sender gets out before the node hangs up (socket buffers)
COMMIT_WITHIN_S = 30.0
ATTACK_MAX_S = 60.0  # bounds the big-frame senders, whatever the node does
IDLE_HOLD_MAX_S = 30.0  # how long an idle connection waits for the node to end it
CONNECT_TIMEOUT_S = 10.0
SAMPLE_EVERY_S = 0.05


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("attacked"))
    try:
        c.start_all()
        wait_until("every link up", lambda: (all_links_up(c), c.get(ATTACKED, "/v1/status")["peers"]))
        yield c
    finally:
        c.stop_all()


def all_links_up(c: Cluster) -> bool:
    return all(st["out"] == "up" and st["in"] for i in range(c.n)
               for st in c.get(i, "/v1/status")["peers"].values())


def rss_bytes(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB$", text, re.M)
    assert match, text
    return int(match.group(1)) * 1024


class RssSampler:
    """Samples a process's VmRSS every SAMPLE_EVERY_S in a thread; keeps the first, last and highest."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.first = self.last = self.peak = rss_bytes(pid)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(SAMPLE_EVERY_S):
            self.last = rss_bytes(self.pid)
            self.peak = max(self.peak, self.last)

    def finish(self) -> dict[str, float]:
        self.stop.set()
        self.thread.join(timeout=10)
        self.last = rss_bytes(self.pid)
        self.peak = max(self.peak, self.last)
        return {"first_mb": self.first / 2**20, "peak_mb": self.peak / 2**20, "last_mb": self.last / 2**20}


def metrics(c: Cluster, i: int) -> dict[str, int]:
    url = c.api(i) + "/metrics"
    text = urllib.request.urlopen(url, timeout=30).read().decode()
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r'^ledgernode_events_total\{event="([^"]+)"\} (\d+)$', text, re.M)}


def refusals(counters: dict[str, int]) -> int:
    return sum(v for k, v in counters.items() if k == "peer_refused" or k.startswith("peer_preauth_"))


# -- the attacker ----------------------------------------------------------------------------


def upgrade_request(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {net.PEER_PATH} HTTP/1.1\r\nHost: {TARGET}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def binary_frame_header(length: int) -> bytes:
    """FIN + binary opcode, masked (as a client must), 64-bit length, all-zero mask: the payload goes as is."""
    return bytes([0x82, 0x80 | 127]) + struct.pack(">Q", length) + b"\0\0\0\0"


async def connect(source: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(TARGET, port, local_addr=(source, 0)),
                                  CONNECT_TIMEOUT_S)


async def upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> bool:
    """Send the websocket upgrade; True if the node answered 101."""
    writer.write(upgrade_request(port))
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT_S)
    return head.startswith(b"HTTP/1.1 101")


async def big_first_frame(port: int, deadline: float) -> int:
    """Upgrade, then send one frame declaring BIG_FRAME_BYTES; returns the payload bytes the node took."""
    sent = 0
    writer = None
    try:
        reader, writer = await connect(BIG_SOURCE, port)
        if not await upgrade(reader, writer, port):
            return 0
        writer.write(binary_frame_header(BIG_FRAME_BYTES))
        while sent < BIG_FRAME_BYTES and time.monotonic() < deadline:
            writer.write(CHUNK[: BIG_FRAME_BYTES - sent])
            await asyncio.wait_for(writer.drain(), max(0.1, deadline - time.monotonic()))
            sent += min(len(CHUNK), BIG_FRAME_BYTES - sent)
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
        pass  # the node hung up (or refused at once): what it took is what was sent
    finally:
        if writer is not None:
            writer.close()
    return sent


async def held_until_closed(source: str, port: int, ws: bool) -> tuple[str, float]:
    """Open a connection and send nothing more (after the upgrade, if `ws`); return how it ended
    ("refused": the node hung up at once or refused the upgrade, "closed": the node ended it
    later, "held": still open after IDLE_HOLD_MAX_S) and when, in seconds after connecting."""
    start = time.monotonic()
    writer = None
    try:
        reader, writer = await connect(source, port)
        if ws and not await upgrade(reader, writer, port):
            return "refused", time.monotonic() - start
        try:
            while await asyncio.wait_for(reader.read(4096), IDLE_HOLD_MAX_S - (time.monotonic() - start)):
                pass  # the hello, then whatever the node sends until it hangs up
        except asyncio.TimeoutError:
            return "held", time.monotonic() - start
        return "closed", time.monotonic() - start
    except (OSError, asyncio.IncompleteReadError):
        return "closed", time.monotonic() - start
    except asyncio.TimeoutError:  # connect or upgrade timed out
        return "held", time.monotonic() - start
    finally:
        if writer is not None:
            writer.close()


def progress(c: Cluster) -> dict[int, int]:
    return {i: c.get(i, "/v1/status")["height"] for i in range(c.n)}


# -- the tests ---------------------------------------------------------------------------------


async def test_huge_first_frames_and_idle_connections_neither_exhaust_nor_stall_a_node(cluster: Cluster) -> None:
    """BIG_FRAMES connections each send a 90 MiB first frame (as much as the node takes) while 40
    more upgrade and then say nothing: node 0's RSS stays under RSS_MAX_BYTES, every record commits
    within COMMIT_WITHIN_S, every node keeps committing, and each attacker is refused and counted."""
    port = cluster.peer_ports[ATTACKED]
    pid = cluster.procs[ATTACKED].pid
    before = progress(cluster)
    counted_before = refusals(metrics(cluster, ATTACKED))
    steady = SteadyClient(cluster, nodes=(CLIENT_NODE,), wait_ms=int(COMMIT_WITHIN_S * 1000))
    sampler = RssSampler(pid)
    try:
        deadline = time.monotonic() + ATTACK_MAX_S
        idle_task = asyncio.gather(*[held_until_closed(src, port, ws=True)
                                     for src in IDLE_WS_SOURCES for _ in range(IDLE_WS_PER_SOURCE)])
        taken = await asyncio.gather(*[big_first_frame(port, deadline) for _ in range(BIG_FRAMES)])
        endings = await idle_task
    finally:
        rss = sampler.finish()
        steady.finish()
        load = steady.summary()
    after = progress(cluster)
    held = sum(1 for how, _ in endings if how == "held")
    report = {"rss": {k: round(v, 1) for k, v in rss.items()}, "big_frame_bytes_taken": taken,
              "idle_held": held, "load": load, "heights": (before, after)}
    print(report)
    assert rss["peak_mb"] * 2**20 < RSS_MAX_BYTES, report
    assert not load["failures"] and load["committed"] >= 3, report
    assert load["max_latency_s"] < COMMIT_WITHIN_S, report
    assert all(after[i] > before[i] for i in range(cluster.n)), report
    # a node hangs up on a first frame larger than a handshake needs long before it arrives:
    # what was sent is at most what the kernels' socket buffers took on the way
    assert max(taken) < TAKEN_MAX_BYTES, report
    assert held == 0, report
    # every attacking connection was refused and counted (once each, under the first cause seen)
    counters = metrics(cluster, ATTACKED)
    attackers = BIG_FRAMES + len(IDLE_WS_SOURCES) * IDLE_WS_PER_SOURCE
    assert refusals(counters) - counted_before >= attackers, counters


async def test_unauthenticated_connections_are_capped_per_address_and_in_total(cluster: Cluster) -> None:
    """Connections past the caps are refused at once; the admitted ones end at the handshake deadline."""
    port = cluster.peer_ports[ATTACKED]
    before = metrics(cluster, ATTACKED)
    sources = [f"127.0.0.{i}" for i in range(20, 40)]  # 20 addresses, connecting and sending nothing
    per_source = net.PREAUTH_PER_ADDRESS_MAX + 4
    endings = await asyncio.gather(*[held_until_closed(src, port, ws=False)
                                     for src in sources for _ in range(per_source)])
    after = metrics(cluster, ATTACKED)
    refused_at_once = [t for how, t in endings if how == "closed" and t < net.HANDSHAKE_TIMEOUT_S / 2]
    ended_at_deadline = [t for how, t in endings if how == "closed" and t >= net.HANDSHAKE_TIMEOUT_S / 2]
    report = {"refused_at_once": len(refused_at_once), "ended_at_deadline": len(ended_at_deadline),
              "held": sum(1 for how, _ in endings if how == "held"), "counters_before": before,
              "counters_after": after}
    print(report)
    total = len(sources) * per_source
    admitted = min(net.PREAUTH_CONNECTIONS_MAX, len(sources) * net.PREAUTH_PER_ADDRESS_MAX)
    assert report["held"] == 0, report
    assert len(ended_at_deadline) <= admitted, report
    assert len(refused_at_once) >= total - admitted, report
    grew = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert grew.get("peer_preauth_address_full", 0) + grew.get("peer_preauth_total_full", 0) >= total - admitted, grew
    assert grew.get("peer_preauth_timeout", 0) >= 1, grew
    wait_until("every link up after the attack", lambda: (all_links_up(cluster), None))
