"""The state map (docs/protocol.md, "State map (version 2)"): ledgernode.statemap.

Sources of truth: the hash definitions transcribed here with hashlib alone; `root_of`,
the definition of a subtree's hash as a recursion over the whole entry set, which the
incremental `StateMap` must agree with on random operation sequences; the proof rules,
checked on every proof the map makes and on tampered ones; and the published vectors in
tests/vectors/state-map.json and the worked example of docs/protocol.md, both
regenerated from the code here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgernode import codec, merkle
from ledgernode.errors import InvalidInput, StoreCorrupt, StoreOutdated
from ledgernode.statemap import EMPTY_ROOT, PROOF_JSON_MAX_BYTES, SIBLINGS_MAX, Leaf, Proof, bit, inner_hash, leaf_hash, list_append, list_leaf_hash, list_value, parse_list_value, path, proof_from_json, proof_to_json, root_of, value_hash, verify
from ledgernode.maptree import TILE_LEVELS, MemoryNodeStore, StateMap, is_tile
from tests.fixtures import load_script

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "tests" / "vectors" / "state-map.json"


def tagged(tag: str, data: bytes) -> bytes:
    return hashlib.sha256(b"ledgernode:" + tag.encode() + b"\n" + data).digest()


def flip(data: bytes, i: int) -> bytes:
    out = bytearray(data)
    out[i // 8] ^= 0x80 >> (i % 8)
    return bytes(out)


def value(n: int) -> bytes:
    return codec.encode({"n": n})


def vectors_script() -> ModuleType:
    return load_script("make_state_map_vectors")


# -- hashes and paths --------------------------------------------------------------


def test_hashes_are_the_tagged_sha256_of_the_design() -> None:
    p, vh = bytes(range(32)), bytes(range(32, 64))
    assert value_hash(b"\x80") == tagged("map-value", b"\x80")
    assert leaf_hash(p, vh) == tagged("map-leaf", p + vh)
    assert inner_hash(p, vh) == tagged("map-inner", p + vh)
    # msgpack(["subject", "LIC-1"]): fixarray of 2, fixstr 7, fixstr 5.
    assert path("subject", "LIC-1") == tagged("map-path", b"\x92\xa7subject\xa5LIC-1")
    rid = bytes(range(32))
    assert path("refby", rid) == tagged("map-path", b"\x92\xa5refby\xc4\x20" + rid)
    assert path("validators", "") == tagged("map-path", b"\x92\xaavalidators\xa0")
    with pytest.raises(ValueError):
        leaf_hash(p[:31], vh)
    with pytest.raises(ValueError):
        inner_hash(p, vh + b"\x00")


@pytest.mark.parametrize("namespace, name", [
    ("refby", "ab" * 32), ("refby", bytes(31)), ("subject", b"LIC-1"), ("key", 7), ("validators", "v"),
    ("Subject", "LIC-1"), ("", ""), ("subject", "\ud800"),
])
def test_paths_are_refused_for_names_the_design_does_not_have(namespace: str, name: Any) -> None:
    with pytest.raises(InvalidInput):
        path(namespace, name)


def test_bits_run_most_significant_first() -> None:
    p = bytes([0b1000_0001]) + bytes(30) + bytes([0b0000_0001])
    assert [bit(p, i) for i in range(8)] == [1, 0, 0, 0, 0, 0, 0, 1]
    assert bit(p, 255) == 1 and bit(p, 254) == 0
    for i in (-1, 256):
        with pytest.raises(ValueError):
            bit(p, i)


# -- root_of: the definition ---------------------------------------------------------


def test_root_of_small_maps_by_hand() -> None:
    a = bytes(32)  # bits 0.. all 0
    b = flip(a, 0)  # differs at bit 0: the root splits at once
    c = flip(a, 3)  # shares bits 0..2 with a: three inner nodes with an empty child above the split
    la, lb, lc = (leaf_hash(p, value_hash(value(i))) for i, p in enumerate((a, b, c)))
    assert root_of({}) == EMPTY_ROOT == bytes(32)
    assert root_of({a: value(0)}) == la
    assert root_of({c: value(2)}) == lc  # one entry: its leaf at depth 0, whatever its path
    assert root_of({a: value(0), b: value(1)}) == inner_hash(la, lb)
    split = inner_hash(la, lc)
    chain = inner_hash(inner_hash(inner_hash(split, EMPTY_ROOT), EMPTY_ROOT), EMPTY_ROOT)
    assert root_of({a: value(0), c: value(2)}) == chain
    assert root_of({a: value(0), b: value(1), c: value(2)}) == inner_hash(inner_hash(inner_hash(split, EMPTY_ROOT),
                                                                                     EMPTY_ROOT), lb)


# -- the incremental map against the definition ----------------------------------------

VALUES = st.builds(value, st.integers(0, 3))  # few values: rewrites of an equal value happen too


@st.composite
def path_pools(draw: st.DrawFn) -> list[bytes]:
    """Random paths, and neighbours of some that differ in one late bit only."""
    base = draw(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=8, unique=True))
    pool = list(base)
    for p in base:
        for i in draw(st.lists(st.integers(0, 255) | st.integers(192, 255), max_size=2)):
            pool.append(flip(p, i))
    return list(dict.fromkeys(pool))


Ops = list[tuple[int, bytes | None]]
OPS = st.lists(st.tuples(st.integers(0, 1 << 16), st.none() | VALUES), max_size=40)


def run(pool: list[bytes], ops: Ops) -> tuple[StateMap, dict[bytes, bytes]]:
    m, model = StateMap(), dict[bytes, bytes]()
    for index, v in ops:
        p = pool[index % len(pool)]
        if v is None:
            m.delete(p)
            model.pop(p, None)
        else:
            m.set(p, v)
            model[p] = v
        assert m.root == root_of(model)
    return m, model


@settings(max_examples=150, deadline=None)
@given(path_pools(), OPS)
def test_incremental_map_agrees_with_root_of(pool: list[bytes], ops: Ops) -> None:
    m, model = run(pool, ops)
    for p in pool:
        assert m.get(p) == model.get(p)


@settings(max_examples=100, deadline=None)
@given(path_pools(), OPS, OPS)
def test_a_batch_gives_the_root_of_the_same_changes_one_by_one(pool: list[bytes], before: Ops, block: Ops) -> None:
    m, model = run(pool, before)
    changes = [(pool[i % len(pool)], v) for i, v in block]
    batch = m.prepare(changes)
    assert m.root == root_of(model)  # preparing writes nothing
    for p, v in changes:
        if v is None:
            model.pop(p, None)
        else:
            model[p] = v
    one_by_one = StateMap(root=m.root, store=m.store)
    for p, v in changes:
        one_by_one.apply([(p, v)])
    m.commit(batch)
    assert m.root == one_by_one.root == root_of(model)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=32, max_size=32), VALUES), max_size=20,
                unique_by=lambda e: e[0]).flatmap(lambda es: st.tuples(st.just(es), st.permutations(es))))
def test_the_root_does_not_depend_on_the_order_of_writes(pair: tuple[list[Any], list[Any]]) -> None:
    entries, shuffled = pair
    a, b = StateMap(), StateMap()
    for p, v in entries:
        a.set(p, v)
    for p, v in shuffled:
        b.set(p, v)
    c = StateMap()
    c.apply(shuffled)
    assert a.root == b.root == c.root == root_of(dict(entries))


def tamperings(proof: Proof, p: bytes) -> Iterator[tuple[str, Proof]]:
    """Every proof below must fail for the claim its original proves."""
    s = proof.siblings
    for j in range(len(s)):
        yield f"sibling {j} flipped", Proof(proof.leaf, s[:j] + (flip(s[j], 255),) + s[j + 1:])
    if s:
        yield "bottom sibling dropped", Proof(proof.leaf, s[1:])
        yield "top sibling dropped", Proof(proof.leaf, s[:-1])
    yield "empty sibling added at the bottom", Proof(proof.leaf, (EMPTY_ROOT,) + s)
    yield "sibling added at the top", Proof(proof.leaf, s + (bytes(31) + b"\x01",))
    if proof.leaf is None:
        yield "a leaf where the subtree is empty", Proof(Leaf(flip(p, 255), value_hash(value(0))), s)
    else:
        yield "leaf value hash changed", Proof(Leaf(proof.leaf.path, flip(proof.leaf.value_hash, 0)), s)
        yield "leaf path changed", Proof(Leaf(flip(proof.leaf.path, 255), proof.leaf.value_hash), s)
        yield "leaf removed", Proof(None, s)


@settings(max_examples=100, deadline=None)
@given(path_pools(), OPS, st.lists(st.binary(min_size=32, max_size=32), max_size=4))
def test_every_proof_verifies_and_every_tampered_one_fails(pool: list[bytes], ops: Ops, others: list[bytes]) -> None:
    m, model = run(pool, ops)
    for p in pool + others:
        proof = m.prove(p)
        claim = model.get(p)
        assert verify(m.root, p, claim, proof)
        assert proof_from_json(json.loads(json.dumps(proof_to_json(proof)))) == proof
        if claim is None:
            assert not verify(m.root, p, value(0), proof), "absent claimed present"
        else:
            assert not verify(m.root, p, None, proof), "present claimed absent"
            assert not verify(m.root, p, claim + b"\x00", proof), "a wrong value"
        for why, bad in tamperings(proof, p):
            assert not verify(m.root, p, claim, bad), why


def test_the_empty_map() -> None:
    m, p = StateMap(), bytes(range(32))
    assert m.root == EMPTY_ROOT and m.get(p) is None
    assert m.prove(p) == Proof(None, ())
    assert verify(EMPTY_ROOT, p, None, Proof(None, ()))
    assert not verify(EMPTY_ROOT, p, value(0), Proof(None, ()))
    # A leaf at d = 0 is a one-entry map, never the empty one.
    assert not verify(EMPTY_ROOT, p, value(0), Proof(Leaf(p, value_hash(value(0))), ()))
    m.delete(p)
    assert m.root == EMPTY_ROOT


def test_the_one_entry_map_and_d_0() -> None:
    p, q = bytes(range(32)), flip(bytes(range(32)), 255)
    m = StateMap()
    m.set(p, value(1))
    assert m.root == leaf_hash(p, value_hash(value(1)))
    leaf = Leaf(p, value_hash(value(1)))
    assert m.prove(p) == m.prove(q) == Proof(leaf, ())
    assert verify(m.root, p, value(1), Proof(leaf, ()))
    # d = 0: the prefix of no bits is shared with any path, so the leaf proves q absent.
    assert verify(m.root, q, None, Proof(leaf, ()))
    assert not verify(m.root, q, None, Proof(None, ()))  # a null leaf at d = 0 is the empty map
    assert not verify(m.root, p, None, Proof(leaf, ()))
    m.set(q, value(2))
    m.delete(q)  # the two-entry tree collapses back to the one leaf
    assert m.root == leaf_hash(p, value_hash(value(1)))
    m.delete(p)
    assert m.root == EMPTY_ROOT


def test_absence_needs_the_leaf_to_share_the_first_d_bits() -> None:
    a, b = bytes(32), flip(bytes(32), 0)
    m = StateMap()
    m.apply([(a, value(0)), (b, value(1))])
    probe = flip(a, 9)  # its walk ends at a's leaf at depth 1
    proof = m.prove(probe)
    assert proof.leaf == Leaf(a, value_hash(value(0))) and len(proof.siblings) == 1
    assert verify(m.root, probe, None, proof)
    # b's leaf with a's sibling would give the same root only at the wrong position; the
    # prefix rule refuses it before hashing: b's bit 0 is not probe's.
    swapped = Proof(Leaf(b, value_hash(value(1))), (leaf_hash(a, value_hash(value(0))),))
    assert not verify(m.root, probe, None, swapped)


def test_the_leaf_rules_hold_even_under_roots_no_honest_map_has() -> None:
    """Against an honest root the fold alone already places a leaf where its path leads;
    the leaf rules must hold on their own, so check them on roots built by hand."""
    a = bytes(32)
    b = flip(a, 0)  # b's walk goes right at the root
    probe = flip(a, 9)  # probe's goes left, as a's does
    vh = value_hash(value(0))
    forged = inner_hash(leaf_hash(b, vh), EMPTY_ROOT)  # b's leaf in the left half
    misplaced = Proof(Leaf(b, vh), (EMPTY_ROOT,))
    assert not verify(forged, probe, None, misplaced), "absence needs the leaf to share the first d bits"
    assert not verify(forged, probe, value(0), misplaced), "presence needs the leaf's own path"
    assert verify(inner_hash(leaf_hash(a, vh), EMPTY_ROOT), probe, None, Proof(Leaf(a, vh), (EMPTY_ROOT,)))


def test_the_deepest_tree_has_256_siblings_and_no_more() -> None:
    p = bytes(range(32))
    q = flip(p, 255)
    m = StateMap()
    m.apply({p: value(0), q: value(1)})
    proof = m.prove(p)
    assert len(proof.siblings) == SIBLINGS_MAX and verify(m.root, p, value(0), proof)
    assert verify(m.root, flip(p, 254), None, m.prove(flip(p, 254)))
    too_long = Proof(proof.leaf, (EMPTY_ROOT,) + proof.siblings)
    assert not verify(m.root, p, value(0), too_long)
    with pytest.raises(InvalidInput, match="more than 256"):
        proof_from_json(proof_to_json(too_long))
    text = json.dumps(proof_to_json(proof), indent=2)
    assert len(text.encode()) <= PROOF_JSON_MAX_BYTES


@pytest.mark.parametrize("proof", [
    "not a proof", Proof(None, [b"x"]),  # type: ignore[arg-type]
    Proof(None, (bytes(31),)), Proof(Leaf(b"short", bytes(32)), ()),
    Proof("leaf", ()), Proof(None, None),  # type: ignore[arg-type]
])
def test_malformed_proof_objects_never_verify(proof: Any) -> None:
    assert not verify(EMPTY_ROOT, bytes(32), None, proof)


def test_verify_refuses_roots_and_paths_of_the_wrong_length() -> None:
    assert not verify(bytes(31), bytes(32), None, Proof(None, ()))
    assert not verify(EMPTY_ROOT, bytes(33), None, Proof(None, ()))
    assert not verify(EMPTY_ROOT, bytes(32), "value", Proof(None, ()))  # type: ignore[arg-type]


# -- JSON ------------------------------------------------------------------------------

H1, H2 = "ab" * 32, "cd" * 32
GOOD = {"leaf": {"path": H1, "value_hash": H2}, "siblings": [H2, H1]}


def test_proof_json_round_trips() -> None:
    proof = proof_from_json(GOOD)
    assert proof == Proof(Leaf(bytes.fromhex(H1), bytes.fromhex(H2)), (bytes.fromhex(H2), bytes.fromhex(H1)))
    assert proof_to_json(proof) == GOOD
    assert proof_to_json(proof_from_json({"leaf": None, "siblings": []})) == {"leaf": None, "siblings": []}


@pytest.mark.parametrize("doc, says", [
    ([], "must be a JSON object"),
    ({"leaf": None}, "exactly the keys"),
    ({**GOOD, "depth": 2}, "exactly the keys"),
    ({"leaf": None, "siblings": (H1,)}, "must be a JSON array"),
    ({"leaf": None, "siblings": {"0": H1}}, "must be a JSON array"),
    ({"leaf": None, "siblings": [H1.upper()]}, r"siblings\[0\] must be 64 lowercase hex"),
    ({"leaf": None, "siblings": [H1, H1[:62]]}, r"siblings\[1\] must be 64 lowercase hex"),
    ({"leaf": None, "siblings": [H1 + "00"]}, "64 lowercase hex"),
    ({"leaf": None, "siblings": [H1[:63] + "\n"]}, "64 lowercase hex"),
    ({"leaf": None, "siblings": [" " + H1[1:]]}, "64 lowercase hex"),
    ({"leaf": None, "siblings": [int(H1, 16)]}, "64 lowercase hex"),
    ({"leaf": None, "siblings": [None]}, "64 lowercase hex"),
    ({"leaf": None, "siblings": [H1] * 257}, "more than 256"),
    ({"leaf": False, "siblings": []}, "proof.leaf must be a JSON object"),
    ({"leaf": "", "siblings": []}, "proof.leaf must be a JSON object"),
    ({"leaf": {"path": H1}, "siblings": []}, "proof.leaf must have exactly"),
    ({"leaf": {"path": H1, "value_hash": H2, "value": ""}, "siblings": []}, "proof.leaf must have exactly"),
    ({"leaf": {"path": [H1], "value_hash": H2}, "siblings": []}, "proof.leaf.path"),
    ({"leaf": {"path": H1, "value_hash": "0x" + H2[2:]}, "siblings": []}, "proof.leaf.value_hash"),
])
def test_proof_json_is_exact_or_refused(doc: Any, says: str) -> None:
    with pytest.raises(InvalidInput, match=says) as info:
        proof_from_json(doc)
    assert info.value.code == "bad_proof"


# -- the node store ----------------------------------------------------------------------


def filled(n: int = 50) -> tuple[StateMap, MemoryNodeStore, dict[bytes, bytes]]:
    store = MemoryNodeStore()
    m = StateMap(store)
    entries = {hashlib.sha256(i.to_bytes(4, "big")).digest(): value(i) for i in range(n)}
    m.apply(entries)
    return m, store, entries


def test_a_batch_writes_once_and_only_on_commit() -> None:
    m, store, entries = filled()
    before, nodes = m.root, dict(store.nodes)
    p = next(iter(entries))
    batch = m.prepare({p: value(99), bytes(32): value(7)})
    assert store.nodes == nodes and m.root == before and m.get(p) == entries[p]
    m.commit(batch)
    assert m.get(p) == value(99) and m.get(bytes(32)) == value(7)
    with pytest.raises(ValueError, match="another root"):
        m.commit(batch)
    # Old roots stay readable: an earlier checkpoint still has its proofs.
    old = m.at(before)
    assert old.get(p) == entries[p] and verify(before, p, entries[p], old.prove(p))


def test_an_update_writes_one_tile_per_four_levels_of_its_path_and_its_leaf() -> None:
    m, store, entries = filled(1000)
    for p in list(entries)[:20]:
        depth = len(m.prove(p).siblings)
        batch = m.prepare({p: value(5000)})
        assert len(batch.nodes) == -(-depth // TILE_LEVELS) + 1  # the tiles above the leaf, and the leaf
        assert len(batch.replaced) == len(batch.nodes)  # each replaces its earlier version
        assert sum(is_tile(batch.parsed[h]) for h in batch.nodes) == len(batch.nodes) - 1


def _root_tile(store: MemoryNodeStore, m: StateMap) -> bytes:
    raw = store.nodes[m.root]
    assert raw[:1] == b"\x03"
    return raw


def test_a_stored_tile_is_checked_against_its_slots_and_its_key() -> None:
    m, store, entries = filled()
    p = next(iter(entries))
    raw = _root_tile(store, m)
    present = int.from_bytes(raw[1:3], "big")
    assert len(raw) == 5 + 32 * present.bit_count()
    for bad, says in [
        (raw[:1] + (present & (present - 1)).to_bytes(2, "big") + raw[3:], "layout"),  # a slot dropped, its hash kept
        (raw[:1] + (present & (present - 1)).to_bytes(2, "big") + raw[1:3] + raw[5:-32], "layout"),  # a leaf bit, no slot
        (raw[:-1], "layout"),  # a hash cut short
        (raw[:5] + bytes(32) + raw[37:], "empty slot"),
        (raw[:-1] + bytes([raw[-1] ^ 1]), "does not hash"),
    ]:
        store.nodes[m.root] = bad
        with pytest.raises(StoreCorrupt, match=says):
            m.get(p)
    store.nodes[m.root] = raw
    assert m.get(p) == entries[p]


def test_a_slot_that_names_a_tile_a_leaf_is_store_corrupt() -> None:
    m, store, entries = filled(200)
    raw = _root_tile(store, m)
    present, leaves = int.from_bytes(raw[1:3], "big"), int.from_bytes(raw[3:5], "big")
    s = next(s for s in range(16) if present >> s & 1 and not leaves >> s & 1)  # a slot holding a tile
    bad_key = None
    for p in entries:  # the same slot hashes, but the tile called a leaf: the hash may still hold
        lied = raw[:3] + (leaves | 1 << s).to_bytes(2, "big") + raw[5:]
        store.nodes[m.root] = lied
        try:
            m.get(p)
        except StoreCorrupt as exc:
            bad_key = str(exc)
            break
    assert bad_key is not None and ("where a leaf belongs" in bad_key or "does not hash" in bad_key)


def test_an_inner_node_of_the_earlier_layout_is_store_outdated() -> None:
    m, store, entries = filled()
    top = m.store.node(m.root)
    assert top is not None and is_tile(top)
    store.nodes[m.root] = b"\x01" + bytes(64)  # one inner node a key: the layout before tiles
    with pytest.raises(StoreOutdated, match="earlier layout"):
        m.get(next(iter(entries)))


def test_a_damaged_or_missing_node_is_store_corrupt() -> None:
    m, store, entries = filled()
    p = next(iter(entries))
    top = store.nodes[m.root]
    store.nodes[m.root] = top[:-1] + bytes([top[-1] ^ 1])
    with pytest.raises(StoreCorrupt, match="does not hash"):
        m.get(p)
    store.nodes[m.root] = b"\x02" + top[1:]
    with pytest.raises(StoreCorrupt):
        m.prove(p)
    del store.nodes[m.root]
    with pytest.raises(StoreCorrupt, match="not stored"):
        m.set(p, value(1))


@pytest.mark.parametrize("bad", [b"", b"\x81\xa1n", b"\x90", b"\xc0", codec.encode({"n": 1}) + b"\x00", "str"])
def test_values_are_canonical_msgpack_maps(bad: Any) -> None:
    with pytest.raises(ValueError):
        StateMap().set(bytes(32), bad)


def test_paths_are_32_bytes() -> None:
    for bad in (bytes(31), "ab" * 16, bytearray(32)):
        with pytest.raises(ValueError):
            StateMap().set(bad, value(0))  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            StateMap().prove(bad)  # type: ignore[arg-type]


# -- record lists --------------------------------------------------------------------------


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 MTH, recursively (hash of leaf data, not of leaf hashes)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=40, unique=True).map(sorted))
def test_a_record_list_is_the_rfc_6962_root_of_u64be_leaves(indexes: list[int]) -> None:
    expected = {"n": len(indexes), "root": mth([i.to_bytes(8, "big") for i in indexes])}
    assert codec.decode(list_value(indexes)) == expected
    assert list_value(indexes) == codec.encode(expected)
    # Appending one at a time from the kept right edge gives the same value, and the
    # nodes it creates are the list's RFC 6962 tree.
    tree, current, edge = merkle.MemoryTree(), None, b""
    for i in indexes:
        current, edge, created = list_append(current, edge, [i])
        tree.nodes.update(((level, index), h) for level, index, h in created)
        tree.frontier.append(list_leaf_hash(i))
    assert current == list_value(indexes)
    assert parse_list_value(current) == (len(indexes), expected["root"])
    assert edge == b"".join(tree.frontier.edge)
    for pos in range(len(indexes)):
        assert merkle.verify_inclusion(list_leaf_hash(indexes[pos]), pos, len(indexes),
                                       merkle.inclusion_proof(tree, pos, len(indexes)), expected["root"])


def _generic_list_value(value_bytes: bytes) -> tuple[int, bytes] | None:
    """The design's rule with the generic decoder: what the fast path must agree with."""
    try:
        value = codec.decode(value_bytes)
    except InvalidInput:
        return None
    ok = (type(value) is dict and value.keys() == {"n", "root"} and type(value["n"]) is int and value["n"] >= 1
          and type(value["root"]) is bytes and len(value["root"]) == 32)
    return (value["n"], value["root"]) if ok else None


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2**64 - 1), st.binary(min_size=32, max_size=32), st.integers(0, 50), st.binary(max_size=3))
def test_a_list_value_parses_as_the_generic_decoder_reads_it(n: int, root: bytes, cut: int, splice: bytes) -> None:
    good = codec.encode({"n": n, "root": root})
    assert parse_list_value(good) == (n, root)
    bad = good[:cut] + splice + good[cut + len(splice):]  # near misses: other ints, other heads
    expected = _generic_list_value(bad)
    if expected is None:
        with pytest.raises(InvalidInput):
            parse_list_value(bad)
    else:
        assert parse_list_value(bad) == expected


