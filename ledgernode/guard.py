"""What a node lets each peer cost it: queued bytes, and a time-out for a liar.

Theory of operation. Every consensus message a validator sends is queued in the
node's one inbox until the consensus loop takes it. A validator is trusted with
at most `PEER_INBOX_MAX_BYTES` of messages queued at once (approximate: the
blocks and records they carry); past that its input is dropped and counted
until the loop catches up, so one peer cannot fill memory with big messages
while the honest ones wait behind it. A peer that sends what no honest
validator can (blocks whose commit certificate does not verify, blocks that
fail our rules after we asked for them) is penalised: all its input is dropped
for `PENALTY_S`, counted, and the penalty is logged once. Times come from
`clock` (monotonic seconds), so tests can drive it.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from .consensus import BlockData, Blocks, Message, Proposal, RoundChange

PEER_INBOX_MAX_BYTES = 64 << 20  # queued message bytes per peer
PENALTY_S = 30.0  # how long a peer that sent provably bad blocks is ignored
SMALL_MESSAGE_BYTES = 256  # what a vote or status costs in the accounting


def _block_bytes(block: BlockData | None) -> int:
    if block is None:
        return 0
    return len(block.header) + sum(len(item) for item in block.payload)


def message_bytes(msg: Message) -> int:
    """About what `msg` holds in memory: its blocks and records, or a small constant."""
    if isinstance(msg, Proposal):
        return SMALL_MESSAGE_BYTES + _block_bytes(msg.block)
    if isinstance(msg, RoundChange):
        return SMALL_MESSAGE_BYTES + _block_bytes(msg.prepared_block)
    if isinstance(msg, Blocks):
        return SMALL_MESSAGE_BYTES + sum(_block_bytes(b) + len(qc) for b, qc in msg.blocks)
    return SMALL_MESSAGE_BYTES


class PeerGuard:
    def __init__(self, logger: logging.Logger, clock: Callable[[], float] = time.monotonic,
                 inbox_max_bytes: int = PEER_INBOX_MAX_BYTES, penalty_s: float = PENALTY_S) -> None:
        self.log, self.clock = logger, clock
        self.inbox_max_bytes, self.penalty_s = inbox_max_bytes, penalty_s
        self.queued: dict[int, int] = {}  # peer -> message bytes in the inbox
        self.until: dict[int, float] = {}  # peer -> end of its penalty
        self.counters: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def penalised(self, peer: int) -> bool:
        end = self.until.get(peer)
        if end is None:
            return False
        if self.clock() < end:
            return True
        del self.until[peer]
        self.log.info("validator %d: penalty over, its input is accepted again", peer)
        return False

    def admit(self, peer: int, size: int) -> bool:
        """May a message of `size` bytes from `peer` be queued? (then call `done` after it)"""
        if self.penalised(peer):
            self._count("penalised_dropped")
            return False
        queued = self.queued.get(peer, 0)
        if queued + size > self.inbox_max_bytes:
            self._count("peer_inbox_full_dropped")
            return False
        self.queued[peer] = queued + size
        return True

    def done(self, peer: int, size: int) -> None:
        left = self.queued.get(peer, 0) - size
        assert left >= 0, "done() without a matching admit()"
        if left:
            self.queued[peer] = left
        else:
            self.queued.pop(peer, None)

    def penalise(self, peer: int, why: str) -> None:
        """Ignore `peer` for a while; logged once per penalty, however much it sends."""
        self._count("peer_penalised")
        if not self.penalised(peer):
            self.log.warning("validator %d sent %s: ignoring its input for %.0f s", peer, why, self.penalty_s)
        self.until[peer] = self.clock() + self.penalty_s
