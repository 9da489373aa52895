"""RFC 6962 / RFC 9162 section 2.1 Merkle tree: pure functions, no I/O.

Trees are read through a `NodeReader`: `node(level, index)` returns the hash of
the complete subtree holding leaves [index * 2**level, (index + 1) * 2**level).
Any range that the RFC's recursion visits starts on a multiple of its left
child's size, so it splits into complete subtrees plus at most one ragged right
edge; `range_hash` therefore costs O(log n) reads, and so do the proofs built
from it. `Frontier` keeps the complete subtrees on the right edge of the tree
(one per set bit of the size) so an append writes amortised 2 nodes and the root
needs no reads at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Protocol

HASH_BYTES = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
PROOF_MAX_HASHES = 64


class NodeReader(Protocol):
    def node(self, level: int, index: int) -> bytes: ...


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def complete_subtree_hash(leaf_hashes: list[bytes]) -> bytes:
    """Hash of a complete subtree from its 2**level leaf hashes, in order."""
    assert leaf_hashes and len(leaf_hashes) & (len(leaf_hashes) - 1) == 0, "needs 2**level leaves"
    return subtree_levels(leaf_hashes)[-1][0]


def subtree_levels(leaf_hashes: list[bytes]) -> list[list[bytes]]:
    """Every complete subtree over these leaf hashes, as levels: `levels[L][i]` is the hash
    of leaves [i * 2**L, (i + 1) * 2**L); levels[0] is the leaves themselves, and the last
    level holds one hash or none (no leaves). A subtree missing a leaf is not there."""
    levels = [leaf_hashes]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
    return levels


class LeafBlocks:
    """Nodes below `level_min` from one aligned block of 2**level_min leaves at a time:
    `read(first, end)` gives the block's `subtree_levels` (of its leaves up to the first
    one missing), so each of its nodes is hashed once however many proofs ask.

    For trees that store only their upper levels (storage/__init__.py, storage/mapnodes.py):
    a proof's siblings below `level_min` all lie in its leaf's block, so one read serves
    them. Blocks read are kept by the instance, which therefore serves one proof or one
    answer, not a node's lifetime."""

    def __init__(self, read: Callable[[int, int], list[list[bytes]]], level_min: int) -> None:
        self.read, self.level_min = read, level_min
        self._blocks: dict[int, list[list[bytes]]] = {}

    def node(self, level: int, index: int) -> bytes | None:
        """The node's hash; None if not all of the leaves under it exist."""
        assert 0 <= level < self.level_min
        block = index >> (self.level_min - level)
        levels = self._blocks.get(block)
        if levels is None:
            first = block << self.level_min
            levels = self._blocks[block] = self.read(first, first + (1 << self.level_min))
            assert len(levels[0]) <= 1 << self.level_min and len(levels) <= self.level_min + 1
        at = index - (block << (self.level_min - level))
        row = levels[level] if level < len(levels) else []
        return row[at] if at < len(row) else None


def _split(size: int) -> int:
    """Largest power of two strictly below `size` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def range_hash(reader: NodeReader, start: int, end: int) -> bytes:
    """MTH of leaves [start, end); `start` must be aligned as in the RFC recursion."""
    size = end - start
    assert size >= 1
    level = size.bit_length() - 1
    if size == 1 << level and start % size == 0:
        return reader.node(level, start >> level)
    k = _split(size)
    return node_hash(range_hash(reader, start, start + k), range_hash(reader, start + k, end))


def root(reader: NodeReader, size: int) -> bytes:
    return EMPTY_ROOT if size == 0 else range_hash(reader, 0, size)


def inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 section 2.1.3.1, leaf-side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(range_hash(reader, start + k, end))
            end = start + k
        else:
            path.append(range_hash(reader, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(reader: NodeReader, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) of RFC 9162 section 2.1.4.1."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    proof: list[bytes] = []
    start, end, whole = 0, new_size, True
    while old_size != end:
        k = _split(end - start)
        if old_size - start <= k:
            proof.append(range_hash(reader, start + k, end))
            end = start + k
        else:
            proof.append(range_hash(reader, start, start + k))
            start += k
            whole = False
    if not whole:
        proof.append(range_hash(reader, start, end))
    proof.reverse()
    return proof


def _up_to_a_right_child(fn: int, sn: int) -> tuple[int, int]:
    """RFC 9162's "right-shift fn and sn until fn is odd or zero" after a left sibling."""
    while fn & 1 == 0 and fn != 0:
        fn >>= 1
        sn >>= 1
    return fn, sn


def root_from_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes | None:
    """Root implied by an inclusion proof (RFC 9162 2.1.3.2), or None if malformed."""
    if not 0 <= index < size or len(proof) > PROOF_MAX_HASHES:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if len(p) != HASH_BYTES or sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            fn, sn = _up_to_a_right_child(fn, sn)
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """`leaf` is the leaf *hash*; True iff the proof places it at `index`."""
    return root_from_inclusion(leaf, index, size, proof) == expected_root


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
) -> bool:
    """RFC 9162 section 2.1.4.2."""
    if not 0 <= old_size <= new_size or len(proof) > PROOF_MAX_HASHES:
        return False
    if any(len(p) != HASH_BYTES for p in proof):
        return False
    if old_size == new_size:
        return old_root == new_root and not proof
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            fn, sn = _up_to_a_right_child(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


class Frontier:
    """The right edge of a tree: the root of each maximal complete subtree.

    `append` returns the nodes it creates as (level, index, hash) so a store
    can write them; the tree's `root()` is folded from the edge alone.
    """

    def __init__(self, size: int = 0, edge: Sequence[bytes] = ()) -> None:
        assert len(edge) == bin(size).count("1")
        self.size = size
        self._edge = list(edge)  # largest subtree first

    @classmethod
    def load(cls, reader: NodeReader, size: int) -> Frontier:
        edge, start = [], 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                edge.append(reader.node(level, start >> level))
                start += 1 << level
        return cls(size, edge)

    def copy(self) -> Frontier:
        return Frontier(self.size, self._edge)

    @property
    def edge(self) -> tuple[bytes, ...]:
        """The roots of the complete subtrees on the right edge, largest first."""
        return tuple(self._edge)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Append a leaf hash; return every node it completes, leaf first."""
        index = self.size
        h = leaf
        created = [(0, index, h)]
        level = 0
        while index & 1:
            h = node_hash(self._edge.pop(), h)
            index >>= 1
            level += 1
            created.append((level, index, h))
        self._edge.append(h)
        self.size += 1
        return created

    def root(self) -> bytes:
        if not self._edge:
            return EMPTY_ROOT
        r = self._edge[-1]
        for h in reversed(self._edge[:-1]):
            r = node_hash(h, r)
        return r


class MemoryTree:
    """All nodes in a dict: the reference NodeReader for tests and small trees."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.frontier = Frontier()

    def append(self, leaf: bytes) -> None:
        for level, index, h in self.frontier.append(leaf):
            self.nodes[(level, index)] = h

    def node(self, level: int, index: int) -> bytes:
        return self.nodes[(level, index)]

    @property
    def size(self) -> int:
        return self.frontier.size
