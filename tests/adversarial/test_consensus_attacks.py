"""A lying validator against real nodes (docs/security.md): validator 3's process is
stopped and the test speaks on its peer links with its real key, while a client keeps
submitting records to the three honest nodes, which still make a quorum.

Each attack asserts behaviour: the honest nodes keep committing the client's records
within a bounded time, and the attacked node's memory stays bounded."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from dataclasses import replace
from typing import Iterator

import pytest

from ledgernode import codec
from ledgernode.blocks import Header
from ledgernode.aio import web
from ledgernode.consensus import BlockData, Blocks, FetchBlocks, Message, Prepare, Status
from ledgernode.consensus.messages import signing_bytes
from ledgernode.net import PEER_PATH, PeerNetwork

from tests.integration.procs import Cluster, SteadyClient, wait_until

ATTACKER = 3
TARGET = 0
COMMIT_BOUND_S = 30.0  # a client's record must commit within this while under attack
FLOOD_BOUND_S = 10.0  # ... and within this during the FetchBlocks flood (it stalled the loop for longer)
FILL_BATCHES, FILL_BATCH_RECORDS = 25, 500
RSS_MAX_BYTES = 400 << 20
REQUEST_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("lying"))
    try:
        c.start_all()
        c.kill(ATTACKER)  # its key is ours now
        yield c
    finally:
        c.stop_all()


def rss_bytes(c: Cluster, node: int) -> int:
    text = Path(f"/proc/{c.procs[node].pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", text, re.M).group(1)) * 1024  # type: ignore[union-attr]


def metric(c: Cluster, node: int, event: str) -> int:
    with urllib.request.urlopen(c.api(node) + "/metrics", timeout=REQUEST_TIMEOUT_S) as resp:
        text = resp.read().decode()
    m = re.search(rf'^ledgernode_events_total{{event="{event}"}} (\d+)$', text, re.M)
    return int(m.group(1)) if m else 0


class Impostor:
    """Validator 3, played by the test: dials `target` and listens on validator 3's peer
    port (so the node's own link to it comes up and its FetchBlocks reach us)."""

    def __init__(self, c: Cluster, target: int) -> None:
        self.c, self.target = c, target
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()

        async def no_records(peer: int, raws: list[bytes]) -> None:
            return None

        self.net = PeerNetwork(c.genesis, c.keys[ATTACKER], {target: ("127.0.0.1", c.peer_ports[target])},
                               lambda peer, msg: self.inbox.put_nowait(msg), no_records)
        self.runner: web.AppRunner | None = None

    async def __aenter__(self) -> Impostor:
        app = web.Application()
        app.router.add_get(PEER_PATH, self.net.handle_inbound)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.c.peer_ports[ATTACKER]).start()
        await self.net.start()
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        while self.net.peer_states()[self.target]["out"] != "up":
            assert time.monotonic() < deadline, "the impostor's link never came up"
            await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.net.stop()
        assert self.runner is not None
        await self.runner.cleanup()

    async def asked(self) -> FetchBlocks:
        """The next FetchBlocks the node sends us (it asks once it hears we are ahead)."""
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        while True:
            self.net.send(self.target, Status(self.c.genesis.chain_id, 10**6, ATTACKER))
            try:
                msg = await asyncio.wait_for(self.inbox.get(), 1.0)
            except asyncio.TimeoutError:
                assert time.monotonic() < deadline, "the node never asked us for blocks"
                continue
            if isinstance(msg, FetchBlocks):
                return msg


async def drain(net: PeerNetwork, target: int = TARGET) -> None:
    deadline = time.monotonic() + REQUEST_TIMEOUT_S * 2
    while net.peer_states()[target]["queued"]:
        assert time.monotonic() < deadline, "the node stopped reading the attacker's frames"
        await asyncio.sleep(0.05)


