"""The state map (version 2): an authenticated key-value map over 256-bit paths.

What it is (docs/protocol.md, "State map (version 2)"): a binary sparse Merkle tree
in which a subtree holding one entry is collapsed to that entry's leaf. An entry's
path is `H("map-path", msgpack([namespace, name]))`; its value is a canonical msgpack
map. A subtree's hash is 32 zero bytes when empty, the entry's `map_leaf_hash` when it
holds one entry (at whatever depth), else `map_inner_hash(left, right)`, so the root
depends only on the set of entries. `root_of` is that definition transcribed
directly, the reference the incremental map (maptree.py) is tested against.

The incremental map over a node store, stored as tiles, is `maptree.StateMap`; this
module is what a verifier needs (paths, hashes, proofs and record lists), with no
storage in it.

Record lists (`subject`, `refby`) hold `{"n", "root"}` of an RFC 6962 tree over
`u64be(leaf_index)` leaves. A root alone cannot be extended: appending needs the
tree's right edge (one hash per set bit of n). The map keeps that edge attached to the
entry's stored leaf, so `list_append` extends a list from the leaf the descent reads
anyway, without a read of its own; it checks the edge against the root before use.
It returns the list tree's nodes an append creates, which list proofs read.
"""

from __future__ import annotations

import re
from hashlib import sha256
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import codec, merkle
from .crypto import tag_prefix, tagged_hash
from .errors import InvalidInput, StoreCorrupt

HASH_BYTES = 32
PATH_BITS = 256
SIBLINGS_MAX = PATH_BITS  # two paths differ in some bit, so no leaf sits deeper than 256
EMPTY_ROOT = bytes(HASH_BYTES)
NAMESPACES = ("subject", "refby", "key", "dept", "validators")
VALUE_LIMITS = codec.DEFAULT_LIMITS  # a validators value of 256 members is far below 1 MiB
# The largest proof (256 siblings and a leaf) as json.dumps writes it with indent=2 is
# about 21 KB: a reader may refuse a proof's text beyond this before parsing it.
PROOF_JSON_MAX_BYTES = 32 << 10
U64_END = 1 << 64

_HEX64 = re.compile(r"[0-9a-f]{64}")



# -- hashing -------------------------------------------------------------------------


def path(namespace: str, name: str | bytes) -> bytes:
    """The 32-byte path of an entry; a verifier always computes it itself.

    Names are str, except in `refby` (a 32-byte record id); the one `validators`
    entry is named "". Anything else is refused rather than hashed, so no caller can
    look up or prove an entry the design does not name."""
    if namespace == "refby":
        if type(name) is not bytes or len(name) != HASH_BYTES:
            raise InvalidInput("bad_map_name", "a refby entry is named by a 32-byte record id")
    elif namespace in NAMESPACES:
        if type(name) is not str:
            raise InvalidInput("bad_map_name", f"a {namespace} entry is named by a str")
        if namespace == "validators" and name != "":
            raise InvalidInput("bad_map_name", 'the validators entry is named ""')
    else:
        raise InvalidInput("bad_map_name", f"no state map namespace {str(namespace)[:40]!r}")
    return tagged_hash("map-path", codec.encode([namespace, name]))


def bit(p: bytes, i: int) -> int:
    """Bit i of a path, most significant first: bit 7 - i % 8 of byte i // 8."""
    if not 0 <= i < PATH_BITS:
        raise ValueError(f"bit {i} is outside a {PATH_BITS}-bit path")
    return (p[i >> 3] >> (7 - (i & 7))) & 1


# H(tag, x) of crypto.tagged_hash with the map's tags, their prefixes built once: every
# changed entry costs a value hash, a leaf hash and one inner hash per level.
VALUE_HASH_PREFIX, LEAF_HASH_PREFIX, INNER_HASH_PREFIX = (
    tag_prefix(tag) for tag in ("map-value", "map-leaf", "map-inner"))


def value_hash(value_bytes: bytes) -> bytes:
    return sha256(VALUE_HASH_PREFIX + value_bytes).digest()


