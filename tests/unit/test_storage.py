"""Store: blocks, the global Merkle log and its indexes, on memory and LevelDB.

The proofs are checked against a naive RFC 9162 section 2.1 reference (MTH,
PATH, PROOF written straight from the RFC's recursive definitions, with MTH
memoised so that 100,000 leaves stay cheap). Crash safety is checked by
SIGKILLing a child process (crash_writer.py) while it commits.
"""

from __future__ import annotations

import hashlib
import math
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from ledgernode import codec, maptree, merkle, statemap
from ledgernode.auditing import answers
from ledgernode.blocks import QC
from ledgernode.errors import NotFound, StoreCorrupt, StoreLocked
from ledgernode.records import decode_envelope, record_id_of
from ledgernode.storage import NODE_LEVEL_STORED_MIN, SUBJECT_ANSWER_MAX, SUBJECT_PAGE_MAX, Store, Tip, keys
from ledgernode.storage.kv import MemoryKV
from ledgernode.storage.leveldb import LevelKV
from tests.fixtures import T0, Net, commit_records, content
from tests.unit.crash_writer import (
    CRASH_LEAVES,
    crash_block_envelopes,
    crash_fact,
    subject_of,
    synth_block,
    synth_envelope,
)

CRASH_WRITER = Path(__file__).with_name("crash_writer.py")
CHILD_TIMEOUT_S = 120.0  # a bound on waiting for the crash writer, not an expected time


# -- helpers ----------------------------------------------------------------


