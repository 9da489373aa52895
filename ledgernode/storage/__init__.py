"""The ledger store: committed blocks, the global Merkle log and derived indexes.

Theory of operation. A `Store` sits on an ordered key-value backend (`MemoryKV`
for tests, `LevelKV` for nodes) and keeps everything under one-letter key
prefixes (docs/storage.md). `commit` writes one block, its QC, its leaves, the
Merkle nodes they complete, the record-id and subject indexes, the state facts
and the new head as ONE atomic batch with sync=True: after a crash the store
holds every block up to some height completely and nothing of later ones.
The log's right edge (`Frontier`) is rebuilt at open from O(log n) node reads.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import codec, merkle
from ..blocks import QC, CheckedBlock, Header, decode_header, decode_qc
from ..errors import InvalidInput, NotFound, StoreCorrupt
from .kv import KV, MemoryKV

_U64 = struct.Struct(">Q")
HEAD_KEY = b"m/head"
# Merkle nodes below this level are not stored: a complete subtree of fewer
# than 2**NODE_LEVEL_STORED_MIN leaves is rehashed from its envelopes when a
# proof needs it (one scan of at most 8; a proof needs at most 4 such, 15
# envelopes in all). Storing every level cost two LevelDB keys per record on the
# commit path; levels 4 and up cost one key per 8 leaves (1/16 + 1/32 + ...).
NODE_LEVEL_STORED_MIN = 4
SUBJECT_PAGE_MAX = 1_001  # views ask for one more than their page to know if more follow
FACT_LIMITS = codec.Limits(input_max_bytes=4096, depth_max=2)
EVIDENCE_MAX = 1_000  # equivocation cases kept on disk; later ones are counted, not kept
EVIDENCE_VALUE_MAX_BYTES = 4096  # two signed messages without blocks or certificates


def _u64(n: int) -> bytes:
    return _U64.pack(n)


def _subject_prefix(subject: str) -> bytes:
    return b"s/" + hashlib.sha256(subject.encode("utf-8")).digest()


class Store:
    def __init__(self, kv: KV) -> None:
        self.kv = kv
        self._head: Header | None = None
        raw = kv.get(HEAD_KEY)
        try:
            if raw is not None:
                self._head = self.load_header(_U64.unpack(raw)[0])
            size = self._head.log_size if self._head else 0
            self.frontier = merkle.Frontier.load(self, size)
            self._check_whole()
        except NotFound as exc:
            raise StoreCorrupt(f"the store is not whole: {exc} is missing below the head "
                               f"(height {self.height})") from None
        if self._head is not None and self.frontier.root() != self._head.log_root:
            raise StoreCorrupt("log root rebuilt from stored nodes does not match the head")

    def _check_whole(self) -> None:
        """A cheap check at open (docs/storage.md, "Opening"): the first and the last block
        and leaf are there. LevelDB that lost its manifest or older tables keeps a head
        over a hole; this finds it before the node serves or votes."""
        head = self._head
        if head is None:
            if self.kv.get(b"b/" + _u64(1)) is not None:
                raise StoreCorrupt("the store has blocks but no head")
            return
        self.load_header(1)
        self.load_qc(head.height)
        if head.log_size:
            self.load_envelope(0)
            self.load_envelope(head.log_size - 1)

    @classmethod
    def memory(cls) -> Store:
        return cls(MemoryKV())

    @classmethod
    def open(cls, path: str | Path) -> Store:
        from .leveldb import LevelKV

        return cls(LevelKV(path))

    def close(self) -> None:
        self.kv.close()

    # -- reads ---------------------------------------------------------------

    def _get(self, key: bytes, what: str) -> bytes:
        value = self.kv.get(key)
        if value is None:
            raise NotFound(what)
        return value

    def head(self) -> Header | None:
        return self._head

    @property
    def height(self) -> int:
        return self._head.height if self._head else 0

    @property
    def log_size(self) -> int:
        return self.frontier.size

    def load_header(self, height: int) -> Header:
        header = decode_header(self._get(b"b/" + _u64(height), f"block {height}"))
        assert header.height == height, "stored header under the wrong height"
        return header

    def load_qc(self, height: int) -> QC:
        qc = decode_qc(self._get(b"q/" + _u64(height), f"qc {height}"))
        assert qc.height == height, "stored qc under the wrong height"
        return qc

    def load_envelope(self, leaf_index: int) -> bytes:
        return self._get(b"e/" + _u64(leaf_index), f"leaf {leaf_index}")

    def load_envelopes(self, start: int, end: int) -> list[bytes]:
        out = [v for _, v in self.kv.scan(b"e/" + _u64(start), b"e/" + _u64(end))]
        assert len(out) == end - start, "missing leaves inside a committed range"
        return out

    def node(self, level: int, index: int) -> bytes:
        if level < NODE_LEVEL_STORED_MIN:
            start = index << level
            leaves = [v for _, v in self.kv.scan(b"e/" + _u64(start), b"e/" + _u64(start + (1 << level)))]
            if len(leaves) != 1 << level:
                raise NotFound(f"node {level}/{index}")
            return merkle.complete_subtree_hash([merkle.leaf_hash(leaf) for leaf in leaves])
        value = self._get(b"n/" + bytes([level]) + _u64(index), f"node {level}/{index}")
        assert len(value) == 32
        return value

    def locate(self, record_id: bytes) -> tuple[int, int] | None:
        """(leaf_index, height) of a committed record, or None."""
        raw = self.kv.get(b"r/" + record_id)
        if raw is None:
            return None
        leaf, height = _U64.unpack(raw[:8])[0], _U64.unpack(raw[8:])[0]
        return None if height > self.height else (leaf, height)

    def is_committed(self, record_id: bytes) -> bool:
        return self.kv.get(b"r/" + record_id) is not None

    def load_fact(self, kind: str, key: str) -> dict[str, Any] | None:
        raw = self.kv.get(f"f/{kind}/{key}".encode("utf-8"))
        return None if raw is None else codec.decode(raw, FACT_LIMITS)

    def subject_leaves(self, subject: str, after: int = -1, limit: int = 100) -> list[int]:
        """Leaf indexes of records about `subject`, in log order, after `after`."""
        limit = min(limit, SUBJECT_PAGE_MAX)
        if limit <= 0 or after + 1 >= 1 << 64:
            return []
        prefix = _subject_prefix(subject)
        start = prefix + _u64(max(after + 1, 0))
        out = []
        for key, _ in self.kv.scan(start, prefix + b"\xff" * 9):
            out.append(_U64.unpack(key[-8:])[0])
            if len(out) >= limit:
                break
        return out

    def height_of_leaf(self, leaf_index: int) -> int:
        """Height of the block holding `leaf_index`: binary search over headers."""
        if not 0 <= leaf_index < self.log_size:
            raise NotFound(f"leaf {leaf_index}")
        lo, hi = 1, self.height
        while lo < hi:
            mid = (lo + hi) // 2
            if self.load_header(mid).log_size <= leaf_index:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def inclusion_proof(self, leaf_index: int, size: int) -> list[bytes]:
        assert size <= self.log_size
        return merkle.inclusion_proof(self, leaf_index, size)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        assert new_size <= self.log_size
        return merkle.consistency_proof(self, old_size, new_size)

    def scan_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return self.kv.scan(prefix, prefix + b"\xff" * 8)

    # -- writes --------------------------------------------------------------

    def commit(self, checked: CheckedBlock, qc: QC, sync: bool = True) -> None:
        """Store a checked block with its QC as one atomic batch, synced unless `sync` is False
        (a rebuild: storage/repair.py syncs once at its end)."""
        header = checked.block.header
        assert header.height == self.height + 1, "commit must extend the head"
        assert header.log_start == self.log_size, "block must start at the log's end"
        assert qc.block_hash == header.block_hash and qc.height == header.height
        assert checked.frontier.size == header.log_size
        assert checked.frontier.root() == header.log_root
        hb = _u64(header.height)
        puts = [(b"b/" + hb, header.raw or header.encode()), (b"q/" + hb, qc.encode())]
        for offset, env in enumerate(checked.block.envelopes):
            leaf = header.log_start + offset
            puts.append((b"e/" + _u64(leaf), env.raw))
            puts.append((b"r/" + env.record_id, _u64(leaf) + hb))
            puts.append((_subject_prefix(env.record.subject) + _u64(leaf), b""))
        for level, index, h in checked.nodes:
            if level >= NODE_LEVEL_STORED_MIN:
                puts.append((b"n/" + bytes([level]) + _u64(index), h))
        for (kind, key), value in checked.facts.items():
            puts.append((f"f/{kind}/{key}".encode("utf-8"), codec.encode(value)))
        puts.append((HEAD_KEY, hb))
        self.kv.write(puts, [], sync=sync)
        # Readers on another thread see the new frontier before the new head, and
        # `locate` hides records above the head, so no reader ever asks for a
        # proof from a tree that is not there yet.
        self.frontier = checked.frontier
        self._head = header

    def save_meta(self, key: str, value: bytes) -> None:
        """Synced write of one runtime value (consensus state) under m/<key>."""
        assert key != "head"
        self.kv.write([(f"m/{key}".encode(), value)], [], sync=True)
        assert self.kv.get(f"m/{key}".encode()) == value

    def load_meta(self, key: str) -> bytes | None:
        return self.kv.get(f"m/{key}".encode())

    def scrub_block(self, height: int) -> None:
        """Read one committed block as the scrub does (docs/storage.md, "A damaged store
        heals"): header, QC and records with every on-disk checksum verified; StoreCorrupt
        (through the kv layer) or NotFound if any of it is damaged or gone."""
        try:
            header = decode_header(self._get_verified(b"b/" + _u64(height), f"block {height}"))
        except InvalidInput as exc:
            raise StoreCorrupt(f"block {height}: its stored header does not decode ({exc.message})") from None
        self._get_verified(b"q/" + _u64(height), f"qc {height}")
        found = sum(1 for _ in self.kv.scan(b"e/" + _u64(header.log_start), b"e/" + _u64(header.log_size),
                                            verify=True))
        if found != header.log_size - header.log_start:
            raise StoreCorrupt(f"block {height}: {header.log_size - header.log_start - found} of its records "
                               "are missing")

    def _get_verified(self, key: bytes, what: str) -> bytes:
        value = self.kv.get(key, verify=True)
        if value is None:
            raise StoreCorrupt(f"{what} is missing below the head")
        return value

    # -- equivocation evidence (docs/storage.md: x/<seq>) -------------------------

    def save_evidence(self, seq: int, value: bytes) -> None:
        """Synced write of one equivocation case under x/u64(seq); the caller bounds seq."""
        assert 0 <= seq < EVIDENCE_MAX and len(value) <= EVIDENCE_VALUE_MAX_BYTES
        self.kv.write([(b"x/" + _u64(seq), value)], [], sync=True)

    def load_evidence(self, after: int = -1, limit: int = EVIDENCE_MAX) -> list[tuple[int, bytes]]:
        """(seq, value) of kept cases with seq > after, in order, at most `limit`."""
        out = []
        for key, value in self.kv.scan(b"x/" + _u64(max(after + 1, 0)), b"x/" + b"\xff" * 8):
            if len(out) >= limit:
                break
            out.append((_U64.unpack(key[2:])[0], value))
        return out