@pytest.mark.parametrize("n", ["abcdefghi", list(range(9)), 2**64 - 1, "x" * 40, b"\x01" * 9])
def test_a_list_value_whose_n_is_long_or_not_an_int_is_invalid_input(n: Any) -> None:
    """The exact-bytes fast path must hand anything it does not make to the generic rule."""
    value = codec.encode({"n": n, "root": bytes(32)})
    if type(n) is int:
        assert parse_list_value(value) == (n, bytes(32))
    else:
        with pytest.raises(InvalidInput):
            parse_list_value(value)


def test_writing_a_list_entry_its_own_value_keeps_the_stored_leaf_and_its_edge() -> None:
    store = MemoryNodeStore()
    m = StateMap(store)
    p = path("subject", "LIC-1")
    value, edge, _ = list_append(None, b"", [3, 5, 8])
    m.commit(m.prepare_updates({p: lambda current, attached: (value, edge)}))
    m.set(path("subject", "other"), value)  # an inner root above the list's leaf
    again = m.prepare({p: value})  # the same value, given as bytes: no attachment
    assert again.root == m.root and dict(again.nodes) == {}
    appended = m.prepare_updates({p: lambda current, attached: list_append(current, attached, [9])[:2]})
    m.commit(appended)  # the kept edge is still there to append from
    assert m.get(p) == list_value([3, 5, 8, 9])