class CountingKV:
    """A KV proxy that counts reads, to prove the store reads O(log n) keys."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gets = 0
        self.scans = 0

    def get(self, key: bytes) -> bytes | None:
        self.gets += 1
        return self.inner.get(key)

    def write(self, puts: list[tuple[bytes, bytes]], deletes: list[bytes], sync: bool) -> None:
        self.inner.write(puts, deletes, sync)

    def scan(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        self.scans += 1
        return self.inner.scan(start, stop)

    def close(self) -> None:
        self.inner.close()


class Naive:
    """RFC 9162 section 2.1 MTH / PATH / PROOF over a list of leaf hashes.

    `leaves` only ever grows, so MTH(D[lo:hi]) never changes and is memoised.
    """

    def __init__(self) -> None:
        self.leaves: list[bytes] = []
        self._memo: dict[tuple[int, int], bytes] = {}

    @staticmethod
    def _k(n: int) -> int:  # largest power of two smaller than n
        k = 1
        while k * 2 < n:
            k *= 2
        return k

    def mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n == 1:
            return self.leaves[lo]
        got = self._memo.get((lo, hi))
        if got is None:
            k = self._k(n)
            got = hashlib.sha256(b"\x01" + self.mth(lo, lo + k) + self.mth(lo + k, hi)).digest()
            self._memo[(lo, hi)] = got
        return got

    def path(self, m: int, n: int) -> list[bytes]:
        return self._path(m, 0, n)

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = self._k(n)
        if m < k:
            return self._path(m, lo, lo + k) + [self.mth(lo + k, hi)]
        return self._path(m - k, lo + k, hi) + [self.mth(lo, lo + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        return self._subproof(m, 0, n, True)

    def _subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = self._k(n)
        if m <= k:
            return self._subproof(m, lo, lo + k, b) + [self.mth(lo + k, hi)]
        return self._subproof(m - k, lo + k, hi, False) + [self.mth(lo, lo + k)]


def test_naive_reference_matches_merkle_memory_tree() -> None:
    """Cross-check the reference itself against merkle.MemoryTree and known roots."""
    naive, tree = Naive(), merkle.MemoryTree()
    assert naive.mth(0, 0) == merkle.EMPTY_ROOT
    for i in range(40):
        h = merkle.leaf_hash(bytes([i]))
        naive.leaves.append(h)
        tree.append(h)
        assert naive.mth(0, i + 1) == merkle.root(tree, i + 1) == tree.frontier.root()
    # RFC 6962 test vector (certificate-transparency-go): root of the 8 leaves below
    naive = Naive()
    for leaf in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                 "606162636465666768696a6b6c6d6e6f"]:
        naive.leaves.append(merkle.leaf_hash(bytes.fromhex(leaf)))
    assert naive.mth(0, 8).hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def all_pages(store: Store, subject: str, limit: int) -> list[int]:
    out: list[int] = []
    after = -1
    while True:
        page = store.subject_leaves(subject, after=after, limit=limit)
        assert len(page) <= min(limit, SUBJECT_PAGE_MAX)
        if not page:
            return out
        out.extend(page)
        after = page[-1]


def commit_synthetic(store: Store, start: int, count: int, subject: str | None = None) -> None:
    checked, qc = synth_block(store, [synth_envelope(i, subject) for i in range(start, start + count)])
    store.commit(checked, qc)


# -- stores -----------------------------------------------------------------


@pytest.fixture(params=["memory", "leveldb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = Store.memory() if request.param == "memory" else Store.open(tmp_path / "db")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def net() -> Net:
    return Net()


def evidence(net: Net, subject: str, label: str) -> bytes:
    body = {"content_hash": content(label), "media_type": "application/pdf", "size": 1234, "title": label}
    return net.record(0, "evidence.notarize", subject, body)


def populate(net: Net, store: Store) -> list[tuple[int, list[bytes]]]:
    """Commit five blocks of signed records (one empty); return (height, raws)."""
    holder = content("holder")
    blocks = [
        [
            net.record(0, "dataset.publish", "ds/population", {
                "title": "Population", "content_hash": content("pop"),
                "schema_hash": content("schema"), "classification": "internal"}),
            evidence(net, "case-A", "a1"), evidence(net, "case-B", "b1"), evidence(net, "case-A", "a2"),
        ],
        [],
        [net.record(0, "cert.issue", "CERT-1", {
            "cert_type": "licence", "holder": holder, "content_hash": content("c1"),
            "valid_from": T0, "valid_until": T0 + 10**9})]
        + [net.record(0, "trace.event", "prod-1", {"activity": f"step {i}"}) for i in range(5)],
        [evidence(net, "case-A", f"a{i}") for i in range(3, 12)],
        [net.record(0, "cert.suspend", "CERT-1", {"reason": "audit", "effective": T0})]
        + [evidence(net, "case-A", f"a{i}") for i in range(12, 30)],
    ]
    out = []
    for raws in blocks:
        checked = commit_records(net, store, raws)
        out.append((checked.block.header.height, raws))
    return out


# -- commits, reads and indexes ---------------------------------------------


def test_empty_store(store: Store) -> None:
    assert store.head() is None and store.height == 0 and store.log_size == 0
    assert store.frontier.root() == merkle.EMPTY_ROOT
    assert store.subject_leaves("nothing") == []
    assert store.locate(bytes(32)) is None and not store.is_committed(bytes(32))
    with pytest.raises(NotFound):
        store.load_header(1)
    with pytest.raises(NotFound):
        store.load_qc(1)
    with pytest.raises(NotFound):
        store.load_envelope(0)
    with pytest.raises(NotFound):
        store.height_of_leaf(0)


def test_commit_and_read_back(store: Store, net: Net) -> None:
    blocks = populate(net, store)
    leaves: list[bytes] = []
    where: list[tuple[bytes, int]] = []  # (record_id, height) per leaf
    for height, raws in blocks:
        for raw in raws:
            env = decode_envelope(raw, net.genesis)
            leaves.append(raw)
            where.append((env.record_id, height))
    head = store.head()
    assert head is not None
    assert store.height == head.height == 5
    assert store.log_size == head.log_size == len(leaves) == 38
    assert store.frontier.root() == head.log_root

    prev_hash, prev_size = bytes(32), 0
    for height, raws in blocks:
        header = store.load_header(height)
        assert header.height == height and header.prev == prev_hash
        assert header.log_start == prev_size and header.log_size == prev_size + len(raws)
        assert header.raw and header.raw == header.encode()  # stored bytes kept as signed
        qc = store.load_qc(height)
        assert qc.height == height and qc.block_hash == header.block_hash
        assert len(qc.signatures) == net.genesis.quorum
        assert store.load_envelopes(header.log_start, header.log_size) == raws
        assert header.log_root == merkle.root(store, header.log_size)
        prev_hash, prev_size = header.block_hash, header.log_size
    assert store.load_envelopes(0, store.log_size) == leaves
    assert store.load_envelopes(3, 3) == []
    for i, raw in enumerate(leaves):
        assert store.load_envelope(i) == raw
        rid, height = where[i]
        assert store.locate(rid) == (i, height)
        assert store.is_committed(rid)
        assert store.height_of_leaf(i) == height
        assert store.node(0, i) == merkle.leaf_hash(raw)
    assert store.locate(b"\x00" * 32) is None and not store.is_committed(b"\x00" * 32)
    with pytest.raises(NotFound):
        store.height_of_leaf(len(leaves))
    with pytest.raises(NotFound):
        store.height_of_leaf(-1)
    with pytest.raises(NotFound):
        store.load_envelope(len(leaves))
    with pytest.raises(NotFound):
        store.load_header(6)

    # facts written by the state rules are visible after commit
    owner = store.load_fact("owner", "ds/population")
    assert owner is not None and (owner["dept"], owner["record"]) == ("justice", where[0][0].hex())
    cert = store.load_fact("cert", "CERT-1")
    assert cert is not None and cert["status"] == "suspended" and cert["issuer"] == "justice"
    assert cert["record"] == where[19][0].hex()  # the cert.suspend record (first of block 5)
    assert store.load_fact("cert", "CERT-2") is None

    # subject index: every leaf of a subject, in log order, paginated
    expected: dict[str, list[int]] = {}
    for i, raw in enumerate(leaves):
        expected.setdefault(decode_envelope(raw, net.genesis).record.subject, []).append(i)
    assert set(expected) == {"ds/population", "case-A", "case-B", "CERT-1", "prod-1"}
    for subject, idx in expected.items():
        assert store.subject_leaves(subject) == idx
        assert store.subject_leaves(subject, limit=1000) == idx
        for limit in (1, 2, 3, 7):
            assert all_pages(store, subject, limit) == idx
        for after in (-1, 0, idx[0], idx[-1], store.log_size):
            assert store.subject_leaves(subject, after=after) == [i for i in idx if i > after]
    case_a = expected["case-A"]
    assert len(case_a) == 29
    assert store.subject_leaves("case-A", limit=5) == case_a[:5]
    assert store.subject_leaves("case-A", after=case_a[4], limit=5) == case_a[5:10]
    assert store.subject_leaves("case-Z") == []
    # a subject that is a prefix of another never leaks into it
    assert store.subject_leaves("case") == []


def test_subject_page_is_capped(store: Store) -> None:
    n = SUBJECT_PAGE_MAX + 250
    commit_synthetic(store, 0, n, subject="bulk")
    commit_synthetic(store, n, 10, subject="other")
    assert store.subject_leaves("bulk", limit=10**6) == list(range(SUBJECT_PAGE_MAX))
    assert store.subject_leaves("bulk", after=SUBJECT_PAGE_MAX - 1, limit=10**6) == list(
        range(SUBJECT_PAGE_MAX, n))
    assert all_pages(store, "bulk", 10**6) == list(range(n))
    assert all_pages(store, "other", 3) == list(range(n, n + 10))


def test_subject_page_bounds(store: Store) -> None:
    commit_synthetic(store, 0, 5, subject="few")
    assert store.subject_leaves("few", limit=0) == []  # was one leaf before the fix
    assert store.subject_leaves("few", limit=-3) == []
    assert store.subject_leaves("few", after=-7) == [0, 1, 2, 3, 4]  # was struct.error
    assert store.subject_leaves("few", after=2**64 - 1) == []
    assert store.subject_leaves("few", after=2**70) == []


def test_synthetic_envelopes_are_canonical() -> None:
    """The spliced templates of crash_writer.synth_envelope equal codec's own output."""
    seen = set()
    for leaf in (0, 1, 255, 256, 2**40, 10**6):
        for subject in (None, "bulk", "x" * 200):
            env = synth_envelope(leaf, subject)
            assert env.record_bytes == codec.encode(env.record.to_map())
            assert env.raw == codec.encode([env.record_bytes, env.sig])
            assert codec.decode(env.raw) == [env.record_bytes, env.sig]
            assert env.record_id == record_id_of(env.record_bytes)
            seen.add(env.raw)
    assert len(seen) == 18