def leaf_hash(p: bytes, vh: bytes) -> bytes:
    """map_leaf_hash(path, value_hash)."""
    if len(p) != HASH_BYTES or len(vh) != HASH_BYTES:
        raise ValueError("a map leaf hashes a 32-byte path and a 32-byte value hash")
    return sha256(LEAF_HASH_PREFIX + p + vh).digest()


def inner_hash(left: bytes, right: bytes) -> bytes:
    """map_inner_hash(left, right)."""
    if len(left) != HASH_BYTES or len(right) != HASH_BYTES:
        raise ValueError("a map inner node hashes two 32-byte children")
    return sha256(INNER_HASH_PREFIX + left + right).digest()


def root_of(entries: Mapping[bytes, bytes]) -> bytes:
    """The root of a whole entry set (path -> value_bytes), straight from the definition.

    Quadratic in the worst case and holds everything in memory: the reference for tests
    and the vectors, not for a node."""
    for p in entries:
        check_path(p)
    return _subtree_hash(sorted(entries.items()), 0)


def _subtree_hash(items: list[tuple[bytes, bytes]], depth: int) -> bytes:
    if not items:
        return EMPTY_ROOT
    if len(items) == 1:
        p, value = items[0]
        return leaf_hash(p, value_hash(value))
    left = [item for item in items if bit(item[0], depth) == 0]
    right = [item for item in items if bit(item[0], depth) == 1]
    return inner_hash(_subtree_hash(left, depth + 1), _subtree_hash(right, depth + 1))


def is_hash(x: Any) -> bool:
    return type(x) is bytes and len(x) == HASH_BYTES


def check_path(p: Any) -> None:
    if not is_hash(p):
        raise ValueError("a state map path is 32 bytes")


def check_value(value_bytes: Any) -> None:
    """Values are canonical msgpack maps: a verifier decodes them canonically, so a node
    must never commit to bytes that no verifier could read."""
    if type(value_bytes) is not bytes:
        raise ValueError("a state map value is bytes (canonical msgpack)")
    try:
        value = codec.decode(value_bytes, VALUE_LIMITS)
    except InvalidInput as exc:
        raise ValueError(f"a state map value must be canonical msgpack: {exc.message}") from None
    if type(value) is not dict:
        raise ValueError("a state map value is a msgpack map")


# -- proofs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """The one entry of a collapsed subtree, as a proof shows it: the value only by hash."""

    path: bytes
    value_hash: bytes

    def hash(self) -> bytes:
        """map_leaf_hash of this leaf: where a proof's fold starts."""
        return leaf_hash(self.path, self.value_hash)


@dataclass(frozen=True)
class Proof:
    """The leaf where a path's walk from the root ends (None: an empty subtree) and the
    siblings met on the way, bottom-up: siblings[0] is at depth len(siblings)."""

    leaf: Leaf | None
    siblings: tuple[bytes, ...]


def _same_prefix(a: bytes, b: bytes, bits: int) -> bool:
    whole, rest = divmod(bits, 8)
    if a[:whole] != b[:whole]:
        return False
    return rest == 0 or (a[whole] ^ b[whole]) >> (8 - rest) == 0


def verify(root: bytes, p: bytes, value_bytes: bytes | None, proof: Proof) -> bool:
    """True iff `proof` shows path `p` holding exactly `value_bytes` in the map of `root`
    (None: `p` has no entry). Never raises: a malformed proof is an invalid one."""
    if not isinstance(proof, Proof) or not isinstance(proof.siblings, (tuple, list)):
        return False
    leaf, siblings = proof.leaf, proof.siblings
    d = len(siblings)
    if d > SIBLINGS_MAX or not (is_hash(root) and is_hash(p)) or not all(is_hash(s) for s in siblings):
        return False
    if leaf is None:
        if value_bytes is not None:
            return False
        h = EMPTY_ROOT
    else:
        if not (isinstance(leaf, Leaf) and is_hash(leaf.path) and is_hash(leaf.value_hash)):
            return False
        if value_bytes is None:
            # Another entry in the subtree p's walk reaches at depth d: p cannot be in it.
            if leaf.path == p or not _same_prefix(leaf.path, p, d):
                return False
        elif type(value_bytes) is not bytes or leaf.path != p or leaf.value_hash != value_hash(value_bytes):
            return False
        h = leaf.hash()
    for j, sibling in enumerate(siblings):
        h = inner_hash(sibling, h) if bit(p, d - 1 - j) else inner_hash(h, sibling)
    return h == root


