"""Headers, block validity and commit certificates (docs/protocol.md sections 6 and 7)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from dataclasses import replace
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgernode import codec, ledgermap, statemap
from ledgernode.blocks import (
    BLOCK_TIME_DRIFT_MS,
    HEADER_KEYS,
    QC,
    QC_SIGNATURES_MAX,
    ZERO_HASH,
    Block,
    Header,
    build_block,
    check_block,
    check_qc,
    decode_header,
    decode_qc,
    map_change,
    payload_matches,
    qc_from_json,
    qc_from_wire,
    vote_bytes,
)
from ledgernode.errors import InvalidInput
from ledgernode.genesis import Genesis, build, parse
from ledgernode.records import Envelope, decode_envelope
from ledgernode.storage import Store
from tests.fixtures import T0, Net, commit_records, content, seeded_key

NET = Net()
G = NET.genesis


def small_genesis(block_max_records: int) -> Genesis:
    """Same chain, validators and clients as NET, with a smaller block size."""
    doc = json.loads(G.raw)
    return parse(build(doc["chain_id"], doc["validators"], doc["clients"],
                       {"block_max_records": block_max_records}))


def notarize(client: int = 0, subject: str = "EV-1", **kw: Any) -> bytes:
    body = {"content_hash": content(subject), "media_type": "text/plain", "size": 1, "title": "t"}
    return NET.record(client, "evidence.notarize", subject, body, **kw)


def env(raw: bytes) -> Envelope:
    return decode_envelope(raw, G)


def with_sig(e: Envelope, sig: bytes) -> Envelope:
    return decode_envelope(codec.encode([e.record_bytes, sig]), G)


def make_block(store: Store, envs: list[Envelope], time: int | None = None, **changes: Any) -> Block:
    """A block over `envs` on the store's head with a correct header, then `changes` applied."""
    parent = store.head()
    grown = store.frontier.copy()
    for e in envs:
        grown.append(e.leaf_hash)
    header = Header(
        G.chain_id, parent.height + 1 if parent else 1,
        time if time is not None else (parent.time + 1 if parent else T0),
        parent.block_hash if parent else ZERO_HASH, 0,
        store.frontier.size, grown.size, grown.root(), G.valset_hash,
        map_change(tuple(envs), store.frontier.size, parent, store, G).root,
    )
    header = replace(header, **changes)
    return Block(replace(header, raw=header.encode()), tuple(envs))


def check(store: Store, block: Block, genesis: Genesis = G, **kw: Any):  # type: ignore[no-untyped-def]
    return check_block(block, store.head(), store, store.frontier, genesis, **kw)


def invalid(store: Store, block: Block, code: str = "invalid_block", needle: str | None = None,
            genesis: Genesis = G, **kw: Any) -> InvalidInput:
    size = store.frontier.size
    with pytest.raises(InvalidInput) as info:
        check(store, block, genesis, **kw)
    assert info.value.code == code, info.value
    if needle is not None:
        assert needle in info.value.message, info.value.message
    assert store.frontier.size == size
    return info.value


@pytest.fixture
def store() -> Store:
    """A store holding block 1 (two records) at time T0."""
    s = Store.memory()
    commit_records(NET, s, [notarize(0, "EV-a"), notarize(1, "EV-b")], time_ms=T0)
    return s


# -- headers --------------------------------------------------------------------


def header_map(**changes: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "v": 2, "chain": "gov-test", "height": 7, "time": T0, "prev": b"\x01" * 32, "proposer": 2,
        "log_start": 10, "log_size": 12, "log_root": b"\x02" * 32, "valset": b"\x03" * 32,
        "state": b"\x04" * 32,
    }
    m.update(changes)
    return m


def bad_header(raw: bytes, code: str = "invalid_header") -> None:
    with pytest.raises(InvalidInput) as info:
        decode_header(raw)
    assert info.value.code == code, info.value