def test_height_of_leaf_with_empty_blocks(store: Store) -> None:
    sizes = [3, 0, 0, 1, 5, 0, 2, 1]
    heights: list[int] = []
    for h, size in enumerate(sizes, start=1):
        commit_synthetic(store, len(heights), size)
        heights.extend([h] * size)
    assert store.height == len(sizes) and store.log_size == len(heights)
    for leaf, h in enumerate(heights):
        assert store.height_of_leaf(leaf) == h
        header = store.load_header(h)
        assert header.log_start <= leaf < header.log_size


def test_commit_must_extend_the_head(store: Store) -> None:
    first, qc1 = synth_block(store, [synth_envelope(0)])
    store.commit(first, qc1)
    # the same block again: height and log_start no longer follow the head
    with pytest.raises(AssertionError):
        store.commit(first, qc1)
    # a block built on the old head (stale), after another block was committed
    stale, stale_qc = synth_block(store, [synth_envelope(1)])
    store.commit(*synth_block(store, [synth_envelope(2)]))
    with pytest.raises(AssertionError):
        store.commit(stale, stale_qc)
    # a block that skips a height
    good, good_qc = synth_block(store, [synth_envelope(3)])
    skipping = replace(good.block.header, height=good.block.header.height + 1, raw=b"")
    skipping = replace(skipping, raw=skipping.encode())
    bad = replace(good, block=replace(good.block, header=skipping))
    with pytest.raises(AssertionError):
        store.commit(bad, QC(skipping.height, 0, skipping.block_hash, good_qc.signatures))
    # a block whose log_start leaves a gap in the log
    gap = replace(good.block.header, log_start=good.block.header.log_start + 1, raw=b"")
    gap = replace(gap, raw=gap.encode())
    with pytest.raises(AssertionError):
        store.commit(replace(good, block=replace(good.block, header=gap)),
                     QC(gap.height, 0, gap.block_hash, good_qc.signatures))
    # a QC for another block
    with pytest.raises(AssertionError):
        store.commit(good, QC(good_qc.height, 0, bytes(32), good_qc.signatures))
    # a header whose log_root does not match the frontier
    wrong_root = replace(good.block.header, log_root=bytes(32), raw=b"")
    wrong_root = replace(wrong_root, raw=wrong_root.encode())
    with pytest.raises(AssertionError):
        store.commit(replace(good, block=replace(good.block, header=wrong_root)),
                     QC(wrong_root.height, 0, wrong_root.block_hash, good_qc.signatures))
    # nothing of the refused blocks was written
    assert store.height == 2 and store.log_size == 2
    with pytest.raises(NotFound):
        store.load_header(3)
    with pytest.raises(NotFound):
        store.load_envelope(2)
    store.commit(good, good_qc)
    assert store.height == 3 and store.log_size == 3


def test_meta_round_trip(store: Store) -> None:
    assert store.load_meta("consensus") is None
    store.save_meta("consensus", b"\x01\x02")
    assert store.load_meta("consensus") == b"\x01\x02"
    with pytest.raises(AssertionError):
        store.save_meta("head", b"x")


# -- the key layout (storage/keys.py against docs/storage.md) -----------------


def _u(n: int) -> bytes:
    """u64 as docs/storage.md defines it, written out here rather than taken from storage/keys.py."""
    return n.to_bytes(8, "big")


def test_key_schema_spells_the_documented_bytes() -> None:
    rid = bytes(range(32))
    assert keys.HEAD_KEY == b"m/head" and keys.head_value(3) == _u(3)
    assert keys.block_key(258) == b"b/\x00\x00\x00\x00\x00\x00\x01\x02"
    assert keys.qc_key(1) == b"q/" + _u(1)
    assert keys.leaf_key(2**64 - 1) == b"e/" + b"\xff" * 8
    assert keys.node_key(4, 3) == b"n/\x04" + _u(3)
    assert keys.leaf_hashes_key(3) == b"h/" + _u(3)
    assert keys.record_key(rid) == b"r/" + rid
    assert keys.fact_key("cert", "LIC-é") == "f/cert/LIC-é".encode("utf-8")
    assert keys.meta_key("consensus") == b"m/consensus"
    assert keys.evidence_key(7) == b"x/" + _u(7)
    assert keys.record_index_value(5, 9) == _u(5) + _u(9)
    # the decoders invert them
    assert keys.decode_head(_u(3)) == 3
    assert keys.decode_record_index(_u(5) + _u(9), "r") == (5, 9)
    for key in (keys.block_key(9), keys.qc_key(9), keys.leaf_key(9), keys.evidence_key(9)):
        assert keys.key_number(key) == 9
    assert keys.key_number(b"b/" + bytes(9)) is None and keys.key_number(b"b/") is None
    # scan ranges hold every key of their kind from the first one on, and nothing else
    assert keys.leaf_range(3, 5) == (b"e/" + _u(3), b"e/" + _u(5))
    for start_stop, prefix in ((keys.blocks_from(2), b"b/"), (keys.qcs_from(2), b"q/"),
                               (keys.leaves_from(2), b"e/"), (keys.evidence_from(2), b"x/")):
        start, stop = start_stop
        assert start == prefix + _u(2) and start < prefix + b"\xff" * 8 < stop < prefix[:1] + b"0"


