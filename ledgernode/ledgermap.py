"""What the ledger keeps in its state map (docs/protocol.md sections 11.5 and 12).

`statemap` is the tree; this module says which entries a ledger holds and how a
block changes them:
- the initial map (height 0) built from the genesis: a `key` entry per genesis key,
  a `dept` entry per department, the `validators` entry;
- one block's changes: every record is appended, in log order, to its subject's
  record list and to the `refby` list of every record it refs. `block_change` groups
  the appends per list, extends each list once per block from the right edge kept
  on its entry's leaf (statemap.list_append), whatever the number of records, and
  prepares the map batch, so a block's cost is one descent of the map for all of its
  changed entries and no other read.

Theory of operation. A block's `MapChange` is computed when the block is built or
judged, kept with the checked block while it is voted on, and written in the
block's commit batch (storage: map nodes `t/`, list nodes `l/`, list positions
`p/`). Nothing is written before the block commits and nothing is recomputed at
commit, so the `state` a replica voted for is the one it stores.

A list's position index (`p/<list path><u64 position>` -> `u64be(leaf_index)`) is
the level 0 of its RFC 6962 tree in readable form: a leaf hash is
`list_leaf_hash(leaf_index)`, so the list's tree stores only levels 1 and up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import codec, maptree, merkle, statemap
from .genesis import Genesis

# (namespace, name, leaf index): one record appended to one record list.
Append = tuple[str, str | bytes, int]
# A list's tree keeps its nodes from this level up; a node below is hashed from the 2**L
# positions under it, read in one scan (merkle.LeafBlocks; docs/storage.md).
LIST_NODE_LEVEL_STORED_MIN = 4
# (list path, level >= LIST_NODE_LEVEL_STORED_MIN, index, hash): a node of a list's tree
# that a block completes and that is kept.
ListNode = tuple[bytes, int, int, bytes]
# (list path, position, leaf index): one entry of a list's position index.
Position = tuple[bytes, int, int]


@dataclass(frozen=True)
class MapChange:
    """Everything one block changes in the state map and its record lists."""

    batch: maptree.Batch
    list_nodes: tuple[ListNode, ...]
    positions: tuple[Position, ...]

    @property
    def root(self) -> bytes:
        return self.batch.root


# -- entries ---------------------------------------------------------------------------


def key_entry(pubkey: bytes, dept: str, roles: Sequence[str], from_leaf: int, until: int | None) -> dict[str, Any]:
    """A `key` entry's value (docs/protocol.md section 11.5), also its fact (families/gov.py)."""
    return {"pubkey": pubkey, "dept": dept, "roles": list(roles), "from": from_leaf, "until": until}


def dept_entry(name: str, from_leaf: int) -> dict[str, Any]:
    return {"name": name, "from": from_leaf}


def validators_entry(validators: Iterable[tuple[str, str, bytes]], since: int) -> dict[str, Any]:
    return {"validators": [{"dept": d, "name": n, "pubkey": pk} for d, n, pk in validators], "since": since}


def key_value(pubkey: bytes, dept: str, roles: Sequence[str], from_leaf: int, until: int | None) -> bytes:
    return codec.encode(key_entry(pubkey, dept, roles, from_leaf, until))


def dept_value(name: str, from_leaf: int) -> bytes:
    return codec.encode(dept_entry(name, from_leaf))


def validators_value(validators: Iterable[tuple[str, str, bytes]], since: int) -> bytes:
    return codec.encode(validators_entry(validators, since))


def initial_entries(genesis: Genesis) -> dict[bytes, bytes]:
    """The map at height 0 (docs/protocol.md section 11.5): path -> value bytes."""
    entries: dict[bytes, bytes] = {}
    for key_id, signer in genesis.signers.items():
        entries[statemap.path("key", key_id)] = key_value(signer.pubkey.raw, signer.dept, signer.roles, 0, None)
    names: dict[str, str] = {}
    for v in genesis.validators:
        names.setdefault(v.dept, v.name)  # a dept is named after its first validator
    for dept, name in names.items():
        entries[statemap.path("dept", dept)] = dept_value(name, 0)
    members = [(v.dept, v.name, v.pubkey.raw) for v in genesis.validators]
    entries[statemap.path("validators", "")] = validators_value(members, 1)
    return entries


_INITIAL_CACHED_MAX = 8  # genesis files whose initial map is kept (tests build several)
_initial: dict[bytes, tuple[bytes, Mapping[bytes, bytes]]] = {}