@settings(max_examples=60, deadline=None)
@given(
    chain=st.text(min_size=0, max_size=40),
    height=st.integers(1, 2**64 - 1),
    time=st.integers(0, 2**64 - 1),
    proposer=st.integers(0, 2**64 - 1),
    log_start=st.integers(0, 2**40),
    extra=st.integers(0, 2**40),
    hashes=st.lists(st.binary(min_size=32, max_size=32), min_size=4, max_size=4),
)
def test_header_round_trip(chain: str, height: int, time: int, proposer: int, log_start: int,
                           extra: int, hashes: list[bytes]) -> None:
    h = Header(chain, height, time, hashes[0], proposer, log_start, log_start + extra, hashes[1], hashes[2], hashes[3])
    raw = h.encode()
    d = decode_header(raw)
    assert d == h and d.raw == raw and d.encode() == raw
    assert d.block_hash == h.block_hash == hashlib.sha256(b"ledgernode:header\n" + raw).digest()
    m = msgpack.unpackb(raw, raw=False)
    assert set(m) == HEADER_KEYS and m["v"] == 2
    assert raw == msgpack.packb(dict(sorted(m.items())), use_bin_type=True)


def test_header_hash_uses_raw_bytes() -> None:
    h = Header("gov-test", 1, T0, ZERO_HASH, 0, 0, 0, hashlib.sha256(b"").digest(), G.valset_hash, ZERO_HASH)
    raw = h.encode()
    assert replace(h, raw=raw).block_hash == h.block_hash
    assert decode_header(raw).block_hash == hashlib.sha256(b"ledgernode:header\n" + raw).digest()
    # the hash is over the bytes a header arrived in, which decode keeps
    assert replace(h, raw=b"other bytes").block_hash != h.block_hash


@pytest.mark.parametrize("key", sorted(HEADER_KEYS))
def test_decode_header_rejects_missing_key(key: str) -> None:
    m = header_map()
    del m[key]
    bad_header(codec.encode(m))


def test_decode_header_rejects_extra_key() -> None:
    bad_header(codec.encode(header_map(round=0)))
    bad_header(codec.encode(header_map(extra=b"")))


@pytest.mark.parametrize("name", ["prev", "log_root", "valset"])
@pytest.mark.parametrize("value", [b"\x00" * 31, b"\x00" * 33, b"", "00" * 32, None, 0])
def test_decode_header_rejects_wrong_hash_length(name: str, value: Any) -> None:
    bad_header(codec.encode(header_map(**{name: value})))


@pytest.mark.parametrize("name", ["v", "height", "time", "proposer", "log_start", "log_size"])
@pytest.mark.parametrize("value", [True, False])
def test_decode_header_rejects_bools_as_ints(name: str, value: bool) -> None:
    bad_header(codec.encode(header_map(**{name: value})))


@pytest.mark.parametrize("name", ["height", "time", "proposer", "log_start", "log_size"])
@pytest.mark.parametrize("value", [-1, "1", None, b"\x01"])
def test_decode_header_rejects_non_int_or_negative(name: str, value: Any) -> None:
    bad_header(codec.encode(header_map(**{name: value})))


def test_decode_header_rejects_height_zero() -> None:
    bad_header(codec.encode(header_map(height=0)))
    assert decode_header(codec.encode(header_map(height=1))).height == 1


def test_decode_header_log_start_vs_log_size() -> None:
    bad_header(codec.encode(header_map(log_start=13, log_size=12)))
    d = decode_header(codec.encode(header_map(log_start=12, log_size=12)))
    assert d.log_start == d.log_size == 12


@pytest.mark.parametrize("v", [0, 1, 3, "2", None, True])
def test_decode_header_rejects_wrong_version(v: Any) -> None:
    bad_header(codec.encode(header_map(v=v)))


@pytest.mark.parametrize("chain", [b"gov-test", 1, None])
def test_decode_header_rejects_non_str_chain(chain: Any) -> None:
    bad_header(codec.encode(header_map(chain=chain)))


def test_decode_header_rejects_non_canonical_bytes() -> None:
    m = header_map()
    canonical = codec.encode(m)
    assert decode_header(canonical) == decode_header(canonical)
    unsorted = msgpack.packb(dict(sorted(m.items(), reverse=True)), use_bin_type=True)
    bad_header(unsorted, "non_canonical")
    long_height = canonical.replace(b"\xa6height\x07", b"\xa6height\xcf" + (7).to_bytes(8, "big"))
    assert long_height != canonical
    bad_header(long_height, "non_canonical")
    bad_header(canonical + b"\xc0", "trailing_bytes")
    bad_header(canonical[:-1], "malformed")
    bad_header(canonical + b"\x00" * 1024, "too_large")