def proof_to_json(proof: Proof) -> dict[str, Any]:
    leaf = None if proof.leaf is None else {"path": proof.leaf.path.hex(), "value_hash": proof.leaf.value_hash.hex()}
    return {"leaf": leaf, "siblings": [s.hex() for s in proof.siblings]}


def _bad_proof(message: str) -> InvalidInput:
    return InvalidInput("bad_proof", message)


def _check_keys(doc: Any, keys: frozenset[str], where: str) -> None:
    if type(doc) is not dict:
        raise _bad_proof(f"{where} must be a JSON object")
    if doc.keys() != keys:
        got = ", ".join(repr(str(k)[:40]) for k in sorted(doc, key=str)[:8])
        raise _bad_proof(f"{where} must have exactly the keys {sorted(keys)}, not [{got}]")


def _hex32(text: Any, where: str) -> bytes:
    if type(text) is not str or len(text) != 2 * HASH_BYTES or not _HEX64.fullmatch(text):
        raise _bad_proof(f"{where} must be 64 lowercase hex characters")
    return bytes.fromhex(text)


_PROOF_KEYS = frozenset(["leaf", "siblings"])
_LEAF_KEYS = frozenset(["path", "value_hash"])


def proof_from_json(doc: Any) -> Proof:
    """Parse a proof's JSON form exactly; anything else raises InvalidInput("bad_proof")."""
    _check_keys(doc, _PROOF_KEYS, "proof")
    siblings = doc["siblings"]
    if type(siblings) is not list:
        raise _bad_proof("proof.siblings must be a JSON array")
    if len(siblings) > SIBLINGS_MAX:
        raise _bad_proof(f"proof.siblings holds {len(siblings)} hashes, more than {SIBLINGS_MAX}")
    parsed = tuple(_hex32(s, f"proof.siblings[{j}]") for j, s in enumerate(siblings))
    leaf = doc["leaf"]
    if leaf is None:
        return Proof(None, parsed)
    _check_keys(leaf, _LEAF_KEYS, "proof.leaf")
    return Proof(Leaf(_hex32(leaf["path"], "proof.leaf.path"), _hex32(leaf["value_hash"], "proof.leaf.value_hash")),
                 parsed)


# -- record lists ------------------------------------------------------------------

_LIST_KEYS = frozenset(["n", "root"])


def list_leaf_hash(leaf_index: int) -> bytes:
    """The RFC 6962 leaf hash of one listed record: SHA-256(00 || u64be(leaf_index))."""
    if type(leaf_index) is not int or not 0 <= leaf_index < U64_END:
        raise ValueError(f"a leaf index is an int in [0, 2**64), not {leaf_index!r}")
    return merkle.leaf_hash(leaf_index.to_bytes(8, "big"))


# A record list's value, {"n": n, "root": root}, in canonical msgpack (docs/protocol.md
# section 2): a fixmap of 2, "n" and the smallest encoding of n, then "root" and bin8 32.
_LIST_HEAD, _LIST_ROOT_HEAD = b"\x82\xa1n", b"\xa4root\xc4\x20"
_UINT_HEADS = ((1 << 8, b"\xcc", 1), (1 << 16, b"\xcd", 2), (1 << 32, b"\xce", 4), (1 << 64, b"\xcf", 8))


def _uint_bytes(n: int) -> bytes:
    """The canonical msgpack encoding of an int in [0, 2**64)."""
    if n < 0x80:
        return bytes([n])
    for end, head, width in _UINT_HEADS:
        if n < end:
            return head + n.to_bytes(width, "big")
    raise ValueError(f"{n} is beyond a u64")


