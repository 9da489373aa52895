"""ledgernode/reads.py: the API's heavy reads off the event loop, bounded."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ledgernode.reads import Reads
from ledgernode.service import Backpressure
from tests.fixtures import until


async def test_reads_run_off_the_loop_and_one_more_than_the_bound_is_refused() -> None:
    counted: list[str] = []
    reads = Reads(counted.append, inflight_max=2)
    release = threading.Event()
    loop_thread = threading.get_ident()

    def slow(x: int) -> tuple[int, int]:
        release.wait(10)
        return x * 2, threading.get_ident()

    try:
        first = asyncio.ensure_future(reads.run(slow, 1))
        second = asyncio.ensure_future(reads.run(slow, 2))
        await until(lambda: reads.inflight == 2)
        with pytest.raises(Backpressure) as refused:
            await reads.run(slow, 3)
        assert refused.value.retry_after_s >= 1 and counted == ["reads_refused"]
        release.set()
        assert [r[0] for r in await asyncio.gather(first, second)] == [2, 4]
        assert first.result()[1] != loop_thread
        await until(lambda: reads.inflight == 0)
        assert (await reads.run(slow, 5))[0] == 10  # the slots came back
    finally:
        release.set()
        reads.shutdown()


async def test_a_request_that_goes_away_keeps_its_slot_until_the_work_ends() -> None:
    reads = Reads(lambda name: None, inflight_max=1)
    release = threading.Event()
    try:
        task = asyncio.ensure_future(reads.run(release.wait, 10))
        await until(lambda: reads.inflight == 1)
        task.cancel()  # the client disconnected; the thread is still building
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(Backpressure):
            await reads.run(release.wait, 0)
        release.set()
        await until(lambda: reads.inflight == 0)
    finally:
        release.set()
        reads.shutdown()


async def test_an_error_in_the_work_reaches_the_caller() -> None:
    reads = Reads(lambda name: None)

    def fails() -> None:
        raise LookupError("no such record")

    try:
        with pytest.raises(LookupError, match="no such record"):
            await reads.run(fails)
        await until(lambda: reads.inflight == 0)
    finally:
        reads.shutdown()
