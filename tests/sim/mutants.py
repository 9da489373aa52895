"""Deliberately broken replicas and drivers: the checkers must catch each one."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from ledgernode.consensus import Driver, Effects, PersistedState, Ready, Replica, RoundChange
from ledgernode.consensus.messages import NO_ROUND
from ledgernode.consensus.state import Height
from ledgernode.members import ValidatorSet

if TYPE_CHECKING:
    from .cluster import Host


class QuorumMinusOne(Replica):
    """Certificates (prepared, committed, justification) at Q - 1 instead of Q."""

    @property
    def q(self) -> int:
        return self.vset.quorum - 1


class QuorumOfTheOldSet(Replica):
    """Counts every quorum over the genesis set, also at heights another set certifies."""

    @property
    def q(self) -> int:
        return self.cfg.genesis.validator_set.quorum


class ForgetfulRoundChange(Replica):
    """Round changes never carry the prepared certificate."""

    def _round_change(self, round_: int, me: int) -> RoundChange:
        return RoundChange(self.cfg.genesis.chain_id, self.height, round_, NO_ROUND, b"", me)


class WaitsForDeadPrimaries(Replica):
    """Never skips a primary that missed its turn: every turn of a dead one costs a round timeout."""

    def _new_height(self, st: PersistedState) -> Height:
        fresh = super()._new_height(st)
        fresh.suspects = frozenset()
        return fresh


class SendsBeforePersisting(Driver):
    """The production driver with its persist step dropped: what the replica signed is
    sent and never saved, so a restart may sign another value for the same slot (K4).
    After each Ready's sends the host may crash (`crash_point` says whether it did)."""

    def __init__(self, replica: Replica, crash_point: Callable[[], bool]) -> None:
        super().__init__(replica)
        self.crash_point = crash_point

    def steps(self, r: Ready, work: deque[Ready]) -> Effects:
        yield from self.commits(r, work)
        yield from self.messages(r)  # broken on purpose: no `self.persist(r)` before (or after)
        if self.crash_point():
            work.clear()  # a crashed host applies nothing more of this event
            return
        yield from self.tasks(r, work)


MUTANTS = {"commit_at_q_minus_1": QuorumMinusOne, "round_change_without_cert": ForgetfulRoundChange,
           "waits_for_dead_primaries": WaitsForDeadPrimaries, "quorum_of_the_old_set": QuorumOfTheOldSet}


def _sends_before_persisting(host: Host) -> Driver:
    return SendsBeforePersisting(host.replica, host.maybe_crash_between)


# Cluster(mutation=name) runs every host with this driver instead of the production one.
DRIVER_MUTANTS: dict[str, Callable[[Host], Driver]] = {"no_persist": _sends_before_persisting}


def _skips_one_update(items: Any, log_start: int) -> list[Any]:
    """Every host leaves the first record of each block at log position 5 or later out of
    its subject's list: all agree with each other, so only a check against the chain
    itself (K6) can catch it."""
    from .cluster import item_appends

    appends = item_appends(items, log_start)
    return appends[1:] if appends and log_start >= 5 else appends


# Cluster(mutation=name) derives every block's list appends with this instead of item_appends.
MAP_MUTANTS: dict[str, Callable[[Any, int], list[Any]]] = {"skips_map_update": _skips_one_update}
