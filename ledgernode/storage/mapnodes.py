"""Where version 2 keeps the state map in LevelDB (docs/protocol.md section 11; docs/storage.md).

Three kinds of keys (storage/keys.py):
- `t/<node hash>`: a state-map leaf or tile (maptree.py: a leaf `00 || path || value`,
  a record list's leaf `02 || path || k || its right edge || value`, a tile of four
  levels `03 || present || leaves || slot hashes` under its top node's hash). They are
  content-addressed and never overwritten, so every root once committed stays
  provable while later blocks commit. An append reads the list's right edge from its
  leaf, so it reads nothing else.
- `l/<list path><level><u64 index>`: a node of one record list's RFC 6962 tree (the
  `subject` and `refby` entries) at level LIST_NODE_LEVEL_STORED_MIN or above, which
  list proofs read; a node below is hashed from the positions under it (at most
  2**LIST_NODE_LEVEL_STORED_MIN - 1 of them, read in one scan);
- `p/<list path><u64 position>`: the leaf index listed at that position, which is the
  list tree's level 0 (its leaf hash is `list_leaf_hash(leaf index)`) and what an answer
  pages through.

`change_puts` gives the key-value pairs of one block's change to join its commit batch;
`MapNodes.put` writes nodes on their own, synced (for tools and tests). `MapNodes.node`
checks every node it reads from disk against its hash (`decode_node`) and raises
`StoreCorrupt` on a mismatch; it keeps the map at the head in memory, decoded, which
a commit keeps current (`keep`: the block's new nodes in, those it replaced out).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import StoreCorrupt
from ..ledgermap import LIST_NODE_LEVEL_STORED_MIN, MapChange
from .. import merkle
from ..merkle import HASH_BYTES
from ..statemap import list_leaf_hash
from ..maptree import Batch, Stored, Tile, decode_node, parse_leaf
from . import keys
from .generations import Generations
from .kv import KV


# Leaves and tiles kept in memory: a content-addressed node never changes, so a kept copy
# is never stale, and a commit drops those it replaced, so what is kept is the map at the
# head (all that a block's descent reads) as long as it fits. Measured on a map of
# 200,000 one-record lists: 75,540 tiles of 1,392 bytes and 200,000 leaves of 142 bytes
# on average (sys.getsizeof), some 130 MB in 275,540 entries; at that mix the bound is
# about 600 MB with the dicts' own overhead, reached by a map of some 700,000 entries.
MAP_CACHE_NODES_MAX = 1_000_000


class MapNodes:
    """maptree.NodeStore over a KV, with the map at the head kept in memory
    (storage/generations.py): tiles decoded, leaves as their bytes, which take a third
    less memory than decoded and are cut into their parts when read.

    A node read from disk is checked against its hash (`decode_node`) before it is kept,
    and a kept node was computed or checked by this process, so the map need not hash
    what `node` returns again."""

    def __init__(self, kv: KV, cache_nodes_max: int = MAP_CACHE_NODES_MAX, verify_reads: bool = False) -> None:
        """`verify_reads`: ask LevelDB to check each read's checksums (the scrub does)."""
        self.kv, self.verify_reads = kv, verify_reads
        self._cache: Generations[Tile | bytes] = Generations(cache_nodes_max)

    def get(self, node_hash: bytes) -> bytes | None:
        """A node's stored bytes, unchecked."""
        key = keys.map_node_key(node_hash)
        return self.kv.get(key, verify=True) if self.verify_reads else self.kv.get(key)

    def node(self, node_hash: bytes) -> Stored | None:
        kept = self._cache.get(node_hash)
        if kept is None:
            raw = self.get(node_hash)
            if raw is None:
                return None
            node = decode_node(node_hash, raw)
            self._cache.put(node_hash, _kept(node, raw))
            return node
        if isinstance(kept, bytes):
            leaf = parse_leaf(kept)
            assert leaf is not None, "a kept leaf's bytes were checked or made here"
            return leaf
        return kept

    def keep(self, batch: Batch) -> None:
        """Remember a batch just written, and forget the nodes it replaced: a reader of an
        earlier root reads those from disk."""
        self._cache.discard(batch.replaced)
        raw = batch.nodes
        self._cache.update({h: _kept(node, raw[h]) for h, node in batch.parsed.items()})

    def cached(self) -> int:
        """Nodes held in memory now."""
        return len(self._cache)

    @staticmethod
    def puts(nodes: Mapping[bytes, bytes]) -> list[tuple[bytes, bytes]]:
        prefix = keys.MAP_NODE  # every key is a sha256 digest the map computed
        return [(prefix + h, raw) for h, raw in nodes.items()]

    def put(self, nodes: Mapping[bytes, bytes]) -> None:
        self.kv.write(self.puts(nodes), [], sync=True)
        for h, raw in nodes.items():
            self._cache.put(h, _kept(decode_node(h, raw), raw))


def _kept(node: Stored, raw: bytes) -> Tile | bytes:
    """What the cache keeps of a node: a tile decoded, a leaf as its (checked) bytes."""
    return node if len(node) == 2 else raw


class ListNodes:
    """merkle.NodeReader over one record list's stored tree: level 0 from its positions
    (p/, the listed leaf indexes), levels 1 to LIST_NODE_LEVEL_STORED_MIN - 1 hashed from
    the positions under them (kept per instance: a reader serves one answer), the levels
    above from l/."""

    def __init__(self, kv: KV, list_path: bytes) -> None:
        self.kv, self.list_path = kv, list_path
        self._low = merkle.LeafBlocks(self._leaf_levels, LIST_NODE_LEVEL_STORED_MIN)

    def node(self, level: int, index: int) -> bytes:
        if level < LIST_NODE_LEVEL_STORED_MIN:
            h = self._low.node(level, index)
            if h is None:
                raise StoreCorrupt(f"record list node {level}/{index}: not all of its {1 << level} positions "
                                   "are stored")
            return h
        value = self.kv.get(keys.list_node_key(self.list_path, level, index))
        if value is None or len(value) != HASH_BYTES:
            raise StoreCorrupt(f"record list node {level}/{index} is missing or not a hash")
        return value

    def _leaf_levels(self, start: int, end: int) -> list[list[bytes]]:
        """The subtrees over positions [start, end), up to the first one missing."""
        scanned = keys.consecutive(self.kv.scan(*keys.positions_range(self.list_path, start, end)), start)
        return merkle.subtree_levels([list_leaf_hash(keys.decode_position(value, f"record list position {start + i}"))
                                      for i, value in enumerate(scanned)])

    def leaf(self, position: int) -> int:
        raw = self.kv.get(keys.position_key(self.list_path, position))
        if raw is None:
            raise StoreCorrupt(f"record list position {position} is missing")
        return keys.decode_position(raw, f"record list position {position}")

    def leaves(self, start: int, end: int) -> list[int]:
        """The leaf indexes at positions [start, end): one scan."""
        where = f"record list positions {start} to {end - 1}"
        scanned = self.kv.scan(*keys.positions_range(self.list_path, start, end))
        out = [keys.decode_position(v, where) for _, v in scanned]
        if len(out) != end - start:
            raise StoreCorrupt(f"{where}: {len(out)} stored, not {end - start}")
        return out


def change_puts(change: MapChange) -> list[tuple[bytes, bytes]]:
    """The pairs of one block's state-map change, for its commit batch."""
    puts = MapNodes.puts(change.batch.nodes)
    puts.extend((keys.list_node_key(p, level, index), h) for p, level, index, h in change.list_nodes)
    puts.extend((keys.position_key(p, position), keys.u64(leaf)) for p, position, leaf in change.positions)
    return puts