def initial_map(genesis: Genesis) -> tuple[bytes, Mapping[bytes, bytes]]:
    """(root, nodes) of the height-0 map; block 1's commit batch stores its nodes."""
    found = _initial.get(genesis.raw)
    if found is None:
        nodes = maptree.MemoryNodeStore()
        m = maptree.StateMap(nodes)
        m.apply(initial_entries(genesis))
        if len(_initial) >= _INITIAL_CACHED_MAX:
            _initial.clear()
        found = _initial[genesis.raw] = (m.root, dict(nodes.nodes))
    return found


# -- one block's changes ------------------------------------------------------------------


def record_appends(leaf_index: int, subject: str, refs: Iterable[bytes]) -> list[Append]:
    """The lists one record joins: its subject's, and the `refby` list of each ref."""
    return [("subject", subject, leaf_index), *(("refby", ref, leaf_index) for ref in refs)]


def block_change(state: maptree.StateMap, appends: Iterable[Append],
                 extra: Mapping[bytes, bytes] | None = None,
                 entries: Mapping[bytes, bytes] | None = None) -> MapChange:
    """The map after these appends (in log order) on top of `state`, then `entries`
    (path -> value bytes: the membership changes, docs/protocol.md section 13); nothing
    is written.

    `extra` holds nodes not yet stored that `state` may read (the initial map, which
    block 1 stores)."""
    grouped: dict[bytes, list[int]] = {}
    for namespace, name, leaf in appends:
        grouped.setdefault(statemap.path(namespace, name), []).append(leaf)
    reader = state if not extra else maptree.StateMap(_Overlay(state.store, extra), state.root)
    list_nodes: list[ListNode] = []
    positions: list[Position] = []

    def appender(list_path: bytes, leaves: list[int]) -> maptree.Update:
        def append(current: bytes | None, edge: bytes) -> tuple[bytes, bytes]:
            # The map hands over a decoded leaf, whose edge decode_node checked (or its own).
            value, new_edge, created = maptree.append_to_list(current, edge, leaves)
            list_nodes.extend((list_path, level, index, h) for level, index, h in created
                              if level >= LIST_NODE_LEVEL_STORED_MIN)
            positions.extend((list_path, created[0][1] + i, leaf) for i, leaf in enumerate(leaves))
            return value, new_edge
        return append

    updates: dict[bytes, maptree.Change] = {p: appender(p, leaves) for p, leaves in grouped.items()}
    for p, value in (entries or {}).items():
        assert p not in updates, "a membership entry is never a record list"
        updates[p] = value
    batch = reader.prepare_updates(updates)
    if extra:
        batch = maptree.Batch(batch.base, batch.root, {**extra, **batch.nodes}, batch.parsed, batch.replaced)
    return MapChange(batch, tuple(list_nodes), tuple(positions))


class _Overlay:
    """Nodes not yet stored, over a store."""

    def __init__(self, store: maptree.NodeStore, extra: Mapping[bytes, bytes]) -> None:
        self.store, self.extra = store, extra

    def node(self, node_hash: bytes) -> maptree.Stored | None:
        found = self.extra.get(node_hash)
        return maptree.decode_node(node_hash, found) if found is not None else self.store.node(node_hash)

    def put(self, nodes: Mapping[bytes, bytes]) -> None:
        raise AssertionError("a block's map change is written by the store's commit, not here")


class MemoryLists:
    """Record lists kept in memory (the simulation and tests): `list_nodes` reads one list's
    tree for proofs, `save` keeps a block's change."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[bytes, int, int], bytes] = {}
        self.leaves: dict[tuple[bytes, int], int] = {}

    def list_nodes(self, list_path: bytes) -> merkle.NodeReader:
        return _MemoryListTree(self, list_path)

    def save(self, change: MapChange) -> None:
        for list_path, level, index, h in change.list_nodes:
            self.nodes[(list_path, level, index)] = h
        for list_path, position, leaf in change.positions:
            self.leaves[(list_path, position)] = leaf


class _MemoryListTree:
    def __init__(self, lists: MemoryLists, list_path: bytes) -> None:
        self.lists, self.list_path = lists, list_path
        self.low = merkle.LeafBlocks(self._leaf_levels, LIST_NODE_LEVEL_STORED_MIN)

    def node(self, level: int, index: int) -> bytes:
        if level >= LIST_NODE_LEVEL_STORED_MIN:
            return self.lists.nodes[(self.list_path, level, index)]
        h = self.low.node(level, index)
        if h is None:
            raise KeyError((self.list_path, level, index))
        return h

    def _leaf_levels(self, start: int, end: int) -> list[list[bytes]]:
        out: list[bytes] = []
        while start + len(out) < end and (self.list_path, start + len(out)) in self.lists.leaves:
            out.append(statemap.list_leaf_hash(self.lists.leaves[(self.list_path, start + len(out))]))
        return merkle.subtree_levels(out)
