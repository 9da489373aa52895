"""ledgernode/storage/mapscrub.py: the state map at the head, checked by `ledgernode check`.

Each test builds a real store (records committed through the blocks code, in LevelDB or
in memory), damages one thing the map keeps, and expects the scrub to name it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledgernode import ledgermap, statemap
from ledgernode.storage import Store, keys, scrub
from ledgernode.ledgermap import LIST_NODE_LEVEL_STORED_MIN
from tests.fixtures import Net, commit_records, content

LONG = 20  # records about one subject: its list has a stored level-4 node


def _notarize(net: Net, subject: str, label: str) -> bytes:
    body = {"content_hash": content(label), "media_type": "text/plain", "size": 1, "title": label}
    return net.record(0, "evidence.notarize", subject, body)


@pytest.fixture(params=["memory", "leveldb"])
def built(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Net, Store]]:
    net = Net()
    store = Store.memory() if request.param == "memory" else Store.open(tmp_path / "ledger")
    commit_records(net, store, [_notarize(net, "case-long", f"l{i}") for i in range(LONG // 2)])
    commit_records(net, store, [_notarize(net, f"case-{i}", f"s{i}") for i in range(5)])
    commit_records(net, store, [_notarize(net, "case-long", f"l{i}") for i in range(LONG // 2, LONG)])
    yield net, store
    store.close()


def _texts(net: Net, store: Store) -> list[str]:
    return [f.text for f in scrub.scrub(store.kv, net.genesis).findings]


def _put(store: Store, key: bytes, value: bytes) -> None:
    store.kv.write([(key, value)], [], sync=True)


def _leaf_key(store: Store, subject: str) -> tuple[bytes, bytes]:
    """(t/ key, stored bytes) of a subject's leaf at the head."""
    head = store.head()
    assert head is not None
    proof = store.map_at(head.state).prove(statemap.path("subject", subject))
    assert proof.leaf is not None
    key = keys.map_node_key(proof.leaf.hash())
    raw = store.kv.get(key)
    assert raw is not None
    return key, raw


def test_a_whole_map_is_whole_and_counted(built: tuple[Net, Store]) -> None:
    net, store = built
    report = scrub.scrub(store.kv, net.genesis)
    assert report.whole, report.findings
    assert report.map_entries == 1 + 5 + len(ledgermap.initial_entries(net.genesis))


def test_a_missing_node_below_the_root_tile_is_named(built: tuple[Net, Store]) -> None:
    net, store = built
    head = store.head()
    assert head is not None
    root = store.kv.get(keys.map_node_key(head.state))
    assert root is not None and root[:1] == b"\x03"  # more than one entry: the root is a tile
    first_slot = root[5:37]  # after the tag and the two slot maps
    store.kv.write([], [keys.map_node_key(first_slot)], sync=True)
    texts = _texts(net, store)
    assert len(texts) == 1 and texts[0] == f"state map node {first_slot.hex()[:16]}: missing (not stored)"


def test_a_flipped_value_byte_fails_the_node_hash(built: tuple[Net, Store]) -> None:
    net, store = built
    key, raw = _leaf_key(store, "case-3")
    _put(store, key, raw[:-1] + bytes([raw[-1] ^ 1]))
    texts = _texts(net, store)
    assert len(texts) == 1 and "does not hash to its key" in texts[0]


def test_a_damaged_right_edge_is_named(built: tuple[Net, Store]) -> None:
    net, store = built
    key, raw = _leaf_key(store, "case-long")
    assert raw[:1] == b"\x02" and raw[33] == bin(LONG).count("1")
    _put(store, key, raw[:40] + bytes([raw[40] ^ 1]) + raw[41:])  # inside the edge: the hash still holds
    texts = _texts(net, store)
    assert len(texts) == 1 and texts[0].endswith("a record list's kept right edge does not give the root of "
                                                 "its map entry")


def test_a_missing_or_extra_position_is_named(built: tuple[Net, Store]) -> None:
    net, store = built
    long_path = statemap.path("subject", "case-long")
    where = f"record list {long_path.hex()[:16]}"
    store.kv.write([], [keys.position_key(long_path, 7)], sync=True)
    assert _texts(net, store) == [f"{where}: position 7 of {LONG} is missing"]
    _put(store, keys.position_key(long_path, 7), store.kv.get(keys.position_key(long_path, 8)) or b"")
    # position 7 now lists leaf 8 as position 8 does: position 8 is out of order
    assert _texts(net, store) == [f"{where}: position 8 lists leaf 8, not after 8 and below the log's size 25"]
    _put(store, keys.position_key(long_path, 7), keys.u64(7))
    assert _texts(net, store) == []
    _put(store, keys.position_key(long_path, LONG), keys.u64(24))
    assert _texts(net, store) == [f"{where}: a position is stored past its {LONG} records"]


def test_positions_of_no_list_and_a_wrong_list_node_are_named(built: tuple[Net, Store]) -> None:
    net, store = built
    _put(store, keys.position_key(statemap.path("subject", "never"), 0), keys.u64(3))
    assert _texts(net, store) == ["record lists: 1 positions stored for no list of the map"]
    store.kv.write([], [keys.position_key(statemap.path("subject", "never"), 0)], sync=True)
    long_path = statemap.path("subject", "case-long")
    node = keys.list_node_key(long_path, LIST_NODE_LEVEL_STORED_MIN, 0)
    assert store.kv.get(node) is not None
    _put(store, node, bytes(32))
    assert _texts(net, store) == [f"record list {long_path.hex()[:16]}: list node 4/0 is not the one its "
                                  "positions give"]


def test_damaged_blocks_skip_the_map(built: tuple[Net, Store]) -> None:
    """The map is derived from the blocks: with blocks damaged, the rebuild redoes it."""
    net, store = built
    store.kv.write([], [keys.leaf_key(3)], sync=True)
    report = scrub.scrub(store.kv, net.genesis)
    assert report.findings and report.map_entries is None
    assert not any("state map" in f.text or "record list" in f.text for f in report.findings)


def test_a_list_leaf_stored_without_its_edge_is_named(built: tuple[Net, Store]) -> None:
    net, store = built
    key, raw = _leaf_key(store, "case-long")
    edge_end = 34 + 32 * raw[33]
    _put(store, key, b"\x00" + raw[1:33] + raw[edge_end:])  # the same hash: path and value are unchanged
    path = statemap.path("subject", "case-long")
    assert _texts(net, store) == [f"state map entry {path.hex()[:16]}: a record list kept without its right edge"]