def test_record_list_rules() -> None:
    with pytest.raises(ValueError, match="empty"):
        list_value([])
    with pytest.raises(ValueError, match="strictly increase"):
        list_value([3, 3])
    for bad in (-1, 2**64, True):
        with pytest.raises(ValueError):
            list_leaf_hash(bad)
    value_bytes = list_value([1, 2, 3])
    edge = list_append(None, b"", [1, 2, 3])[1]
    assert len(edge) == 2 * 32  # 3 = 2 + 1: two complete subtrees
    for bad_edge in (b"", edge[:32], edge + bytes(32), edge[:-1], bytes(32) + edge[32:]):
        with pytest.raises(StoreCorrupt):
            list_append(value_bytes, bad_edge, [4])
    # Several appends at once give what one by one gives.
    one_by_one, one_edge = None, b""
    for i in (2, 5, 9, 11, 20):
        one_by_one, one_edge, _ = list_append(one_by_one, one_edge, [i])
    first, first_edge, _ = list_append(None, b"", [2, 5])
    assert list_append(first, first_edge, [9, 11, 20])[:2] == (one_by_one, one_edge)
    assert one_by_one == list_value([2, 5, 9, 11, 20])


@pytest.mark.parametrize("value_doc", [
    {"n": 0, "root": bytes(32)}, {"n": 1}, {"n": 1, "root": bytes(31)}, {"n": True, "root": bytes(32)},
    {"n": 1, "root": bytes(32), "x": 0}, {"n": "1", "root": bytes(32)}, [1, bytes(32)],
])
def test_record_list_values_are_exact(value_doc: Any) -> None:
    with pytest.raises(InvalidInput):
        parse_list_value(codec.encode(value_doc))


