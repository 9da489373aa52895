"""How each admitted record ended: clients waiting for it, and rejections remembered.

A client's `?wait` request parks a future here per record id; the runtime
resolves it with the record's `Location` once its block is on disk, or with a
`Rejection` when the record left the mempool without committing. Rejections
are remembered for a bounded time and count (limits `rejected_kept_ms`,
`rejected_kept_max`), so a later `GET /v1/records/{id}` still tells the
integrator why (docs/protocol.md section 5). Times are passed in, never read.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Iterable

from .service import Backpressure, Location, Outcome, Rejection

WAITERS_PER_RECORD_MAX = 64  # concurrent ?wait requests for one record id


class Outcomes:
    def __init__(self, kept_ms: int, kept_max: int) -> None:
        assert kept_ms > 0 and kept_max > 0
        self.kept_ms, self.kept_max = kept_ms, kept_max
        self._waiters: dict[bytes, list[asyncio.Future[Outcome]]] = {}
        self._rejected: OrderedDict[bytes, tuple[int, Rejection]] = OrderedDict()  # id -> (at ms, why)
        self.closed = False

    def __len__(self) -> int:
        return len(self._rejected)

    def waiting(self) -> int:
        return sum(len(w) for w in self._waiters.values())

    def _resolve(self, record_id: bytes, outcome: Outcome) -> None:
        for fut in self._waiters.pop(record_id, []):
            if not fut.done():
                fut.set_result(outcome)

    def committed(self, locations: Iterable[Location]) -> None:
        for loc in locations:
            self._rejected.pop(loc.record_id, None)  # re-submitted after a rejection and committed
            self._resolve(loc.record_id, loc)

    def rejected(self, rejections: Iterable[Rejection], now_ms: int) -> None:
        for rej in rejections:
            self._rejected.pop(rej.record_id, None)
            self._rejected[rej.record_id] = (now_ms, rej)
            self._resolve(rej.record_id, rej)
        while len(self._rejected) > self.kept_max:
            self._rejected.popitem(last=False)

    def rejection(self, record_id: bytes, now_ms: int) -> Rejection | None:
        self.expire(now_ms)
        kept = self._rejected.get(record_id)
        return None if kept is None else kept[1]

    def expire(self, now_ms: int) -> int:
        """Forget rejections older than `kept_ms` (oldest first); return how many."""
        dropped = 0
        while self._rejected:
            at, _ = next(iter(self._rejected.values()))
            if now_ms - at <= self.kept_ms:
                break
            self._rejected.popitem(last=False)
            dropped += 1
        return dropped

    def close(self) -> None:
        """The node is stopping: every waiter, and every later wait, gets Backpressure
        (503 with Retry-After) at once instead of holding the shutdown up to its timeout."""
        self.closed = True
        for waiting in self._waiters.values():
            for fut in waiting:
                if not fut.done():
                    fut.set_exception(_shutting_down())

    async def wait(self, record_ids: list[bytes], known: list[Outcome | None],
                   timeout_s: float) -> list[Outcome | None]:
        """Outcome per id: `known[i]` if given, else what arrives within the timeout
        (None if the record is still pending then); Backpressure once the node stops."""
        if self.closed and any(outcome is None for outcome in known):
            raise _shutting_down()
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Outcome] | None] = []
        for rid, outcome in zip(record_ids, known):
            waiting = self._waiters.setdefault(rid, [])
            if outcome is not None or len(waiting) >= WAITERS_PER_RECORD_MAX:
                futures.append(None)
                continue
            fut: asyncio.Future[Outcome] = loop.create_future()
            waiting.append(fut)
            futures.append(fut)
        pending = [f for f in futures if f is not None]
        try:
            if pending:
                await asyncio.wait(pending, timeout=timeout_s)
        finally:
            for rid, maybe in zip(record_ids, futures):
                if maybe is not None and not maybe.done():
                    maybe.cancel()
                self._drop_waiter(rid, maybe)
        failed = [fut.exception() is not None for fut in futures  # every one retrieved: no "never
                  if fut is not None and fut.done() and not fut.cancelled()]  # retrieved" warnings
        if any(failed):
            raise _shutting_down()
        return [outcome if fut is None else (fut.result() if fut.done() and not fut.cancelled() else None)
                for outcome, fut in zip(known, futures)]

    def _drop_waiter(self, record_id: bytes, fut: asyncio.Future[Outcome] | None) -> None:
        waiting = self._waiters.get(record_id)
        if waiting is None:
            return
        if fut in waiting:
            waiting.remove(fut)
        if not waiting:
            del self._waiters[record_id]


class Heights:
    """Who waits for the next block to commit (the event stream, api/events.py): one future,
    resolved and replaced by each commit, so any number of waiters cost one wake-up."""

    def __init__(self) -> None:
        self._next: asyncio.Future[None] | None = None

    def committed(self) -> None:
        """A block is on disk and the store's tip names it (the runtime calls this on the loop)."""
        fut, self._next = self._next, None
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def wait(self, timeout_s: float) -> None:
        """Return at the next commit, or when `timeout_s` is up."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._next), timeout_s)
        except TimeoutError:
            pass


def _shutting_down() -> Backpressure:
    return Backpressure("the node is shutting down; the record may still commit: retry, or ask another node")