@pytest.mark.parametrize("value", [[1, 2], "header", 5, None])
def test_decode_header_rejects_non_map(value: Any) -> None:
    with pytest.raises(InvalidInput):
        decode_header(codec.encode(value))


# -- check_block ------------------------------------------------------------------


def test_check_block_accepts_valid_block(store: Store) -> None:
    envs = [env(notarize(2, "EV-c")), env(notarize(3, "EV-d"))]
    block = make_block(store, envs)
    checked = check(store, block)
    assert checked.block is block
    assert checked.frontier.size == 4 and checked.frontier.root() == block.header.log_root
    assert store.frontier.size == 2  # the store's frontier is not touched
    leaves = [n for n in checked.nodes if n[0] == 0]
    assert leaves == [(0, 2, envs[0].leaf_hash), (0, 3, envs[1].leaf_hash)]
    store.commit(checked, NET.qc(checked))
    assert store.height == 2 and store.log_size == 4


def test_check_block_first_block() -> None:
    s = Store.memory()
    block = make_block(s, [env(notarize())], time=T0)
    assert block.header.prev == ZERO_HASH and block.header.height == 1 and block.header.log_start == 0
    check(s, block)
    invalid(s, make_block(s, [env(notarize())], height=2), needle="height")
    invalid(s, make_block(s, [env(notarize())], prev=b"\x01" * 32), needle="prev")
    # an empty first block at time 0 is fine
    check(s, make_block(s, [], time=0))


def test_check_block_rejects_wrong_chain_or_valset(store: Store) -> None:
    invalid(store, make_block(store, [], chain="other-chain"), needle="chain or valset")
    invalid(store, make_block(store, [], valset=content("other valset")), needle="chain or valset")
    other = Net(n=5)  # another validator set on the same chain id
    invalid(store, make_block(store, [], valset=other.genesis.valset_hash))


def test_check_block_rejects_wrong_height_prev_log_start(store: Store) -> None:
    check(store, make_block(store, []))
    for changes in ({"height": 3}, {"height": 1}, {"prev": ZERO_HASH}, {"prev": content("x")},
                    {"log_start": 3, "log_size": 3}, {"log_start": 1}):
        invalid(store, make_block(store, [], **changes), needle="height, prev or log_start")


def test_check_block_time_after_parent(store: Store) -> None:
    parent_time = store.head().time
    check(store, make_block(store, [], time=parent_time + 1))
    invalid(store, make_block(store, [], time=parent_time), needle="block time")
    invalid(store, make_block(store, [], time=parent_time - 1), needle="block time")


def test_check_block_time_drift(store: Store) -> None:
    t = store.head().time + 1000
    block = make_block(store, [], time=t)
    check(store, block, now_ms=t - BLOCK_TIME_DRIFT_MS)  # exactly at the drift limit
    check(store, block, now_ms=t)
    check(store, block)  # no clock, no drift check
    invalid(store, block, now_ms=t - BLOCK_TIME_DRIFT_MS - 1, needle="ahead")


def test_check_block_proposer_index(store: Store) -> None:
    for p in range(G.n):
        check(store, make_block(store, [], proposer=p))
    for p in (G.n, G.n + 1, 2**32):
        invalid(store, make_block(store, [], proposer=p), needle="proposer")


def test_check_block_too_many_records(store: Store) -> None:
    g2 = small_genesis(2)
    assert g2.valset_hash == G.valset_hash and g2.chain_id == G.chain_id
    two = [env(notarize(0, f"EV-{i}")) for i in range(2)]
    three = two + [env(notarize(0, "EV-2"))]
    check(store, make_block(store, two), genesis=g2)
    invalid(store, make_block(store, three), genesis=g2, needle="more than 2")
    check(store, make_block(store, three))  # fine under the default limit