# -- published vectors and the protocol document ---------------------------------------------


def test_vectors_file_matches_the_code() -> None:
    assert VECTORS.read_text(encoding="utf-8") == vectors_script().render(), (
        "run: python scripts/make_state_map_vectors.py")
    doc = json.loads(VECTORS.read_text(encoding="utf-8"))
    kinds = set()
    for m in doc["maps"]:
        entries = {bytes.fromhex(e["path"]): base64.b64decode(e["value"], validate=True) for e in m["entries"]}
        root = bytes.fromhex(m["root"])
        assert root_of(entries) == root, m["title"]
        for e in m["entries"]:
            if e["namespace"] is not None:
                name = bytes.fromhex(e["name"]) if e["namespace"] == "refby" else e["name"]
                assert path(e["namespace"], name).hex() == e["path"]
        for c in m["proofs"]:
            kinds.add(c["kind"])
            assert vector_verdict(root, c) is c["expected"], (m["title"], c["note"])
    assert kinds == {"presence", "absence-empty", "absence-leaf", "invalid", "malformed"}


def vector_verdict(root: bytes, c: dict[str, Any]) -> bool:
    """How a verifier treats one case: a proof that does not parse is an invalid proof."""
    p = bytes.fromhex(c["path"])
    if c["namespace"] is not None:
        p = path(c["namespace"], bytes.fromhex(c["name"]) if c["namespace"] == "refby" else c["name"])
        assert p.hex() == c["path"]
    raw = c["entry"]["value"]
    try:
        proof = proof_from_json(c["entry"]["proof"])
    except InvalidInput:
        return False
    return verify(root, p, None if raw is None else base64.b64decode(raw, validate=True), proof)


