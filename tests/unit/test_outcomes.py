"""Outcomes (ledgernode.outcomes): commit waiters and the bounded memory of rejections."""

from __future__ import annotations

import asyncio

import pytest

from ledgernode.outcomes import WAITERS_PER_RECORD_MAX, Outcomes
from ledgernode.service import Backpressure, Location, Rejection

A, B, C = bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32


def rejection(rid: bytes, height: int = 5) -> Rejection:
    return Rejection(rid, "rule_violation", "certificate X was already issued by market at height 4",
                     height, "cert.number_unused")


async def test_waiters_get_commits_and_rejections_and_leave_nothing_behind() -> None:
    out = Outcomes(kept_ms=1_000, kept_max=10)
    task = asyncio.create_task(out.wait([A, B, C], [None, None, None], 30.0))
    while out.waiting() < 3:
        await asyncio.sleep(0)
    loc = Location(A, 3, 7, bytes(32))
    out.committed([loc])
    out.rejected([rejection(B)], now_ms=100)
    out.committed([Location(C, 3, 8, bytes(32))])
    assert await task == [loc, rejection(B), Location(C, 3, 8, bytes(32))]
    assert out.waiting() == 0


async def test_a_timed_out_wait_is_none_and_forgets_its_waiter() -> None:
    out = Outcomes(kept_ms=1_000, kept_max=10)
    assert await out.wait([A], [None], 0.01) == [None]
    assert out.waiting() == 0
    known = Location(B, 1, 0, bytes(32))
    assert await out.wait([A, B], [None, known], 0.01) == [None, known]


async def test_waiters_per_record_are_bounded() -> None:
    out = Outcomes(kept_ms=1_000, kept_max=10)
    tasks = [asyncio.create_task(out.wait([A], [None], 30.0)) for _ in range(WAITERS_PER_RECORD_MAX)]
    while out.waiting() < WAITERS_PER_RECORD_MAX:
        await asyncio.sleep(0)
    assert await out.wait([A], [None], 30.0) == [None]  # one too many: answered "pending" at once
    out.rejected([rejection(A)], now_ms=0)
    assert all(r == [rejection(A)] for r in await asyncio.gather(*tasks))


def test_rejections_are_kept_for_a_bounded_time_and_count() -> None:
    out = Outcomes(kept_ms=1_000, kept_max=2)
    out.rejected([rejection(A)], now_ms=0)
    out.rejected([rejection(B)], now_ms=500)
    assert out.rejection(A, now_ms=1_000) == rejection(A)
    assert out.rejection(A, now_ms=1_001) is None and out.rejection(B, now_ms=1_001) == rejection(B)
    out.rejected([rejection(C), rejection(A, 9)], now_ms=1_100)
    assert len(out) == 2 and out.rejection(B, now_ms=1_100) is None  # the oldest went first
    assert out.rejection(A, now_ms=1_100) == rejection(A, 9)
    out.committed([Location(A, 9, 0, bytes(32))])  # admitted again and committed: no longer rejected
    assert out.rejection(A, now_ms=1_100) is None


async def test_closing_answers_every_waiter_at_once_with_backpressure() -> None:
    out = Outcomes(kept_ms=1_000, kept_max=10)
    task = asyncio.create_task(out.wait([A, B], [None, None], 3600.0))
    while out.waiting() < 2:
        await asyncio.sleep(0)
    out.close()
    with pytest.raises(Backpressure, match="shutting down"):
        await task
    assert out.waiting() == 0
    with pytest.raises(Backpressure):
        await out.wait([C], [None], 3600.0)
    known = Location(C, 1, 0, bytes(32))
    assert await out.wait([C], [known], 3600.0) == [known]  # what is known is still answered
