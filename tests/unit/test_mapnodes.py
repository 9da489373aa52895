"""ledgernode/storage/mapnodes.py: the state map and record lists kept in LevelDB."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from ledgernode import codec, ledgermap, maptree, merkle, statemap
from ledgernode.errors import StoreCorrupt
from ledgernode.storage import keys
from ledgernode.storage.leveldb import LevelKV
from ledgernode.ledgermap import LIST_NODE_LEVEL_STORED_MIN
from ledgernode.storage.mapnodes import ListNodes, MapNodes, change_puts


def _value(i: int) -> bytes:
    return codec.encode({"n": i + 1, "root": bytes([i % 256]) * 32})


def test_a_map_kept_in_leveldb_proves_every_entry_after_a_reopen(tmp_path: Path) -> None:
    entries = {statemap.path("subject", f"case-{i}"): _value(i) for i in range(200)}
    kv = LevelKV(tmp_path / "db")
    m = maptree.StateMap(MapNodes(kv))
    first = dict(list(entries.items())[:120])
    m.apply(first)
    old_root = m.root
    m.apply(dict(list(entries.items())[120:]))
    assert m.root == statemap.root_of(entries)
    kv.close()
    kv = LevelKV(tmp_path / "db")
    try:
        again = maptree.StateMap(MapNodes(kv), m.root)
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
        m = maptree.StateMap(MapNodes(kv))
        m.apply({statemap.path("subject", f"s{i}"): _value(i) for i in range(8)})
        [(key, raw)] = [(k, v) for k, v in kv.scan(keys.map_node_key(m.root), keys.map_node_key(m.root) + b"\x00")]
        kv.write([(key, raw[:-1] + bytes([raw[-1] ^ 1]))], [], sync=True)
        assert m.prove(statemap.path("subject", "s1"))  # the nodes it wrote are kept in memory
        with pytest.raises(StoreCorrupt):
            maptree.StateMap(MapNodes(kv), m.root).prove(statemap.path("subject", "s1"))
    finally:
        kv.close()


def _commit(kv: LevelKV, nodes: MapNodes, root: bytes, appends: list[ledgermap.Append]) -> bytes:
    """One block's change to the map, written as a commit writes it; its new root."""
    change = ledgermap.block_change(maptree.StateMap(nodes, root), appends)
    kv.write(change_puts(change), [], sync=False)
    nodes.keep(change.batch)
    return change.root


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 50), st.booleans()), min_size=1, max_size=120))
def test_a_record_list_appended_block_by_block_is_the_whole_list_and_proves_each_position(
        tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[int, bool]]) -> None:
    kv = LevelKV(tmp_path_factory.mktemp("lists") / "db")
    try:
        # A tiny cache, so appends also read leaves (and their right edges) back from disk.
        nodes = MapNodes(kv, cache_nodes_max=4)
        list_path = statemap.path("subject", "batch-7")
        root, leaves, block = statemap.EMPTY_ROOT, [], []
        for gap, ends_block in steps:
            leaves.append((leaves[-1] if leaves else -1) + gap)
            block.append(("subject", "batch-7", leaves[-1]))
            if ends_block:
                root = _commit(kv, nodes, root, block + [("subject", f"other-{leaves[-1]}", leaves[-1])])
                block = []
        if block:
            root = _commit(kv, nodes, root, block)
        n = len(leaves)
        value = maptree.StateMap(MapNodes(kv), root).get(list_path)
        assert value == statemap.list_value(leaves)
        list_root = statemap.parse_list_value(value)[1]
        tree = ListNodes(kv, list_path)
        assert tree.leaves(0, n) == leaves
        for pos in range(n):
            proof = merkle.inclusion_proof(ListNodes(kv, list_path), pos, n)
            assert merkle.verify_inclusion(statemap.list_leaf_hash(leaves[pos]), pos, n, proof, list_root)
        stored = [k for k, _ in kv.scan(keys.LIST_NODE, keys.LIST_NODE + b"\xff")]
        assert len(stored) == sum(n >> level for level in range(LIST_NODE_LEVEL_STORED_MIN, 64))
    finally:
        kv.close()


