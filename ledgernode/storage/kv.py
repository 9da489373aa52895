"""The ordered key-value backend a `Store` sits on, and its in-memory implementation."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Protocol


class KV(Protocol):
    def get(self, key: bytes, verify: bool = False) -> bytes | None: ...

    def write(self, puts: list[tuple[bytes, bytes]], deletes: list[bytes], sync: bool) -> None:
        """Apply every put and delete atomically; durable before return when `sync`."""

    def scan(self, start: bytes, stop: bytes, verify: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """Pairs with start <= key < stop in key order; `verify`: check on-disk checksums."""

    def close(self) -> None: ...


class MemoryKV:  # nothing on disk: `verify` has nothing to check
    """Dict plus a sorted key list: for tests, simulation and short-lived tools."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []

    def get(self, key: bytes, verify: bool = False) -> bytes | None:
        return self._data.get(key)

    def write(self, puts: list[tuple[bytes, bytes]], deletes: list[bytes], sync: bool) -> None:
        for key, value in puts:
            assert isinstance(key, bytes) and isinstance(value, bytes)
            if key not in self._data:
                bisect.insort(self._keys, key)
            self._data[key] = value
        for key in deletes:
            if self._data.pop(key, None) is not None:
                self._keys.pop(bisect.bisect_left(self._keys, key))

    def scan(self, start: bytes, stop: bytes, verify: bool = False) -> Iterator[tuple[bytes, bytes]]:
        i = bisect.bisect_left(self._keys, start)
        while i < len(self._keys) and self._keys[i] < stop:
            key = self._keys[i]
            yield key, self._data[key]
            i += 1

    def close(self) -> None:
        pass
