"""Scrub a stopped node's ledger store: read every committed block back and check it.

`python -m ledgernode check -c node.toml` runs `check_path` on DATA_DIR/ledger. With the
key layout of docs/storage.md ("Key layout") it checks, for every height 1..head, that
`b/<height>` decodes, is stored under its height and its `prev` is the hash of the header
below (height 1: ZERO_HASH); that `q/<height>` certifies it under the genesis validators
(`check_qc`); that `e/` holds every leaf of [log_start, log_size), log_start is the log_size
below, and the RFC 6962 root of all leaves so far is the header's log_root (one
`merkle.Frontier` grown leaf by leaf: O(n) hashes in all), every `n/` node those leaves
complete is stored and equal to it ("Merkle nodes"), and every `h/` value stored for a
complete block of 16 of them equals their leaf hashes; that each envelope decodes and
`r/<record id>` names its leaf and height; and that no
`b/`, `q/` is stored past the head nor `e/` past its log_size. When all of that is whole,
the state map at the head and its record lists are checked (storage/mapscrub.py). State
facts (`f/`) are derived data and not checked. Every read verifies LevelDB's checksums.

It reads the backend itself, not through `Store`: `Store` refuses to open a store whose
head or right edge is damaged ("Opening"), just what an operator runs this on. It goes on
past a damaged block: after a missing leaf or a wrong root it takes the log's right edge
up again from the stored `n/` nodes once they reproduce a certified root, counting the
roots it could not recompute meanwhile. It keeps at most FINDINGS_MAX findings; the repair
is the same whatever they are: `ledgernode repair` or a restart rebuilds the store block by
block (docs/storage.md, "A damaged store heals block by block").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from .. import merkle
from ..blocks import ZERO_HASH, Header, check_qc, decode_header, decode_qc
from ..errors import InvalidInput, NotFound, StorageError, StoreCorrupt
from ..genesis import Genesis
from ..members import AnyDept
from ..records import Envelope, decode_envelope
from ..maptree import StateMap
from . import LEAF_BLOCK, NODE_LEVEL_STORED_MIN, keys, validators_in
from .mapnodes import MapNodes
from .kv import KV
from .mapscrub import MapScrub

FINDINGS_MAX = 100  # findings kept; the scrub stops at the next block once there are this many
SCRUB_MAP_NODES_MAX = 4_096  # map nodes kept while each block's validators entry is read
PROGRESS_INTERVAL_S = 1.0  # at most one progress line this often
LEVELDB_CURRENT_FILE = "CURRENT"  # every LevelDB directory has one


class WrongGenesis(Exception):
    """The store's head names another chain than the genesis given: unusable input."""


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


@dataclass(frozen=True)
class Finding:
    height: int  # the block it concerns (head + 1: above the head; 0: the store as a whole)
    text: str


@dataclass
class Report:
    head: int = 0  # height named by m/head
    records: int = 0  # envelopes read
    findings: list[Finding] = field(default_factory=list)
    truncated: bool = False  # stopped at FINDINGS_MAX
    roots_unchecked: int = 0  # blocks whose log root could not be recomputed (leaves missing)
    map_entries: int | None = None  # state-map entries checked at the head (None: not checked)

    @property
    def whole(self) -> bool:
        return not self.findings

    def summary(self, ledger_dir: str | Path) -> str:
        if self.whole:
            state = "" if self.map_entries is None else f", state map OK ({self.map_entries:,} entries)"
            return (f"store whole: {_plural(self.head, 'block')}, {_plural(self.records, 'record')}, "
                    f"log root OK{state}")
        first = self.findings[0].height
        where = f"height {first}" if first else "the store as a whole"
        count = ("at least " if self.truncated else "") + _plural(len(self.findings), "finding")
        return (f"store damaged: {count} (first at {where}); to repair: python -m ledgernode repair -c CONFIG "
                f"--from PEER_API_URL rebuilds {ledger_dir} block by block, or start the node: it rebuilds "
                f"what is whole and fetches the rest from its peers, keeping its signing state "
                f"(docs/storage.md, \"A damaged store heals block by block\")")

    def render(self, ledger_dir: str | Path) -> str:
        """Every finding on its own line, notes, then the summary line."""
        lines = [f.text for f in self.findings]
        if self.truncated:
            lines.append(f"(stopped after the first {FINDINGS_MAX} findings)")
        if self.roots_unchecked:
            lines.append(f"note: {_plural(self.roots_unchecked, 'block')} could not have their log root "
                         f"recomputed: leaves in or before them are missing")
        return "\n".join(lines + [self.summary(ledger_dir)])


