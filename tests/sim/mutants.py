"""Deliberately broken replicas: the checkers must catch each one."""

from __future__ import annotations

from typing import Any

from ledgernode.consensus import PersistedState, Replica, RoundChange
from ledgernode.consensus.messages import NO_ROUND
from ledgernode.consensus.state import Height


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

    def _new_height(self, st: PersistedState) -> Height:
        fresh = super()._new_height(st)
        fresh.suspects = frozenset()
        return fresh


MUTANTS = {"commit_at_q_minus_1": QuorumMinusOne, "round_change_without_cert": ForgetfulRoundChange,
           "waits_for_dead_primaries": WaitsForDeadPrimaries}
