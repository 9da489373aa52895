"""The ledger store's key schema: every key it writes, the scan ranges over them, and the
decoders of the values that are not themselves protocol bytes (docs/storage.md, "Key layout").

This is the only module that spells a key prefix. `Store` (storage/__init__.py), the scrub
(storage/scrub.py) and the rebuild (storage/repair.py) build and parse keys through it, so
the layout the docs promise is written down once. The bytes are the contract: a store on
disk written before this module existed reads the same.

`u64(n)` is 8 bytes big-endian, so numeric order is key order and a range of heights,
leaves or sequence numbers is one plain scan.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from ..errors import StoreCorrupt

U64 = struct.Struct(">Q")
RECORD_INDEX = struct.Struct(">QQ")  # r/ value: u64(leaf_index) then u64(height)

# One prefix per kind of key: two bytes, a letter and a slash.
BLOCK = b"b/"  # b/ u64(height): header bytes as certified
QC = b"q/"  # q/ u64(height): the block's QC
LEAF = b"e/"  # e/ u64(leaf_index): envelope bytes, the Merkle leaf
NODE = b"n/"  # n/ level (1 byte) u64(index): hash of a complete subtree
# h/ u64(index): the 16 leaf hashes under the log's level-4 node `index` (a complete,
# aligned block of 16 leaves), concatenated; written with the block that completes
# them, so a proof reads one key instead of 16 envelopes. A store written before this
# key existed lacks them, and its proofs read the envelopes (docs/storage.md).
LEAF_HASHES = b"h/"
RECORD = b"r/"  # r/ record_id (32 bytes): RECORD_INDEX
FACT = b"f/"  # f/<kind>/<key> (UTF-8): a state fact
META = b"m/"  # m/<name> (UTF-8): runtime bytes; m/head: the committed height
EVIDENCE = b"x/"  # x/ u64(seq): one equivocation case
MAP_NODE = b"t/"  # t/ node hash (32 bytes): a state-map leaf or tile (version 2, maptree.py)
LIST_NODE = b"l/"  # l/ list path (32 bytes) level (1 byte) u64(index): a record list's tree node (version 2)
POSITION = b"p/"  # p/ list path (32 bytes) u64(position): u64(leaf_index) of a record list's entry (version 2)
# Written for every record by layouts before the record lists' right edge was kept on
# their leaves (version 1, and version 2 until 118c396); never written now. A store that
# holds one is rebuilt from its blocks at open (docs/storage.md, "Opening").
EARLIER_LAYOUT_SUBJECT = b"s/"

HEAD_NAME = "head"  # m/head belongs to the commit; save_meta may not write it
HEAD_KEY = META + HEAD_NAME.encode()
NUMBERED_KEY_BYTES = len(BLOCK) + U64.size  # b/, q/, e/ and x/ keys: a prefix and a u64
# Sorts after every u64 suffix (and after a stray byte or so more), so that a scan from
# a numbered key to the prefix plus this runs to the end of that kind of key.
_PAST_U64 = b"\xff" * (U64.size + 1)


def u64(n: int) -> bytes:
    return U64.pack(n)


# -- keys, one function per kind --------------------------------------------------------


def block_key(height: int) -> bytes:
    return BLOCK + u64(height)


def qc_key(height: int) -> bytes:
    return QC + u64(height)


def leaf_key(index: int) -> bytes:
    return LEAF + u64(index)


def node_key(level: int, index: int) -> bytes:
    return NODE + bytes([level]) + u64(index)


def leaf_hashes_key(index: int) -> bytes:
    return LEAF_HASHES + u64(index)


def record_key(record_id: bytes) -> bytes:
    return RECORD + record_id


def fact_key(kind: str, key: str) -> bytes:
    return FACT + f"{kind}/{key}".encode("utf-8")


def meta_key(name: str) -> bytes:
    return META + name.encode("utf-8")


def evidence_key(seq: int) -> bytes:
    return EVIDENCE + u64(seq)


def map_node_key(node_hash: bytes) -> bytes:
    assert len(node_hash) == 32
    return MAP_NODE + node_hash


def list_node_key(list_path: bytes, level: int, index: int) -> bytes:
    assert len(list_path) == 32 and 0 <= level < 64
    return LIST_NODE + list_path + bytes([level]) + u64(index)


def position_key(list_path: bytes, position: int) -> bytes:
    assert len(list_path) == 32
    return POSITION + list_path + u64(position)


# -- scan ranges: (start, stop) for KV.scan, stop excluded ------------------------------


def positions_range(list_path: bytes, start: int, end: int) -> tuple[bytes, bytes]:
    """A record list's positions [start, end)."""
    return position_key(list_path, start), position_key(list_path, end)


def leaf_range(start: int, end: int) -> tuple[bytes, bytes]:
    """The envelopes of leaves [start, end)."""
    return leaf_key(start), leaf_key(end)


def blocks_from(height: int) -> tuple[bytes, bytes]:
    return block_key(height), BLOCK + _PAST_U64


def qcs_from(height: int) -> tuple[bytes, bytes]:
    return qc_key(height), QC + _PAST_U64


def leaves_from(index: int) -> tuple[bytes, bytes]:
    return leaf_key(index), LEAF + _PAST_U64


def evidence_from(seq: int) -> tuple[bytes, bytes]:
    return evidence_key(seq), EVIDENCE + _PAST_U64


# -- decoders: they raise StoreCorrupt, since the bytes come from disk ---------------------


def key_number(key: bytes) -> int | None:
    """The u64 of a b/, q/, e/ or x/ key; None when the key is not a prefix and a u64."""
    return U64.unpack(key[len(BLOCK):])[0] if len(key) == NUMBERED_KEY_BYTES else None


def decode_head(raw: bytes) -> int:
    """The height stored under m/head."""
    if len(raw) != U64.size:
        raise StoreCorrupt(f"m/head is {len(raw)} bytes, not a u64 height")
    height: int = U64.unpack(raw)[0]
    return height


def head_value(height: int) -> bytes:
    return u64(height)


def record_index_value(leaf: int, height: int) -> bytes:
    return RECORD_INDEX.pack(leaf, height)


def decode_record_index(raw: bytes, where: str) -> tuple[int, int]:
    """(leaf_index, height) of an r/ value; `where` names the entry in the error."""
    if len(raw) != RECORD_INDEX.size:
        raise StoreCorrupt(f"{where}: index entry is {len(raw)} bytes, not {RECORD_INDEX.size}")
    leaf, height = RECORD_INDEX.unpack(raw)
    return leaf, height


def consecutive(pairs: Iterable[tuple[bytes, bytes]], start: int) -> Iterator[bytes]:
    """The values of keys ending in u64(start), u64(start + 1), ... (e/ and p/ keys end so),
    in a scan from u64(start), up to the first number missing."""
    expected = start
    for key, value in pairs:
        if U64.unpack(key[-U64.size:])[0] != expected:
            return
        yield value
        expected += 1


def decode_position(raw: bytes, where: str) -> int:
    """The leaf index a p/ value holds."""
    if len(raw) != U64.size:
        raise StoreCorrupt(f"{where}: a list position holds {len(raw)} bytes, not a u64 leaf index")
    leaf: int = U64.unpack(raw)[0]
    return leaf