def _key_number(key: bytes) -> str:
    """The height or leaf of a b/, q/ or e/ key; the key in hex if it is not one."""
    number = keys.key_number(key)
    return f"key {key.hex()}" if number is None else str(number)


class _Scrub:
    """One pass over heights 1..head; findings go to `report` (docs/storage.md, "Key layout")."""

    def __init__(self, kv: KV, genesis: Genesis) -> None:
        self.kv, self.genesis = kv, genesis
        # each block's validators entry is read through it
        self.map_nodes = MapNodes(kv, SCRUB_MAP_NODES_MAX, verify_reads=True)
        self.report = Report()
        self.prev: Header | None = None  # header of the height below, when it was sound
        self.size: int | None = 0  # log size after the height below, when known
        self.frontier: merkle.Frontier | None = merkle.Frontier()  # None: not known here
        self.verified = True  # the frontier's start was checked against a certified root
        # (index, leaf hash) of the last leaves read: a block's h/ is checked against them
        self.recent: deque[tuple[int, bytes]] = deque(maxlen=LEAF_BLOCK)

    # -- reads: every backend call goes through these two. They verify every on-disk
    # checksum; storage/leveldb.py raises LevelDB's CorruptionError as StoreCorrupt, a
    # StorageError, which the callers below report as damage (docs/storage.md, "Opening").

    def get(self, key: bytes) -> bytes | None:
        return self.kv.get(key, verify=True)

    def scan(self, start: bytes, stop: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """At most `limit` pairs of [start, stop), all read before it returns."""
        out: list[tuple[bytes, bytes]] = []
        pairs = self.kv.scan(start, stop, verify=True)
        try:
            for pair in pairs:
                if len(out) >= limit:
                    break
                out.append(pair)
        finally:
            close = getattr(pairs, "close", None)
            if close is not None:
                close()
        return out

    def node(self, level: int, index: int) -> bytes:
        """merkle.NodeReader over the backend, read as Store.node reads it."""
        if level < NODE_LEVEL_STORED_MIN:
            start = index << level
            leaves = self.scan(*keys.leaf_range(start, start + (1 << level)), 1 << level)
            if len(leaves) != 1 << level:
                raise NotFound(f"node {level}/{index}")
            return merkle.complete_subtree_hash([merkle.leaf_hash(v) for _, v in leaves])
        value = self.get(keys.node_key(level, index))
        if value is None or len(value) != merkle.HASH_BYTES:
            raise NotFound(f"node {level}/{index}")
        return value

    # -- findings ---------------------------------------------------------------------

    @property
    def full(self) -> bool:
        return len(self.report.findings) >= FINDINGS_MAX

    def add(self, height: int, text: str) -> None:
        if self.full:
            self.report.truncated = True
        else:
            self.report.findings.append(Finding(height, text))

    def fetch(self, height: int, key: bytes, what: str, missing: str) -> bytes | None:
        """The value at `key`, or None after a finding: "<what> unreadable (...)" or `missing`."""
        try:
            value = self.get(key)
        except StorageError as exc:
            self.add(height, f"{what} unreadable ({exc})")
            return None
        if value is None:
            self.add(height, missing)
        return value

    # -- the pass -----------------------------------------------------------------------

    def run(self, progress: Callable[[str], None] | None, clock: Callable[[], float]) -> Report:
        head = self.read_head()
        if head is None:
            return self.report
        self.report.head = head
        started = last = clock()
        for height in range(1, head + 1):
            if self.full:
                self.report.truncated = True
                return self.report
            self.block(height)
            now = clock()
            if progress is not None and now - last >= PROGRESS_INTERVAL_S:
                last = now
                progress(_progress_line(height, head, self.report.records, now - started))
        self.above_head(head)
        self.state_map(head, progress)
        return self.report

    def state_map(self, head: int, progress: Callable[[str], None] | None) -> None:
        """The map at the head, when the head header is sound and the blocks are whole
        (storage/mapscrub.py): with blocks damaged, the rebuild redoes the map anyway."""
        if self.prev is None or self.prev.height != head or self.report.findings:
            return
        walk = MapScrub(self.kv, self.prev.state, self.prev.log_size, lambda text: self.add(head, text),
                        lambda: self.full, progress)
        walk.run()
        self.report.map_entries = walk.entries

    def read_head(self) -> int | None:
        """The height m/head names (0 when absent: an empty store), None if unusable."""
        try:
            raw = self.get(keys.HEAD_KEY)
        except StorageError as exc:
            self.add(0, f"head: m/head unreadable ({exc})")
            return None
        if raw is None:
            return 0  # blocks without a head are found above the head
        try:
            head = keys.decode_head(raw)
        except StoreCorrupt as exc:  # its bytes are not a height
            self.add(0, f"head: {exc}")
            return None
        self.check_chain(head)
        return head

    def check_chain(self, head: int) -> None:
        """Raise WrongGenesis when the head header is sound but names another chain."""
        try:
            raw = self.get(keys.block_key(head))
            header = decode_header(raw) if raw is not None else None
        except (StorageError, InvalidInput):
            return  # damage: the pass reports it
        if header is not None and header.chain != self.genesis.chain_id:
            raise WrongGenesis(f"the store holds chain {header.chain!r} and the genesis is of chain "
                               f"{self.genesis.chain_id!r}: is the config's genesis this node's?")

    def block(self, height: int) -> None:
        header = self.header(height)
        if header is None:
            self.frontier, self.size = None, None
        else:
            self.certificate(height, header)
            self.leaves(height, header)
        self.prev = header

    def header(self, height: int) -> Header | None:
        """The header at `height` if it is sound; a finding otherwise."""
        where = f"block {height}"
        raw = self.fetch(height, keys.block_key(height), f"{where}: header", f"{where}: missing (header not stored)")
        if raw is None:
            return None
        try:
            header = decode_header(raw)
        except InvalidInput as exc:
            self.add(height, f"{where}: header does not decode ({exc.message})")
            return None
        if header.height != height:
            self.add(height, f"{where}: header stored under the wrong height (it is of block {header.height})")
            return None
        expected = ZERO_HASH if height == 1 else self.prev.block_hash if self.prev else None
        if expected is not None and header.prev != expected:
            self.add(height, f"{where}: prev is not the block hash of block {height - 1}")
        return header

    def certificate(self, height: int, header: Header) -> None:
        where = f"block {height}"
        raw = self.fetch(height, keys.qc_key(height), f"{where}: QC", f"{where}: QC missing (not stored)")
        if raw is None:
            return
        try:
            validators = None if self.prev is None else validators_in(StateMap(self.map_nodes, self.prev.state),
                                                                       self.prev)
        except (StoreCorrupt, NotFound) as exc:  # the map's own check names the damage too
            self.add(height, f"{where}: the set that certifies it is unreadable ({exc})")
            return
        try:
            check_qc(decode_qc(raw), header, self.genesis, validators=validators)
        except InvalidInput as exc:  # the message says which: not decoding, another block, a signature
            self.add(height, f"{where}: QC does not certify its header ({exc.message})")

    def leaves(self, height: int, header: Header) -> None:
        """The block's envelopes: present, decoding, indexed, and hashing to its log root."""
        where, start, end = f"block {height}", header.log_start, header.log_size
        if self.size is not None and start != self.size:
            self.add(height, f"{where}: log_start {start} does not follow the log_size {self.size} "
                             f"of block {height - 1}")
        if end - start > self.genesis.block_max_records:
            self.add(height, f"{where}: claims {end - start} records, more than the genesis allows")
            self.frontier, self.size = None, end
            return
        if self.frontier is None or self.frontier.size != start:
            self.frontier, self.verified = self.edge(start)
        try:
            pairs = self.scan(*keys.leaf_range(start, end), end - start)
        except StorageError as exc:
            self.add(height, f"{where}: records unreadable ({exc})")
            self.frontier, self.size = None, end
            return
        expected = start
        for key, raw in pairs:
            index = keys.key_number(key)
            if index is None:
                self.add(height, f"{where}: stray key {key.hex()} among its records")
                continue
            self.missing(height, expected, index)
            self.leaf(height, index, raw)
            expected = index + 1
        self.missing(height, expected, end)
        self.root(height, header)
        self.size = end

    def edge(self, size: int) -> tuple[merkle.Frontier | None, bool]:
        """The log's right edge at `size` from stored nodes, and whether a certified root
        (the header below) vouches for it; None when it cannot be read or contradicts it."""
        if size == 0:
            return merkle.Frontier(), True
        try:
            frontier = merkle.Frontier.load(self, size)
        except StorageError:  # NotFound, StoreCorrupt
            return None, False
        if self.prev is None or self.prev.log_size != size:
            return frontier, False
        return (frontier, True) if frontier.root() == self.prev.log_root else (None, False)

    def missing(self, height: int, start: int, end: int) -> None:
        if start < end:
            self.frontier = None
        for index in range(start, min(end, start + FINDINGS_MAX + 1)):
            self.add(height, f"leaf {index} (block {height}): missing (envelope not stored)")

    def leaf(self, height: int, index: int, raw: bytes) -> None:
        self.report.records += 1
        leaf_hash = merkle.leaf_hash(raw)
        self.recent.append((index, leaf_hash))
        if self.frontier is not None:
            for level, node_index, h in self.frontier.append(leaf_hash):
                if level >= NODE_LEVEL_STORED_MIN:
                    self.merkle_node(height, level, node_index, h)
                if level == NODE_LEVEL_STORED_MIN and self.verified:  # as the node: against leaves a root vouches for
                    self.leaf_block(height, node_index)
        try:
            env = decode_envelope(raw, AnyDept.of(self.genesis))
        except InvalidInput as exc:
            self.add(height, f"leaf {index} (block {height}): record does not decode ({exc.message})")
            return
        self.indexes(height, index, env)

    def merkle_node(self, height: int, level: int, index: int, computed: bytes) -> None:
        where = f"Merkle node {level}/{index} (block {height})"
        stored = self.fetch(height, keys.node_key(level, index), where, f"{where}: missing (not stored)")
        if stored is not None and stored != computed and self.verified:
            self.add(height, f"{where}: does not match the leaves under it")

    def leaf_block(self, height: int, index: int) -> None:
        """A complete block of leaves' h/ key, where stored, against their envelopes just read
        (a store written before h/ existed has none: its proofs read the envelopes)."""
        first = index * LEAF_BLOCK
        if [i for i, _ in self.recent] != list(range(first, first + LEAF_BLOCK)):
            return  # the block was not all read in this pass (its start lies before a gap)
        hashes = [h for _, h in self.recent]
        where = f"leaf hashes of leaves {first} to {first + LEAF_BLOCK - 1} (block {height})"
        try:
            stored = self.get(keys.leaf_hashes_key(index))
        except StorageError as exc:
            self.add(height, f"{where} unreadable ({exc})")
            return
        if stored is not None and stored != b"".join(hashes):
            self.add(height, f"{where}: do not match the envelopes")

    def indexes(self, height: int, index: int, env: Envelope) -> None:
        """r/<record id> names this leaf and height."""
        where = f"leaf {index} (block {height})"
        try:
            entry = self.get(keys.record_key(env.record_id))
        except StorageError as exc:
            self.add(height, f"{where}: index unreadable ({exc})")
            return
        if entry is None:
            self.add(height, f"{where}: index entry missing")
        else:
            self.index_entry(height, index, entry)

    def index_entry(self, height: int, index: int, entry: bytes) -> None:
        """The r/ value names this leaf and height."""
        where = f"leaf {index} (block {height})"
        try:
            named = keys.decode_record_index(entry, where)
        except StoreCorrupt as exc:  # not 16 bytes: the message says so
            self.add(height, str(exc))
            return
        if named != (index, height):
            self.add(height, "{}: index entry points at leaf {} of block {}".format(where, *named))

    def root(self, height: int, header: Header) -> None:
        if self.frontier is None:
            self.report.roots_unchecked += 1
        elif self.frontier.root() == header.log_root:
            self.verified = True
        elif self.verified:
            self.add(height, f"block {height}: log root does not match its records")
            self.frontier = None
        else:  # the edge it grew from was not vouched for: blame nobody
            self.report.roots_unchecked += 1
            self.frontier = None

    def above_head(self, head: int) -> None:
        """Nothing under b/ or q/ past the head height, nor under e/ past its log size."""
        ranges = [(keys.blocks_from(head + 1), "block", "header"), (keys.qcs_from(head + 1), "block", "QC")]
        if self.size is not None:  # else the head's log size is not known
            ranges.append((keys.leaves_from(self.size), "leaf", "record"))
        for (start, stop), unit, what in ranges:
            try:
                pairs = self.scan(start, stop, FINDINGS_MAX + 1)
            except StorageError as exc:
                self.add(head + 1, f"above the head: {what}s unreadable ({exc})")
                continue
            for key, _ in pairs:
                self.add(head + 1, f"{unit} {_key_number(key)}: {what} stored above the head (block {head})")


def _progress_line(height: int, head: int, records: int, elapsed_s: float) -> str:
    rate = records / elapsed_s if elapsed_s > 0 else 0.0
    eta_s = (head - height) * elapsed_s / height if height else 0.0
    return (f"check: height {height:,} of {head:,}, {records:,} records checked, "
            f"{rate:,.0f} records/s, ETA {eta_s:,.0f} s")


def scrub(kv: KV, genesis: Genesis, progress: Callable[[str], None] | None = None,
          clock: Callable[[], float] = time.monotonic) -> Report:
    """Check every committed block in `kv` (docs/storage.md); `progress` gets a line at
    most every PROGRESS_INTERVAL_S. Raises WrongGenesis if the head is of another chain."""
    return _Scrub(kv, genesis).run(progress, clock)


def check_path(path: str | Path, genesis: Genesis, progress: Callable[[str], None] | None = None) -> Report:
    """Scrub the LevelDB store at `path` (DATA_DIR/ledger) of a stopped node.

    Raises NotFound when there is no store there, StoreLocked (naming the pid) when a
    running node holds it, WrongGenesis for another chain's store."""
    from .leveldb import LevelKV

    path = Path(path)
    if not path.is_dir() or not any(path.iterdir()):
        raise NotFound(f"no store at {path}: is data_dir in the config this node's?")
    report = Report()
    if not (path / LEVELDB_CURRENT_FILE).is_file():
        report.findings.append(Finding(0, f"store: LevelDB's {LEVELDB_CURRENT_FILE} file is missing"))
        return report
    try:
        kv = LevelKV(path)
    except StoreCorrupt as exc:  # paranoid_checks refused a damaged table, log or manifest
        report.findings.append(Finding(0, f"store: LevelDB refuses to open it ({exc})"))
        return report
    try:
        return scrub(kv, genesis, progress)
    finally:
        kv.close()