def test_a_commit_writes_exactly_the_documented_keys(store: Store) -> None:
    """Every key and value on disk after three blocks, built from docs/storage.md alone."""
    expected: dict[bytes, bytes] = {b"m/head": _u(3)}
    tree, leaf = merkle.MemoryTree(), 0
    lists: dict[bytes, merkle.MemoryTree] = {}
    state_nodes = maptree.MemoryNodeStore()
    state = maptree.StateMap(state_nodes)
    for height, count in ((1, 20), (2, 0), (3, 13)):
        envs = [synth_envelope(i) for i in range(leaf, leaf + count)]
        fact = {"issuer": "justice", "status": "valid"}
        checked, qc = synth_block(store, envs, {("cert", f"C-{height}"): fact})
        store.commit(checked, qc)
        expected[b"b/" + _u(height)] = checked.block.header.raw
        expected[b"q/" + _u(height)] = qc.encode()
        expected[f"f/cert/C-{height}".encode("utf-8")] = codec.encode(fact)
        for env in envs:
            tree.append(env.leaf_hash)
            expected.update({b"e/" + _u(leaf): env.raw, b"r/" + env.record_id: _u(leaf) + _u(height)})
            list_path = statemap.path("subject", env.record.subject)
            listed = lists.setdefault(list_path, merkle.MemoryTree())
            expected[b"p/" + list_path + _u(listed.size)] = _u(leaf)
            listed.append(statemap.list_leaf_hash(leaf))
            leaf += 1
        state.apply({p: codec.encode({"n": t.size, "root": merkle.root(t, t.size)}) for p, t in lists.items()})
        assert checked.block.header.state == state.root
    expected.update({b"n/" + bytes([level]) + _u(index): h for (level, index), h in tree.nodes.items()
                     if level >= NODE_LEVEL_STORED_MIN})
    # each complete aligned block of 16 leaves keeps their hashes under one key: here
    # leaves 0-15 (written by block 1) and 16-31 (completed by block 3, over blocks 1 and 3)
    expected.update({b"h/" + _u(index): b"".join(tree.nodes[(0, i)] for i in range(index * 16, index * 16 + 16))
                     for index in range(leaf // 16)})
    for list_path, t in lists.items():  # a list's levels 0 to 3 are hashed from its positions
        expected.update({b"l/" + list_path + bytes([level]) + _u(index): h
                         for (level, index), h in t.nodes.items() if level >= 4})
    for h, raw in state_nodes.nodes.items():
        if raw[:1] == b"\x00" and raw[1:33] in lists:  # a list's leaf keeps its right edge: 02 path k edge value
            n = statemap.parse_list_value(raw[33:])[0]
            edge = merkle.Frontier.load(lists[raw[1:33]], n).edge
            raw = b"\x02" + raw[1:33] + bytes([len(edge)]) + b"".join(edge) + raw[33:]
        expected[b"t/" + h] = raw
    assert dict(store.kv.scan(b"", b"\xff")) == expected


def test_proofs_are_the_same_with_and_without_the_leaf_hash_blocks(store: Store) -> None:
    # A store written before h/ existed has none: its proofs read the envelopes.
    tree = merkle.MemoryTree()
    for start, count in ((0, 7), (7, 30), (37, 2), (39, 20)):
        commit_synthetic(store, start, count)
        for i in range(start, start + count):
            tree.append(synth_envelope(i).leaf_hash)
    blocks = [k for k, _ in store.kv.scan(b"h/", b"h0")]
    assert blocks == [keys.leaf_hashes_key(i) for i in range(59 // 16)]
    proofs = {(i, n): store.inclusion_proof(i, n) for n in (16, 33, 48, 59) for i in range(0, n, 5)}
    for (i, n), proof in proofs.items():
        assert proof == merkle.inclusion_proof(tree, i, n)
    # A proof within complete blocks of 16 reads no envelope: the leaf's h/ key, checked
    # against its n/4 node, and stored nodes; one that needs the last, incomplete block
    # scans its envelopes.
    counting = CountingKV(store.kv)
    fresh = Store(counting)
    counting.gets = counting.scans = 0
    assert fresh.inclusion_proof(20, 48) == merkle.inclusion_proof(tree, 20, 48)
    assert counting.scans == 0 and 2 <= counting.gets <= 4  # h/1, n/4/1, and n/4/0, n/4/2 unless kept
    assert fresh.inclusion_proof(20, 59) == proofs[(20, 59)]
    assert counting.scans == 1  # [48, 59): leaves 48-55 under node 3/6
    store.kv.write([], blocks, sync=True)
    older = Store(store.kv)
    assert {(i, n): older.inclusion_proof(i, n) for i, n in proofs} == proofs


@pytest.mark.parametrize("damage", ["a hash", "short", "no node above"])
def test_leaf_hashes_that_fail_their_check_are_not_used(damage: str, caplog: pytest.LogCaptureFixture) -> None:
    # h/ is a copy of what the envelopes give: a doubt about it costs a scan, not a proof.
    store = Store.memory()
    commit_synthetic(store, 0, 40)  # opening reads n/5/0 and leaves 32-39, never n/4/0
    want = store.inclusion_proof(3, 40)
    h0 = store.kv.get(keys.leaf_hashes_key(0))
    assert h0 is not None
    if damage == "a hash":
        _put(store, keys.leaf_hashes_key(0), bytes(32) + h0[32:])
    elif damage == "short":
        _put(store, keys.leaf_hashes_key(0), h0[:-1])
    else:
        store.kv.write([], [keys.node_key(4, 0)], sync=True)
    fresh = Store(store.kv)  # nothing of the damaged keys in its memory
    assert fresh.inclusion_proof(3, 40) == want
    assert fresh.leaf_blocks_refused == 1
    assert "leaves 0 to 15 (h/)" in caplog.text and "read their envelopes instead" in caplog.text


def test_a_commit_that_completes_a_block_of_16_over_a_missing_earlier_leaf_is_store_corrupt() -> None:
    store = Store.memory()
    commit_synthetic(store, 0, 10)
    store.kv.write([], [keys.leaf_key(4)], sync=True)
    checked, qc = synth_block(store, [synth_envelope(i) for i in range(10, 20)])
    with pytest.raises(StoreCorrupt, match="leaves 0 to 9, committed before block 2, are missing or damaged"):
        store.commit(checked, qc)
    assert store.height == 1 and store.kv.get(keys.leaf_hashes_key(0)) is None


def test_subject_pages_of_the_answers_fit_the_store_page() -> None:
    """ledgernode/auditing/answers.py asks for one more record than it lists, to know whether
    more follow: both derive their page from records.SUBJECT_PAGE_MAX."""
    assert SUBJECT_PAGE_MAX == SUBJECT_ANSWER_MAX + 1
    assert answers.SUBJECT_PAGE_MAX == SUBJECT_ANSWER_MAX
    for listed_max in (answers.CERT_RECORDS_MAX, answers.SHARES_RECORDS_MAX):
        assert listed_max <= SUBJECT_ANSWER_MAX


# -- the read view: one head and frontier -------------------------------------------


def test_a_commit_swaps_the_tip_in_one_assignment() -> None:
    assigned: list[str] = []

    class Watched(Store):
        def __setattr__(self, name: str, value: Any) -> None:
            assigned.append(name)
            super().__setattr__(name, value)

    store = Watched(MemoryKV())
    before = store.tip
    assert isinstance(before, Tip) and before.header is None and before.height == before.log_size == 0
    assigned.clear()
    checked, qc = synth_block(store, [synth_envelope(i) for i in range(5)])
    store.commit(checked, qc)
    assert assigned == ["_tip"]  # readers see the old tip or the new one, nothing between
    after = store.tip
    assert (before.height, before.log_size) == (0, 0)  # a reader's tip is never changed under it
    assert after.header == checked.block.header and after.height == 1 and after.log_size == 5
    assert store.head() is after.header and store.frontier is after.frontier
    assert (store.height, store.log_size) == (after.height, after.log_size)
    with pytest.raises(AttributeError):
        after.header = None  # type: ignore[misc]
    checked.frontier.append(merkle.leaf_hash(b"later"))  # the caller's copy, not the store's
    assert store.log_size == 5 and store.frontier.root() == after.header.log_root


def test_a_reader_thread_always_sees_a_head_and_its_frontier() -> None:
    store, stop = Store.memory(), threading.Event()
    torn: list[tuple[int, int]] = []
    reads = 0

    def read() -> None:
        nonlocal reads
        while not stop.is_set():
            tip = store.tip
            header_size = tip.header.log_size if tip.header else 0
            header_root = tip.header.log_root if tip.header else merkle.EMPTY_ROOT
            if tip.log_size != header_size or tip.frontier.root() != header_root:
                torn.append((tip.height, tip.log_size))
            reads += 1

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for start in range(0, 600, 3):
            commit_synthetic(store, start, 3)
    finally:
        stop.set()
        reader.join(CHILD_TIMEOUT_S)
    assert torn == [] and reads > 0 and store.height == 200


def test_a_reader_thread_proves_the_heads_lists_while_blocks_commit(tmp_path: Path) -> None:
    """The state map is read at the head under one consistent view (the tip's header):
    every list entry a reader proves against its tip's `state` lists exactly the leaves
    of that subject below the tip's log size, while the writer keeps committing."""
    store, stop = Store.open(tmp_path / "db"), threading.Event()
    wrong: list[str] = []
    reads = 0
    subject_path = statemap.path("subject", "case-A")

    def read() -> None:
        nonlocal reads
        while not stop.is_set():
            tip = store.tip
            if tip.header is None:
                continue
            state = store.map_at(tip.header.state)
            value = state.get(subject_path)
            if not statemap.verify(tip.header.state, subject_path, value, state.prove(subject_path)):
                wrong.append(f"height {tip.height}: the proof fails")
            n = 0 if value is None else statemap.parse_list_value(value)[0]
            leaves = store.list_nodes(subject_path).leaves(0, n)
            if leaves != list(range(0, tip.log_size, 2)):  # case-A holds every even leaf
                wrong.append(f"height {tip.height}: lists {len(leaves)} leaves for log size {tip.log_size}")
            reads += 1

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for start in range(0, 400, 4):
            checked, qc = synth_block(store, [synth_envelope(i, "case-A" if i % 2 == 0 else "case-B")
                                              for i in range(start, start + 4)])
            store.commit(checked, qc)
    finally:
        stop.set()
        reader.join(CHILD_TIMEOUT_S)
        store.close()
    assert wrong == [] and reads > 0


def test_opening_a_store_whose_state_root_node_is_gone_is_store_corrupt(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "db")
    commit_synthetic(store, 0, 5)
    root = store.head().state
    store.kv.write([], [keys.map_node_key(root)], sync=True)
    store.close()
    with pytest.raises(StoreCorrupt, match="state map's root node"):
        Store.open(tmp_path / "db")


# -- bytes on disk that fail a check: StoreCorrupt, with or without asserts ---------


def _small_store() -> Store:
    """Three blocks, 28 leaves: Merkle node 4/0 is stored; leaf i is about subject-{i % 7}."""
    store = Store.memory()
    for start, count in ((0, 20), (20, 3), (23, 5)):
        commit_synthetic(store, start, count)
    store.kv.write([(keys.fact_key("cert", "C"), codec.encode({"status": "valid"}))], [], sync=True)
    return store


def _copy(store: Store, key: bytes, to: bytes) -> None:
    store.kv.write([(to, store.kv.get(key) or b"")], [], sync=True)


def _put(store: Store, key: bytes, value: bytes) -> None:
    store.kv.write([(key, value)], [], sync=True)


# name -> (damage, the read that meets it, what StoreCorrupt says)
CORRUPTIONS: dict[str, tuple[Callable[[Store], None], Callable[[Store], object], str]] = {
    "header under another height": (lambda s: _copy(s, keys.block_key(3), keys.block_key(2)),
                                    lambda s: s.load_header(2),
                                    "block 2: header stored under the wrong height (it is of block 3)"),
    "header scrubbed under another height": (lambda s: _copy(s, keys.block_key(3), keys.block_key(2)),
                                             lambda s: s.scrub_block(2),
                                             "block 2: header stored under the wrong height (it is of block 3)"),
    "header that does not decode": (lambda s: _put(s, keys.block_key(2), b"\x00garbage"),
                                    lambda s: s.load_header(2), "block 2: its stored header does not decode ("),
    "QC under another height": (lambda s: _copy(s, keys.qc_key(3), keys.qc_key(2)), lambda s: s.load_qc(2),
                                "block 2: QC stored under the wrong height (it is of block 3)"),
    "QC that does not decode": (lambda s: _put(s, keys.qc_key(2), b"\x90"), lambda s: s.load_qc(2),
                                "block 2: its stored QC does not decode ("),
    "envelope missing in a committed range": (lambda s: s.kv.write([], [keys.leaf_key(21)], sync=True),
                                              lambda s: s.load_envelopes(20, 23),
                                              "leaves 20 to 22: 2 envelopes stored, not 3"),
    # A store keeps the Merkle nodes it read in memory: a fresh one reads the damage.
    "Merkle node of the wrong length": (lambda s: _put(s, keys.node_key(4, 0), bytes(31)),
                                        lambda s: Store(s.kv).node(4, 0), "Merkle node 4/0 is 31 bytes, not 32"),
    "record index of the wrong length": (lambda s: _put(s, keys.record_key(synth_envelope(0).record_id), b"\x01"),
                                         lambda s: s.locate(synth_envelope(0).record_id),
                                         "index entry is 1 bytes, not 16"),
    "head that is not a height": (lambda s: _put(s, keys.HEAD_KEY, b"\x01"), lambda s: Store(s.kv),
                                  "m/head is 1 bytes, not a u64 height"),
    "fact that does not decode": (lambda s: _put(s, keys.fact_key("cert", "C"), b"\xc1"),
                                  lambda s: s.load_fact("cert", "C"), "fact cert/C: its stored value does not decode"),
    "fact that is not a map": (lambda s: _put(s, keys.fact_key("cert", "C"), codec.encode([1])),
                               lambda s: s.load_fact("cert", "C"), "fact cert/C: its stored value is not a map"),
    "evidence key of the wrong length": (lambda s: _put(s, keys.evidence_key(0) + b"\x00", b"case"),
                                         lambda s: s.load_evidence(), "is not a prefix and a u64"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_bytes_on_disk_that_fail_a_check_raise_store_corrupt(name: str) -> None:
    damage, read, message = CORRUPTIONS[name]
    store = _small_store()
    read(store)  # whole, it reads
    damage(store)
    with pytest.raises(StoreCorrupt) as exc:
        read(store)
    assert message in str(exc.value)


OPTIMIZED_CHILD = """
import sys
from ledgernode.errors import StoreCorrupt
from tests.unit.test_storage import CORRUPTIONS, _small_store
assert False, "asserts are on"  # skipped under -O
for name, (damage, read, message) in sorted(CORRUPTIONS.items()):
    store = _small_store()
    damage(store)
    try:
        read(store)
    except StoreCorrupt as exc:
        print("StoreCorrupt" if message in str(exc) else f"wrong message: {exc}", name)
    except Exception as exc:
        print(type(exc).__name__, name)
    else:
        print("no error", name)
"""


def test_the_checks_hold_under_python_dash_o() -> None:
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-O", "-c", OPTIMIZED_CHILD], capture_output=True, text=True,
                          cwd=repo, timeout=CHILD_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"StoreCorrupt {name}" for name in sorted(CORRUPTIONS)]


# -- LevelDB: reopen and locking --------------------------------------------


def _readable(store: Store) -> dict[str, Any]:
    """Everything a reader can ask of the populated store."""
    n = store.log_size
    return {
        "headers": [store.load_header(h).raw for h in range(1, store.height + 1)],
        "qcs": [store.load_qc(h) for h in range(1, store.height + 1)],
        "leaves": store.load_envelopes(0, n),
        "subjects": {s: store.subject_leaves(s) for s in ("case-A", "case-B", "prod-1", "CERT-1")},
        "facts": (store.load_fact("owner", "ds/population"), store.load_fact("cert", "CERT-1")),
        "proofs": [store.inclusion_proof(i, n) for i in range(n)],
        "consistency": [store.consistency_proof(m, n) for m in range(n + 1)],
    }


def test_reopen_keeps_blocks_indexes_and_facts(tmp_path: Path, net: Net) -> None:
    store = Store.open(tmp_path / "db")
    populate(net, store)
    head, n = store.head(), store.log_size
    snapshot = _readable(store)
    store.close()
    store = Store.open(tmp_path / "db")
    try:
        assert store.head() == head and store.log_size == n
        assert store.frontier.root() == head.log_root
        assert snapshot == _readable(store)
        for raw in snapshot["leaves"]:
            assert store.is_committed(decode_envelope(raw, net.genesis).record_id)
        commit_records(net, store, [evidence(net, "case-B", "after reopen")])  # appends on top
        assert store.height == head.height + 1 and store.subject_leaves("case-B")[-1] == n
    finally:
        store.close()


@pytest.mark.parametrize("n", [10_000, 16_383])
def test_reopen_reads_only_the_right_edge(tmp_path: Path, n: int) -> None:
    directory = tmp_path / "db"
    store = Store.open(directory)
    block = 1_000
    for start in range(0, n, block):
        commit_synthetic(store, start, min(block, n - start))
    head, root = store.head(), store.frontier.root()
    assert head is not None and head.log_size == n and root == head.log_root
    rng = random.Random(n)
    pairs = [(rng.randrange(n), rng.randint(1, n)) for _ in range(50)]
    pairs = [(min(i, size - 1), size) for i, size in pairs]
    incl = [store.inclusion_proof(i, size) for i, size in pairs]
    cons = [store.consistency_proof(m, size) for m, size in pairs]
    records = [store.locate(synth_envelope(i).record_id) for i in (0, n // 2, n - 1)]
    store.close()

    counting = CountingKV(LevelKV(directory))
    reopened = Store(counting)
    try:
        # head key + head header + one read per set bit of n: a stored node for a
        # subtree of 16 leaves or more, and one scan of the last block of fewer than 16
        # envelopes for the bits below; then the whole-store check: block 1, the head's
        # QC, the first and last leaf, the state map's root node (the map itself is not
        # read: it is never rebuilt) and one scan for a key of an earlier layout
        assert counting.gets <= 2 * math.log2(n) + 10, counting.gets
        low = n & ((1 << NODE_LEVEL_STORED_MIN) - 1)
        assert counting.gets == 2 + bin(n >> NODE_LEVEL_STORED_MIN).count("1") + 5
        assert counting.scans == (1 if low else 0) + 1
        assert reopened.head() == head and reopened.head().raw == head.raw
        assert reopened.height == head.height and reopened.log_size == n
        assert reopened.frontier.root() == root
        assert [reopened.inclusion_proof(i, size) for i, size in pairs] == incl
        assert [reopened.consistency_proof(m, size) for m, size in pairs] == cons
        assert [reopened.locate(synth_envelope(i).record_id) for i in (0, n // 2, n - 1)] == records
        # and it keeps appending where it left off
        commit_synthetic(reopened, n, 3)
        assert reopened.log_size == n + 3
        assert reopened.frontier.root() == merkle.root(reopened, n + 3)
    finally:
        reopened.close()


def test_store_locked(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    first = Store.open(directory)
    try:
        with pytest.raises(StoreLocked):
            Store.open(directory)
    finally:
        first.close()
    again = Store.open(directory)  # the lock goes with the close
    again.close()


# -- proofs against the naive RFC reference ---------------------------------


def _max_reads(size: int) -> int:
    """Node reads a proof may cost: one per level plus one ragged right edge.

    Stays within the 4 * log2(size) an O(log n) proof is allowed."""
    return 2 * math.ceil(math.log2(max(size, 2))) + 1


def test_every_proof_up_to_300_leaves(tmp_path: Path) -> None:
    """One growing LevelDB store, one leaf per block; after each append check
    the root, every inclusion proof and every consistency proof."""
    counting = CountingKV(LevelKV(tmp_path / "db"))
    store = Store(counting)
    naive = Naive()
    try:
        for n in range(1, 301):
            env = synth_envelope(n - 1)
            naive.leaves.append(env.leaf_hash)
            checked, qc = synth_block(store, [env])
            store.commit(checked, qc)
            root = naive.mth(0, n)
            assert store.log_size == n
            assert store.frontier.root() == root == store.head().log_root
            assert merkle.root(store, n) == root
            for i in range(n):
                before = counting.gets
                proof = store.inclusion_proof(i, n)
                assert counting.gets - before <= _max_reads(n)
                assert proof == naive.path(i, n), (i, n)
                assert merkle.verify_inclusion(naive.leaves[i], i, n, proof, root)
            assert store.consistency_proof(0, n) == []
            for m in range(1, n + 1):
                before = counting.gets
                proof = store.consistency_proof(m, n)
                assert counting.gets - before <= _max_reads(n)
                assert proof == naive.proof(m, n), (m, n)
                assert merkle.verify_consistency(m, n, naive.mth(0, m), root, proof)
    finally:
        store.close()


BIG_N = 100_000


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, CountingKV, Naive]]:
    """A 100,000-leaf LevelDB store built from 20 synthetic blocks of 5,000."""
    counting = CountingKV(LevelKV(tmp_path_factory.mktemp("big") / "db"))
    store = Store(counting)
    naive = Naive()
    block = 5_000
    try:
        for start in range(0, BIG_N, block):
            envs = [synth_envelope(i) for i in range(start, start + block)]
            naive.leaves.extend(e.leaf_hash for e in envs)
            store.commit(*synth_block(store, envs))
        yield store, counting, naive
    finally:
        store.close()


def _random_pairs(rng: random.Random, count: int) -> list[tuple[int, int]]:
    """(a, size) with 0 <= a < size <= BIG_N, plus edge cases."""
    pairs = [(0, 1), (0, BIG_N), (BIG_N - 1, BIG_N), (1, 2), (65_535, 65_536), (65_536, 65_537),
             (2**16 - 1, BIG_N), (99_998, 99_999), (0, 2**16), (12_345, 2**15 + 12_346)]
    while len(pairs) < count:
        size = rng.choice([rng.randint(1, BIG_N), 2 ** rng.randint(0, 16), BIG_N])
        pairs.append((rng.randrange(size), size))
    return pairs


def test_big_tree_root_and_headers(big: tuple[Store, CountingKV, Naive]) -> None:
    store, _, naive = big
    assert store.log_size == BIG_N and store.height == 20
    assert store.frontier.root() == naive.mth(0, BIG_N) == store.head().log_root
    for height in range(1, store.height + 1):
        header = store.load_header(height)
        assert header.log_root == naive.mth(0, header.log_size)


def test_big_tree_inclusion_proofs(big: tuple[Store, CountingKV, Naive]) -> None:
    store, counting, naive = big
    rng = random.Random(9162)
    for index, size in _random_pairs(rng, 200):
        before = counting.gets
        proof = store.inclusion_proof(index, size)
        assert counting.gets - before <= _max_reads(size), (index, size, counting.gets - before)
        assert proof == naive.path(index, size), (index, size)
        root = naive.mth(0, size)
        assert merkle.verify_inclusion(naive.leaves[index], index, size, proof, root)
        # a proof never verifies for a neighbouring leaf or against another root
        if size > 1:
            other = index + 1 if index + 1 < size else index - 1
            assert not merkle.verify_inclusion(naive.leaves[other], index, size, proof, root)
        assert not merkle.verify_inclusion(naive.leaves[index], index, size, proof, bytes(32))


def test_inclusion_proofs_together_equal_each_alone_and_share_their_reads(
        big: tuple[Store, CountingKV, Naive]) -> None:
    """Many proofs in one log (an answer's records) give each proof as computed alone; their
    shared nodes (the log's right edge) are read once, so together they read fewer keys."""
    store, counting, naive = big
    size = store.log_size - 1  # a last block of 15 leaves: every proof needs its nodes
    leaves = random.Random(74).sample(range(size), 10)
    reads = []
    for together in (True, False):
        fresh = Store(counting)  # its own memory of stored nodes, empty
        before = counting.gets + counting.scans
        proofs = (fresh.inclusion_proofs(leaves, size) if together
                  else [fresh.inclusion_proof(leaf, size) for leaf in leaves])
        reads.append(counting.gets + counting.scans - before)
        assert proofs == [naive.path(leaf, size) for leaf in leaves]
    assert reads[0] < reads[1]
    assert store.inclusion_proofs([], size) == []


def test_big_tree_consistency_proofs(big: tuple[Store, CountingKV, Naive]) -> None:
    store, counting, naive = big
    rng = random.Random(6962)
    for a, n in _random_pairs(rng, 200):
        m = a + 1  # 1 <= m <= n
        before = counting.gets
        proof = store.consistency_proof(m, n)
        assert counting.gets - before <= _max_reads(n), (m, n, counting.gets - before)
        assert proof == naive.proof(m, n), (m, n)
        old_root, new_root = naive.mth(0, m), naive.mth(0, n)
        assert merkle.verify_consistency(m, n, old_root, new_root, proof)
        if m < n:
            assert not merkle.verify_consistency(m, n, new_root, new_root, proof)


# -- crash safety -----------------------------------------------------------


class Child:
    """The crash writer as a subprocess; a thread reads its stdout lines and
    notes when each arrived."""

    def __init__(self, directory: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CRASH_WRITER), str(directory)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: queue.Queue[tuple[float, str] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line.strip()))
        self.lines.put(None)

    def next_line(self, timeout: float = CHILD_TIMEOUT_S) -> tuple[float, str]:
        try:
            item = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"crash writer {self.proc.pid} printed nothing within {timeout} s") from None
        if item is None:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"crash writer exited early: {err}")
        return item

    def kill(self) -> list[str]:
        """SIGKILL the child by its pid; return every line it printed after the last read."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=CHILD_TIMEOUT_S)
        self._reader.join(timeout=CHILD_TIMEOUT_S)
        rest = []
        while (item := self.lines.get(timeout=CHILD_TIMEOUT_S)) is not None:
            rest.append(item[1])
        return rest


class Expected:
    """What block `height` of the crash writer holds: leaf hashes, ids, raws."""

    def __init__(self) -> None:
        self.blocks: dict[int, list[Any]] = {}
        self.naive = Naive()

    def block(self, height: int) -> list[Any]:
        for h in range(len(self.blocks) + 1, height + 1):
            envs = crash_block_envelopes(h, CRASH_LEAVES)
            self.blocks[h] = envs
            self.naive.leaves.extend(e.leaf_hash for e in envs)
        return self.blocks[height]


def check_crashed_store(directory: Path, expected: Expected) -> int:
    """Reopen after a kill; check every block 1..head whole and nothing above head."""
    store = Store.open(directory)  # raises StoreCorrupt if the edge does not match the head
    try:
        head = store.head()
        assert head is not None
        top = head.height
        size = top * CRASH_LEAVES
        assert store.log_size == head.log_size == size
        expected.block(top)
        assert store.frontier.root() == head.log_root == expected.naive.mth(0, size)
        for h in range(1, top + 1):
            header = store.load_header(h)
            qc = store.load_qc(h)
            assert qc.height == h and qc.block_hash == header.block_hash
            assert header.log_start == (h - 1) * CRASH_LEAVES and header.log_size == h * CRASH_LEAVES
            assert header.log_root == expected.naive.mth(0, header.log_size)
            envs = expected.block(h)
            assert store.load_envelopes(header.log_start, header.log_size) == [e.raw for e in envs]
            for offset, env in enumerate(envs):
                assert store.locate(env.record_id) == (header.log_start + offset, h)
            key, value = crash_fact(h)
            assert store.load_fact(*key) == value
        for s in range(7):
            assert all_pages(store, f"subject-{s}", SUBJECT_PAGE_MAX) == [
                i for i in range(size) if subject_of(i) == f"subject-{s}"]

        # nothing of any block above the head: count every prefix's keys (the literal
        # prefixes of docs/storage.md, "Key layout": the contract, not storage/keys.py)
        def stored_keys(prefix: bytes) -> list[bytes]:
            return [k for k, _ in store.kv.scan(prefix, prefix + b"\xff" * 9)]

        assert len(stored_keys(b"b/")) == top == len(stored_keys(b"q/"))
        assert stored_keys(b"b/")[-1] == b"b/" + top.to_bytes(8, "big")
        assert stored_keys(b"q/")[-1] == b"q/" + top.to_bytes(8, "big")
        e_keys = stored_keys(b"e/")
        assert len(e_keys) == size and e_keys[-1] == b"e/" + (size - 1).to_bytes(8, "big")
        assert len(stored_keys(b"r/")) == size
        assert len([k for k, _ in store.kv.scan(b"p/", b"p0")]) == size  # each record in its subject's list
        assert stored_keys(b"s/") == []  # the subject index of before version 2 is the lists' positions now
        assert len(stored_keys(b"f/")) == top
        for level in range(size.bit_length() + 1):
            stored = stored_keys(b"n/" + bytes([level]))
            # exactly the complete subtrees of 16 leaves or more; smaller ones are rehashed
            assert len(stored) == (size >> level if level >= NODE_LEVEL_STORED_MIN else 0), level
        assert store.kv.get(b"m/head") == top.to_bytes(8, "big")
        following = crash_block_envelopes(top + 1, CRASH_LEAVES)
        assert not any(store.is_committed(e.record_id) for e in following)
        assert store.load_fact(*crash_fact(top + 1)[0]) is None
        with pytest.raises(NotFound):
            store.load_header(top + 1)
        return top
    finally:
        store.close()


@pytest.mark.slow
def test_sigkill_mid_commit_keeps_whole_blocks(tmp_path: Path) -> None:
    """SIGKILL the writer 10 times, reusing its directory, and check the store
    after each kill. Rounds 1, 4, 7 kill at a random moment of the loop; the
    others aim at a random point inside `Store.commit`: after the child says
    `commit H`, wait a random fraction of the commit time measured so far."""
    directory = tmp_path / "db"
    rng = random.Random(20260101)
    expected = Expected()
    head = 0
    acked_max = 0
    rounds = 10
    for round_ in range(rounds):
        child = Child(directory)
        acked: list[int] = []
        durations: list[float] = []
        announced = 0.0
        try:
            assert child.next_line()[1] == f"start {head}"  # resumes at the durable head
            wanted = rng.randint(2, 5)
            while len(acked) < wanted:
                at, line = child.next_line()
                if line.startswith("commit "):
                    announced = at
                else:
                    acked.append(int(line))
                    durations.append(at - announced)
            if round_ == 0:
                # another process holds the directory while the child runs
                with pytest.raises(StoreLocked):
                    Store.open(directory)
            if round_ % 3 == 1:
                time.sleep(rng.uniform(0.0, 0.4))
            else:
                commit_time = sorted(durations)[len(durations) // 2]
                while not (line := child.next_line()[1]).startswith("commit "):
                    acked.append(int(line))
                time.sleep(rng.uniform(0.0, commit_time))
            acked.extend(int(line) for line in child.kill() if not line.startswith("commit "))
        finally:
            if child.proc.poll() is None:
                os.kill(child.proc.pid, signal.SIGKILL)
                child.proc.wait(timeout=CHILD_TIMEOUT_S)
        assert acked == list(range(head + 1, head + 1 + len(acked)))
        acked_max = max(acked_max, acked[-1])
        new_head = check_crashed_store(directory, expected)
        # acknowledged means durable; and nothing committed is ever lost
        assert acked_max <= new_head, (acked_max, new_head)
        assert new_head >= head
        head = new_head
    assert head >= rounds * 2


def test_evidence_is_kept_in_order_and_read_back_in_pages(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "ev")
    for seq in range(5):
        store.save_evidence(seq, b"case-%d" % seq)
    store.close()
    store = Store.open(tmp_path / "ev")  # kept on disk
    assert store.load_evidence() == [(i, b"case-%d" % i) for i in range(5)]
    assert store.load_evidence(after=1, limit=2) == [(2, b"case-2"), (3, b"case-3")]
    assert store.load_evidence(after=4) == []
    store.close()
