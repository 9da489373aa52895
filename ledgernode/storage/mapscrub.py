"""Scrub the state map at the head (docs/storage.md, "A damaged store heals block by block").

`storage/scrub.py` checks the blocks; this checks what version 2 keeps beside them, read
from the backend with every LevelDB checksum verified:
- every map node reachable from the head header's `state` is stored (`t/`) and hashes
  to its key (`maptree.decode_node`); the walk keeps one path of tiles, never the whole map;
- every leaf's value is a canonical msgpack map;
- a record list's leaf (`subject`, `refby`: the leaves that keep a right edge) has the
  design's value `{"n", "root"}` and a right edge that folds to that root; its n
  positions `p/` are stored at 0..n-1 and nothing after, list strictly increasing leaf
  indexes below the log's size, and their RFC 6962 tree has the entry's root; the tree's
  stored nodes (`l/`, level 4 and up) equal the ones the positions give;
- no positions are stored for a list the map does not hold.

A finding is one line naming the node or list (by path) and what is wrong. The map at
the head is derived data: `ledgernode repair` or a restart rebuilds it with the blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .. import codec, maptree, merkle, statemap
from ..errors import InvalidInput, StorageError, StoreCorrupt
from . import keys
from .kv import KV
from ..ledgermap import LIST_NODE_LEVEL_STORED_MIN

PROGRESS_EVERY_ENTRIES = 100_000


class MapScrub:
    """One walk of the map at `root`; findings go to `add`, progress lines to `progress`."""

    def __init__(self, kv: KV, root: bytes, log_size: int, add: Callable[[str], None],
                 full: Callable[[], bool], progress: Callable[[str], None] | None = None) -> None:
        self.kv, self.root, self.log_size = kv, root, log_size
        self.full, self.progress = full, progress
        self._report = add
        self.found = 0  # findings so far
        self.entries = 0  # leaves checked
        self.positions = 0  # p/ keys the lists account for

    def add(self, text: str) -> None:
        self.found += 1
        self._report(text)

    def run(self) -> None:
        for path, value, attached in self._leaves():
            self.entries += 1
            self._entry(path, value, attached)
            if self.progress is not None and self.entries % PROGRESS_EVERY_ENTRIES == 0:
                self.progress(f"state map: {self.entries:,} entries checked")
            if self.full():
                return
        self._stray_positions()

    def _node(self, h: bytes) -> maptree.Stored | None:
        where = f"state map node {h.hex()[:16]}"
        try:
            raw = self.kv.get(keys.map_node_key(h), verify=True)
            if raw is not None:
                return maptree.decode_node(h, raw)
            self.add(f"{where}: missing (not stored)")
        except StoreCorrupt as exc:
            self.add(f"{where}: {exc}")
        except StorageError as exc:
            self.add(f"{where}: unreadable ({exc})")
        return None

    def _leaves(self) -> Iterator[tuple[bytes, bytes, bytes]]:
        """(path, value, attached) of every leaf under the root, depth first, in path order."""
        # (hash, depth, what its parent says it is: a leaf, a tile, or None for the root)
        stack: list[tuple[bytes, int, bool | None]] = [(self.root, 0, None)] if self.root != statemap.EMPTY_ROOT else []
        while stack and not self.full():
            h, depth, leaf_expected = stack.pop()
            node = self._node(h)
            if node is None:
                continue
            where = f"state map node {h.hex()[:16]}"
            if len(node) == 2:  # a tile
                if leaf_expected:
                    self.add(f"{where}: a tile where its parent names a leaf")
                elif depth >= statemap.PATH_BITS:
                    self.add(f"{where}: tiles nest deeper than {statemap.PATH_BITS} levels")
                else:
                    stack.extend((child, depth + maptree.TILE_LEVELS, is_leaf)
                                 for child, is_leaf in reversed(maptree.tile_slots(node)))
            elif leaf_expected is False:
                self.add(f"{where}: a leaf where its parent names a tile")
            else:
                yield node[1], node[2], node[3]

    def _entry(self, path: bytes, value: bytes, attached: bytes) -> None:
        where = f"state map entry {path.hex()[:16]}"
        try:
            decoded = codec.decode(value, statemap.VALUE_LIMITS)
        except InvalidInput as exc:
            self.add(f"{where}: its value is not canonical msgpack ({exc.message})")
            return
        if type(decoded) is not dict:
            self.add(f"{where}: its value is not a map")
        elif attached:
            self._list(path, value, attached)
        elif decoded.keys() == {"n", "root"}:
            self.add(f"{where}: a record list kept without its right edge")

    def _list(self, path: bytes, value: bytes, edge: bytes) -> None:
        where = f"record list {path.hex()[:16]}"
        try:
            n, root = statemap.parse_list_value(value)  # its edge folds to root: decode_node checked
        except (InvalidInput, StoreCorrupt) as exc:
            self.add(f"{where}: {exc.message if isinstance(exc, InvalidInput) else exc}")
            return
        frontier, previous = merkle.Frontier(), -1
        try:
            for key, raw in self.kv.scan(*keys.positions_range(path, 0, n + 1), verify=True):
                position = int.from_bytes(key[-8:], "big")
                if position != frontier.size:
                    self.add(f"{where}: position {frontier.size} of {n} is missing")
                    return
                if position == n:
                    self.add(f"{where}: a position is stored past its {n} records")
                    return
                leaf = keys.decode_position(raw, f"{where}: position {position}")
                if not previous < leaf < self.log_size:
                    self.add(f"{where}: position {position} lists leaf {leaf}, not after {previous} and "
                             f"below the log's size {self.log_size}")
                    return
                previous = leaf
                self._tree_nodes(where, path, frontier.append(statemap.list_leaf_hash(leaf)))
        except StorageError as exc:
            self.add(f"{where}: positions unreadable ({exc})")
            return
        self.positions += frontier.size
        if frontier.size != n:
            self.add(f"{where}: {frontier.size} positions stored, not {n}")
        elif frontier.root() != root:
            self.add(f"{where}: its positions do not give the root of its map entry")

    def _tree_nodes(self, where: str, path: bytes, created: list[tuple[int, int, bytes]]) -> None:
        for level, index, h in created:
            if level >= LIST_NODE_LEVEL_STORED_MIN:
                stored = self.kv.get(keys.list_node_key(path, level, index), verify=True)
                if stored != h:
                    self.add(f"{where}: list node {level}/{index} is "
                             f"{'missing' if stored is None else 'not the one its positions give'}")

    def _stray_positions(self) -> None:
        """Every p/ key belongs to a list the walk checked: their count is the lists' sum.
        Only for a map found whole so far: an unread node or a damaged list leaves some
        positions uncounted, and the damage is named already."""
        if self.found:
            return
        try:
            stored = sum(1 for _ in self.kv.scan(keys.POSITION, keys.POSITION[:1] + b"0", verify=True))
        except StorageError as exc:
            self.add(f"record lists: positions unreadable ({exc})")
            return
        if stored != self.positions:
            self.add(f"record lists: {stored - self.positions:,} positions stored for no list of the map")
