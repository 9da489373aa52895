"""Real validator processes on 127.0.0.1: real LevelDB, real HTTP, real peer links."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest

from ledgernode import codec, crypto
from ledgernode.aio import ClientSession, WSMsgType

from .procs import Cluster

CONVERGE_TIMEOUT_S = 60.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        c.start_all()
        yield c
    finally:
        c.stop_all()


class Load:
    """Client threads submitting records with ?wait=1 to the given nodes."""

    def __init__(self, cluster: Cluster, targets: list[int], workers: int = 4) -> None:
        self.c, self.targets = cluster, targets
        self.acked: dict[str, int] = {}  # record id -> height, from 200 committed answers
        self.errors: list[Any] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(workers)
        self.futures = [self.pool.submit(self._run, w) for w in range(workers)]

    def _run(self, worker: int) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            with self.lock:
                target = self.targets[(worker + n) % len(self.targets)]
            try:
                status, doc = self.c.submit(target, self.c.record(f"load-{worker}-{n}"), wait=True)
            except OSError as exc:  # a node we target may be mid-restart
                self.errors.append(repr(exc))
                time.sleep(0.1)
                continue
            if status == 200 and doc["status"] == "committed":
                self.acked[doc["id"]] = doc["height"]

    def retarget(self, targets: list[int]) -> None:
        with self.lock:
            self.targets = targets

    def finish(self) -> None:
        self.stop.set()
        for f in self.futures:
            f.result(timeout=60)
        self.pool.shutdown()


def converge(c: Cluster, nodes: list[int], at_least: int) -> int:
    deadline = time.time() + CONVERGE_TIMEOUT_S
    while time.time() < deadline:
        heights = [c.get(i, "/v1/status")["height"] for i in nodes]
        if min(heights) >= at_least and len(set(heights)) == 1:
            return heights[0]
        time.sleep(0.2)
    raise AssertionError(f"nodes {nodes} did not converge: {[c.get(i, '/v1/status') for i in nodes]}")


def assert_same_chain(c: Cluster, nodes: list[int], height: int, acked: dict[str, int]) -> None:
    chains = {i: c.block_hashes(i, height) for i in nodes}
    assert len({tuple(h) for h in chains.values()}) == 1, chains
    for rid in acked:
        for i in nodes:
            doc = c.get(i, f"/v1/records/{rid}")
            assert doc["status"] == "committed", (i, rid, doc)


def test_commit_under_steady_load(cluster: Cluster) -> None:
    load = Load(cluster, [0, 1, 2, 3])
    time.sleep(5)
    load.finish()
    assert len(load.acked) >= 20, (len(load.acked), load.errors[:3])
    height = converge(cluster, [0, 1, 2, 3], max(load.acked.values()))
    assert_same_chain(cluster, [0, 1, 2, 3], height, load.acked)
    bundle_id = next(iter(load.acked))
    status, bundle = cluster.request(2, "GET", f"/v1/records/{bundle_id}/evidence")
    assert status == 200
    from ledgernode.verify import verify_bundle
    assert verify_bundle(bundle, cluster.genesis).valid


def test_sigkill_validator_under_load_then_restart(cluster: Cluster) -> None:
    load = Load(cluster, [0, 1, 2, 3])
    time.sleep(2)
    load.retarget([0, 1, 2])
    cluster.kill(3, signal.SIGKILL)
    time.sleep(3)
    cluster.start(3)
    load.retarget([0, 1, 2, 3])
    time.sleep(2)
    load.finish()
    height = converge(cluster, [0, 1, 2, 3], max(load.acked.values()))
    assert_same_chain(cluster, [0, 1, 2, 3], height, load.acked)


def test_primary_killed_mid_height(cluster: Cluster) -> None:
    assert cluster.submit(0, cluster.record("warm-up"), wait=True)[0] == 200
    status = cluster.get(0, "/v1/status")
    primary = (status["height"] + 1) % 4  # primary of the next height, round 0
    others = [i for i in range(4) if i != primary]
    load = Load(cluster, others)
    time.sleep(0.3)
    cluster.kill(primary, signal.SIGKILL)
    time.sleep(6)
    before = len(load.acked)
    time.sleep(3)
    load.finish()
    assert len(load.acked) > before, "load must keep committing after the view change"
    height = converge(cluster, others, max(load.acked.values()))
    assert_same_chain(cluster, others, height, load.acked)
    assert any(cluster.get(i, "/v1/status")["height"] > status["height"] + 1 for i in others)


def test_node_down_for_many_blocks_catches_up(cluster: Cluster) -> None:
    cluster.kill(2, signal.SIGTERM)
    load = Load(cluster, [0, 1, 3], workers=2)
    deadline = time.time() + 30
    while time.time() < deadline and cluster.get(0, "/v1/status")["height"] < 40:
        time.sleep(0.2)
    load.finish()
    target = cluster.get(0, "/v1/status")["height"]
    assert target >= 40
    cluster.start(2)
    height = converge(cluster, [0, 1, 2, 3], target)
    assert_same_chain(cluster, [0, 1, 2, 3], height, load.acked)


def test_partition_isolating_the_primary_heals_without_fork(cluster: Cluster) -> None:
    assert cluster.submit(0, cluster.record("warm-up"), wait=True)[0] == 200
    h0 = cluster.get(0, "/v1/status")["height"]
    primary = (h0 + 1) % 4
    majority = [i for i in range(4) if i != primary]
    spec = {"partition": [[primary], majority]}
    for i in range(4):
        assert cluster.request(i, "POST", "/v1/debug/faults", codec_json(spec))[0] == 200
    load = Load(cluster, majority, workers=2)
    time.sleep(6)
    committed_during = len(load.acked)
    for i in range(4):
        assert cluster.request(i, "POST", "/v1/debug/faults", codec_json({}))[0] == 200
    time.sleep(2)
    load.finish()
    assert committed_during > 0, "the majority side must keep committing"
    height = converge(cluster, [0, 1, 2, 3], max(load.acked.values()))
    assert_same_chain(cluster, [0, 1, 2, 3], height, load.acked)


def codec_json(doc: dict[str, Any]) -> bytes:
    import json
    return json.dumps(doc).encode()


async def test_peer_with_unknown_key_is_refused(cluster: Cluster) -> None:
    stranger = crypto.generate_private_key()
    url = f"http://127.0.0.1:{cluster.peer_ports[0]}/v1/peer"
    async with ClientSession() as session:
        async with session.ws_connect(url) as ws:
            hello = codec.decode((await ws.receive()).data)
            assert hello[0] == "hello" and hello[2] == 0
            nonce = b"\x01" * 16
            # claims to be validator 1 but signs with a key the genesis does not know
            from ledgernode.net import auth_bytes
            sig = stranger.sign(auth_bytes("gov-itest", 1, 0, hello[3], nonce))
            await ws.send_bytes(codec.encode(["auth", "gov-itest", 1, 0, hello[3], nonce, sig]))
            msg = await ws.receive()
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
            assert ws.close_code == 4001
    import urllib.request
    text = urllib.request.urlopen(cluster.api(0) + "/metrics").read().decode()
    assert 'ledgernode_events_total{event="peer_refused"} 1' in text
