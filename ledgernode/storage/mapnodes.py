"""Where version 2 keeps the state map in LevelDB (docs/protocol.md section 11; docs/storage.md).

Two kinds of keys (storage/keys.py):
- `t/<node hash>`: a state-map node, the bytes `statemap` hashes (a leaf `00 || path ||
  value`, an inner node `01 || left || right`). Nodes are content-addressed and never
  overwritten, so every root once committed stays provable while later blocks commit.
- `l/<list path><level><u64 index>`: a node of one record list's RFC 6962 tree (the
  `subject` and `refby` entries), which `statemap.list_append` reads to extend the list
  and list proofs will read.

`puts` gives the key-value pairs to join a block's commit batch; `put` writes them on
their own, synced (for tools and tests). Reads verify nothing here: `statemap` re-hashes
every node it reads and raises `StoreCorrupt` on a mismatch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..errors import StoreCorrupt
from ..merkle import HASH_BYTES
from . import keys
from .kv import KV


class MapNodes:
    """statemap.NodeStore over a KV."""

    def __init__(self, kv: KV) -> None:
        self.kv = kv

    def get(self, node_hash: bytes) -> bytes | None:
        return self.kv.get(keys.map_node_key(node_hash))

    @staticmethod
    def puts(nodes: Mapping[bytes, bytes]) -> list[tuple[bytes, bytes]]:
        return [(keys.map_node_key(h), raw) for h, raw in nodes.items()]

    def put(self, nodes: Mapping[bytes, bytes]) -> None:
        self.kv.write(self.puts(nodes), [], sync=True)


class ListNodes:
    """merkle.NodeReader over one record list's stored tree nodes."""

    def __init__(self, kv: KV, list_path: bytes) -> None:
        self.kv, self.list_path = kv, list_path

    def node(self, level: int, index: int) -> bytes:
        value = self.kv.get(keys.list_node_key(self.list_path, level, index))
        if value is None or len(value) != HASH_BYTES:
            raise StoreCorrupt(f"record list node {level}/{index} is missing or not a hash")
        return value

    def puts(self, created: Iterable[tuple[int, int, bytes]]) -> list[tuple[bytes, bytes]]:
        """The pairs that keep the nodes `statemap.list_append` created."""
        return [(keys.list_node_key(self.list_path, level, index), h) for level, index, h in created]