def test_check_block_rejects_wrong_log_size_or_root(store: Store) -> None:
    envs = [env(notarize(2, "EV-c"))]
    good = make_block(store, envs)
    for changes in ({"log_size": 4}, {"log_size": 2}, {"log_root": content("root")},
                    {"log_root": store.head().log_root}):
        invalid(store, make_block(store, envs, **changes), needle="log_size or log_root")
    # the right header with the records in another order or one left out
    two = [env(notarize(2, "EV-c")), env(notarize(3, "EV-d"))]
    swapped = Block(make_block(store, two).header, tuple(reversed(two)))
    invalid(store, swapped, needle="log_root")
    invalid(store, Block(good.header, ()), needle="log_size")


def test_check_block_rejects_a_wrong_state(store: Store) -> None:
    """Validators agree on `state` as on `log_root` (docs/protocol.md section 12.1): a
    proposal whose state map root is not the one its records make is an invalid block."""
    envs = [env(notarize(2, "EV-c")), env(notarize(3, "EV-c"))]
    good = make_block(store, envs)
    check(store, good)
    parent = store.head()
    one_left_out = map_change(tuple(envs[:1]), store.frontier.size, parent, store, G).root
    for state in (ZERO_HASH, parent.state, one_left_out, content("state")):
        assert state != good.header.state
        invalid(store, make_block(store, envs, state=state), needle="header state does not match")


def test_the_proposers_state_is_the_root_of_the_whole_map() -> None:
    """The state built block by block equals the naive root over every entry: the genesis
    keys, depts and validators, and every subject's and referrer's full list."""
    store = Store.memory()
    entries = dict(ledgermap.initial_entries(G))
    listed: dict[bytes, list[int]] = {}
    refs: tuple[bytes, ...] = ()
    for height in range(3):
        parent = store.head()
        envs = [env(notarize(i, f"EV-{i % 2}", refs=refs if i == 0 else ())) for i in range(3)]
        refs = (envs[1].record_id,)
        checked, rejected = build_block(envs, parent, store, store.frontier, G, T0 + 5 + height, 0)
        assert not rejected
        store.commit(checked, QC(checked.block.header.height, 0, checked.block.header.block_hash, ()))
        for offset, e in enumerate(envs):
            start = parent.log_size if parent else 0
            for ns, name, leaf in ledgermap.record_appends(start + offset, e.record.subject, e.record.refs):
                listed.setdefault(statemap.path(ns, name), []).append(leaf)
    entries.update({p: statemap.list_value(leaves) for p, leaves in listed.items()})
    assert any(p == statemap.path("refby", refs[0]) or len(v) > 1 for p, v in listed.items())
    assert store.head().state == statemap.root_of(entries)


def test_check_block_rejects_invalid_record(store: Store) -> None:
    ok = env(notarize(2, "EV-c"))
    flipped = bytearray(ok.sig)
    flipped[0] ^= 1
    bad_sig = with_sig(env(notarize(2, "EV-x")), bytes(flipped))
    stranger = decode_envelope(NET.record(0, "evidence.notarize", "EV-s", {
        "content_hash": content("s"), "media_type": "m", "size": 1, "title": "t"},
        key=seeded_key("stranger")), G)
    same_subject = env(notarize(0, "EV-a"))  # a new record about a subject of block 1: fine
    first = store.load_envelope(0)
    replay = decode_envelope(first, G)
    late_ts = env(notarize(2, "EV-late", ts=T0 + 10 * G.record_ts_window_ms))
    later = env(notarize(3, "EV-later"))
    forward_ref = env(NET.record(3, "trace.event", "LOT", {"activity": "a"}, refs=(later.record_id,)))
    cases = [
        ([ok, bad_sig], "bad_signature"),
        ([stranger], "unknown_key"),
        ([ok, ok], "duplicate"),
        ([replay], "duplicate"),
        ([late_ts], "ts_window"),
        ([forward_ref, later], "rule_violation"),
        ([env(NET.record(1, "cert.suspend", "CERT-0", {"reason": "r", "effective": T0}))], "rule_violation"),
    ]
    for envs, code in cases:
        invalid(store, make_block(store, envs), code)
    check(store, make_block(store, [ok, same_subject, later, env(NET.record(
        3, "trace.event", "LOT", {"activity": "a"}, refs=(later.record_id,)))]))
    # a pre-checked signature is trusted, but an unregistered key is still caught
    invalid(store, make_block(store, [stranger]), "unknown_key", sigs_checked=True)


