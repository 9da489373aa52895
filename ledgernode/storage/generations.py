"""A bounded memory of immutable values: two generations instead of an exact LRU.

Used for what a store reads again and again and never changes once written: state-map
nodes (content-addressed, storage/mapnodes.py) and the log's Merkle nodes (a complete
subtree's hash is final, storage/__init__.py). A hit in the young generation costs one
dict lookup; a hit in the old one moves the value to the young one; when the young one
holds `generation_max` values it becomes the old one and the old one is dropped. So the
values used within the last `generation_max` stay (the top of a tree among them), and
at most twice that many are held.

Each step is one dict operation or one attribute assignment, atomic under the GIL, so
API reader threads and the disk thread share an instance without a lock: a reader that
races a generation change at worst reads a value from disk again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Generic, TypeVar

_V = TypeVar("_V")


class Generations(Generic[_V]):
    def __init__(self, values_max: int) -> None:
        self.generation_max = max(values_max // 2, 1)
        self._young: dict[bytes, _V] = {}
        self._old: dict[bytes, _V] = {}

    def get(self, key: bytes) -> _V | None:
        value = self._young.get(key)
        if value is None:
            value = self._old.get(key)
            if value is not None:
                self.put(key, value)
        return value

    def put(self, key: bytes, value: _V) -> None:
        young = self._young
        if len(young) >= self.generation_max:
            self._old, self._young = young, {}
            young = self._young
        young[key] = value

    def update(self, values: Mapping[bytes, _V]) -> None:
        """Keep many at once (a block's new nodes); of more than a generation, the last."""
        if len(values) >= self.generation_max:
            values = dict(islice(values.items(), len(values) - self.generation_max + 1, None))
        young = self._young
        if len(young) + len(values) > self.generation_max:
            self._old, self._young = young, dict(values)
        else:
            young.update(values)

    def discard(self, keys: Iterable[bytes]) -> None:
        """Forget these keys (values no longer wanted: a map's replaced nodes)."""
        young, old = self._young, self._old
        for key in keys:
            if young.pop(key, None) is None:
                old.pop(key, None)

    def __len__(self) -> int:
        return len(self._young) + len(self._old)
