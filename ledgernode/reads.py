"""The API's heavy reads off the event loop, bounded (docs/architecture.md, rooms).

Building an evidence bundle, an auditor's answer (ledgernode/auditing) or a block view
of 2,000 records costs milliseconds to tens of milliseconds of CPU. On the event loop
that time would hold consensus, the peer links and every other request. `Reads` runs
them on its own worker thread instead, at most READS_INFLIGHT_MAX at a time, queued or
running; one more is refused at once with Backpressure (HTTP 503 with Retry-After) and
counted as `reads_refused`. A slot is freed when the work has ended, not when its
request goes away, so a client that disconnects cannot leave work piling up behind it.

Reading the store beside a commit is safe: a reader takes the committed head once
(`Store.tip`), and the state map's nodes are never overwritten (storage/__init__.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from .service import Backpressure

READ_WORKERS = 1  # the work is Python and holds the GIL: more threads would not go faster
READS_INFLIGHT_MAX = 8
READS_RETRY_AFTER_S = 1

_T = TypeVar("_T")


class Reads:
    def __init__(self, count: Callable[[str], None], inflight_max: int = READS_INFLIGHT_MAX,
                 workers: int = READ_WORKERS) -> None:
        self.count = count
        self.inflight_max = inflight_max
        self.inflight = 0  # touched on the event loop only
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="api-read")

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self.inflight >= self.inflight_max:
            self.count("reads_refused")
            raise Backpressure(f"this node is building {self.inflight} answers already; retry shortly",
                               READS_RETRY_AFTER_S)
        loop = asyncio.get_running_loop()
        work: Future[_T] = self._pool.submit(fn, *args)
        self.inflight += 1
        work.add_done_callback(lambda _: loop.call_soon_threadsafe(self._ended))
        return await asyncio.wrap_future(work)

    def _ended(self) -> None:
        self.inflight -= 1
        assert self.inflight >= 0

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
