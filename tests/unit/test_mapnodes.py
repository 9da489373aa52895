"""ledgernode/storage/mapnodes.py: the state map and record lists kept in LevelDB."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from ledgernode import codec, ledgermap, statemap
from ledgernode.errors import StoreCorrupt
from ledgernode.storage import keys
from ledgernode.storage.leveldb import LevelKV
from ledgernode.storage.mapnodes import ListNodes, MapNodes, change_puts


def _change(list_path: bytes, value: bytes | None, leaf: int, nodes: ListNodes) -> ledgermap.MapChange:
    """One append to one list, as a block's change over a map holding only that list."""
    m = statemap.StateMap()
    if value is not None:
        m.set(list_path, value)

    class _Lists:
        def list_nodes(self, p: bytes) -> ListNodes:
            return nodes

    return ledgermap.block_change(m, _Lists(), [("subject", "batch-7", leaf)])


def _value(i: int) -> bytes:
    return codec.encode({"n": i + 1, "root": bytes([i % 256]) * 32})


def test_a_map_kept_in_leveldb_proves_every_entry_after_a_reopen(tmp_path: Path) -> None:
    entries = {statemap.path("subject", f"case-{i}"): _value(i) for i in range(200)}
    kv = LevelKV(tmp_path / "db")
    m = statemap.StateMap(MapNodes(kv))
    first = dict(list(entries.items())[:120])
    m.apply(first)
    old_root = m.root
    m.apply(dict(list(entries.items())[120:]))
    assert m.root == statemap.root_of(entries)
    kv.close()
    kv = LevelKV(tmp_path / "db")
    try:
        again = statemap.StateMap(MapNodes(kv), m.root)
        for p, v in entries.items():
            assert statemap.verify(m.root, p, v, again.prove(p))
        absent = statemap.path("subject", "never")
        assert statemap.verify(m.root, absent, None, again.prove(absent))
        earlier = again.at(old_root)  # nodes are never overwritten: an old root still proves
        p = next(iter(first))
        assert statemap.verify(old_root, p, first[p], earlier.prove(p))
    finally:
        kv.close()


def test_a_damaged_map_node_is_store_corrupt(tmp_path: Path) -> None:
    kv = LevelKV(tmp_path / "db")
    try:
        m = statemap.StateMap(MapNodes(kv))
        m.apply({statemap.path("subject", f"s{i}"): _value(i) for i in range(8)})
        [(key, raw)] = [(k, v) for k, v in kv.scan(keys.map_node_key(m.root), keys.map_node_key(m.root) + b"\x00")]
        kv.write([(key, raw[:-1] + bytes([raw[-1] ^ 1]))], [], sync=True)
        assert m.prove(statemap.path("subject", "s1"))  # the nodes it wrote are kept in memory
        with pytest.raises(StoreCorrupt):
            statemap.StateMap(MapNodes(kv), m.root).prove(statemap.path("subject", "s1"))
    finally:
        kv.close()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=120))
def test_a_record_list_appended_from_stored_nodes_equals_the_whole_list(tmp_path_factory: pytest.TempPathFactory,
                                                                      gaps: list[int]) -> None:
    kv = LevelKV(tmp_path_factory.mktemp("lists") / "db")
    try:
        list_path = statemap.path("subject", "batch-7")
        nodes, lists = ListNodes(kv, list_path), ledgermap.MemoryLists()
        value: bytes | None = None
        leaves: list[int] = []
        for gap in gaps:
            leaves.append((leaves[-1] if leaves else -1) + gap)
            change = _change(list_path, value, leaves[-1], nodes)
            kv.write(change_puts(change), [], sync=False)
            value = change.batch.nodes[change.root][33:]  # the one leaf of a one-entry map
            assert nodes.leaves(0, len(leaves)) == leaves
        assert value == statemap.list_value(leaves)
    finally:
        kv.close()


def test_a_missing_list_node_is_store_corrupt(tmp_path: Path) -> None:
    kv = LevelKV(tmp_path / "db")
    try:
        nodes = ListNodes(kv, statemap.path("refby", bytes(32)))
        value, _ = statemap.list_append(None, [3], nodes)  # its position is never stored
        with pytest.raises(StoreCorrupt, match="record list position 0 is missing"):
            statemap.list_append(value, [9], nodes)
        kv.write([(keys.position_key(nodes.list_path, 0), keys.u64(3))], [], sync=True)
        value, _ = statemap.list_append(value, [9], nodes)  # level 0 is read from positions
        with pytest.raises(StoreCorrupt, match="record list node 1/0"):
            statemap.list_append(value, [12], nodes)  # the node above two leaves was never stored
    finally:
        kv.close()