def junk_block(c: Cluster, height: int, records: int) -> tuple[BlockData, bytes]:
    """A header for `height` over `records` envelopes whose signatures are random, with a
    commit certificate of random signatures."""
    parent = c.get(TARGET, f"/v1/blocks/{height - 1}")
    prev = bytes.fromhex(parent["qc"]["block_hash"])
    env = codec.decode(c.record("junk"))
    payload = tuple(codec.encode([env[0], os.urandom(64)]) for _ in range(records))
    start = c.get(TARGET, f"/v1/checkpoints/{height - 1}")["log_size"]
    header = Header(c.genesis.chain_id, height, int(time.time() * 1000), prev, ATTACKER, start, start + records,
                    os.urandom(32), c.genesis.valset_hash, os.urandom(32))  # a made-up root: the QC fails first anyway
    qc = codec.encode({"block_hash": header.block_hash, "height": height, "round": 0,
                       "signatures": [[i, os.urandom(64)] for i in range(3)]})
    return BlockData(header.encode(), payload), qc


def test_blocks_with_forged_certificates_cost_little(cluster: Cluster) -> None:
    """We claim to be far ahead; the node asks us for blocks; we answer with a 5,000-record
    block with a forged QC, then, under a steady client's load, 200 more such frames nobody
    asked for. The node checks the QC before any record, penalises us, keeps committing."""
    assert cluster.submit(TARGET, cluster.record("first"), wait=True)[0] == 200
    wait_until("the honest nodes to agree on one height", lambda: (
        len({cluster.get(i, "/v1/status")["height"] for i in (0, 1, 2)}) == 1, cluster.heights()))
    rss_before = rss_bytes(cluster, TARGET)
    checked_before = metric(cluster, TARGET, "signatures_checked")

    async def attack() -> tuple[int, list[float]]:
        loop = asyncio.get_running_loop()
        async with Impostor(cluster, TARGET) as imp:
            ask = await imp.asked()  # the network is idle: the asked height stays the next one
            block = await loop.run_in_executor(None, junk_block, cluster, ask.from_height, 5_000)
            imp.net.send(TARGET, Blocks(cluster.genesis.chain_id, (block,), ATTACKER))  # the answer
            await drain(imp.net)
            client = SteadyClient(cluster)
            peak = 0
            for burst in range(20):
                for _ in range(10):
                    imp.net.send(TARGET, Blocks(cluster.genesis.chain_id, (block,), ATTACKER))
                await drain(imp.net)
                peak = max(peak, rss_bytes(cluster, TARGET))
        await loop.run_in_executor(None, wait_until, "ten records to commit during and after the attack",
                                   lambda: (len(client.latencies) >= 10, len(client.latencies)))
        client.finish()
        assert not client.failures, client.failures[:3]
        return peak, client.latencies

    peak, latencies = asyncio.run(attack())
    checked = metric(cluster, TARGET, "signatures_checked") - checked_before
    print(f"forged blocks: {checked} signatures checked, RSS {rss_before >> 20} -> peak {peak >> 20} MiB, "
          f"{len(latencies)} records, max latency {max(latencies):.2f} s")
    assert max(latencies) < COMMIT_BOUND_S, sorted(latencies)[-5:]
    assert peak < RSS_MAX_BYTES, (rss_before, peak)
    # the junk records were never checked (201 frames of 5,000): what was checked is the client's
    assert metric(cluster, TARGET, "signatures_checked") - checked_before < 5_000
    assert metric(cluster, TARGET, "peer_penalised") >= 1


def test_a_flood_of_fetch_requests_does_not_stall_commits(cluster: Cluster) -> None:
    for k in range(FILL_BATCHES):  # a ledger worth asking for: each answer is megabytes to read and send
        body = codec.encode([cluster.record(f"fill-{k}-{i}") for i in range(FILL_BATCH_RECORDS)])
        status, doc = cluster.request(1, "POST", "/v1/records/batch?wait=1", body, "application/msgpack")
        assert status == 200 and all(r["status"] == "committed" for r in doc["results"]), (status, str(doc)[:300])
    client = SteadyClient(cluster)

    async def attack() -> int:
        """The flood; then, once the node has gone on to commit ten records (so it has
        handled every ask before them), how many answers it sent us."""
        loop = asyncio.get_running_loop()
        async with Impostor(cluster, 1) as imp:  # a node that has not penalised us
            for _ in range(300):
                imp.net.send(1, FetchBlocks(cluster.genesis.chain_id, 1, 64, ATTACKER))
            await drain(imp.net, target=1)
            await loop.run_in_executor(None, wait_until, "ten records to commit after the flood",
                                       lambda: (len(client.latencies) >= 10, len(client.latencies)))
            answers = 0
            while not imp.inbox.empty():
                answers += isinstance(imp.inbox.get_nowait(), Blocks)
            return answers

    answers = asyncio.run(attack())
    client.finish()
    assert not client.failures, client.failures[:3]
    latencies = client.latencies
    print(f"fetch flood: {answers} answers of {metric(cluster, 1, 'fetch_served')} served, "
          f"{metric(cluster, 1, 'fetch_merged')} merged, {metric(cluster, 1, 'fetch_paced')} paced; "
          f"{len(latencies)} records, max latency {max(latencies):.2f} s")
    assert max(latencies) < FLOOD_BOUND_S, sorted(latencies)[-5:]
    assert answers <= 10  # not one multi-megabyte answer per 40-byte ask


