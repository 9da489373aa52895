"""Deliberately broken replicas: the checkers must catch each one."""

from __future__ import annotations

from typing import Any

from ledgernode.consensus import Replica, RoundChange
from ledgernode.consensus.messages import NO_ROUND


class QuorumMinusOne(Replica):
    """Certificates (prepared, committed, justification) at Q - 1 instead of Q."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.q -= 1


class ForgetfulRoundChange(Replica):
    """Round changes never carry the prepared certificate."""

    def _round_change(self, round_: int) -> RoundChange:
        return RoundChange(self.cfg.genesis.chain_id, self.height, round_, NO_ROUND, b"", self.cfg.index)


class WaitsForDeadPrimaries(Replica):
    """Never skips a primary that missed its turn: every turn of a dead one costs a round timeout."""

    def _start_height(self, st: Any) -> None:
        super()._start_height(st)
        self.suspects = frozenset()


MUTANTS = {"commit_at_q_minus_1": QuorumMinusOne, "round_change_without_cert": ForgetfulRoundChange,
           "waits_for_dead_primaries": WaitsForDeadPrimaries}
