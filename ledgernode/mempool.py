"""Bounded pool of admitted records waiting for a block.

Admission (in the node) has already checked each envelope's shape and
signature, so a record is verified once per node. The pool keeps arrival
order, ignores duplicates by record id, and refuses new records when full
(`Backpressure`, HTTP 503) instead of growing.
"""

from __future__ import annotations

from collections import OrderedDict

from .records import Envelope
from .service import Backpressure


class Mempool:
    def __init__(self, max_records: int) -> None:
        assert max_records > 0
        self.max_records = max_records
        self._records: OrderedDict[bytes, Envelope] = OrderedDict()
        self._by_raw: dict[bytes, Envelope] = {}  # envelope bytes -> decoded, to skip re-decoding

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, record_id: bytes) -> bool:
        return record_id in self._records

    def get(self, record_id: bytes) -> Envelope | None:
        return self._records.get(record_id)

    def by_raw(self, raw: bytes) -> Envelope | None:
        """The admitted (already verified) envelope with exactly these bytes, if any."""
        return self._by_raw.get(raw)

    def add(self, env: Envelope) -> bool:
        """True if added, False if already present; Backpressure when full."""
        if env.record_id in self._records:
            return False
        if len(self._records) >= self.max_records:
            raise Backpressure(f"mempool holds {self.max_records} records; retry later")
        self._records[env.record_id] = env
        self._by_raw[env.raw] = env
        return True

    def oldest(self, count: int) -> list[Envelope]:
        out: list[Envelope] = []
        for env in self._records.values():
            if len(out) >= count:
                break
            out.append(env)
        return out

    def remove(self, record_ids: list[bytes]) -> None:
        for rid in record_ids:
            env = self._records.pop(rid, None)
            if env is not None:
                del self._by_raw[env.raw]

    def expire(self, now_ms: int, window_ms: int) -> list[Envelope]:
        """Drop records whose ts can no longer fit any block; return them."""
        stale = [env for env in self._records.values() if abs(env.record.ts - now_ms) > window_ms]
        self.remove([env.record_id for env in stale])
        return stale