def test_one_lying_vote_does_not_wake_an_idle_height(cluster: Cluster) -> None:
    """A lone signed prepare at an idle height proves nothing: no round change, no empty
    block. (A negative check: it watches five round timeouts of the node's own ticks and
    fails at once if the height or round moves.)"""
    base = cluster.submit(2, cluster.record("before-vote"), wait=True)[1]["height"]
    wait_until("the network to be idle at one height", lambda: (
        {cluster.get(i, "/v1/status")["height"] for i in (0, 1, 2)} == {base}, cluster.heights()))

    async def vote() -> None:
        async with Impostor(cluster, 2) as imp:
            prep = Prepare(cluster.genesis.chain_id, base + 1, 0, os.urandom(32), ATTACKER)
            imp.net.send(2, replace(prep, sig=cluster.keys[ATTACKER].sign(signing_bytes(prep))))
            await drain(imp.net, target=2)

    asyncio.run(vote())
    start = cluster.get(2, "/v1/status")

    def watched() -> tuple[bool, object]:
        """Five round timeouts by the node's own ticks, with height and round unmoved."""
        status = cluster.get(2, "/v1/status")
        assert (status["height"], status["round"]) == (base, 0), status
        return status["ticks"] >= start["ticks"] + 5 * start["round_timeout_ticks"], status["ticks"]

    wait_until("five round timeouts to pass on node 2", watched)
    after = cluster.submit(2, cluster.record("after-vote"), wait=True)[1]
    assert after["height"] == base + 1  # no block was made in between



def test_equivocation_is_proven_to_anyone_and_kept_across_restarts(cluster: Cluster, tmp_path: Path) -> None:
    """We sign two different prepares for one slot; the node keeps the proof on disk, serves
    it, and `verify --kind equivocation` checks it offline from the genesis file alone."""
    height = cluster.get(1, "/v1/status")["height"] + 1  # the height node 1 is deciding

    async def equivocate() -> None:
        async with Impostor(cluster, 1) as imp:
            for block_hash in (os.urandom(32), os.urandom(32)):
                prep = Prepare(cluster.genesis.chain_id, height, 0, block_hash, ATTACKER)
                imp.net.send(1, replace(prep, sig=cluster.keys[ATTACKER].sign(signing_bytes(prep))))
            await drain(imp.net, target=1)

    asyncio.run(equivocate())
    page = wait_until("node 1 to serve the proof", lambda: (
        bool((doc := cluster.get(1, "/v1/equivocations"))["equivocations"]), doc))
    [proof] = page["equivocations"]
    assert (proof["validator"], proof["kind"], proof["height"], proof["round"]) == (ATTACKER, "prepare", height, 0)
    saved = tmp_path / "equivocation.json"
    saved.write_text(json.dumps(page))
    cli = [sys.executable, "-m", "ledgernode", "verify", str(saved), "--genesis", str(cluster.root / "genesis.json"),
           "--kind", "equivocation"]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=REQUEST_TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"validator {ATTACKER}" in done.stdout
    tampered = {**page, "equivocations": [{**proof, "second": proof["first"]}]}
    saved.write_text(json.dumps(tampered))
    assert subprocess.run(cli, capture_output=True, timeout=REQUEST_TIMEOUT_S).returncode == 1
    cluster.kill(1, signal.SIGTERM)
    cluster.start(1)
    assert cluster.get(1, "/v1/equivocations")["equivocations"] == [proof]  # kept on disk
