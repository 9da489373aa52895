"""The incremental state map (docs/protocol.md section 11): updated by batches, stored as tiles.

statemap.py defines the map (paths, hashes, proofs, record lists); this keeps one
over a node store and changes it block by block, never rebuilding it.

Theory of operation.

Hashing is binary, storage is by tiles: a *tile* holds four levels of the tree below
an inner node at a depth divisible by four, by position as in a heap (1 is its root,
p's halves are 2p and 2p + 1, 16..31 its slots four levels down). A slot holds
nothing, one entry's leaf, or the next tile. Stored, each leaf and each tile is one
key, addressed by its hash: a leaf is `00 || path || value_bytes` (key
`map_leaf_hash(path, value_hash)`) or `02 || path || k || k hashes || value_bytes` (a
leaf with k hashes attached that the map does not hash: a record list's right edge);
a tile is `03 || present || leaves || hashes` (which slots hold something, which of
those a leaf, and their hashes; key: the inner hash of its root), its inner positions
hashed again from its slots when it is read. A change rewrites one tile per four
levels of its path, not one node per level: a tree of 200,000 entries is some 19
levels deep, and a block's commit batch is what LevelDB's time goes with, key by key
(docs/performance.md). Empty subtrees are not stored: their hash, 32 zero bytes, is
the sentinel. Reads go through `NodeStore.node`, writes through `NodeStore.put` (one
batch per block); every leaf or tile read from bytes is checked against its key
(`decode_node`), so a flipped bit on disk raises StoreCorrupt instead of yielding a
wrong proof. A store keeps decoded nodes, and a batch carries its new ones decoded as
well as in bytes, so nothing is decoded twice. Why by hash rather than by (depth, path
prefix):
- nodes are immutable and never overwritten: a block's state is reachable from the
  `state` root in its header alone, so there is no second pointer to keep in step; a
  crash after writing nodes but before the header leaves only unreferenced nodes;
- any stored root can be read and proven, so a checkpoint that is not the head still
  has proofs, and a reader needs no lock or snapshot while the next block commits;
- `prepare` computes a proposed block's root and its new nodes without writing
  anything: the node keeps the `Batch` while the block is voted on, and `commit`
  writes it with the block or the node drops it;
- a leaf's hash does not depend on its depth, so when an insert pushes a collapsed
  leaf down or a delete lifts one up, the leaf itself is unchanged.
The price is that old versions stay stored: reclaiming space is a separate step
that deletes the nodes no retained root reaches.

Updates. A batch is a map path -> value_bytes or None (delete); from a sequence,
later writes win, as in a block applied in log order. One recursive descent from the
root carries the changes sorted by path and splits them by the four bits of each
tile's slots, so it visits only the tiles on changed paths, reads each once and writes
each new one once: O(k * depth) for k changes, never a rebuild. Where the descent
meets an empty slot or a leaf, the few entries that land there are built into a new
subtree (`_subtree`). A tile's positions above its changed slots are settled again
bottom-up (`_settle`): a position whose halves hold one leaf and nothing holds that
leaf, which is the collapse rule, so a tile left with one entry gives its parent's
slot that leaf; depth never exceeds 256 because two distinct paths differ in some bit.
The root after a batch depends only on the final entry set, so it equals the root of
the same changes applied one by one, and `root_of`.

Compiled. The descent is also written in C (`_mapcore.c`, built by setup.py), which a
StateMap uses where it is built: the same walk, giving the same root and the same
nodes in the same order (tests/unit/test_mapcore.py checks it node for node against
the Python below on random batches). A record's change costs some 40 us in this
Python, a tenth of it hashing (docs/performance.md). Reads still go through
`NodeStore.node` and updates are still called as they are here, so what is checked,
and where, does not change; nothing a verifier runs is compiled. A record list's
append (`append_to_list`, which the ledger's updates call) is compiled too, for lists
exactly as statemap writes them; anything else goes to statemap.list_append.

"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any, Protocol

from .errors import InvalidInput, StoreCorrupt, StoreOutdated
from .statemap import (
    EMPTY_ROOT, HASH_BYTES, INNER_HASH_PREFIX, LEAF_HASH_PREFIX, PATH_BITS, VALUE_HASH_PREFIX, Leaf, Proof, check_path,
    check_value, is_hash, leaf_hash, list_append, value_hash,
)


def _checked_list_append(value_bytes: bytes | None, edge: bytes,
                         leaf_indexes: list[int]) -> tuple[bytes, bytes, list[tuple[int, int, bytes]]]:
    return list_append(value_bytes, edge, leaf_indexes, edge_checked=True)


try:  # the same descent, compiled (setup.py builds it where it can; the module doc says why)
    from . import _mapcore  # type: ignore[attr-defined]
except ImportError:
    _mapcore = None
else:
    _mapcore.configure(EMPTY_ROOT, INNER_HASH_PREFIX, LEAF_HASH_PREFIX, VALUE_HASH_PREFIX, b"", StoreCorrupt,
                       _checked_list_append)
# Is the compiled descent here? StateMap uses it unless told not to (the tests run both).
COMPILED = _mapcore is not None
DESCENT = "compiled" if COMPILED else "python"  # what the benches report as map_descent


def append_to_list(value_bytes: bytes | None, edge: bytes,
                   leaf_indexes: list[int]) -> tuple[bytes, bytes, list[tuple[int, int, bytes]]]:
    """statemap.list_append of a list whose leaf this map decoded or made, so that its
    edge was checked (`decode_node`): compiled where built, for a list exactly as
    statemap writes one (anything else, errors included, is statemap's)."""
    if _mapcore is not None:
        return _mapcore.list_append(value_bytes, edge, leaf_indexes)
    return _checked_list_append(value_bytes, edge, leaf_indexes)

# Stored node tags: 01 was an inner node of the earlier layout, one node a key (a store
# that still has them is rebuilt, docs/storage.md).
_LEAF_TAG, _EARLIER_INNER_TAG, _ATTACHED_LEAF_TAG, _TILE_TAG = b"\x00", b"\x01", b"\x02", b"\x03"

Changes = Mapping[bytes, bytes | None] | Iterable[tuple[bytes, bytes | None]]

# A decoded leaf: (True, path, value_bytes, attached). `attached` is what a leaf keeps
# beside its value that the map does not hash (a record list's right edge, see
# `list_append`); b"" for most entries. (The first field tells it from a Tile.)
Node = tuple[bool, bytes, bytes, bytes]
ATTACHED_HASHES_MAX = 64  # a record list's right edge: one hash per set bit of a u64 size

TILE_LEVELS = 4  # the levels of the tree one stored tile holds
_SLOTS = 1 << TILE_LEVELS  # a tile's positions 16..31 are its slots, TILE_LEVELS below its root
_POSITIONS = 2 * _SLOTS
# What a position of a tile holds. At a slot, _INNER is the root of the tile below.
_EMPTY, _LEAF, _INNER = 0, 1, 2


# TILE_LEVELS levels of the tree below an inner node at a depth divisible by TILE_LEVELS,
# by position as in a heap: (hashes, kinds), hashes[p] and kinds[p] for p = 1 (the tile's
# root) to 31, p's halves at 2p and 2p + 1, the slots 16..31 at the tile's depth +
# TILE_LEVELS. A position that holds one entry holds its leaf (the collapse rule); a slot
# that holds two or more holds the tile below. A tuple of a tuple and bytes, never
# changed once made: the garbage collector stops tracking it, however many are cached
# (a class instance or lists would be scanned by every full collection).
Tile = tuple[tuple[bytes, ...], bytes]


def is_tile(node: Node | Tile) -> bool:
    return len(node) == 2


def tile_slots(tile: Tile) -> list[tuple[bytes, bool]]:
    """(hash, is a leaf) of each slot of a tile that holds something, in path order."""
    hs, ks = tile
    return [(hs[s], ks[s] == _LEAF) for s in range(_SLOTS, _POSITIONS) if ks[s] != _EMPTY]


Stored = Node | Tile  # what a node store holds under a hash: a leaf, or a tile by its root


_ALL_POSITIONS = range(_SLOTS - 1, 0, -1)  # bottom-up: a position after both its halves


def _settle(hs: list[bytes], ks: bytearray, positions: Iterable[int]) -> None:
    """Each position (in an order that has both its halves settled first) from its two
    halves: empty, the one leaf it holds, or an inner node."""
    for p in positions:
        left = p << 1
        kl, kr = ks[left], ks[left + 1]
        if kl == _INNER or kr == _INNER or (kl == _LEAF and kr == _LEAF):
            hs[p] = sha256(INNER_HASH_PREFIX + hs[left] + hs[left + 1]).digest()
            ks[p] = _INNER
        elif kl == _EMPTY:  # the right half: empty, or one leaf lifted
            hs[p], ks[p] = hs[left + 1], kr
        else:  # one leaf on the left, nothing on the right
            hs[p], ks[p] = hs[left], _LEAF


def _slots(items: Sequence[tuple[Any, ...]], depth: int, lo: int, hi: int) -> list[tuple[int, int, int]]:
    """(slot, first, end) of each run of items[lo:hi] (sorted by path, first) that falls in
    one slot of a tile at `depth` (a multiple of TILE_LEVELS): the next four bits."""
    at, shift = depth >> 3, 0 if depth & 4 else 4
    runs: list[tuple[int, int, int]] = []
    for i in range(lo, hi):
        s = _SLOTS + ((items[i][0][at] >> shift) & 15)
        if runs and runs[-1][0] == s:
            runs[-1] = (s, runs[-1][1], i + 1)
        else:
            runs.append((s, i, i + 1))
    return runs


# The slots' kinds as the digits of a tile's two slot maps, slot 0 last once reversed.
_PRESENT_DIGITS = bytes.maketrans(bytes([_EMPTY, _LEAF, _INNER]), b"011")
_LEAF_DIGITS = bytes.maketrans(bytes([_EMPTY, _LEAF, _INNER]), b"010")


def _tile_bytes(hs: list[bytes], ks: bytearray) -> bytes:
    """A tile as stored: 03, the slots that hold something and those that hold a leaf
    (two 16-bit big-endian maps, bit s for slot s), then those slots' hashes in order.
    Its inner positions are hashed again from them when it is read."""
    kinds = bytes(ks[_SLOTS:])
    present = int(kinds.translate(_PRESENT_DIGITS)[::-1], 2)
    leaves = int(kinds.translate(_LEAF_DIGITS)[::-1], 2)
    return (_TILE_TAG + present.to_bytes(2, "big") + leaves.to_bytes(2, "big")
            + b"".join([h for h, kind in zip(hs[_SLOTS:], kinds) if kind]))


def _decode_tile(h: bytes, raw: bytes) -> Tile:
    present, leaves = int.from_bytes(raw[1:3], "big"), int.from_bytes(raw[3:5], "big")
    if len(raw) < 5 or leaves & ~present or len(raw) != 5 + HASH_BYTES * present.bit_count():
        raise StoreCorrupt(f"state map tile {h.hex()} is not a tile's layout")
    hs, ks = [EMPTY_ROOT] * _POSITIONS, bytearray(_POSITIONS)
    at = 5
    for s in range(_SLOTS):
        if present >> s & 1:
            hs[_SLOTS + s], ks[_SLOTS + s] = raw[at:at + HASH_BYTES], _LEAF if leaves >> s & 1 else _INNER
            at += HASH_BYTES
            if hs[_SLOTS + s] == EMPTY_ROOT:
                raise StoreCorrupt(f"state map tile {h.hex()} names an empty slot as full")
    _settle(hs, ks, _ALL_POSITIONS)
    if ks[1] != _INNER or hs[1] != h:
        raise StoreCorrupt(f"state map tile {h.hex()} does not hash to its key")
    return tuple(hs), bytes(ks)


def parse_leaf(raw: bytes) -> Node | None:
    """The parts of a stored leaf's bytes (None: not a leaf's layout); nothing is hashed,
    so only for bytes checked already (`decode_node`) or made here."""
    tag = raw[:1]
    if tag == _LEAF_TAG and len(raw) > 1 + HASH_BYTES:
        return True, raw[1:33], raw[33:], b""
    if tag == _ATTACHED_LEAF_TAG and len(raw) > 2 + HASH_BYTES:
        end = 2 + HASH_BYTES * (raw[33] + 1)
        return (True, raw[1:33], raw[end:], raw[34:end]) if len(raw) > end else None
    return None


def _decode_leaf(h: bytes, raw: bytes) -> Node:
    node = parse_leaf(raw)
    if node is None or h != leaf_hash(node[1], value_hash(node[2])):
        raise StoreCorrupt(f"state map node {h.hex()} does not hash to its key")
    if node[3]:
        try:
            list_append(node[2], node[3], [])
        except InvalidInput as exc:
            raise StoreCorrupt(f"state map node {h.hex()} keeps a right edge but no record list "
                               f"({exc.message})") from None
    return node


def is_earlier_layout(raw: bytes) -> bool:
    """Is this a stored inner node of the layout before tiles?"""
    return raw[:1] == _EARLIER_INNER_TAG


def decode_node(h: bytes, raw: bytes) -> Stored:
    """A stored leaf or tile whose bytes must hash to `h`, a leaf's attachment (only ever
    a record list's right edge) folding to the list's root; StoreCorrupt if not. Whatever
    holds a decoded node may use it without checking again."""
    tag = raw[:1]
    if tag == _TILE_TAG:
        return _decode_tile(h, raw)
    if tag == _EARLIER_INNER_TAG:
        raise StoreOutdated(f"state map node {h.hex()} is an inner node of the earlier layout (one node a key)")
    return _decode_leaf(h, raw)


class NodeStore(Protocol):
    """Where a StateMap keeps its leaves and tiles, by hash (see the module doc).

    `node` answers one decoded and checked against its hash (`decode_node`, or computed
    by this process), None for a hash it does not hold; `put` writes one batch,
    atomically for a persistent store. Nodes are immutable, so `put` never overwrites."""

    def node(self, node_hash: bytes) -> Stored | None: ...

    def put(self, nodes: Mapping[bytes, bytes]) -> None: ...


class MemoryNodeStore:
    """All nodes' bytes in a dict; each read is decoded and checked again."""

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}

    def get(self, node_hash: bytes) -> bytes | None:
        return self.nodes.get(node_hash)

    def node(self, node_hash: bytes) -> Stored | None:
        raw = self.nodes.get(node_hash)
        return None if raw is None else decode_node(node_hash, raw)

    def put(self, nodes: Mapping[bytes, bytes]) -> None:
        self.nodes.update(nodes)


