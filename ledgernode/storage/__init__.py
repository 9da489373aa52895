"""The ledger store: committed blocks, the global Merkle log and derived indexes.

Theory of operation. A `Store` sits on an ordered key-value backend (`MemoryKV`
for tests, `LevelKV` for nodes) and keeps everything under one-letter key
prefixes (docs/storage.md; spelled only in storage/keys.py). `commit` writes one
block, its QC, its leaves, the Merkle nodes they complete, the record-id and
subject indexes, the state facts and the new head as ONE atomic batch with
sync=True: after a crash the store holds every block up to some height
completely and nothing of later ones. The log's right edge (`Frontier`) is
rebuilt at open from O(log n) node reads.

Readers on other threads (API workers, catch-up) see the head through `Tip`, one
immutable value holding the head header and the frontier of the same block;
`commit` swaps it in with one assignment after its batch is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .. import codec, merkle, records
from .. import members as members_mod
from ..blocks import QC, CheckedBlock, Header, decode_header, decode_qc
from ..errors import InvalidInput, NotFound, StoreCorrupt, StoreOutdated
from ..families import gov
from ..genesis import Genesis
from ..members import Members, ValidatorSet
from .. import maptree, statemap
from ..statemap import EMPTY_ROOT
from ..maptree import StateMap
from . import keys
from .generations import Generations
from .kv import KV, MemoryKV
from .mapnodes import ListNodes, MapNodes, change_puts

log = logging.getLogger("ledgernode.storage")

# Merkle nodes below this level are not stored: a complete subtree of fewer
# than 2**NODE_LEVEL_STORED_MIN leaves is rehashed from the leaf hashes when a
# proof needs it (all of a proof's such siblings lie in its leaf's aligned block
# of 16, read from its h/ key or in one scan of its envelopes: merkle.LeafBlocks). Storing every level cost two
# LevelDB keys per record on the commit path; levels 4 and up cost one key per 8
# leaves (1/16 + 1/32 + ...).
NODE_LEVEL_STORED_MIN = 4
# The leaves under one stored node of that level: a complete block of them keeps its
# leaf hashes under one h/ key, so a proof reads one key instead of scanning and
# hashing 16 envelopes (docs/storage.md).
LEAF_BLOCK = 1 << NODE_LEVEL_STORED_MIN
# Stored Merkle nodes kept in memory (storage/generations.py): a complete subtree's
# hash never changes, and every proof reads the top of the tree. 32-byte values
# under 10-byte keys: some 20 MB at most.
LOG_NODE_CACHE_MAX = 200_000
# Answers (ledgernode/auditing/answers.py) ask for one record more than a page lists, to know
# whether more follow; the page itself is one constant of the ledger layer.
SUBJECT_ANSWER_MAX = records.SUBJECT_PAGE_MAX
SUBJECT_PAGE_MAX = SUBJECT_ANSWER_MAX + 1
# a gov fact (args, up to 256 approvers); the validators fact, a list of maps
FACT_LIMITS = codec.Limits(input_max_bytes=1 << 20, depth_max=3)
MEMBER_FACTS_MAX = 1_000_000  # key and dept facts read to build the head's Members
EVIDENCE_MAX = 1_000  # equivocation cases kept on disk; later ones are counted, not kept
EVIDENCE_VALUE_MAX_BYTES = 4096  # two signed messages without blocks or certificates


@dataclass(frozen=True)
class Tip:
    """The committed head as one value: its header (None: the store is empty) and the
    log's right edge at its log_size.

    `Store.commit` replaces the whole value in one assignment, so a reader on another
    thread that takes `store.tip` once holds a header and a frontier of the same block.
    The frontier is never appended to: whoever grows it copies it first
    (blocks.check_block does)."""

    header: Header | None
    frontier: merkle.Frontier

    @property
    def height(self) -> int:
        return self.header.height if self.header else 0

    @property
    def log_size(self) -> int:
        return self.frontier.size


class Store:
    def __init__(self, kv: KV) -> None:
        self.kv = kv
        self.map_nodes = MapNodes(kv)
        self._log_nodes: Generations[bytes] = Generations(LOG_NODE_CACHE_MAX)
        self.leaf_blocks_refused = 0  # h/ values that failed their check; their envelopes were read instead
        # (genesis, the head's Members, commits that changed a member): built on first use,
        # rebuilt whole by the commit that changes a key or a dept (members.py)
        self._members: tuple[Genesis, Members] | None = None
        self._members_changes = 0
        self._tip = self._open()

    def _open(self) -> Tip:
        """The head and the log's right edge, in O(log n) reads (docs/storage.md, "Opening")."""
        raw = self.kv.get(keys.HEAD_KEY)
        header: Header | None = None
        try:
            if raw is not None:
                header = self.load_header(keys.decode_head(raw))
            size = header.log_size if header else 0
            frontier = merkle.Frontier.load(_LogNodes(self, size), size)
            self._check_whole(header)
        except NotFound as exc:
            raise StoreCorrupt(f"the store is not whole: {exc} is missing below the head "
                               f"(height {header.height if header else 0})") from None
        if header is not None and frontier.root() != header.log_root:
            raise StoreCorrupt("log root rebuilt from stored nodes does not match the head")
        return Tip(header, frontier)

    def _check_whole(self, head: Header | None) -> None:
        """A cheap check at open (docs/storage.md, "Opening"): the first and the last block
        and leaf are there. LevelDB that lost its manifest or older tables keeps a head
        over a hole; this finds it before the node serves or votes."""
        if head is None:
            if self.kv.get(keys.block_key(1)) is not None:
                raise StoreCorrupt("the store has blocks but no head")
            return
        self.load_header(1)
        self.load_qc(head.height)
        if head.log_size:
            self.load_envelope(0)
            self.load_envelope(head.log_size - 1)
        root = self.map_nodes.get(head.state) if head.state != EMPTY_ROOT else None
        if head.state != EMPTY_ROOT and root is None:
            raise NotFound(f"the state map's root node {head.state.hex()[:16]}")
        if root is not None and maptree.is_earlier_layout(root):
            raise StoreOutdated("the store was written in an earlier layout (its state map keeps one inner node "
                                "a key, not tiles): it must be rebuilt from its blocks")
        earlier = keys.EARLIER_LAYOUT_SUBJECT
        if next(iter(self.kv.scan(earlier, earlier[:1] + b"0")), None) is not None:
            raise StoreOutdated("the store was written in an earlier layout (it has a subject index s/, and its "
                                "record lists keep no right edge): it must be rebuilt from its blocks")

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

    @property
    def tip(self) -> Tip:
        """Head header and frontier of one block: take it once for a consistent pair."""
        return self._tip

    def head(self) -> Header | None:
        return self._tip.header

    @property
    def height(self) -> int:
        return self._tip.height

    @property
    def log_size(self) -> int:
        return self._tip.log_size

    @property
    def frontier(self) -> merkle.Frontier:
        return self._tip.frontier

    def load_header(self, height: int) -> Header:
        return _stored(decode_header, self._get(keys.block_key(height), f"block {height}"), height, "header")

    def load_qc(self, height: int) -> QC:
        return _stored(decode_qc, self._get(keys.qc_key(height), f"qc {height}"), height, "QC")

    def load_envelope(self, leaf_index: int) -> bytes:
        return self._get(keys.leaf_key(leaf_index), f"leaf {leaf_index}")

    def load_envelopes(self, start: int, end: int) -> list[bytes]:
        assert 0 <= start <= end <= self.log_size, "leaves asked for beyond the committed log"
        out = [v for _, v in self.kv.scan(*keys.leaf_range(start, end))]
        if len(out) != end - start:
            raise StoreCorrupt(f"leaves {start} to {end - 1}: {len(out)} envelopes stored, not {end - start}")
        return out

    def node(self, level: int, index: int) -> bytes:
        return _LogNodes(self).node(level, index)

    def stored_node(self, level: int, index: int) -> bytes:
        """A node at level NODE_LEVEL_STORED_MIN or above, from memory or n/."""
        assert level >= NODE_LEVEL_STORED_MIN
        key = keys.node_key(level, index)
        value = self._log_nodes.get(key)
        if value is None:
            value = self._get(key, f"node {level}/{index}")
            if len(value) != merkle.HASH_BYTES:
                raise StoreCorrupt(f"Merkle node {level}/{index} is {len(value)} bytes, not {merkle.HASH_BYTES}")
            self._log_nodes.put(key, value)
        return value

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes of the stored envelopes [start, end), up to the first one missing."""
        return [merkle.leaf_hash(raw) for raw in keys.consecutive(self.kv.scan(*keys.leaf_range(start, end)), start)]

    def leaf_levels(self, start: int, end: int, log_size: int) -> list[list[bytes]]:
        """The subtrees (merkle.subtree_levels) over the stored envelopes [start, end), up to
        the first one missing; of an aligned block of LEAF_BLOCK complete in a log of
        `log_size`, from its h/ key where it is stored and checks (a block not complete has
        none: it is not looked for)."""
        if end - start == LEAF_BLOCK and start % LEAF_BLOCK == 0 and end <= log_size:
            levels = self._leaf_block(start >> NODE_LEVEL_STORED_MIN)
            if levels is not None:
                return levels
        return merkle.subtree_levels(self.leaf_hashes(start, end))

    def _leaf_block(self, index: int) -> list[list[bytes]] | None:
        """The subtrees over the hashes under h/<index> if stored and they hash to the n/4
        node above them; else None, and the caller reads the envelopes, as before h/ existed:
        h/ is a copy of what the envelopes give, kept for speed, so a doubt about it costs
        only that. A doubt is counted (`leaf_blocks_refused`) and logged; the scrub names
        the damage."""
        raw = self.kv.get(keys.leaf_hashes_key(index))
        if raw is None:
            return None
        first, hash_bytes = index * LEAF_BLOCK, merkle.HASH_BYTES
        levels = merkle.subtree_levels([raw[i:i + hash_bytes] for i in range(0, len(raw), hash_bytes)])
        try:
            above = self.stored_node(NODE_LEVEL_STORED_MIN, index)
        except NotFound:
            above = None
        if len(raw) == LEAF_BLOCK * hash_bytes and above is not None and levels[-1] == [above]:
            return levels
        self.leaf_blocks_refused += 1
        log.warning("the leaf hashes of leaves %d to %d (h/) %s: proofs read their envelopes instead "
                    "(`ledgernode check` names the damage)", first, first + LEAF_BLOCK - 1,
                    f"are {len(raw)} bytes" if len(raw) != LEAF_BLOCK * hash_bytes
                    else "have no Merkle node above them" if above is None else "do not hash to the node above them")
        return None

    def _leaf_block_puts(self, checked: CheckedBlock) -> list[tuple[bytes, bytes]]:
        """An h/ pair for each aligned block of LEAF_BLOCK leaves this block completes, checked
        against the block's own n/4 node; of such a block's leaves, those before this block's
        are read back (at most 15). StoreCorrupt if they cannot be: the store is damaged."""
        start = checked.block.header.log_start
        puts: list[tuple[bytes, bytes]] = []
        for level, index, h in checked.nodes:
            if level != NODE_LEVEL_STORED_MIN:
                continue
            first = index * LEAF_BLOCK
            hashes = self.leaf_hashes(first, start) if first < start else []
            hashes.extend(env.leaf_hash for env in checked.block.envelopes[max(first, start) - start:
                                                                            first + LEAF_BLOCK - start])
            if len(hashes) != LEAF_BLOCK or merkle.complete_subtree_hash(hashes) != h:
                raise StoreCorrupt(f"leaves {first} to {start - 1}, committed before block "
                                   f"{checked.block.header.height}, are missing or damaged")
            puts.append((keys.leaf_hashes_key(index), b"".join(hashes)))
        return puts

    def locate(self, record_id: bytes) -> tuple[int, int] | None:
        """(leaf_index, height) of a committed record, or None."""
        raw = self.kv.get(keys.record_key(record_id))
        if raw is None:
            return None
        leaf, height = keys.decode_record_index(raw, f"record {record_id.hex()}")
        # A commit writes its records before its tip: those above the head are not committed yet.
        return None if height > self.height else (leaf, height)

    def is_committed(self, record_id: bytes) -> bool:
        return self.kv.get(keys.record_key(record_id)) is not None

    def load_fact(self, kind: str, key: str) -> dict[str, Any] | None:
        raw = self.kv.get(keys.fact_key(kind, key))
        return None if raw is None else _decode_fact(kind, key, raw)

    def facts_of(self, kind: str, after: str = "", limit: int = MEMBER_FACTS_MAX) -> list[tuple[str, dict[str, Any]]]:
        """Facts of one kind, (key, value) in key order, from the first key after `after`."""
        prefix = keys.fact_key(kind, "")
        start = keys.fact_key(kind, after) + b"\x00" if after else prefix
        out: list[tuple[str, dict[str, Any]]] = []
        for k, raw in self.kv.scan(start, prefix[:-1] + b"0", verify=True):
            if len(out) >= limit:
                break
            name = k[len(prefix):].decode("utf-8")
            out.append((name, _decode_fact(kind, name, raw)))
        return out

    def members(self, genesis: Genesis) -> Members:
        """Who may sign at the head: the genesis's keys and depts with governance's changes."""
        cached = self._members
        if cached is not None and cached[0] is genesis:
            return cached[1]
        changes = self._members_changes
        built = self._build_members(genesis)
        if changes == self._members_changes:  # no commit changed them meanwhile
            self._members = (genesis, built)
        return built

    def _build_members(self, genesis: Genesis) -> Members:
        key_facts, dept_facts = self.facts_of(gov.KEY), self.facts_of(gov.DEPT)
        if MEMBER_FACTS_MAX in (len(key_facts), len(dept_facts)):
            raise StoreCorrupt(f"{MEMBER_FACTS_MAX} or more key or dept facts: no ledger writes so many")
        try:
            return members_mod.build(genesis, (f for _, f in key_facts), (d for d, _ in dept_facts),
                                     self.load_fact(gov.VALIDATORS, ""))
        except ValueError as exc:
            raise StoreCorrupt(str(exc)) from None

    def map_at(self, root: bytes) -> StateMap:
        """The state map at a committed root: the head's is `tip.header.state`
        (docs/protocol.md section 11); every earlier root stays readable."""
        return StateMap(self.map_nodes, root)

    def list_nodes(self, list_path: bytes) -> ListNodes:
        """One record list's tree and positions (storage/mapnodes.py)."""
        return ListNodes(self.kv, list_path)

    def subject_leaves(self, subject: str, after: int = -1, limit: int = 100) -> list[int]:
        """Leaf indexes of records about `subject`, in log order, after `after`, at the head:
        from the subject's record list (its positions p/, found by binary search)."""
        limit = min(limit, SUBJECT_PAGE_MAX)
        head = self._tip.header
        if limit <= 0 or head is None:
            return []
        list_path = statemap.path("subject", subject)
        value = self.map_at(head.state).get(list_path)
        if value is None:
            return []
        n = statemap.parse_list_value(value)[0]
        nodes = self.list_nodes(list_path)
        lo, hi = 0, n  # the first position listing a leaf after `after`
        while lo < hi:
            mid = (lo + hi) // 2
            if nodes.leaf(mid) <= after:
                lo = mid + 1
            else:
                hi = mid
        return nodes.leaves(lo, min(n, lo + limit))

    def height_of_leaf(self, leaf_index: int) -> int:
        """Height of the block holding `leaf_index`: binary search over headers."""
        tip = self._tip  # one head for the bound and the search
        if not 0 <= leaf_index < tip.log_size:
            raise NotFound(f"leaf {leaf_index}")
        lo, hi = 1, tip.height
        while lo < hi:
            mid = (lo + hi) // 2
            if self.load_header(mid).log_size <= leaf_index:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def inclusion_proof(self, leaf_index: int, size: int) -> list[bytes]:
        return self.inclusion_proofs([leaf_index], size)[0]

    def inclusion_proofs(self, leaf_indexes: Sequence[int], size: int) -> list[list[bytes]]:
        """One inclusion proof per leaf, all in a log of `size`: one reader serves them, so a
        node or leaf block they share (the log's right edge, above all) is read once."""
        assert size <= self.log_size
        reader = _LogNodes(self)
        return [merkle.inclusion_proof(reader, leaf, size) for leaf in leaf_indexes]

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        assert new_size <= self.log_size
        return merkle.consistency_proof(_LogNodes(self), old_size, new_size)

    # -- writes --------------------------------------------------------------

    def commit(self, checked: CheckedBlock, qc: QC, sync: bool = True) -> None:
        """Store a checked block with its QC as one atomic batch, synced unless `sync` is False
        (a rebuild: storage/repair.py syncs once at its end)."""
        header, tip = checked.block.header, self._tip
        assert header.height == tip.height + 1, "commit must extend the head"
        assert header.log_start == tip.log_size, "block must start at the log's end"
        assert qc.block_hash == header.block_hash and qc.height == header.height
        assert checked.frontier.size == header.log_size
        assert checked.frontier.root() == header.log_root
        assert checked.map_change.root == header.state, "the map change is not the header's state"
        assert tip.header is None or checked.map_change.batch.base == tip.header.state
        self.kv.write(_block_puts(checked, qc, self._leaf_block_puts(checked)), [], sync=sync)
        self.map_nodes.keep(checked.map_change.batch)
        # One assignment: a reader on another thread sees the old tip or the new one, never
        # a head with another block's frontier. The records are on disk before the tip
        # names them, and `locate` hides those above its height until then. The copy keeps
        # a later append to the caller's CheckedBlock from changing what readers see.
        self._tip = Tip(header, checked.frontier.copy())
        if any(kind in gov.MAP_KINDS for kind, _ in checked.facts):
            self._members_changes += 1
            cached = self._members
            self._members = None if cached is None else (cached[0], self._build_members(cached[0]))

    def save_meta(self, key: str, value: bytes) -> None:
        """Synced write of one runtime value (consensus state) under m/<key>."""
        assert key != keys.HEAD_NAME
        self.kv.write([(keys.meta_key(key), value)], [], sync=True)
        assert self.kv.get(keys.meta_key(key)) == value

    def load_meta(self, key: str) -> bytes | None:
        return self.kv.get(keys.meta_key(key))

    def scrub_block(self, height: int) -> None:
        """Read one committed block as the scrub does (docs/storage.md, "A damaged store
        heals"): header, QC and records with every on-disk checksum verified; StoreCorrupt
        (through the kv layer) or NotFound if any of it is damaged or gone."""
        header = _stored(decode_header, self._get_verified(keys.block_key(height), f"block {height}"),
                         height, "header")
        self._get_verified(keys.qc_key(height), f"qc {height}")
        found = sum(1 for _ in self.kv.scan(*keys.leaf_range(header.log_start, header.log_size), verify=True))
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
        self.kv.write([(keys.evidence_key(seq), value)], [], sync=True)

    def load_evidence(self, after: int = -1, limit: int = EVIDENCE_MAX) -> list[tuple[int, bytes]]:
        """(seq, value) of kept cases with seq > after, in order, at most `limit`."""
        out: list[tuple[int, bytes]] = []
        for key, value in self.kv.scan(*keys.evidence_from(max(after + 1, 0))):
            if len(out) >= limit:
                break
            seq = keys.key_number(key)
            if seq is None:
                raise StoreCorrupt(f"evidence key {key.hex()} is not a prefix and a u64 sequence number")
            out.append((seq, value))
        return out