# -- build_block --------------------------------------------------------------------


def test_build_block_skips_and_reports_invalid_candidates(store: Store) -> None:
    ok1 = env(NET.record(0, "dataset.publish", "DS-1", {
        "title": "t", "content_hash": content("c"), "schema_hash": content("s"), "classification": "public"}))
    flipped = bytearray(ok1.sig)
    flipped[5] ^= 0x80
    bad_sig = with_sig(env(notarize(1, "EV-bad")), bytes(flipped))
    not_owner = env(NET.record(1, "dataset.publish", "DS-1", {
        "title": "t", "content_hash": content("c"), "schema_hash": content("s"), "classification": "public"}))
    ok2 = env(notarize(2, "EV-ok"))
    stranger = decode_envelope(NET.record(0, "evidence.notarize", "EV-s", {
        "content_hash": content("s"), "media_type": "m", "size": 1, "title": "t"},
        key=seeded_key("stranger")), G)
    candidates = [ok1, bad_sig, ok1, not_owner, ok2, stranger]
    parent = store.head()
    checked, rejected = build_block(candidates, parent, store, store.frontier, G, parent.time + 5, 3)
    assert checked.block.envelopes == (ok1, ok2)
    assert [(e, x.code) for e, x in rejected] == [
        (bad_sig, "bad_signature"), (ok1, "duplicate"), (not_owner, "rule_violation"), (stranger, "unknown_key")]
    assert rejected[1][0] is candidates[2]
    h = checked.block.header
    assert (h.chain, h.height, h.time, h.prev, h.proposer, h.log_start, h.log_size, h.valset) == (
        G.chain_id, 2, parent.time + 5, parent.block_hash, 3, 2, 4, G.valset_hash)
    assert decode_header(h.raw) == h and h.raw == h.encode()
    assert h.log_root == checked.frontier.root()
    assert store.frontier.size == 2  # the store's frontier is untouched
    assert checked.facts == {("owner", "DS-1"): {"dept": "justice", "record": ok1.record_id.hex(),
                                                 "classification": "public", "grantees": {}}}
    again = check(store, checked.block)
    assert again.facts == checked.facts and again.nodes == checked.nodes


def test_build_block_time_after_parent(store: Store) -> None:
    parent = store.head()
    checked, _ = build_block([], parent, store, store.frontier, G, parent.time - 100, 0)
    assert checked.block.header.time == parent.time + 1
    check(store, checked.block)


def test_build_block_first_block_and_empty() -> None:
    s = Store.memory()
    checked, rejected = build_block([], None, s, s.frontier, G, T0, 1)
    h = checked.block.header
    assert rejected == [] and checked.block.envelopes == ()
    assert (h.height, h.prev, h.log_start, h.log_size, h.time) == (1, ZERO_HASH, 0, 0, T0)
    assert h.log_root == hashlib.sha256(b"").digest()
    check(s, checked.block)


def test_build_block_respects_block_max_records(store: Store) -> None:
    g2 = small_genesis(2)
    envs = [env(notarize(0, f"EV-{i}")) for i in range(5)]
    parent = store.head()
    checked, rejected = build_block(envs, parent, store, store.frontier, g2, parent.time + 1, 0)
    assert checked.block.envelopes == tuple(envs[:2]) and rejected == []
    check(store, checked.block, genesis=g2)


# -- commit certificates -------------------------------------------------------------


@pytest.fixture
def certified(store: Store):  # type: ignore[no-untyped-def]
    """Block 2 (checked, not committed) and its header."""
    checked = check(store, make_block(store, [env(notarize(2, "EV-q"))]))
    return checked, checked.block.header


def sigs(header: Header, indexes: list[int], round_: int = 0, chain: str | None = None,
         block_hash: bytes | None = None) -> tuple[tuple[int, bytes], ...]:
    msg = vote_bytes(chain or G.chain_id, header.height, round_, block_hash or header.block_hash)
    return tuple((i, NET.validators[i].sign(msg)) for i in indexes)