def test_a_list_node_missing_below_or_above_the_stored_levels_is_store_corrupt(tmp_path: Path) -> None:
    kv = LevelKV(tmp_path / "db")
    try:
        nodes = MapNodes(kv)
        list_path = statemap.path("refby", bytes(32))
        root = _commit(kv, nodes, statemap.EMPTY_ROOT, [("refby", bytes(32), i) for i in range(20)])
        value = maptree.StateMap(nodes, root).get(list_path)
        assert value == statemap.list_value(list(range(20)))
        kv.write([], [keys.position_key(list_path, 17)], sync=True)
        with pytest.raises(StoreCorrupt, match="record list node 1/8: not all of its 2 positions"):
            merkle.inclusion_proof(ListNodes(kv, list_path), 19, 20)
        kv.write([], [keys.list_node_key(list_path, LIST_NODE_LEVEL_STORED_MIN, 0)], sync=True)
        with pytest.raises(StoreCorrupt, match="record list node 4/0 is missing"):
            merkle.inclusion_proof(ListNodes(kv, list_path), 19, 20)
    finally:
        kv.close()


def test_a_list_leaf_whose_kept_edge_is_damaged_is_store_corrupt(tmp_path: Path) -> None:
    kv = LevelKV(tmp_path / "db")
    try:
        nodes = MapNodes(kv)
        root = _commit(kv, nodes, statemap.EMPTY_ROOT, [("subject", "LIC-1", 3), ("subject", "LIC-1", 5),
                                                        ("subject", "LIC-1", 8)])
        raw = nodes.get(root)  # a one-entry map: its root is the list's leaf
        assert raw is not None and raw[:1] == b"\x02" and raw[33] == 2  # 3 records: two edge hashes
        damaged = raw[:34] + bytes([raw[34] ^ 1]) + raw[35:]  # the edge is not covered by the leaf's hash
        kv.write([(keys.map_node_key(root), damaged)], [], sync=True)
        with pytest.raises(StoreCorrupt, match="right edge does not give the root"):
            _commit(kv, MapNodes(kv), root, [("subject", "LIC-1", 9)])
    finally:
        kv.close()


def test_the_node_cache_is_bounded_and_what_it_dropped_is_read_again(tmp_path: Path) -> None:
    kv = LevelKV(tmp_path / "db")
    try:
        nodes = MapNodes(kv, cache_nodes_max=64)
        m = maptree.StateMap(nodes)
        entries = {statemap.path("subject", f"s{i}"): _value(i) for i in range(300)}
        for i in range(0, 300, 30):
            batch = m.prepare(dict(list(entries.items())[i:i + 30]))
            kv.write(MapNodes.puts(batch.nodes), [], sync=False)
            nodes.keep(batch)
            m.commit(maptree.Batch(batch.base, batch.root, {}))
            assert nodes.cached() <= 64
        for p, v in entries.items():
            assert statemap.verify(m.root, p, v, m.prove(p))
            assert nodes.cached() <= 64
    finally:
        kv.close()


def _live_nodes(nodes: MapNodes, root: bytes) -> int:
    """The leaves and tiles the map of `root` is made of."""
    stack, count = [root], 0
    while stack:
        node = nodes.node(stack.pop())
        assert node is not None
        count += 1
        if maptree.is_tile(node):
            stack.extend(child for child, _ in maptree.tile_slots(node))  # type: ignore[arg-type]
    return count


def test_the_node_cache_keeps_the_map_at_the_head_and_drops_what_commits_replaced(tmp_path: Path) -> None:
    kv = LevelKV(tmp_path / "db")
    try:
        nodes = MapNodes(kv, cache_nodes_max=10_000)
        root = statemap.EMPTY_ROOT
        for block in range(40):  # 40 blocks of appends to the same 50 lists
            root = _commit(kv, nodes, root, [("subject", f"s{(block * 7 + i) % 50}", block * 10 + i)
                                             for i in range(10)])
        live = _live_nodes(nodes, root)
        assert live <= nodes.cached() <= live + 10, (live, nodes.cached())
        written = sum(1 for _ in kv.scan(keys.MAP_NODE, keys.MAP_NODE + b"\xff"))
        assert written > 3 * live  # every version stays on disk, readable
    finally:
        kv.close()