def validators_in(state: StateMap, header: Header) -> ValidatorSet:
    """The set of the `validators` entry of `header`'s state, `state`: the set that
    certifies the block after it. StoreCorrupt if the entry is missing or does not load."""
    value = state.get(statemap.path(gov.VALIDATORS, ""))
    if value is None:
        raise StoreCorrupt(f"the state of block {header.height} holds no validators entry")
    try:
        return members_mod.set_of_fact(codec.decode(value, FACT_LIMITS))
    except (InvalidInput, ValueError, KeyError, TypeError) as exc:
        raise StoreCorrupt(f"the validators entry of block {header.height}'s state does not load: {exc}") from None


def _decode_fact(kind: str, key: str, raw: bytes) -> dict[str, Any]:
    try:
        fact = codec.decode(raw, FACT_LIMITS)
    except InvalidInput as exc:
        raise StoreCorrupt(f"fact {kind}/{key}: its stored value does not decode ({exc.message})") from None
    if not isinstance(fact, dict):
        raise StoreCorrupt(f"fact {kind}/{key}: its stored value is not a map")
    return fact


class _LogNodes:
    """merkle.NodeReader over the log for one proof: stored levels through the store's
    memory, the levels below from each aligned block's h/ key, or where there is none from
    one scan of its envelopes."""

    def __init__(self, store: Store, log_size: int | None = None) -> None:
        """`log_size`: the committed log's (whatever the proof's size), which says whose h/ to
        read; the store's, except while it opens."""
        self.store = store
        committed = store.log_size if log_size is None else log_size
        self.low = merkle.LeafBlocks(lambda start, end: store.leaf_levels(start, end, committed), NODE_LEVEL_STORED_MIN)

    def node(self, level: int, index: int) -> bytes:
        if level >= NODE_LEVEL_STORED_MIN:
            return self.store.stored_node(level, index)
        h = self.low.node(level, index)
        if h is None:
            raise NotFound(f"node {level}/{index}")
        return h


