"""Where version 2 keeps the state map in LevelDB (docs/protocol.md section 11; docs/storage.md).

Two kinds of keys (storage/keys.py):
- `t/<node hash>`: a state-map node, the bytes `statemap` hashes (a leaf `00 || path ||
  value`, an inner node `01 || left || right`). Nodes are content-addressed and never
  overwritten, so every root once committed stays provable while later blocks commit.
- `l/<list path><level><u64 index>`: a node (level 1 and up) of one record list's RFC
  6962 tree (the `subject` and `refby` entries), which `statemap.list_append` reads to
  extend the list and list proofs read;
- `p/<list path><u64 position>`: the leaf index listed at that position, which is the
  list tree's level 0 (its leaf hash is `list_leaf_hash(leaf index)`) and what an answer
  pages through.

`change_puts` gives the key-value pairs of one block's change to join its commit batch;
`MapNodes.put` writes nodes on their own, synced (for tools and tests). Reads verify nothing here: `statemap` re-hashes
every node it reads and raises `StoreCorrupt` on a mismatch.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from itertools import islice

from ..errors import StoreCorrupt
from ..ledgermap import MapChange
from ..merkle import HASH_BYTES
from ..statemap import decode_node, list_leaf_hash
from . import keys
from .kv import KV


# Nodes kept in memory: the top of the map is read by every block, and a node is
# content-addressed and never changes, so a cached copy can never be stale. About 100
# bytes a node: 300,000 nodes are some 60 MB at most.
MAP_CACHE_NODES_MAX = 300_000


class MapNodes:
    """statemap.NodeStore over a KV, with the nodes last written or read kept in memory.

    A node read from disk is checked against its hash here (`decode_node`) before it is
    kept, and a kept node was computed or checked by this process, so the map need not
    hash what `get` returns again (`verifies`)."""

    verifies = True

    def __init__(self, kv: KV, cache_nodes_max: int = MAP_CACHE_NODES_MAX) -> None:
        self.kv = kv
        self.cache_nodes_max = cache_nodes_max
        self._cache: dict[bytes, bytes] = {}
        self._lock = threading.Lock()  # API reader threads and the disk thread share the cache

    def get(self, node_hash: bytes) -> bytes | None:
        with self._lock:
            raw = self._cache.pop(node_hash, None)
            if raw is not None:
                self._cache[node_hash] = raw  # read again: kept longest (the top of the map)
                return raw
        raw = self.kv.get(keys.map_node_key(node_hash))
        if raw is not None:
            decode_node(node_hash, raw)
            self.keep({node_hash: raw})
        return raw

    def keep(self, nodes: Mapping[bytes, bytes], replaced: Iterable[bytes] = ()) -> None:
        """Remember nodes just written (or read), forget those a commit `replaced`; the
        least recently used half goes when it is full."""
        if len(nodes) > self.cache_nodes_max:  # a huge block: keep its last nodes, the top of the map
            nodes = dict(islice(nodes.items(), len(nodes) - self.cache_nodes_max, None))
        with self._lock:
            for h in replaced:
                self._cache.pop(h, None)
            if len(self._cache) + len(nodes) > self.cache_nodes_max:
                for h in list(islice(self._cache, len(self._cache) // 2 + len(nodes))):
                    self._cache.pop(h, None)
            self._cache.update(nodes)

    @staticmethod
    def puts(nodes: Mapping[bytes, bytes]) -> list[tuple[bytes, bytes]]:
        return [(keys.map_node_key(h), raw) for h, raw in nodes.items()]

    def put(self, nodes: Mapping[bytes, bytes]) -> None:
        self.kv.write(self.puts(nodes), [], sync=True)
        self.keep(nodes)


class ListNodes:
    """merkle.NodeReader over one record list's stored tree: level 0 from its positions
    (p/, the listed leaf indexes), the levels above from l/."""

    def __init__(self, kv: KV, list_path: bytes) -> None:
        self.kv, self.list_path = kv, list_path

    def node(self, level: int, index: int) -> bytes:
        if level == 0:
            return list_leaf_hash(self.leaf(index))
        value = self.kv.get(keys.list_node_key(self.list_path, level, index))
        if value is None or len(value) != HASH_BYTES:
            raise StoreCorrupt(f"record list node {level}/{index} is missing or not a hash")
        return value

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