def _list_bytes(frontier: merkle.Frontier) -> bytes:
    return _LIST_HEAD + _uint_bytes(frontier.size) + _LIST_ROOT_HEAD + frontier.root()


def _fast_list_value(value_bytes: bytes) -> tuple[int, bytes] | None:
    """(n, root) if the bytes are exactly what `_list_bytes` makes; else None (then the
    generic decoder judges them)."""
    if value_bytes[:3] != _LIST_HEAD or value_bytes[-39:-32] != _LIST_ROOT_HEAD:
        return None
    encoded = value_bytes[3:-39]
    if not 1 <= len(encoded) <= 9:  # a u64 takes 1 to 9 bytes; anything else is the generic decoder's
        return None
    n = encoded[0] if len(encoded) == 1 else int.from_bytes(encoded[1:], "big")
    return (n, value_bytes[-32:]) if n >= 1 and encoded == _uint_bytes(n) else None


def list_value(leaf_indexes: Sequence[int]) -> bytes:
    """The value bytes of a record list holding these leaf indexes, in log order."""
    if not leaf_indexes:
        raise ValueError("a list that would be empty has no entry")
    if any(later <= earlier for earlier, later in zip(leaf_indexes, leaf_indexes[1:])):
        raise ValueError("a record list's leaf indexes strictly increase (log order)")
    frontier = merkle.Frontier()
    for leaf_index in leaf_indexes:
        frontier.append(list_leaf_hash(leaf_index))
    return _list_bytes(frontier)


def parse_list_value(value_bytes: bytes) -> tuple[int, bytes]:
    """(n, root) of a record list's value bytes; InvalidInput unless exactly the design's."""
    fast = _fast_list_value(value_bytes)
    if fast is not None:
        return fast
    value = codec.decode(value_bytes, VALUE_LIMITS)
    if type(value) is not dict or value.keys() != _LIST_KEYS:
        raise InvalidInput("bad_map_value", 'a record list value is a map with exactly the keys "n" and "root"')
    n, root = value["n"], value["root"]
    if type(n) is not int or n < 1:
        raise InvalidInput("bad_map_value", "a record list's n is an int >= 1")
    if not is_hash(root):
        raise InvalidInput("bad_map_value", "a record list's root is 32 bytes")
    return n, root


def list_append(value_bytes: bytes | None, edge: bytes, leaf_indexes: Sequence[int],
                edge_checked: bool = False) -> tuple[bytes, bytes, list[tuple[int, int, bytes]]]:
    """Append records to a list: (new value bytes, its new right edge, the RFC 6962 nodes
    created, leaves first at level 0 and position = their index).

    `value_bytes` is the list's current entry (None: no entry yet) and `edge` the right
    edge kept beside it (the roots of the complete subtrees, largest first, concatenated:
    one per set bit of n), which the map stores attached to the entry's leaf so that an
    append reads nothing but the leaf the descent reaches anyway. The edge is checked: it
    must fold to the value's root, unless `edge_checked` (a leaf the map decoded, which
    `decode_node` checked, or computed). The caller appends in log order: the value
    holds no leaf index to check it against."""
    if value_bytes is None:
        frontier = merkle.Frontier()
    else:
        n, root = parse_list_value(value_bytes)
        hashes = [edge[i:i + HASH_BYTES] for i in range(0, len(edge), HASH_BYTES)]
        if len(edge) % HASH_BYTES or len(hashes) != n.bit_count():
            raise StoreCorrupt(f"a record list of {n} keeps {len(edge)} bytes of right edge, "
                               f"not {n.bit_count()} hashes")
        frontier = merkle.Frontier(n, hashes)
        if not edge_checked and frontier.root() != root:
            raise StoreCorrupt("a record list's kept right edge does not give the root of its map entry")
    created: list[tuple[int, int, bytes]] = []
    for leaf_index in leaf_indexes:
        created.extend(frontier.append(list_leaf_hash(leaf_index)))
    return _list_bytes(frontier), b"".join(frontier.edge), created