def _block_puts(checked: CheckedBlock, qc: QC, leaf_blocks: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Every key of one block's commit batch (docs/storage.md, "Committing a block");
    `leaf_blocks` its h/ pairs (Store._leaf_block_puts)."""
    header = checked.block.header
    puts = [(keys.block_key(header.height), header.raw or header.encode()), (keys.qc_key(header.height), qc.encode())]
    for offset, env in enumerate(checked.block.envelopes):
        leaf = header.log_start + offset
        puts.append((keys.leaf_key(leaf), env.raw))
        puts.append((keys.record_key(env.record_id), keys.record_index_value(leaf, header.height)))
    for level, index, h in checked.nodes:
        if level >= NODE_LEVEL_STORED_MIN:
            puts.append((keys.node_key(level, index), h))
    puts.extend(leaf_blocks)
    for (kind, key), value in checked.facts.items():
        puts.append((keys.fact_key(kind, key), codec.encode(value)))
    puts.extend(change_puts(checked.map_change))
    puts.append((keys.HEAD_KEY, keys.head_value(header.height)))
    return puts


class _AtHeight(Protocol):
    @property
    def height(self) -> int: ...


_T = TypeVar("_T", bound=_AtHeight)


def _stored(decode: Callable[[bytes], _T], raw: bytes, height: int, what: str) -> _T:
    """A header or QC read back from under `height`: it decodes canonically and is of that height."""
    try:
        value = decode(raw)
    except InvalidInput as exc:
        raise StoreCorrupt(f"block {height}: its stored {what} does not decode ({exc.message})") from None
    if value.height != height:
        raise StoreCorrupt(f"block {height}: {what} stored under the wrong height (it is of block {value.height})")
    return value