@dataclass(frozen=True)
class Batch:
    """A prepared batch: computed on `base`, it gives `root` once `nodes` are stored.

    `nodes` are the new leaves' and tiles' bytes by hash, `parsed` the same decoded (what
    a store's cache keeps, so nothing is decoded from bytes again), `replaced` the
    leaves and tiles of `base` on the changed paths, which the new root no longer reaches
    (what a cache may drop)."""

    base: bytes
    root: bytes
    nodes: Mapping[bytes, bytes]
    parsed: Mapping[bytes, Stored] = field(default_factory=dict)
    replaced: tuple[bytes, ...] = ()


# A change's outcome: (value_bytes, attached), or None (no entry).
Outcome = tuple[bytes, bytes] | None
# A change that depends on the entry's current value and attachment (value None: absent),
# e.g. a record list's append: resolved where the descent meets the entry, so it costs
# no walk of its own.
Update = Callable[[bytes | None, bytes], Outcome]
Change = bytes | None | Update  # given value, deletion, or update


def _resolve(change: Change, current: Outcome) -> Outcome:
    """A change's outcome: given (checked by `prepare`), or computed from the current one."""
    if change is None:
        return None
    if type(change) is bytes:
        return change, b""
    # An update is the ledger's own code (ledgermap, a record list's append), which builds
    # canonical value bytes by construction (statemap's tests check each such builder).
    assert callable(change)
    outcome = change(None, b"") if current is None else change(*current)
    assert outcome is None or (len(outcome[1]) % HASH_BYTES == 0
                               and len(outcome[1]) <= HASH_BYTES * ATTACHED_HASHES_MAX)
    return outcome


