"""CatchUp (ledgernode.catchup): only asked-for blocks are taken; answers are read off
the consensus loop, merged and paced per peer."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from ledgernode.blocks import decode_header
from ledgernode.catchup import ASK_TIMEOUT_S, REPLY_MAX_BYTES, CatchUp, read_blocks
from ledgernode.consensus import Blocks, FetchBlocks, Message
from ledgernode.storage import Store
from tests.fixtures import Net, commit_records, content

NET = Net()


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def ledger(blocks: int, per_block: int = 2) -> Store:
    store = Store.memory()
    for h in range(blocks):
        raws = [NET.record(0, "evidence.notarize", f"EV-{h}-{i}", {
            "content_hash": content(f"{h}/{i}"), "media_type": "text/plain", "size": 1, "title": "t"})
            for i in range(per_block)]
        commit_records(NET, store, raws)
    return store


def harness(store: Store) -> tuple[CatchUp, list[tuple[int, Message]], dict[str, int], Clock]:
    sent: list[tuple[int, Message]] = []
    counts: dict[str, int] = {}
    clock = Clock()

    def count(name: str) -> None:
        counts[name] = counts.get(name, 0) + 1

    c = CatchUp(store, NET.chain_id, 0, lambda peer, msg: sent.append((peer, msg)),
                ThreadPoolExecutor(1), count, clock)
    return c, sent, counts, clock


def test_read_blocks_gives_certified_blocks_in_order_within_bounds() -> None:
    store = ledger(5)
    items, size = read_blocks(store, 2, 3)
    assert [decode_header(b.header).height for b, _ in items] == [2, 3, 4]
    assert size == sum(len(b.header) + len(qc) + sum(map(len, b.payload)) for b, qc in items)
    assert read_blocks(store, 0, 100)[0][0][0].header == store.load_header(1).raw
    assert read_blocks(store, 6, 10) == ([], 0)
    assert size < REPLY_MAX_BYTES


def test_only_the_asked_peer_answer_is_taken_whole() -> None:
    store = ledger(4)
    c, sent, counts, clock = harness(store)
    items = tuple(read_blocks(store, 1, 4)[0])
    msg = Blocks(NET.chain_id, items, 2)
    assert c.accept(2, msg, next_height=1) == items[:1]  # nobody asked: the next block at most
    assert c.accept(2, msg, next_height=3) == ()  # and only if it is the one we need
    c.ask(2, 1)
    assert sent == [(2, FetchBlocks(NET.chain_id, 1, 64, 0))]
    assert c.accept(1, msg, next_height=1) == items[:1]  # we asked 2, not 1
    assert c.accept(2, msg, next_height=1) == items  # the answer
    assert c.accept(2, msg, next_height=1) == items[:1]  # a second answer is unsolicited
    c.ask(2, 1)
    clock.t += ASK_TIMEOUT_S + 1
    assert c.accept(2, msg, next_height=1) == items[:1]  # too late
    assert counts["blocks_unsolicited"] == 5


async def test_answers_are_read_off_loop_merged_and_paced() -> None:
    store = ledger(6)
    c, sent, counts, clock = harness(store)
    ask = FetchBlocks(NET.chain_id, 1, 64, 3)
    for _ in range(300):  # a flood of asks while one answer is being read
        c.serve(3, ask)
    await asyncio.gather(*c.tasks)
    assert len(sent) == 1 and counts == {"fetch_merged": 299, "fetch_served": 1}
    peer, answer = sent[0]
    assert peer == 3 and isinstance(answer, Blocks) and len(answer.blocks) == 6
    c.serve(3, ask)  # right after: held back by the bytes it was just given, then answered
    assert counts["fetch_paced"] == 1 and len(c.tasks) == 1
    c.serve(3, ask)  # and merged with the one waiting
    assert counts["fetch_merged"] == 300
    c.serve(1, ask)  # another peer is not held up by peer 3
    await asyncio.gather(*c.tasks)
    assert sorted(p for p, _ in sent) == [1, 3, 3]
    c.serve(3, FetchBlocks(NET.chain_id, 99, 64, 3))  # above our head: nothing to read
    assert not c.tasks
    await c.stop()


def test_an_answer_below_the_peers_height_asks_for_the_next_range_at_once() -> None:
    store = ledger(4)
    c, sent, counts, clock = harness(store)
    items = tuple(read_blocks(store, 1, 2)[0])
    c.ask(2, 1)
    assert c.accept(2, Blocks(NET.chain_id, items, 2), next_height=1, peer_height=4) == items
    assert sent[-1] == (2, FetchBlocks(NET.chain_id, 3, 64, 0)) and counts["fetch_ahead"] == 1
    assert c.accept(2, Blocks(NET.chain_id, tuple(read_blocks(store, 3, 2)[0]), 2), 3, peer_height=4)
    assert len(sent) == 2  # that answer reached the peers' height: nothing more to ask