def qc_invalid(qc: QC, header: Header, needle: str | None = None, genesis: Genesis = G) -> None:
    with pytest.raises(InvalidInput) as info:
        check_qc(qc, header, genesis)
    assert info.value.code == "invalid_qc", info.value
    if needle is not None:
        assert needle in info.value.message, info.value.message


def test_vote_bytes_format() -> None:
    bh = content("block")
    expected = b"ledgernode:commit\n" + msgpack.packb(["gov-test", 7, 2, bh], use_bin_type=True)
    assert vote_bytes("gov-test", 7, 2, bh) == expected


def test_check_qc_accepts_quorum(certified) -> None:  # type: ignore[no-untyped-def]
    checked, header = certified
    assert G.quorum == 3
    check_qc(NET.qc(checked), header, G)
    for combo in itertools.combinations(range(G.n), G.quorum):
        check_qc(QC(header.height, 0, header.block_hash, sigs(header, list(combo))), header, G)
    check_qc(QC(header.height, 0, header.block_hash, sigs(header, [3, 1, 0, 2])), header, G)


def test_check_qc_rejects_below_quorum(certified) -> None:  # type: ignore[no-untyped-def]
    _, header = certified
    for combo in itertools.combinations(range(G.n), G.quorum - 1):
        qc_invalid(QC(header.height, 0, header.block_hash, sigs(header, list(combo))), header, "needs 3")
    qc_invalid(QC(header.height, 0, header.block_hash, ()), header)


def test_check_qc_rejects_duplicate_validator(certified) -> None:  # type: ignore[no-untyped-def]
    _, header = certified
    s = sigs(header, [0, 1, 2])
    qc_invalid(QC(header.height, 0, header.block_hash, (s[0], s[0], s[1])), header, "twice")
    qc_invalid(QC(header.height, 0, header.block_hash, s + (s[0],)), header, "twice")


@pytest.mark.parametrize("index", [4, 5, 255, -1])
def test_check_qc_rejects_unknown_index(certified, index: int) -> None:  # type: ignore[no-untyped-def]
    _, header = certified
    s = sigs(header, [0, 1, 2])
    qc_invalid(QC(header.height, 0, header.block_hash, s + ((index, s[0][1]),)), header, "unknown validator")


def test_check_qc_rejects_any_bad_signature(certified) -> None:  # type: ignore[no-untyped-def]
    _, header = certified
    good = sigs(header, [0, 1, 2])
    other_block = sigs(header, [3], block_hash=content("other"))[0][1]
    flipped = bytearray(sigs(header, [3])[0][1])
    flipped[7] ^= 4
    for bad in (bytes(64), b"", bytes(flipped), other_block, good[2][1], sigs(header, [3])[0][1][:63]):
        qc_invalid(QC(header.height, 0, header.block_hash, good + ((3, bad),)), header, "validator 3")
        qc_invalid(QC(header.height, 0, header.block_hash, ((3, bad),) + good), header, "validator 3")
    # a signature listed under another validator's index
    s = sigs(header, [0, 1, 2])
    qc_invalid(QC(header.height, 0, header.block_hash, (s[0], s[1], (3, s[2][1]))), header)


def test_check_qc_rejects_wrong_block(certified, store: Store) -> None:  # type: ignore[no-untyped-def]
    _, header = certified
    parent = store.head()
    qc_for_parent = QC(parent.height, 0, parent.block_hash, sigs(parent, [0, 1, 2]))
    check_qc(qc_for_parent, parent, G)
    qc_invalid(qc_for_parent, header, "different block")
    wrong_hash = QC(header.height, 0, content("x"), sigs(header, [0, 1, 2], block_hash=content("x")))
    qc_invalid(wrong_hash, header, "different block")
    wrong_height = QC(header.height + 1, 0, header.block_hash, sigs(header, [0, 1, 2]))
    qc_invalid(wrong_height, header, "different block")
    # a header differing in any field has another hash
    qc_invalid(QC(header.height, 0, header.block_hash, sigs(header, [0, 1, 2])),
               replace(header, time=header.time + 1, raw=b""), "different block")


