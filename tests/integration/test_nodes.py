"""Real validator processes on 127.0.0.1: real LevelDB, real HTTP, real peer links."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any


from ledgernode import codec, crypto
from ledgernode.aio import ClientSession, WSMsgType

from .procs import Cluster, wait_until

CONVERGE_TIMEOUT_S = 120.0
WS_TIMEOUT_S = 60.0  # bounds a wait for a node's answer; it is not a speed requirement
PROGRESS = 5  # records acknowledged as committed that prove the network moved on
STEADY_RECORDS = 100  # acknowledged records that make a steady load (the old 5 s of load made more than 20)
MISSED_BLOCKS = 20  # blocks a node misses while it is down or cut off, so that it must catch up


class Load:
    """Client threads submitting records with ?wait=1 to the given nodes."""

    def __init__(self, cluster: Cluster, targets: list[int], workers: int = 4) -> None:
        self.c, self.targets, self.workers = cluster, targets, workers
        self.acked: dict[str, int] = {}  # record id -> height, from 200 committed answers
        self.errors: list[Any] = []
        self.answers: Counter[int] = Counter()  # HTTP status -> count (202: not committed within ?wait)
        self.sent = 0  # requests sent (each worker has at most one in flight)
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
                self.sent += 1
            try:
                status, doc = self.c.submit(target, self.c.record(f"load-{worker}-{n}"), wait=True)
            except OSError as exc:  # a node we target may be mid-restart
                self.errors.append(repr(exc))
                time.sleep(0.1)
                continue
            with self.lock:
                self.answers[status] += 1
                if status == 200 and doc["status"] == "committed":
                    self.acked[doc["id"]] = doc["height"]

    def retarget(self, targets: list[int]) -> None:
        with self.lock:
            self.targets = targets

    def acked_above(self, height: int) -> int:
        """How many acknowledged records were committed at a height above `height`."""
        with self.lock:
            return sum(1 for h in self.acked.values() if h > height)

    def state(self) -> dict[str, Any]:
        """What the load has seen so far, for failure messages."""
        with self.lock:
            dead = [repr(f.exception()) for f in self.futures if f.done() and f.exception()]
            return {"sent": self.sent, "acked": len(self.acked), "max_height": max(self.acked.values(), default=0),
                    "answers": dict(self.answers), "errors": self.errors[-3:], "dead_workers": dead}

    def wait_acked_above(self, height: int, count: int, what: str) -> None:
        wait_until(f"{count} records acknowledged as committed above height {height} ({what})",
                   lambda: (self.acked_above(height) >= count, self.state()))

    def finish(self) -> None:
        self.stop.set()
        for f in self.futures:
            f.result(timeout=180)
        self.pool.shutdown()


def heights(c: Cluster, nodes: list[int]) -> dict[int, int]:
    return {i: c.get(i, "/v1/status")["height"] for i in nodes}


def wait_heights(c: Cluster, nodes: list[int], at_least: int, what: str, load: Load) -> None:
    wait_until(f"nodes {nodes} to reach height {at_least} ({what})",
               lambda: (min((hs := heights(c, nodes)).values()) >= at_least, (hs, load.state())))


def converge(c: Cluster, nodes: list[int], at_least: int) -> int:
    def probe() -> tuple[bool, dict[int, int]]:
        hs = heights(c, nodes)
        return min(hs.values()) >= at_least and len(set(hs.values())) == 1, hs

    hs = wait_until(f"nodes {nodes} to reach one height >= {at_least}", probe, CONVERGE_TIMEOUT_S)
    return hs[nodes[0]]


def assert_same_chain(c: Cluster, nodes: list[int], height: int, acked: dict[str, int]) -> None:
    chains = {i: c.block_hashes(i, height) for i in nodes}
    assert len({tuple(h) for h in chains.values()}) == 1, chains
    for rid in acked:
        for i in nodes:
            doc = c.get(i, f"/v1/records/{rid}")
            assert doc["status"] == "committed", (i, rid, doc)


def test_commit_under_steady_load(cluster: Cluster) -> None:
    load = Load(cluster, [0, 1, 2, 3])
    wait_until(f"{STEADY_RECORDS} records acknowledged as committed under steady load on every node",
               lambda: (len(load.acked) >= STEADY_RECORDS, load.state()), timeout=300)
    load.finish()
    assert len(load.acked) >= STEADY_RECORDS, load.state()
    height = converge(cluster, [0, 1, 2, 3], max(load.acked.values()))
    assert_same_chain(cluster, [0, 1, 2, 3], height, load.acked)
    bundle_id = next(iter(load.acked))
    status, bundle = cluster.request(2, "GET", f"/v1/records/{bundle_id}/evidence")
    assert status == 200
    from ledgernode.verify import verify_bundle
    assert verify_bundle(bundle, cluster.genesis).valid


def test_sigkill_validator_under_load_then_restart(cluster: Cluster) -> None:
    load = Load(cluster, [0, 1, 2, 3])
    load.wait_acked_above(0, PROGRESS, "load on four nodes before the kill")
    load.retarget([0, 1, 2])
    cluster.kill(3, signal.SIGKILL)
    # Height top+1 may still carry node 3's vote from before the kill; above it, three commit alone.
    top = max(heights(cluster, [0, 1, 2]).values())
    wait_heights(cluster, [0, 1, 2], top + MISSED_BLOCKS, "nodes 0-2 committing while node 3 is down", load)
    load.wait_acked_above(top + 1, PROGRESS, "nodes 0-2 committing while node 3 is down")
    down_at = max(heights(cluster, [0, 1, 2]).values())
    cluster.start(3)
    load.retarget([0, 1, 2, 3])
    wait_heights(cluster, [3], down_at, "restarted node 3 catching up under load", load)
    top = max(heights(cluster, [0, 1, 2, 3]).values())
    load.wait_acked_above(top, PROGRESS, "four nodes committing after the restart")
    load.finish()
    height = converge(cluster, [0, 1, 2, 3], max(load.acked.values()))
    assert_same_chain(cluster, [0, 1, 2, 3], height, load.acked)


def first_view_change(c: Cluster, node: int, above: int) -> int:
    """Wait for `node` to commit a block above `above` certified in a round > 0 (a view
    change happened at that height); return its height."""
    scanned = [above]

    def probe() -> tuple[bool, Any]:
        top = c.get(node, "/v1/status")["height"]
        while scanned[0] < top:
            h = scanned[0] + 1
            if c.get(node, f"/v1/blocks/{h}")["qc"]["round"] > 0:
                return True, h
            scanned[0] = h
        return False, {"node": node, "height": top, "scanned_up_to": scanned[0]}

    return wait_until(f"node {node} to commit a block above height {above} after a view change (qc round > 0)",
                      probe)


def test_primary_killed_mid_height(cluster: Cluster) -> None:
    assert cluster.submit(0, cluster.record("warm-up"), wait=True)[0] == 200
    status = cluster.get(0, "/v1/status")
    primary = (status["height"] + 1) % 4  # primary of the next height, round 0
    others = [i for i in range(4) if i != primary]
    load = Load(cluster, others)
    # Kill it while the load is running: records are in flight to the next height.
    wait_until(f"the load to have sent {load.workers} records",
               lambda: (load.sent >= load.workers, load.state()), every=0.01)
    cluster.kill(primary, signal.SIGKILL)
    # Every height whose round-0 primary is the dead node needs a view change to commit:
    # wait for two of them (the dead node's turn comes round again), then for more commits.
    changed_at = first_view_change(cluster, others[0], status["height"])
    changed_at = first_view_change(cluster, others[0], changed_at)
    before = load.acked_above(changed_at)
    load.wait_acked_above(changed_at, before + PROGRESS, "load committing after the view change")
    load.finish()
    assert load.acked_above(changed_at) > before, "load must keep committing after the view change"
    height = converge(cluster, others, max(load.acked.values()))
    assert_same_chain(cluster, others, height, load.acked)
    assert any(cluster.get(i, "/v1/status")["height"] > status["height"] + 1 for i in others)


def test_node_down_for_many_blocks_catches_up(cluster: Cluster) -> None:
    cluster.kill(2, signal.SIGTERM)
    load = Load(cluster, [0, 1, 3], workers=2)
    wait_heights(cluster, [0], 40, "with node 2 down", load)
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
    # Height h0 + 1 has the isolated primary: committing above it takes a view change.
    wait_heights(cluster, majority, h0 + 1 + MISSED_BLOCKS, "the majority side committing while partitioned", load)
    load.wait_acked_above(h0 + 1, PROGRESS, "the majority side committing past the isolated primary's height")
    committed_during = len(load.acked)
    healed_at = max(heights(cluster, majority).values())
    for i in range(4):
        assert cluster.request(i, "POST", "/v1/debug/faults", codec_json({}))[0] == 200
    wait_heights(cluster, [primary], healed_at, "the formerly isolated node catching up after the heal", load)
    load.wait_acked_above(healed_at, PROGRESS, "load committing after the heal")
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
            hello = codec.decode((await ws.receive(timeout=WS_TIMEOUT_S)).data)
            assert hello[0] == "hello" and hello[2] == cluster.keys[0].public.raw
            nonce = b"\x01" * 16
            # a key that is no validator's and that node 0's [peers] does not name
            from ledgernode.net import auth_bytes
            me = stranger.public.raw
            sig = stranger.sign(auth_bytes("gov-itest", me, hello[2], hello[3], nonce))
            await ws.send_bytes(codec.encode(["auth", "gov-itest", me, hello[2], hello[3], nonce, sig]))
            msg = await ws.receive(timeout=WS_TIMEOUT_S)  # the refusal, not a time limit on it
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
            assert ws.close_code == 4001
    import urllib.request
    text = urllib.request.urlopen(cluster.api(0) + "/metrics", timeout=WS_TIMEOUT_S).read().decode()
    assert 'ledgernode_events_total{event="peer_refused"} 1' in text


def test_readyz_follows_the_quorum_of_reachable_validators(cluster: Cluster) -> None:
    """Every node is ready once its links are up; with two of four validators gone a
    survivor reaches 2 < Q = 3 and answers 503 naming the quorum; ready again once one
    is back."""
    def ready(i: int) -> tuple[bool, Any]:
        status, doc = cluster.request(i, "GET", "/readyz")
        return status == 200 and doc["ready"], doc

    for i in range(cluster.n):
        wait_until(f"node {i} ready", lambda i=i: ready(i))
    cluster.kill(2)
    cluster.kill(3)
    doc = wait_until("node 0 unready", lambda: (cluster.request(0, "GET", "/readyz")[0] == 503, ready(0)[1]))
    assert doc["ready"] is False and doc["validators_reachable"] == 2 and doc["quorum"] == 3, doc
    assert any("a quorum is 3" in reason for reason in doc["reasons"]), doc
    cluster.start(3)
    wait_until("node 0 ready again", lambda: ready(0))
