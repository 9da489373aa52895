"""PeerGuard (ledgernode.guard): queued bytes per peer and penalties for liars."""

from __future__ import annotations

import logging

import pytest

from ledgernode.consensus import BlockData, Blocks, Prepare, Proposal, RoundChange
from ledgernode.guard import SMALL_MESSAGE_BYTES, PeerGuard, message_bytes


class Clock:
    def __init__(self) -> None:
        self.t = 10.0

    def __call__(self) -> float:
        return self.t


BLOCK = BlockData(b"h" * 100, (b"r" * 1000, b"s" * 500))


def test_message_bytes_counts_what_a_message_carries() -> None:
    assert message_bytes(Prepare("c", 1, 0, bytes(32), 1)) == SMALL_MESSAGE_BYTES
    assert message_bytes(Proposal("c", 1, 0, bytes(32), 1, b"", BLOCK)) == SMALL_MESSAGE_BYTES + 1600
    assert message_bytes(RoundChange("c", 1, 1, 0, bytes(32), 1, b"", (), BLOCK)) == SMALL_MESSAGE_BYTES + 1600
    assert message_bytes(Blocks("c", ((BLOCK, b"q" * 50), (BLOCK, b"q" * 50)), 1)) == SMALL_MESSAGE_BYTES + 3300


def test_queued_bytes_are_bounded_per_peer() -> None:
    guard = PeerGuard(logging.getLogger("t"), Clock(), inbox_max_bytes=1000)
    assert guard.admit(1, 600) and not guard.admit(1, 600)  # over its budget: dropped
    assert guard.admit(2, 600)  # another peer has its own budget
    guard.done(1, 600)
    assert guard.admit(1, 1000) and guard.queued == {1: 1000, 2: 600}
    guard.done(1, 1000)
    guard.done(2, 600)
    assert guard.queued == {} and guard.counters == {"peer_inbox_full_dropped": 1}


def test_a_penalised_peer_is_ignored_for_a_while_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    guard = PeerGuard(logging.getLogger("t"), clock, penalty_s=30.0)
    for _ in range(50):
        guard.penalise(3, "a block whose commit certificate fails")
    assert not guard.admit(3, 10) and guard.admit(2, 10)
    clock.t += 29.9
    assert guard.penalised(3)
    clock.t += 0.2
    assert not guard.penalised(3) and guard.admit(3, 10)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "validator 3 sent a block whose commit certificate fails" in warnings[0].getMessage()
    assert guard.counters == {"peer_penalised": 50, "penalised_dropped": 1}