def test_check_qc_round_must_match_signatures(certified) -> None:  # type: ignore[no-untyped-def]
    _, header = certified
    round1 = sigs(header, [0, 1, 2], round_=1)
    check_qc(QC(header.height, 1, header.block_hash, round1), header, G)
    qc_invalid(QC(header.height, 0, header.block_hash, round1), header, "does not verify")
    qc_invalid(QC(header.height, 2, header.block_hash, round1), header, "does not verify")
    mixed = sigs(header, [0, 1], round_=1) + sigs(header, [2], round_=0)
    qc_invalid(QC(header.height, 1, header.block_hash, mixed), header, "validator 2")


def test_check_qc_rejects_vote_for_other_chain(certified) -> None:  # type: ignore[no-untyped-def]
    _, header = certified
    qc_invalid(QC(header.height, 0, header.block_hash, sigs(header, [0, 1, 2], chain="other")), header)


def test_check_qc_uses_genesis_quorum(certified) -> None:  # type: ignore[no-untyped-def]
    checked, header = certified
    net7 = Net(n=7)  # validators 0..3 have the same keys; quorum is 5
    qc_invalid(NET.qc(checked), header, "needs 5", genesis=net7.genesis)


# -- QC encodings ----------------------------------------------------------------


def _sample_qc(certified) -> QC:  # type: ignore[no-untyped-def]
    _, header = certified
    return QC(header.height, 3, header.block_hash, sigs(header, [2, 0, 3], round_=3))


def test_qc_wire_round_trip(certified) -> None:  # type: ignore[no-untyped-def]
    qc = _sample_qc(certified)
    wire = qc.to_wire()
    assert wire == {"height": qc.height, "round": 3, "block_hash": qc.block_hash,
                    "signatures": [[i, s] for i, s in qc.signatures]}
    assert qc_from_wire(wire) == qc
    raw = qc.encode()
    assert raw == codec.encode(wire)
    assert decode_qc(raw) == qc
    check_qc(decode_qc(raw), certified[1], G)
    empty = QC(1, 0, bytes(32), ())
    assert decode_qc(empty.encode()) == empty


def test_qc_json_round_trip(certified) -> None:  # type: ignore[no-untyped-def]
    qc = _sample_qc(certified)
    j = qc.to_json()
    assert set(j) == {"height", "round", "block_hash", "signatures"}
    assert j["block_hash"] == qc.block_hash.hex()
    for entry, (i, s) in zip(j["signatures"], qc.signatures):
        assert entry == {"validator": i, "sig": base64.b64encode(s).decode()}
        assert len(entry["sig"]) == 88 and entry["sig"].endswith("==")
    text = json.dumps(j)
    back = qc_from_json(json.loads(text))
    assert back == qc
    check_qc(back, certified[1], G)


