"""RFC 6962 / RFC 9162 section 2.1 Merkle trees: ledgernode.merkle.

Three sources of truth:
- the transparency-dev/merkle test vectors (tests/vectors/transparency-dev-merkle,
  see the README there), both the valid proofs and their modified "probes";
- the RFC 6962 reference tree from the Certificate Transparency code (8 leaves,
  published roots for sizes 1..8), which is also the tree the vectors are about;
- `Naive`, a direct transcription of the recursive definitions MTH, PATH, PROOF
  and SUBPROOF of RFC 9162 section 2.1, plus verifiers written from the same
  recursion (not from the RFC's bit-twiddling verification algorithms that the
  module implements), used for differential testing.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import random
from pathlib import Path

import pytest

from ledgernode import merkle
from ledgernode.merkle import (
    EMPTY_ROOT,
    Frontier,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_hash,
    root,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "transparency-dev-merkle"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# --------------------------------------------------------------------------
# Naive reference, straight from RFC 9162 section 2.1
# --------------------------------------------------------------------------

def split(n: int) -> int:
    """k: the largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Naive:
    """MTH / PATH / PROOF over the list `leaves`; D[lo:hi] is a sub-list."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves

    @functools.lru_cache(maxsize=None)
    def mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return sha256(b"")
        if n == 1:
            return sha256(b"\x00" + self.leaves[lo])
        k = split(n)
        return sha256(b"\x01" + self.mth(lo, lo + k) + self.mth(lo + k, hi))

    def root(self, n: int) -> bytes:
        return self.mth(0, n)

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = split(n)
        if m < k:
            return self.path(m, lo, lo + k) + [self.mth(lo + k, hi)]
        return self.path(m - k, lo + k, hi) + [self.mth(lo, lo + k)]

    def inclusion(self, m: int, n: int) -> list[bytes]:
        return self.path(m, 0, n)

    def subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = split(n)
        if m <= k:
            return self.subproof(m, lo, lo + k, b) + [self.mth(lo + k, hi)]
        return self.subproof(m - k, lo + k, hi, False) + [self.mth(lo, lo + k)]

    def consistency(self, m: int, n: int) -> list[bytes]:
        return self.subproof(m, 0, n, True)


def path_sides(m: int, n: int) -> list[str]:
    """Where each PATH element sits relative to the running hash, leaf side first."""
    if n == 1:
        return []
    k = split(n)
    if m < k:
        return path_sides(m, k) + ["right"]
    return path_sides(m - k, n - k) + ["left"]


def naive_verify_inclusion(leaf: bytes, m: int, n: int, proof, expected: bytes) -> bool:
    if not 0 <= m < n or any(len(p) != 32 for p in proof):
        return False
    sides = path_sides(m, n)
    if len(sides) != len(proof):
        return False
    h = leaf
    for p, side in zip(proof, sides):
        h = sha256(b"\x01" + h + p) if side == "right" else sha256(b"\x01" + p + h)
    return h == expected


def naive_verify_consistency(m: int, n: int, old: bytes, new: bytes, proof) -> bool:
    """Undo SUBPROOF top-down, taking proof elements from the end."""
    if not 0 <= m <= n or any(len(p) != 32 for p in proof):
        return False
    if m == 0:
        return not proof and old == EMPTY_ROOT
    rest = list(proof)

    def sub(m: int, n: int, b: bool):
        if m == n:
            if b:
                return old, old
            if not rest:
                return None
            x = rest.pop()
            return x, x
        if not rest:
            return None
        k = split(n)
        x = rest.pop()
        if m <= k:
            got = sub(m, k, b)
            return None if got is None else (got[0], sha256(b"\x01" + got[1] + x))
        got = sub(m - k, n - k, False)
        if got is None:
            return None
        return sha256(b"\x01" + x + got[0]), sha256(b"\x01" + x + got[1])

    got = sub(m, n, True)
    return got is not None and not rest and got == (old, new)


# --------------------------------------------------------------------------
# Shared trees
# --------------------------------------------------------------------------

# The RFC 6962 reference leaves used by the Certificate Transparency code and by
# the transparency-dev vectors, then more leaves of our own.
CT_LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
MAX = 300
LEAVES = CT_LEAVES + [b"ledgernode leaf %d" % i for i in range(len(CT_LEAVES), MAX + 1)]
NAIVE = Naive(LEAVES)
LEAF_HASHES = [leaf_hash(x) for x in LEAVES]


@pytest.fixture(scope="module")
def big_tree() -> MemoryTree:
    tree = MemoryTree()
    for h in LEAF_HASHES:
        tree.append(h)
    assert tree.size == MAX + 1
    return tree


class BoundedReader:
    """A reader over a bigger tree that fails on any node outside [0, size)."""

    def __init__(self, tree: MemoryTree, size: int) -> None:
        self.tree, self.size, self.reads = tree, size, 0

    def node(self, level: int, index: int) -> bytes:
        assert (index + 1) << level <= self.size, (level, index, self.size)
        self.reads += 1
        return self.tree.node(level, index)


def sample(n: int, full_up_to: int, rng: random.Random, k: int = 10) -> list[int]:
    """All of range(n) when small; otherwise edges plus a seeded sample."""
    if n <= full_up_to:
        return list(range(n))
    picks = {0, 1, n - 2, n - 1, n // 2, split(n) - 1 if n > 1 else 0, split(n) if split(n) < n else 0}
    picks.update(rng.sample(range(n), k))
    return sorted(p for p in picks if 0 <= p < n)


def flip(h: bytes, bit: int = 0) -> bytes:
    b = bytearray(h)
    b[bit // 8 % len(b)] ^= 1 << (bit % 8)
    return bytes(b)


# --------------------------------------------------------------------------
# Basics
# --------------------------------------------------------------------------

def test_hash_primitives():
    assert EMPTY_ROOT == sha256(b"")
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"abc") == sha256(b"\x00abc")
    assert leaf_hash(b"").hex() == CT_ROOTS[0]
    a, b = sha256(b"a"), sha256(b"b")
    assert node_hash(a, b) == sha256(b"\x01" + a + b)
    assert node_hash(a, b) != node_hash(b, a)
    # Domain separation: a leaf is never confused with a node over the same bytes.
    assert leaf_hash(a + b) != node_hash(a, b)
    assert root(MemoryTree(), 0) == EMPTY_ROOT


def test_reference_tree_roots(big_tree):
    for n in range(1, 9):
        assert NAIVE.root(n).hex() == CT_ROOTS[n - 1]
        assert root(big_tree, n).hex() == CT_ROOTS[n - 1]


def test_roots_match_naive_for_every_size(big_tree):
    for n in range(0, MAX + 1):
        reader = BoundedReader(big_tree, n)
        assert root(reader, n) == NAIVE.root(n)
        assert reader.reads <= max(1, n.bit_length())  # O(log n) reads


def test_range_hash_for_every_range_the_recursion_visits(big_tree):
    def visited(lo, hi):
        yield lo, hi
        if hi - lo > 1:
            k = split(hi - lo)
            yield from visited(lo, lo + k)
            yield from visited(lo + k, hi)

    for n in range(1, 70):
        for lo, hi in visited(0, n):
            assert range_hash(big_tree, lo, hi) == NAIVE.mth(lo, hi)


# --------------------------------------------------------------------------
# transparency-dev/merkle vectors
# --------------------------------------------------------------------------

def _b64(s: str) -> bytes:
    return base64.b64decode(s)


def _vector_files(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).glob("*/*.json"))


def _vid(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def test_vector_files_present():
    inclusion, consistency = _vector_files("inclusion"), _vector_files("consistency")
    assert len(inclusion) == 82 and len(consistency) == 84
    for files in (inclusion, consistency):
        happy = [f for f in files if not json.loads(f.read_text())["wantErr"]]
        assert {f.parent.name for f in happy} == {f.parent.name for f in files}
        assert len(happy) < len(files) / 5  # mostly probes


@pytest.mark.parametrize("path", _vector_files("inclusion"), ids=_vid)
def test_inclusion_vector(path):
    v = json.loads(path.read_text())
    proof = [_b64(p) for p in v["proof"] or []]
    leaf, idx, size, want_root = _b64(v["leafHash"]), v["leafIdx"], v["treeSize"], _b64(v["root"])
    ok = verify_inclusion(leaf, idx, size, proof, want_root)
    assert ok is (not v["wantErr"]), v["desc"]
    assert naive_verify_inclusion(leaf, idx, size, proof, want_root) is ok
    if ok:
        # The vectors describe the RFC 6962 reference tree: we build the same proof.
        tree = MemoryTree()
        for h in LEAF_HASHES[:size]:
            tree.append(h)
        assert leaf == LEAF_HASHES[idx]
        assert root(tree, size) == want_root
        assert inclusion_proof(tree, idx, size) == proof
        assert root_from_inclusion(leaf, idx, size, proof) == want_root


@pytest.mark.parametrize("path", _vector_files("consistency"), ids=_vid)
def test_consistency_vector(path):
    v = json.loads(path.read_text())
    proof = [_b64(p) for p in v["proof"] or []]
    m, n, old, new = v["size1"], v["size2"], _b64(v["root1"]), _b64(v["root2"])
    ok = verify_consistency(m, n, old, new, proof)
    assert ok is (not v["wantErr"]), v["desc"]
    assert naive_verify_consistency(m, n, old, new, proof) is ok
    if ok:
        tree = MemoryTree()
        for h in LEAF_HASHES[:n]:
            tree.append(h)
        assert root(tree, m) == old and root(tree, n) == new
        assert consistency_proof(tree, m, n) == proof


# --------------------------------------------------------------------------
# Inclusion proofs against the naive reference
# --------------------------------------------------------------------------

def test_inclusion_proofs_equal_naive_and_verify(big_tree):
    rng = random.Random(6962)
    for n in range(1, MAX + 1):
        reader = BoundedReader(big_tree, n)
        r = NAIVE.root(n)
        for m in sample(n, MAX, rng):
            proof = inclusion_proof(reader, m, n)
            assert proof == NAIVE.inclusion(m, n), (m, n)
            assert len(proof) <= n.bit_length()
            assert verify_inclusion(LEAF_HASHES[m], m, n, proof, r)
            assert root_from_inclusion(LEAF_HASHES[m], m, n, proof) == r
            assert naive_verify_inclusion(LEAF_HASHES[m], m, n, proof, r)


def test_inclusion_proofs_from_exactly_sized_trees():
    # A tree that holds exactly n leaves (no nodes beyond the right edge).
    for n in range(1, 65):
        tree = MemoryTree()
        for h in LEAF_HASHES[:n]:
            tree.append(h)
        assert len(tree.nodes) == 2 * n - bin(n).count("1")
        for m in range(n):
            assert inclusion_proof(tree, m, n) == NAIVE.inclusion(m, n)
        for m in range(n + 1):
            assert consistency_proof(tree, m, n) == (NAIVE.consistency(m, n) if m else [])


def _inclusion_tampered(leaf, m, n, proof, r):
    """(description, leaf, index, size, proof, root) variants that must not verify."""
    other = sha256(b"some other hash")
    for i in range(len(proof)):
        for bit in (0, 137, 255):
            bad = list(proof)
            bad[i] = flip(bad[i], bit)
            yield f"flip proof[{i}] bit {bit}", leaf, m, n, bad, r
        yield f"drop proof[{i}]", leaf, m, n, proof[:i] + proof[i + 1:], r
        swapped = list(proof)
        if i + 1 < len(proof) and proof[i] != proof[i + 1]:
            swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
            yield f"swap proof[{i}]/[{i + 1}]", leaf, m, n, swapped, r
    for i in range(len(proof) + 1):
        yield f"insert at {i}", leaf, m, n, proof[:i] + [other] + proof[i:], r
        yield f"insert root at {i}", leaf, m, n, proof[:i] + [r] + proof[i:], r
    if proof:
        yield "repeat last", leaf, m, n, proof + proof[-1:], r
        yield "truncated element", leaf, m, n, proof[:-1] + [proof[-1][:31]], r
        yield "long element", leaf, m, n, proof[:-1] + [proof[-1] + b"\x00"], r
    yield "flip leaf", flip(leaf), m, n, proof, r
    yield "leaf data instead of leaf hash", LEAVES[m], m, n, proof, r
    yield "flip root", leaf, m, n, proof, flip(r, 77)
    yield "empty root", leaf, m, n, proof, EMPTY_ROOT
    for m2 in {m - 1, m + 1, m ^ 1, m ^ 2, n, n + 1, -1, 2**64 - 1}:
        if m2 != m:
            yield f"index {m2}", leaf, m2, n, proof, r
    for n2 in {n - 1, n + 1, 2 * n, n // 2, 0, m}:
        if n2 != n and 0 < n2 <= MAX:
            # The root of the claimed size: the proof can never match it.
            yield f"size {n2} with its root", leaf, m, n2, proof, NAIVE.root(n2)


def test_inclusion_tampering_fails(big_tree):
    rng = random.Random(9162)
    cases = 0
    for n in range(1, MAX + 1):
        r = NAIVE.root(n)
        for m in sample(n, 40, rng, k=3):
            proof = inclusion_proof(big_tree, m, n)
            for desc, leaf, m2, n2, bad, r2 in _inclusion_tampered(LEAF_HASHES[m], m, n, proof, r):
                assert not verify_inclusion(leaf, m2, n2, bad, r2), (m, n, desc)
                assert not naive_verify_inclusion(leaf, m2, n2, bad, r2), (m, n, desc)
                cases += 1
    assert cases > 20_000


def test_inclusion_bytes_cannot_shift_between_leaf_and_proof():
    # SHA-256(0x01 || leaf || p) only sees the concatenation, so without the
    # 32-byte check a byte could move from p into the "leaf hash" (or back)
    # and the recomputed root would not change.
    for m, n in [(0, 8), (5, 8), (2, 3), (1, 5), (0, 2), (1, 2), (299, 300)]:
        leaf, proof, r = LEAF_HASHES[m], NAIVE.inclusion(m, n), NAIVE.root(n)
        assert verify_inclusion(leaf, m, n, proof, r)
        if path_sides(m, n)[0] == "right":   # H(leaf || p0)
            forged_leaf, forged_p0 = leaf + proof[0][:1], proof[0][1:]
        else:                                # H(p0 || leaf)
            forged_leaf, forged_p0 = leaf[1:], proof[0] + leaf[:1]
        forged = [forged_p0] + proof[1:]
        assert sha256(b"\x01" + forged_leaf + forged_p0) == sha256(b"\x01" + leaf + proof[0]) or \
            sha256(b"\x01" + forged_p0 + forged_leaf) == sha256(b"\x01" + proof[0] + leaf)
        assert root_from_inclusion(forged_leaf, m, n, forged) is None
        assert not verify_inclusion(forged_leaf, m, n, forged, r)


def test_inclusion_wrong_size_with_the_right_root():
    """A proof also "verifies" for another size when the path has the same shape.

    The root is what binds the size (a header signs both), so this is not a
    weakness; but the verifier must agree with the RFC recursion exactly.
    """
    same_shape = different_shape = 0
    for n in range(1, 41):
        r = NAIVE.root(n)
        for m in range(n):
            proof = NAIVE.inclusion(m, n)
            for n2 in range(max(1, m + 1), 2 * n + 2):
                if n2 == n:
                    continue
                got = verify_inclusion(LEAF_HASHES[m], m, n2, proof, r)
                expected = path_sides(m, n2) == path_sides(m, n)
                assert got is expected, (m, n, n2)
                same_shape += got
                different_shape += not got
    assert same_shape > 0 and different_shape > same_shape


# --------------------------------------------------------------------------
# Consistency proofs against the naive reference
# --------------------------------------------------------------------------

def test_consistency_proofs_equal_naive_and_verify(big_tree):
    rng = random.Random(6962)
    for n in range(1, MAX + 1):
        reader = BoundedReader(big_tree, n)
        new = NAIVE.root(n)
        for m in sample(n + 1, MAX + 1, rng):
            proof = consistency_proof(reader, m, n)
            assert proof == (NAIVE.consistency(m, n) if m else []), (m, n)
            assert len(proof) <= 2 * n.bit_length()
            old = NAIVE.root(m)
            assert verify_consistency(m, n, old, new, proof), (m, n)
            assert naive_verify_consistency(m, n, old, new, proof), (m, n)


def _consistency_tampered(m, n, old, new, proof):
    other = sha256(b"some other hash")
    for i in range(len(proof)):
        for bit in (0, 100, 255):
            bad = list(proof)
            bad[i] = flip(bad[i], bit)
            yield f"flip proof[{i}] bit {bit}", m, n, old, new, bad
        yield f"drop proof[{i}]", m, n, old, new, proof[:i] + proof[i + 1:]
    for i in range(len(proof) + 1):
        yield f"insert at {i}", m, n, old, new, proof[:i] + [other] + proof[i:]
        yield f"insert old root at {i}", m, n, old, new, proof[:i] + [old] + proof[i:]
    if proof:
        yield "repeat first", m, n, old, new, proof[:1] + proof
        yield "repeat last", m, n, old, new, proof + proof[-1:]
        yield "short element", m, n, old, new, [proof[0][:16]] + proof[1:]
    if old != new:
        yield "swapped roots", m, n, new, old, proof
    yield "flip old root", m, n, flip(old, 3), new, proof
    yield "flip new root", m, n, old, flip(new, 250), proof
    yield "empty old root", m, n, EMPTY_ROOT if m else other, new, proof
    for m2 in {m - 1, m + 1, 0, n, n + 1, m // 2, 2 * m}:
        if m2 != m and 0 <= m2 <= MAX:
            yield f"old size {m2} with its root", m2, n, NAIVE.root(m2), new, proof
            yield f"old size {m2}, same root", m2, n, old, new, proof
    for n2 in {n - 1, n + 1, 2 * n, m}:
        if n2 != n and 0 <= n2 <= MAX:
            yield f"new size {n2} with its root", m, n2, old, NAIVE.root(n2), proof


def test_consistency_tampering_fails(big_tree):
    rng = random.Random(1)
    cases = 0
    for n in range(1, MAX + 1):
        new = NAIVE.root(n)
        for m in sample(n, 40, rng, k=3):
            if m == 0:
                continue
            proof = consistency_proof(big_tree, m, n)
            old = NAIVE.root(m)
            for desc, m2, n2, old2, new2, bad in _consistency_tampered(m, n, old, new, proof):
                assert not verify_consistency(m2, n2, old2, new2, bad), (m, n, desc)
                assert not naive_verify_consistency(m2, n2, old2, new2, bad), (m, n, desc)
                cases += 1
    assert cases > 20_000


def test_consistency_edge_cases(big_tree):
    r5, r8, x = NAIVE.root(5), NAIVE.root(8), sha256(b"x")
    # From the empty tree: only an empty proof and the empty root.
    assert consistency_proof(big_tree, 0, 8) == []
    assert verify_consistency(0, 8, EMPTY_ROOT, r8, [])
    assert not verify_consistency(0, 8, r5, r8, [])
    assert not verify_consistency(0, 8, EMPTY_ROOT, r8, [x])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    # Same size: equal roots and nothing else.
    assert consistency_proof(big_tree, 5, 5) == []
    assert verify_consistency(5, 5, r5, r5, [])
    assert not verify_consistency(5, 5, r5, r5, [x])
    assert not verify_consistency(5, 5, r5, r8, [])
    # Shrinking or negative sizes.
    assert not verify_consistency(8, 5, r8, r5, consistency_proof(big_tree, 5, 8))
    assert not verify_consistency(-1, 5, r5, r5, [])
    # Non-empty tree, empty proof.
    assert not verify_consistency(5, 8, r5, r8, [])
    # Oversized proofs are refused before any hashing.
    assert not verify_consistency(5, 8, r5, r8, [x] * (merkle.PROOF_MAX_HASHES + 1))
    for bad in ((9, 8), (-1, 8), (3, -1)):
        with pytest.raises(ValueError):
            consistency_proof(big_tree, *bad)


def test_inclusion_edge_cases(big_tree):
    r8 = NAIVE.root(8)
    proof = inclusion_proof(big_tree, 3, 8)
    for bad in ((8, 8), (-1, 8), (0, 0)):
        with pytest.raises(ValueError):
            inclusion_proof(big_tree, *bad)
    assert root_from_inclusion(LEAF_HASHES[3], 3, 8, proof) == r8
    assert root_from_inclusion(LEAF_HASHES[3], 8, 8, proof) is None
    assert root_from_inclusion(LEAF_HASHES[3], -1, 8, proof) is None
    assert root_from_inclusion(LEAF_HASHES[3], 0, 0, []) is None
    assert root_from_inclusion(LEAF_HASHES[0], 0, 1, []) == NAIVE.root(1)
    assert root_from_inclusion(LEAF_HASHES[0], 0, 2**70, [r8] * 65) is None
    assert not verify_inclusion(LEAF_HASHES[3], 3, 0, proof, r8)


# --------------------------------------------------------------------------
# Frontier
# --------------------------------------------------------------------------

def test_frontier_root_after_every_append():
    frontier = Frontier()
    assert frontier.size == 0 and frontier.root() == EMPTY_ROOT
    for i, h in enumerate(LEAF_HASHES):
        created = frontier.append(h)
        n = i + 1
        assert frontier.size == n
        assert frontier.root() == NAIVE.root(n)
        # It reports exactly the complete subtrees the new leaf closes, leaf first.
        assert [level for level, _, _ in created] == list(range(len(created)))
        assert len(created) == 1 + ((n ^ (n - 1)).bit_length() - 1)
        for level, index, node in created:
            assert (index + 1) << level == n
            assert node == NAIVE.mth(index << level, (index + 1) << level)


def test_frontier_load_from_reader(big_tree):
    for n in range(0, MAX + 1):
        reader = BoundedReader(big_tree, n)
        loaded = Frontier.load(reader, n)
        assert loaded.size == n
        assert loaded.root() == NAIVE.root(n)
        assert reader.reads == bin(n).count("1")
    # A loaded frontier carries on exactly like one that saw every append.
    loaded = Frontier.load(big_tree, 77)
    for n, h in enumerate(LEAF_HASHES[77:150], start=78):
        loaded.append(h)
        assert loaded.root() == NAIVE.root(n)


def test_frontier_copy_is_independent():
    frontier = Frontier()
    for h in LEAF_HASHES[:5]:
        frontier.append(h)
    copy = frontier.copy()
    copy.append(LEAF_HASHES[5])
    assert frontier.size == 5 and frontier.root() == NAIVE.root(5)
    assert copy.size == 6 and copy.root() == NAIVE.root(6)


def test_memory_tree_matches_its_frontier(big_tree):
    assert big_tree.frontier.root() == root(big_tree, big_tree.size) == NAIVE.root(big_tree.size)
    for (level, index), node in big_tree.nodes.items():
        assert node == NAIVE.mth(index << level, (index + 1) << level)


def test_subtree_levels_hold_exactly_the_complete_subtrees():
    """Every node of levels[L] is the MTH of its 2**L leaves; a subtree missing a leaf is absent."""
    for count in range(0, 40):
        levels = merkle.subtree_levels(LEAF_HASHES[:count])
        assert levels[0] == LEAF_HASHES[:count]
        for level, row in enumerate(levels):
            assert len(row) == count >> level
            assert row == [NAIVE.mth(i << level, (i + 1) << level) for i in range(len(row))]
        assert len(levels[-1]) == (1 if count else 0)
        assert count == 0 or len(levels) == count.bit_length()


def test_leaf_blocks_read_each_block_once_and_match_the_tree():
    """One LeafBlocks over a partial last block: every node below its level_min is the naive
    subtree hash while all its leaves exist, None past the end, and each block is read once."""
    size, level_min = 77, 4
    reads: list[tuple[int, int]] = []

    def read(start: int, end: int) -> list[list[bytes]]:
        reads.append((start, end))
        return merkle.subtree_levels(LEAF_HASHES[start:min(end, size)])

    blocks = merkle.LeafBlocks(read, level_min)
    for level in range(level_min):
        for index in range((size >> level) + 2):
            got = blocks.node(level, index)
            complete = (index + 1) << level <= size
            assert got == (NAIVE.mth(index << level, (index + 1) << level) if complete else None), (level, index)
    assert sorted(reads) == [(b << level_min, (b + 1) << level_min) for b in range(((size - 1) >> level_min) + 2)]