class _Writes:
    """What one descent makes: the new leaves' and tiles' bytes (`raw`) and decoded
    (`parsed`), and the old ones it replaced, which the new root no longer reaches."""

    __slots__ = ("raw", "parsed", "replaced")

    def __init__(self) -> None:
        self.raw: dict[bytes, bytes] = {}
        self.parsed: dict[bytes, Stored] = {}
        self.replaced: list[bytes] = []


def _leaf_node(p: bytes, value_bytes: bytes, attached: bytes, out: _Writes) -> bytes:
    h = sha256(LEAF_HASH_PREFIX + p + sha256(VALUE_HASH_PREFIX + value_bytes).digest()).digest()
    if attached:
        out.raw[h] = _ATTACHED_LEAF_TAG + p + bytes([len(attached) // HASH_BYTES]) + attached + value_bytes
    else:
        out.raw[h] = _LEAF_TAG + p + value_bytes
    out.parsed[h] = (True, p, value_bytes, attached)
    return h


def _new_tile(hs: list[bytes], ks: bytearray, out: _Writes) -> bytes:
    h = hs[1]
    out.raw[h] = _tile_bytes(hs, ks)
    out.parsed[h] = tuple(hs), bytes(ks)
    return h


# An entry being built into a subtree: (path, value_bytes, attached, its stored leaf's
# hash if that leaf is unchanged, else None).
_Entry = tuple[bytes, bytes, bytes, bytes | None]
# A subtree after an update: its hash and what it is (_EMPTY, _LEAF or _INNER).
_Sub = tuple[bytes, int]


def _subtree(entries: list[_Entry], depth: int, out: _Writes) -> _Sub:
    """A new subtree at `depth` (a multiple of TILE_LEVELS) holding `entries`, sorted and
    sharing their first `depth` bits: nothing, one leaf, or a tile over tiles."""
    if not entries:
        return EMPTY_ROOT, _EMPTY
    if len(entries) == 1:
        p, value_bytes, attached, kept = entries[0]
        return (kept if kept is not None else _leaf_node(p, value_bytes, attached, out)), _LEAF
    assert depth < PATH_BITS, "two distinct paths share all 256 bits"
    hs, ks = [EMPTY_ROOT] * _POSITIONS, bytearray(_POSITIONS)
    for s, i, j in _slots(entries, depth, 0, len(entries)):
        hs[s], ks[s] = _subtree(entries[i:j], depth + TILE_LEVELS, out)
    _settle(hs, ks, _ALL_POSITIONS)
    return _new_tile(hs, ks, out), _INNER


def _merge_leaf(h: bytes, leaf: Node, changes: Sequence[tuple[bytes, Change]], depth: int, out: _Writes) -> _Sub:
    """The subtree at `depth` that held only the leaf `h`, after `changes`."""
    _, p0, value0, attached0 = leaf
    if len(changes) == 1 and changes[0][0] == p0:  # most of a block's: an append to a list
        now = _resolve(changes[0][1], (value0, attached0))
        if now is not None and now[0] == value0:
            return h, _LEAF  # unchanged: the stored leaf stays, attachment and all
        out.replaced.append(h)
        return (EMPTY_ROOT, _EMPTY) if now is None else (_leaf_node(p0, now[0], now[1], out), _LEAF)
    merged: dict[bytes, Outcome] = {p0: (value0, attached0)}
    for p, u in changes:
        merged[p] = _resolve(u, merged[p0] if p == p0 else None)
    # An unchanged value keeps the stored leaf, attachment and all: a node whose hash is
    # stored already is never written again (a write of the same value has no attachment).
    now = merged[p0]
    kept = h if now is not None and now[0] == value0 else None
    if kept is None:
        out.replaced.append(h)
    return _subtree(sorted((p, o[0], o[1], kept if p == p0 else None) for p, o in merged.items() if o is not None),
                    depth, out)


class StateMap:
    """The incremental state map over a NodeStore, at one root."""

    def __init__(self, store: NodeStore | None = None, root: bytes = EMPTY_ROOT, *, compiled: bool = COMPILED) -> None:
        if not is_hash(root):
            raise ValueError("a state map root is 32 bytes")
        if compiled and not COMPILED:
            raise ValueError("the compiled state-map descent is not built here (setup.py)")
        self._store: NodeStore = MemoryNodeStore() if store is None else store
        self._root = root
        self._node = self._store.node
        self._compiled = compiled

    @property
    def root(self) -> bytes:
        return self._root

    @property
    def store(self) -> NodeStore:
        return self._store

    def at(self, root: bytes) -> StateMap:
        """The map at another root whose nodes this store holds (an earlier checkpoint)."""
        return StateMap(self._store, root, compiled=self._compiled)

    def get(self, p: bytes) -> bytes | None:
        check_path(p)
        leaf = self._walk(p)[1]
        return leaf[1] if leaf is not None and leaf[0] == p else None

    def prove(self, p: bytes) -> Proof:
        return self.get_and_prove(p)[1]

    def get_and_prove(self, p: bytes) -> tuple[bytes | None, Proof]:
        """p's value (None: absent) and its proof, from one walk."""
        check_path(p)
        siblings, leaf = self._walk(p)
        siblings.reverse()  # walked top-down; a proof lists them bottom-up
        value = leaf[1] if leaf is not None and leaf[0] == p else None
        return value, Proof(None if leaf is None else Leaf(leaf[0], value_hash(leaf[1])), tuple(siblings))

    def set(self, p: bytes, value_bytes: bytes) -> None:
        self.apply([(p, value_bytes)])

    def delete(self, p: bytes) -> None:
        """Remove p's entry; a path without one is left as it is."""
        self.apply([(p, None)])

    def apply(self, changes: Changes) -> bytes:
        """Prepare and commit one batch; return the new root."""
        batch = self.prepare(changes)
        self.commit(batch)
        return batch.root

    def prepare(self, changes: Changes) -> Batch:
        """The root and new nodes after `changes` (path -> value_bytes, None deletes),
        computed without writing: the map and its store are unchanged."""
        final: dict[bytes, bytes | None] = {}
        for p, value_bytes in changes.items() if isinstance(changes, Mapping) else changes:
            check_path(p)
            if value_bytes is not None:
                check_value(value_bytes)
            final[p] = value_bytes  # later writes win, as in log order
        return self._prepare(sorted(final.items()))

    def prepare_updates(self, updates: Mapping[bytes, Change]) -> Batch:
        """As `prepare`, each entry's new value given or computed from its current one by
        its update, called once, during the one descent that also rewrites the map."""
        for p, change in updates.items():
            check_path(p)
            if type(change) is bytes:
                check_value(change)
        return self._prepare(sorted(updates.items()))

    def _prepare(self, changes: list[tuple[bytes, Change]]) -> Batch:
        out = _Writes()
        root = self._root
        if changes:
            kind = _EMPTY if root == EMPTY_ROOT else _INNER if len(self._load(root)) == 2 else _LEAF
            if self._compiled:
                root = _mapcore.update(self._node, out, root, kind, changes)[0]
            else:
                root = self._update(root, kind, 0, changes, 0, len(changes), out)[0]
        return Batch(self._root, root, out.raw, out.parsed, tuple(out.replaced))

    def commit(self, batch: Batch) -> None:
        if batch.base != self._root:
            raise ValueError("the batch was prepared on another root")
        if batch.nodes:
            self._store.put(batch.nodes)
        self._root = batch.root

    def _load(self, h: bytes) -> Stored:
        node = self._node(h)
        if node is None:
            raise StoreCorrupt(f"state map node {h.hex()} is not stored")
        return node

    def _tile(self, h: bytes) -> Tile:
        node = self._load(h)
        if len(node) != 2:
            raise StoreCorrupt(f"state map node {h.hex()} is a leaf where a tile belongs")
        return node

    def _leaf(self, h: bytes) -> Node:
        node = self._load(h)
        if len(node) == 2:
            raise StoreCorrupt(f"state map node {h.hex()} is a tile where a leaf belongs")
        return node

    def _walk(self, p: bytes) -> tuple[list[bytes], tuple[bytes, bytes] | None]:
        """Siblings top-down along p's walk, and the (path, value) of the leaf it ends at."""
        siblings: list[bytes] = []
        if self._root == EMPTY_ROOT:
            return siblings, None
        node, depth = self._load(self._root), 0
        while len(node) == 2:
            (hs, ks), pos = node, 1
            for i in range(depth, depth + TILE_LEVELS):
                b = (p[i >> 3] >> (7 - (i & 7))) & 1
                siblings.append(hs[(pos << 1) | (b ^ 1)])
                pos = (pos << 1) | b
                if ks[pos] != _INNER:
                    break
            if ks[pos] == _EMPTY:
                return siblings, None
            if ks[pos] == _LEAF:
                leaf = self._leaf(hs[pos])
                return siblings, (leaf[1], leaf[2])
            depth += TILE_LEVELS
            if depth >= PATH_BITS:
                raise StoreCorrupt("state map tiles nest deeper than 256 levels")
            node = self._tile(hs[pos])
        return siblings, (node[1], node[2])

    def _update(self, h: bytes, kind: int, depth: int, changes: list[tuple[bytes, Change]], lo: int, hi: int,
                out: _Writes) -> _Sub:
        """The subtree at `depth` (a multiple of TILE_LEVELS) whose hash is `h` and kind
        `kind`, after changes[lo:hi] (sorted, non-empty, all within it); new nodes go to `out`."""
        if kind == _EMPTY:
            return _subtree([(p, *o, None) for p, u in changes[lo:hi] if (o := _resolve(u, None)) is not None],
                            depth, out)
        if kind == _LEAF:
            return _merge_leaf(h, self._leaf(h), changes[lo:hi], depth, out)
        if depth >= PATH_BITS:
            raise StoreCorrupt("state map tiles nest deeper than 256 levels")
        tile = self._tile(h)
        hs, ks = list(tile[0]), bytearray(tile[1])
        touched: list[int] = []
        for s, i, j in _slots(changes, depth, lo, hi):
            sub = self._update(hs[s], ks[s], depth + TILE_LEVELS, changes, i, j, out)
            if sub != (hs[s], ks[s]):
                hs[s], ks[s] = sub
                touched.append(s)
        if not touched:
            return h, _INNER  # deletes of absent paths, or writes of unchanged values
        out.replaced.append(h)
        if len(touched) == 1:
            _settle(hs, ks, (touched[0] >> 1, touched[0] >> 2, touched[0] >> 3, 1))  # TILE_LEVELS = 4
        else:
            _settle(hs, ks, sorted({s >> k for s in touched for k in range(1, TILE_LEVELS + 1)}, reverse=True))
        if ks[1] != _INNER:
            return hs[1], ks[1]  # what is left is one entry, or none: no tile
        return _new_tile(hs, ks, out), _INNER