def _json_cases(qc: QC) -> list[tuple[str, Any]]:
    good = qc.to_json()

    def mut(**changes: Any) -> dict[str, Any]:
        d = json.loads(json.dumps(good))
        for k, v in changes.items():
            if v is KeyError:
                del d[k]
            else:
                d[k] = v
        return d

    def sig_entry(entry: Any) -> dict[str, Any]:
        d = json.loads(json.dumps(good))
        d["signatures"][1] = entry
        return d

    sig0 = good["signatures"][0]["sig"]
    return [
        ("not-object", [good]),
        ("string", "qc"),
        ("null", None),
        ("no-signatures", mut(signatures=KeyError)),
        ("signatures-object", mut(signatures={"0": sig0})),
        ("signatures-null", mut(signatures=None)),
        ("no-block-hash", mut(block_hash=KeyError)),
        ("block-hash-non-hex", mut(block_hash="zz" * 32)),
        ("block-hash-short", mut(block_hash="ab" * 31)),
        ("block-hash-long", mut(block_hash="ab" * 33)),
        ("block-hash-odd", mut(block_hash="abc")),
        ("block-hash-int", mut(block_hash=5)),
        ("block-hash-null", mut(block_hash=None)),
        ("no-height", mut(height=KeyError)),
        ("height-str", mut(height="2")),
        ("height-negative", mut(height=-1)),
        ("height-bool", mut(height=True)),
        ("height-float", mut(height=2.0)),
        ("no-round", mut(round=KeyError)),
        ("round-negative", mut(round=-1)),
        ("round-bool", mut(round=False)),
        ("entry-string", sig_entry("0:" + sig0)),
        ("entry-list", sig_entry([0, sig0])),
        ("entry-int", sig_entry(0)),
        ("entry-null", sig_entry(None)),
        ("entry-no-sig", sig_entry({"validator": 0})),
        ("entry-no-validator", sig_entry({"sig": sig0})),
        ("entry-sig-not-b64", sig_entry({"validator": 0, "sig": "!!!not base64!!!"})),
        ("entry-sig-no-padding", sig_entry({"validator": 0, "sig": sig0.rstrip("=")})),
        ("entry-sig-non-ascii", sig_entry({"validator": 0, "sig": "签名"})),
        ("entry-sig-int", sig_entry({"validator": 0, "sig": 5})),
        ("entry-validator-str", sig_entry({"validator": "0", "sig": sig0})),
        ("entry-validator-bool", sig_entry({"validator": True, "sig": sig0})),
        ("entry-validator-float", sig_entry({"validator": 0.0, "sig": sig0})),
        ("too-many-signatures", mut(signatures=[{"validator": 0, "sig": sig0}] * (QC_SIGNATURES_MAX + 1))),
    ]


def test_malformed_json_qcs_raise_invalid_qc(certified) -> None:  # type: ignore[no-untyped-def]
    qc = _sample_qc(certified)
    assert qc_from_json(qc.to_json()) == qc
    for name, value in _json_cases(qc):
        with pytest.raises(InvalidInput) as info:
            qc_from_json(value)
        assert info.value.code == "invalid_qc", name


def test_malformed_wire_qcs_raise_invalid_qc(certified) -> None:  # type: ignore[no-untyped-def]
    qc = _sample_qc(certified)
    good = qc.to_wire()
    s0 = qc.signatures[0][1]
    cases: list[Any] = [
        [good],
        {k: v for k, v in good.items() if k != "round"},
        {**good, "extra": 1},
        {**good, "height": True},
        {**good, "height": -1},
        {**good, "round": "0"},
        {**good, "block_hash": good["block_hash"][:31]},
        {**good, "block_hash": good["block_hash"].hex()},
        {**good, "signatures": {}},
        {**good, "signatures": [[0]]},
        {**good, "signatures": [[0, s0, 1]]},
        {**good, "signatures": [[True, s0]]},
        {**good, "signatures": [[0, s0.hex()]]},
        {**good, "signatures": [(0, s0)] * (QC_SIGNATURES_MAX + 1)},
    ]
    for case in cases:
        with pytest.raises(InvalidInput) as info:
            qc_from_wire(case)
        assert info.value.code == "invalid_qc", case
    raw = qc.encode()
    with pytest.raises(InvalidInput) as info:
        decode_qc(msgpack.packb(dict(sorted(good.items(), reverse=True)), use_bin_type=True))
    assert info.value.code == "non_canonical"
    with pytest.raises(InvalidInput):
        decode_qc(raw[:-1])
    with pytest.raises(InvalidInput) as info:
        decode_qc(codec.encode({**good, "extra": 1}))
    assert info.value.code == "invalid_qc"


def test_payload_matches_only_the_records_the_header_names(store: Store) -> None:
    parent = store.head()
    envs = [decode_envelope(r, G) for r in (notarize(subject="PM-1"), notarize(subject="PM-2"))]
    checked, _ = build_block(envs, parent, store, store.frontier, G, parent.time + 1, 0)
    header, raws = checked.block.header, tuple(e.raw for e in envs)
    assert payload_matches(header, store.frontier, raws)
    assert not payload_matches(header, store.frontier, raws[::-1])  # order matters
    assert not payload_matches(header, store.frontier, raws[:1])
    assert not payload_matches(header, store.frontier, raws + raws[:1])
    tampered = raws[0][:-1] + bytes([raws[0][-1] ^ 1])
    assert not payload_matches(header, store.frontier, (tampered, raws[1]))
