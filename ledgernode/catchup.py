"""Catch-up: asking peers for committed blocks, and answering their asks.

Theory of operation. A node that learns it is behind sends `FetchBlocks` to
one peer (the replica picks whom, docs/consensus.md). `Blocks` are accepted
only as the answer to such an ask, from the peer asked and before the ask
times out (`ASK_TIMEOUT_S`); anything else is unsolicited and at most its
first block is considered, and only if it is the block we need next. The node
checks a block's header, `prev` link and commit certificate (a few signatures)
before it spends anything on its records.

Answering is off the consensus loop: the store is read on a worker thread, one
answer per peer at a time (asks that arrive meanwhile are merged into it:
dropped and counted), and each peer's answers are paced so that it gets at
most `SERVE_PEER_BYTES_PER_S` on average (an ask that comes too soon is
answered when its turn comes, not dropped). A peer repeating 40-byte asks can
make us read the store, never stall consensus.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from typing import Callable

from .blocks import decode_header
from .consensus import BlockData, Blocks, FetchBlocks, Message
from .consensus.messages import FETCH_MAX_BLOCKS
from .errors import InvalidInput, StoreCorrupt
from .storage import Store

ASK_TIMEOUT_S = 10.0  # an answer later than this counts as unsolicited
REPLY_MAX_BYTES = 16 << 20  # one Blocks answer, at least one block
SERVE_PEER_BYTES_PER_S = 64 << 20  # average rate at which one peer is served


def read_blocks(store: Store, start: int, count: int) -> tuple[list[tuple[BlockData, bytes]], int]:
    """Committed blocks from `start` (at most `count`, `REPLY_MAX_BYTES` but at least one),
    with their QCs, and their size in bytes. Runs on a worker thread."""
    first = max(1, start)
    last = min(store.height, first + min(count, FETCH_MAX_BLOCKS) - 1)
    items: list[tuple[BlockData, bytes]] = []
    size = 0
    for height in range(first, last + 1):
        header = store.load_header(height)
        payload = tuple(store.load_envelopes(header.log_start, header.log_size))
        qc = store.load_qc(height).encode()
        grown = size + len(header.raw) + len(qc) + sum(len(p) for p in payload)
        if items and grown > REPLY_MAX_BYTES:
            break
        items.append((BlockData(header.raw, payload), qc))
        size = grown
    return items, size


class CatchUp:
    def __init__(self, store: Store, chain: str, index: int, send: Callable[[int, Message], None],
                 reader: Executor, count: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic,
                 on_damage: Callable[[StoreCorrupt], None] | None = None) -> None:
        self.store, self.chain, self.index = store, chain, index
        self.send, self.reader, self.count, self.clock = send, reader, count, clock
        self.on_damage = on_damage  # a read found the store damaged (the node stops to rebuild it)
        self.asked: dict[int, float] = {}  # peer -> when our ask to it times out
        self.serving: set[int] = set()  # peers with an answer being read
        self.next_serve: dict[int, float] = {}  # peer -> earliest time of its next answer
        self.tasks: set[asyncio.Task[None]] = set()

    # -- asking ------------------------------------------------------------------

    def ask(self, peer: int, start: int) -> None:
        self.asked[peer] = self.clock() + ASK_TIMEOUT_S
        self.send(peer, FetchBlocks(self.chain, start, FETCH_MAX_BLOCKS, self.index))

    def accept(self, peer: int, msg: Blocks, next_height: int,
               peer_height: int = 0) -> tuple[tuple[BlockData, bytes], ...]:
        """The blocks of `msg` worth looking at: all of an answer to our ask, else at
        most the first, and only if it is for `next_height`. `peer_height`: the highest
        height peers told us of; while the answer ends below it, the next range is asked
        for at once, so fetching overlaps with checking these blocks."""
        deadline = self.asked.pop(peer, None)
        if deadline is not None and self.clock() <= deadline:
            self._ask_ahead(peer, msg, peer_height)
            return msg.blocks
        self.count("blocks_unsolicited")
        first = msg.blocks[:1]
        if first and _height_of(first[0][0]) == next_height:
            return first
        return ()

    def _ask_ahead(self, peer: int, msg: Blocks, peer_height: int) -> None:
        last = _height_of(msg.blocks[-1][0]) if msg.blocks else None
        if last is not None and last < peer_height:
            self.count("fetch_ahead")
            self.ask(peer, last + 1)

    # -- answering ---------------------------------------------------------------

    def serve(self, peer: int, msg: FetchBlocks) -> None:
        """Answer an ask off the consensus loop: merged while one is pending for the peer,
        and held back (not dropped) until the peer's pace allows the next answer."""
        if peer in self.serving:
            self.count("fetch_merged")
            return
        if msg.from_height > self.store.height:
            return  # nothing to give; the asker learns our height from our Status
        delay = self.next_serve.get(peer, 0.0) - self.clock()
        if delay > 0:
            self.count("fetch_paced")
        self.serving.add(peer)
        task = asyncio.get_running_loop().create_task(self._answer(peer, msg, max(0.0, delay)))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, peer: int, msg: FetchBlocks, delay_s: float) -> None:
        try:
            if delay_s:
                await asyncio.sleep(delay_s)
            loop = asyncio.get_running_loop()
            try:
                items, size = await loop.run_in_executor(self.reader, read_blocks, self.store,
                                                         msg.from_height, msg.count)
            except StoreCorrupt as exc:
                if self.on_damage is None:
                    raise
                self.on_damage(exc)
                return
            if items:
                self.send(peer, Blocks(self.chain, tuple(items), self.index))
                self.count("fetch_served")
            self.next_serve[peer] = self.clock() + size / SERVE_PEER_BYTES_PER_S
        finally:
            self.serving.discard(peer)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _height_of(block: BlockData) -> int | None:
    try:
        return decode_header(block.header).height
    except InvalidInput:
        return None
