"""Node runtime (ledgernode.node), in-process: a one-validator network (quorum 1) on
127.0.0.1 with a LevelDB data directory in tmp_path, configured exactly as real nodes are
(config.render -> config.load)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledgernode import codec, config, crypto, genesis
from ledgernode.aio import ClientSession
from ledgernode.config import NodeConfig
from ledgernode.errors import InvalidInput, StorageError
from ledgernode.node import Node, serve
from ledgernode.records import decode_envelope, sign_record
from ledgernode.service import Backpressure, Location, Rejection, Submitted
from ledgernode.storage import Store
from tests.fixtures import until

CHAIN = "gov-solo"
FAST = {"tick_ms": 10, "block_interval_ms": 5, "round_timeout_ms": 1_000}
WAIT_S = 60.0  # a bound on waiting for a commit, not an expected time
WINDOW_MS = 600_000  # genesis default record_ts_window_ms


def free_ports(count: int) -> list[int]:
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Solo:
    root: Path
    validator: crypto.PrivateKey
    client: crypto.PrivateKey  # roles ["*"]
    tracer: crypto.PrivateKey  # roles ["trace.*"] only
    stranger: crypto.PrivateKey  # not in the genesis
    counter: int = 0

    def config(self, name: str = "node.toml", index: int | None = None, key_file: str = "validator.pem",
               **limits: int) -> NodeConfig:
        """A node config; `index`: the genesis index line configs of before wrote."""
        api, peer = free_ports(2)
        text = config.render("data", key_file, "genesis.json", f"127.0.0.1:{api}",
                             f"127.0.0.1:{peer}", {}, {**FAST, **limits})
        if index is not None:
            text = f"index = {index}\n" + text
        path = self.root / name
        path.write_text(text)
        return config.load(path)

    def record(self, key: crypto.PrivateKey | None = None, rtype: str = "evidence.notarize",
               ts: int | None = None, chain: str = CHAIN, refs: tuple[bytes, ...] = ()) -> bytes:
        self.counter += 1
        subject = f"case-{self.counter}"
        if rtype == "evidence.notarize":
            body: dict[str, Any] = {"content_hash": crypto.sha256(subject.encode()),
                                    "media_type": "text/plain", "size": self.counter, "title": subject}
        else:
            body = {"activity": f"step {self.counter}"}
        return sign_record(key or self.client, chain, rtype, subject, body,
                           now_ms() if ts is None else ts, os.urandom(16), refs)

    def cert(self, number: str) -> bytes:
        """A cert.issue of `number` by justice (each call a distinct record: fresh nonce)."""
        body = {"cert_type": "licence", "holder": crypto.sha256(b"holder"),
                "content_hash": crypto.sha256(number.encode()), "valid_from": 1, "valid_until": 2**40}
        return sign_record(self.client, CHAIN, "cert.issue", number, body, now_ms(), os.urandom(16), ())


@pytest.fixture
def solo(tmp_path: Path) -> Solo:
    s = Solo(tmp_path, crypto.generate_private_key(), crypto.generate_private_key(),
             crypto.generate_private_key(), crypto.generate_private_key())
    raw = genesis.build(
        CHAIN,
        [{"dept": "justice", "name": "Justice", "pubkey": s.validator.public.raw.hex()}],
        [{"dept": "justice", "pubkey": s.client.public.raw.hex(), "roles": ["*"]},
         {"dept": "justice", "pubkey": s.tracer.public.raw.hex(), "roles": ["trace.*"]}],
    )
    (tmp_path / "genesis.json").write_bytes(raw)
    crypto.save_private_key(tmp_path / "validator.pem", s.validator)
    assert genesis.parse(raw).quorum == 1
    return s


@asynccontextmanager
async def running(cfg: NodeConfig) -> AsyncIterator[Node]:
    node = Node(cfg)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


async def submit_and_commit(node: Node, raws: list[bytes]) -> list[Location]:
    results = await node.submit(raws)
    assert all(isinstance(r, Submitted) for r in results), results
    locs = await node.wait_committed([r.envelope.record_id for r in results], WAIT_S)  # type: ignore[union-attr]
    assert all(loc is not None for loc in locs), locs
    return locs  # type: ignore[return-value]


async def idle_past_a_round_timeout(node: Node) -> None:
    """Let the node handle more ticks than its round timer needs to expire: time as the node
    counts it (each tick runs the replica's timer), not ours. A timer running while nothing is
    pending would move the round (and a round > 0 may propose an empty block)."""
    target = node.ticks + node.replica.timeout_ticks() + 2
    await until(lambda: node.ticks >= target, f"{target} node ticks")


def metric(text: str, name: str, labels: str = "") -> int | None:
    m = re.search(rf"^{re.escape(name + labels)} (\d+)$", text, re.M)
    return int(m.group(1)) if m else None


def rid(result: Any) -> bytes:
    assert isinstance(result, Submitted), result
    return result.envelope.record_id


# -- the happy path ----------------------------------------------------------------------


async def test_submit_commit_locate_status_metrics(solo: Solo) -> None:
    async with running(solo.config()) as node:
        assert node.status()["height"] == 0
        raws = [solo.record() for _ in range(3)]
        results = await node.submit(raws)
        assert [type(r) for r in results] == [Submitted] * 3
        assert all(r.location is None for r in results)  # type: ignore[union-attr]
        ids = [rid(r) for r in results]
        assert [r.envelope.raw for r in results] == raws  # type: ignore[union-attr]
        assert node.pending(ids[0]) is not None and node.pending(ids[0]).raw == raws[0]  # type: ignore[union-attr]
        assert node.locate(ids[0]) is None

        locs = await node.wait_committed(ids, WAIT_S)
        head = node.store.head()
        assert head is not None and head.height == 1
        assert locs == [Location(i, 1, leaf, head.block_hash) for leaf, i in enumerate(ids)]
        assert [node.locate(i) for i in ids] == locs
        assert all(node.pending(i) is None for i in ids)

        st = node.status()
        assert st["chain_id"] == CHAIN and st["index"] == 0
        assert st["height"] == 1 and st["log_size"] == 3 and st["mempool"] == 0
        assert st["primary"] == 0 and st["peers"] == {} and st["evidence"] == []
        # the browser console's fields (ledgernode/overview.py)
        assert st["head_time_ms"] == head.time and st["mempool_max"] == node.limits.mempool_max_records
        [me] = st["validator_list"]
        assert (me["index"], me["link"], me["last_vote"], me["primary"]) == (0, "self", 1, True)
        assert me["key_id"] == node.key.public.key_id and me["dept"] == node.genesis.validators[0].dept

        text = node.metrics()
        assert metric(text, "ledgernode_height") == 1
        assert metric(text, "ledgernode_log_size") == 3
        assert metric(text, "ledgernode_store_leaf_hashes_refused_total") == 0
        assert "# TYPE ledgernode_store_leaf_hashes_refused_total counter" in text
        # where the node's CPU went, by kind of thread: the event loop has run, the disk
        # thread has committed a block (Linux's /proc; this suite runs there)
        cpu = dict(re.findall(r'^ledgernode_thread_cpu_seconds_total\{threads="([a-z-]+)"\} ([0-9.]+)$', text, re.M))
        assert {"main", "disk"} <= cpu.keys() and float(cpu["main"]) > 0, cpu
        assert metric(text, "ledgernode_mempool_records") == 0
        assert metric(text, "ledgernode_events_total", '{event="records_committed"}') == 3
        assert metric(text, "ledgernode_events_total", '{event="blocks_committed"}') == 1
        assert "# TYPE ledgernode_rejected_total counter" in text
        samples = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and line[0] != "#"}
        histograms = set(re.findall(r"^# TYPE (\S+) histogram$", text, re.M))
        for name in samples:  # every series says what it is, for dashboards and operators
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            name = base if base in histograms else name  # a histogram's samples share its HELP and TYPE
            assert re.search(rf"^# HELP {name} \S", text, re.M) and re.search(rf"^# TYPE {name} ", text, re.M), name
        # the block's size and its records' wait since their submission here (node.submit is a client's)
        assert metric(text, "ledgernode_block_records_count") == 1
        assert metric(text, "ledgernode_block_records_sum") == 3
        assert metric(text, "ledgernode_block_records_bucket", '{le="2"}') == 0
        assert metric(text, "ledgernode_block_records_bucket", '{le="5"}') == 1
        assert metric(text, "ledgernode_block_bytes_count") == 1
        assert (metric(text, "ledgernode_block_bytes_sum") or 0) > sum(len(r) for r in raws)  # and the header
        assert metric(text, "ledgernode_submit_to_commit_seconds_count") == 3
        assert metric(text, "ledgernode_submit_to_commit_seconds_bucket", '{le="+Inf"}') == 3
        assert node.readiness()["ready"] is True  # one validator: it is its own quorum

        # an idle node builds no empty blocks: its round timer does not even run
        await idle_past_a_round_timeout(node)
        assert node.status()["height"] == 1 and node.status()["round"] == 0
        [nxt] = await submit_and_commit(node, [solo.record()])
        assert (nxt.height, nxt.leaf_index) == (2, 3)  # no block was made in between


async def test_already_committed_records_are_answered_at_once(solo: Solo) -> None:
    async with running(solo.config()) as node:
        [loc] = await submit_and_commit(node, [solo.record()])
        # Answered from the store, not by waiting: with no time to wait at all, and with a
        # long timeout within a few event-loop turns (no commit of it will ever come).
        assert await node.wait_committed([loc.record_id, loc.record_id], 0.0) == [loc, loc]
        answer = asyncio.ensure_future(node.wait_committed([loc.record_id, loc.record_id], WAIT_S))
        for _ in range(10):  # loop turns, not seconds
            if answer.done():
                break
            await asyncio.sleep(0)
        done = answer.done()
        if not done:
            answer.cancel()
        assert done, "wait_committed waits for a record already on disk"
        assert answer.result() == [loc, loc]


async def test_wait_committed_times_out_with_none_and_forgets_the_waiter(solo: Solo) -> None:
    async with running(solo.config()) as node:
        unknown = crypto.sha256(b"never submitted")
        start = time.monotonic()
        assert await node.wait_committed([unknown], 0.1) == [None]
        assert time.monotonic() - start >= 0.09  # it waited out the timeout
        assert node.outcomes.waiting() == 0


async def test_many_records_commit_over_several_blocks(solo: Solo) -> None:
    async with running(solo.config(block_max_records=2)) as node:
        locs = await submit_and_commit(node, [solo.record() for _ in range(5)])
        assert [loc.leaf_index for loc in locs] == [0, 1, 2, 3, 4]
        assert [loc.height for loc in locs] == [1, 1, 2, 2, 3]
        assert node.status()["height"] == 3 and node.status()["log_size"] == 5


# -- refusing bad records ------------------------------------------------------------------


def with_bad_signature(raw: bytes) -> bytes:
    record_bytes, sig = codec.decode(raw)
    return codec.encode([record_bytes, bytes([sig[0] ^ 1]) + sig[1:]])


async def test_bad_records_are_refused_with_codes_and_counted(solo: Solo) -> None:
    async with running(solo.config()) as node:
        good = solo.record()
        batch = [
            solo.record(chain="gov-other"),
            with_bad_signature(solo.record()),
            solo.record(key=solo.tracer),  # may submit trace.* only
            solo.record(key=solo.stranger),
            solo.record(ts=now_ms() - WINDOW_MS - 60_000),
            solo.record(ts=now_ms() + WINDOW_MS + 60_000),
            b"\x92\xc4\x01",  # truncated msgpack
            good,
        ]
        results = await node.submit(batch)
        codes = [r.code if isinstance(r, InvalidInput) else r for r in results[:-1]]
        assert codes == ["wrong_chain", "bad_signature", "role_denied", "unknown_key",
                         "ts_window", "ts_window", results[6].code]  # type: ignore[union-attr]
        assert isinstance(results[6], InvalidInput)
        assert results[2].status == 403  # type: ignore[union-attr]
        assert isinstance(results[-1], Submitted)

        [loc] = await node.wait_committed([rid(results[-1])], WAIT_S)
        assert loc is not None and loc.leaf_index == 0
        assert node.status()["log_size"] == 1  # only the good one
        text = node.metrics()
        for code in ("wrong_chain", "bad_signature", "role_denied", "unknown_key"):
            assert metric(text, "ledgernode_rejected_total", f'{{reason="{code}"}}') == 1, code
        assert metric(text, "ledgernode_rejected_total", '{reason="ts_window"}') == 2


async def test_rejected_records_leave_no_reference_cycles(solo: Solo) -> None:
    # The node collects young garbage rarely (GC_GEN0_OBJECTS); a rejection kept with
    # its traceback would tie the admission frame and its lists into a cycle that
    # only the collector frees, so a flood of bad records could pile up memory.
    import gc

    async with running(solo.config()) as node:
        batch = [with_bad_signature(solo.record()) for _ in range(50)]
        batch += [solo.record(key=solo.stranger) for _ in range(50)]
        batch += [solo.record(ts=now_ms() - WINDOW_MS - 60_000) for _ in range(50)]
        batch.append(b"\x92\xc4\x01")
        await node.submit(batch)  # warm every path once
        gc.collect()
        gc.disable()
        try:
            results = await node.submit(batch)
            assert all(isinstance(r, InvalidInput) for r in results)
            del results
            assert gc.collect() == 0  # nothing unreachable: freed by reference counts
        finally:
            gc.enable()


async def test_no_single_bit_flip_of_an_envelope_is_admitted(solo: Solo) -> None:
    async with running(solo.config()) as node:
        raw = solo.record()
        flipped = [raw[:i] + bytes([raw[i] ^ (1 << (i % 8))]) + raw[i + 1:] for i in range(len(raw))]
        results = await node.submit(flipped)
        assert all(isinstance(r, InvalidInput) for r in results), [r for r in results if not
                                                                   isinstance(r, InvalidInput)]
        assert node.status()["mempool"] == 0
        await submit_and_commit(node, [raw])  # the original still goes in


async def test_admission_refuses_a_record_that_cannot_commit(solo: Solo) -> None:
    """Admission judges the ledger rules against committed state plus the records ahead in
    the mempool: a record that cannot commit is refused at once (409, the rule named), never
    parked and silently dropped."""
    async with running(solo.config()) as node:
        [base] = await submit_and_commit(node, [solo.record()])
        [dangling] = await node.submit([solo.record(refs=(crypto.sha256(b"no such record"),))])
        assert isinstance(dangling, InvalidInput) and dangling.status == 409
        assert (dangling.code, dangling.rule) == ("rule_violation", "ref.known")
        first, rival = solo.cert("LIC-1"), solo.cert("LIC-1")
        [ok, refused] = await node.submit([first, rival])
        assert isinstance(ok, Submitted) and isinstance(refused, InvalidInput)
        assert refused.rule == "cert.number_unused"
        assert refused.message == "certificate LIC-1 was already issued by justice (not yet committed)"
        [loc] = await node.wait_committed([ok.envelope.record_id], WAIT_S)
        assert isinstance(loc, Location)
        [late] = await node.submit([solo.cert("LIC-1")])
        assert isinstance(late, InvalidInput)
        assert late.message == f"certificate LIC-1 was already issued by justice at height {loc.height}"
        assert node.status()["mempool"] == 0
        assert metric(node.metrics(), "ledgernode_rejected_total", '{reason="rule_violation"}') == 3

        parent = solo.record()
        parent_id = decode_envelope(parent, node.genesis).record_id
        child = solo.record(refs=(base.record_id, parent_id))  # one committed, one ahead in the mempool
        locs = await submit_and_commit(node, [parent, child])
        assert locs[0].height == locs[1].height > loc.height  # the same block


async def test_gossiped_records_that_break_a_rule_are_counted_and_dropped(solo: Solo) -> None:
    async with running(solo.config()) as node:
        [issued] = await submit_and_commit(node, [solo.cert("LIC-3")])
        bad = [solo.cert("LIC-3") for _ in range(20)]
        await node._on_peer_records(1, bad)
        assert node.status()["mempool"] == 0 and node.net.counters.get("gossip_sent", 0) == 0
        assert metric(node.metrics(), "ledgernode_rejected_total", '{reason="rule_violation"}') == 20
        [after] = await submit_and_commit(node, [solo.record()])
        assert after.height == issued.height + 1


async def test_record_refused_by_the_builder_is_reported_and_makes_no_empty_block(solo: Solo) -> None:
    """A record that passed admission elsewhere (here: put into the mempool past admission,
    as a peer that saw it before its rival would) and fails when the block is built leaves
    the mempool with a definitive answer; no block is made for it."""
    async with running(solo.config()) as node:
        [issued] = await submit_and_commit(node, [solo.cert("LIC-7")])
        rival = decode_envelope(solo.cert("LIC-7"), node.genesis)
        assert node.mempool.add(rival)
        node._notify_records()
        [end] = await node.wait_committed([rival.record_id], WAIT_S)
        assert isinstance(end, Rejection), end
        assert (end.code, end.rule, end.height) == ("rule_violation", "cert.number_unused", issued.height + 1)
        assert f"at height {issued.height}" in end.message
        assert node.rejection(rival.record_id) == end and node.pending(rival.record_id) is None
        assert await node.wait_committed([rival.record_id], 0.0) == [end]  # later waits see it too
        assert node.store.height == issued.height  # no block for a record that failed
        [after] = await submit_and_commit(node, [solo.record()])
        assert after.height == issued.height + 1  # and none was made in between
        assert metric(node.metrics(), "ledgernode_rejected_total", '{reason="dropped_rule_violation"}') == 1


async def test_role_allows_what_the_role_names(solo: Solo) -> None:
    async with running(solo.config()) as node:
        await submit_and_commit(node, [solo.record(key=solo.tracer, rtype="trace.event")])


async def test_ts_just_inside_the_window_is_admitted(solo: Solo) -> None:
    async with running(solo.config()) as node:
        await submit_and_commit(node, [solo.record(ts=now_ms() - WINDOW_MS + 30_000)])


# -- duplicates and backpressure ------------------------------------------------------------


async def test_duplicate_of_a_committed_record_returns_its_location_and_commits_nothing(solo: Solo) -> None:
    async with running(solo.config()) as node:
        raw = solo.record()
        [loc] = await submit_and_commit(node, [raw])
        again = await node.submit([raw, raw])
        assert [r.location for r in again] == [loc, loc]  # type: ignore[union-attr]
        assert node.status()["mempool"] == 0
        [nxt] = await submit_and_commit(node, [solo.record()])
        assert (nxt.height, nxt.leaf_index) == (2, 1)  # the duplicate took no leaf
        assert node.status()["log_size"] == 2
        assert metric(node.metrics(), "ledgernode_events_total", '{event="records_committed"}') == 2


async def test_duplicate_of_a_pending_record_is_pending_once(solo: Solo) -> None:
    async with running(solo.config()) as node:
        raw = solo.record()
        first, second = await node.submit([raw, raw])
        assert isinstance(first, Submitted) and isinstance(second, Submitted)
        assert first.location is None and second.location is None
        assert node.status()["mempool"] == 1
        [loc] = await node.wait_committed([first.envelope.record_id], WAIT_S)
        assert loc is not None and node.status()["log_size"] == 1


async def test_mempool_full_gives_backpressure(solo: Solo) -> None:
    async with running(solo.config(mempool_max_records=2)) as node:
        raws = [solo.record() for _ in range(4)]
        results = await node.submit(raws)  # one synchronous admission: nothing commits meanwhile
        assert isinstance(results[0], Submitted) and isinstance(results[1], Submitted)
        assert isinstance(results[2], Backpressure) and isinstance(results[3], Backpressure)
        assert results[2].retry_after_s >= 1
        assert node.status()["mempool"] == 2
        assert metric(node.metrics(), "ledgernode_rejected_total", '{reason="mempool_full"}') == 2
        await node.wait_committed([rid(results[0]), rid(results[1])], WAIT_S)
        await submit_and_commit(node, raws[2:])  # room again once the block is on disk


# -- restart ------------------------------------------------------------------------------


async def test_restart_resumes_at_the_same_height_and_keeps_committing(solo: Solo) -> None:
    cfg = solo.config(block_max_records=2)
    async with running(cfg) as node:
        first = await submit_and_commit(node, [solo.record() for _ in range(3)])
        height, head = node.store.height, node.store.head()
    assert height == 2 and head is not None

    async with running(cfg) as node:
        assert node.status()["height"] == height
        assert node.store.head() == head
        assert [node.locate(loc.record_id) for loc in first] == first
        await idle_past_a_round_timeout(node)  # past start-up's "records?" and any timer
        assert node.store.height == height and node.status()["mempool"] == 0  # nothing replayed
        assert node.status()["round"] == 0  # the restored consensus state is idle: no empty block
        [loc] = await submit_and_commit(node, [solo.record()])
        assert (loc.height, loc.leaf_index) == (height + 1, 3)
        assert node.store.load_header(height + 1).prev == head.block_hash

    async with running(cfg) as node:  # and once more
        assert node.status()["height"] == height + 1
        [loc] = await submit_and_commit(node, [solo.record()])
        assert (loc.height, loc.leaf_index) == (height + 2, 4)


async def test_a_second_node_cannot_open_a_data_dir_in_use(solo: Solo) -> None:
    cfg = solo.config()
    async with running(cfg):
        with pytest.raises(StorageError):
            Node(cfg)


async def test_serve_runs_until_sigterm_and_closes_the_store(solo: Solo) -> None:
    cfg = solo.config()
    task = asyncio.create_task(serve(cfg))
    url = f"http://127.0.0.1:{cfg.api_listen[1]}"
    try:
        async with ClientSession() as session:
            deadline = time.monotonic() + WAIT_S
            while True:
                assert not task.done(), task.exception()
                try:
                    async with session.get(url + "/healthz") as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "node did not come up"
                await asyncio.sleep(0.02)
            async with session.get(url + "/metrics") as resp:
                assert resp.status == 200
                assert metric(await resp.text(), "ledgernode_height") == 0
        os.kill(os.getpid(), signal.SIGTERM)  # serve() installed a handler on this loop
        await asyncio.wait_for(task, WAIT_S)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    Store.open(cfg.data_dir / "ledger").close()  # the lock is free again


async def test_http_api_is_wired_to_the_node(solo: Solo) -> None:
    cfg = solo.config()
    url = f"http://127.0.0.1:{cfg.api_listen[1]}"
    async with running(cfg) as node:
        async with ClientSession() as session:
            raw = solo.record()
            async with session.post(url + "/v1/records?wait=1", data=raw,
                                    headers={"Content-Type": "application/msgpack"}) as resp:
                body = await resp.json()
                assert resp.status == 200, body
                assert body["height"] == 1 and body["leaf_index"] == 0
            async with session.get(url + "/v1/status") as resp:
                assert (await resp.json())["height"] == 1
            async with session.post(url + "/v1/records", data=b"junk",
                                    headers={"Content-Type": "text/plain"}) as resp:
                assert resp.status >= 400
                code = (await resp.json())["error"]["code"]
            async with session.get(url + "/metrics") as resp:
                text = await resp.text()
        assert metric(text, "ledgernode_height") == 1
        assert metric(text, "ledgernode_api_rejected_total", f'{{reason="{code}"}}') == 1
        assert node.status()["log_size"] == 1
        # both POSTs timed under their route template, the error answer too; /metrics is
        # timed once its answer is made, so the GET of it is not in the text it returned
        assert metric(text, "ledgernode_api_request_seconds_count", '{route="/v1/records",method="POST"}') == 2
        assert metric(text, "ledgernode_api_request_seconds_count", '{route="/v1/status",method="GET"}') == 1
        assert metric(text, "ledgernode_submit_to_commit_seconds_count") == 1


# -- faults and construction -----------------------------------------------------------------


async def test_set_faults_validates(solo: Solo) -> None:
    node = Node(solo.config())
    try:
        node.set_faults({"drop": 0.5, "delay_ms": 10, "partition": [[0]]})
        assert (node.net.faults.drop, node.net.faults.delay_ms, node.net.faults.groups) == (0.5, 10, [{0}])
        for bad in ({"drop": 2}, {"delay_ms": -1}, {"partition": [0]}):
            with pytest.raises(InvalidInput) as err:
                node.set_faults(bad)
            assert err.value.code == "bad_faults"
        assert node.net.faults.drop == 0.5  # a refused spec changes nothing
        node.set_faults({})
        assert node.net.faults.drop == 0.0 and node.net.faults.groups == []
    finally:
        node.store.close()


def test_refuses_an_index_that_is_not_the_keys(solo: Solo) -> None:
    crypto.save_private_key(solo.root / "other.pem", solo.client)
    for cfg, whose in ((solo.config(index=0, key_file="other.pem"), "no genesis validator's key"),
                       (solo.config(index=1), "validator 0's key in the genesis")):
        with pytest.raises(ValueError) as err:
            Node(cfg)
        assert str(err.value).startswith("index:") and whose in str(err.value)
    assert not (solo.root / "data").exists()  # refused before touching the data dir
    Node(solo.config(index=0)).store.close()  # a config of before, naming the key's index, still starts


async def test_a_node_whose_key_is_no_validators_follows(solo: Solo) -> None:
    crypto.save_private_key(solo.root / "joining.pem", solo.stranger)
    node = Node(solo.config(key_file="joining.pem"))
    await node.start()
    try:
        st = node.status()
        assert (st["validator"], st["validators"], st["index"]) == (None, 1, None)
        assert st["key_id"] == solo.stranger.public.key_id
    finally:
        await node.stop()


async def test_stopping_answers_waiting_requests_at_once(solo: Solo) -> None:
    node = Node(solo.config())
    await node.start()
    task = asyncio.create_task(node.wait_committed([crypto.sha256(b"never submitted")], 3600.0))
    try:
        await until(lambda: node.outcomes.waiting() >= 1, "the request to wait")
    finally:
        await node.stop()
    with pytest.raises(Backpressure, match="shutting down"):
        await task  # at once: not after its hour


_HANGING_STOP = """
import asyncio, logging, sys
import ledgernode.catchup, ledgernode.node
from ledgernode import config

logging.basicConfig(level=logging.INFO)  # the node's "up at height" line says when it serves

async def never(self):
    await asyncio.Event().wait()

ledgernode.catchup.CatchUp.stop = never  # a part of the shutdown that never ends
ledgernode.node.STOP_MAX_S = 0.5
asyncio.run(ledgernode.node.serve(config.load(sys.argv[1])))
"""


def test_a_shutdown_that_never_ends_is_cut_short_and_says_where(solo: Solo) -> None:
    import queue
    import subprocess
    import sys
    import threading

    solo.config()
    path = solo.root / "node.toml"
    proc = subprocess.Popen([sys.executable, "-c", _HANGING_STOP, str(path)], stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    lines: queue.Queue[str] = queue.Queue()  # every stderr line, "" at its end

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put("")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + WAIT_S
        while not any(" up at height " in line for line in seen):  # the node serves: its API is listening
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.001))
            assert line, "the node exited before it came up: " + "".join(seen)[-2000:]
            seen.append(line)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=WAIT_S)
        reader.join(WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    while not lines.empty():
        seen.append(lines.get_nowait())
    err = "".join(seen)
    assert proc.returncode == 3, err[-2000:]
    assert "did not stop within 0.5 s (waiting for catch-up): exiting now" in err