def worked_example() -> dict[str, str]:
    """The values docs/protocol.md prints for its state map example."""
    entries = vectors_script().three_entries()
    m = StateMap()
    m.apply((p, v) for _, _, p, v in entries)
    out: dict[str, str] = {"root": m.root.hex()}
    for ns, name, p, v in entries:
        tag = f"{ns}:{name}"
        out[f"{tag} msgpack"] = codec.encode([ns, name]).hex()
        out[f"{tag} path"] = p.hex()
        out[f"{tag} value"] = v.hex()
        out[f"{tag} value_hash"] = value_hash(v).hex()
        out[f"{tag} leaf_hash"] = leaf_hash(p, value_hash(v)).hex()
    listed = [merkle.leaf_hash(i.to_bytes(8, "big")) for i in (0, 5)]
    out["list leaf 0"], out["list leaf 5"] = listed[0].hex(), listed[1].hex()
    out["list root"] = merkle.node_hash(*listed).hex()
    present = next(p for ns, _, p, _ in entries if ns == "subject")
    absent = path("subject", "LIC-2026-9001")
    assert m.get(absent) is None and m.prove(absent).leaf is None
    out["presence proof"] = json.dumps(proof_to_json(m.prove(present)), indent=2)
    out["absence proof"] = json.dumps(proof_to_json(m.prove(absent)), indent=2)
    out["absent path"] = absent.hex()
    return out


def test_protocol_doc_state_map_example_matches_the_code() -> None:
    doc = (REPO / "docs" / "protocol.md").read_text(encoding="utf-8")
    section = doc[doc.index("## 11. State map (version 2)"):]
    flat = re.sub(r"\s+", "", section)  # long hex is wrapped across lines in the doc
    missing = [name for name, text in worked_example().items() if re.sub(r"\s+", "", text) not in flat]
    assert not missing, f"docs/protocol.md section 11 is out of step with the code for: {missing}"
