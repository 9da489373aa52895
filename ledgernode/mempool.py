"""Bounded pool of admitted records waiting for a block.

Admission (in the node) has already checked each envelope's shape and
signature, so a record is verified once per node. The pool keeps arrival
order, ignores duplicates by record id, and refuses new records when full
(`Backpressure`, HTTP 503) instead of growing. For records a client submitted to
this node it also keeps when they arrived (monotonic seconds), for the
submit-to-commit histogram: at most one time per record in the pool.
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
        self._submitted_s: dict[bytes, float] = {}  # record id -> when a client's request brought it

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

    def mark_submitted(self, raws: list[bytes], at_s: float) -> None:
        """These records (in the pool) came from a client's request that arrived at `at_s`."""
        for raw in raws:
            env = self._by_raw.get(raw)
            if env is not None:
                self._submitted_s[env.record_id] = at_s

    def waited_s(self, record_ids: list[bytes], now_s: float) -> list[float]:
        """How long each of these records that a client submitted here has been waiting."""
        return [now_s - self._submitted_s[rid] for rid in record_ids if rid in self._submitted_s]

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
                self._submitted_s.pop(rid, None)

    def expire(self, now_ms: int, window_ms: int) -> list[Envelope]:
        """Drop records whose ts can no longer fit any block; return them."""
        stale = [env for env in self._records.values() if abs(env.record.ts - now_ms) > window_ms]
        self.remove([env.record_id for env in stale])
        return stale
