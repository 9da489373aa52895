"""A dead primary costs little (ledgernode/consensus/turns.py): measured in simulated ticks,
so the figures do not depend on the machine."""

from __future__ import annotations

from collections import defaultdict

from ledgernode.blocks import decode_header
from ledgernode.consensus import Replica

from .cluster import Cluster, Faults
from .mutants import MUTANTS

N = 4
DEAD = 3


def _loaded_cluster(seed: int, records: int, replica_class: type = Replica, dead: int | None = None) -> Cluster:
    """Every record in every mempool from the start (blocks of 2), so blocks follow as fast as
    consensus allows; `dead` is down from the start and never comes back."""
    c = Cluster(seed=seed, n=N, faults=Faults(latency_max=2), records=0, replica_class=replica_class,
                block_items_max=2)
    if dead is not None:
        c.crash(dead, 10**9)
        c.faults.byzantine = {dead: "silent"}  # judge the live replicas only
    c.total_records = records
    for i in range(records):
        item = b"r" + i.to_bytes(8, "big")
        c.outstanding[item] = 0
        c.submit(item)
    return c


def _assert_safe(c: Cluster) -> None:
    """K1-K4 hold (K5, every record committed, is not waited for here)."""
    assert {k: v for k, v in c.check().items() if v and k != "K5"} == {}


def _ticks_per_height(seed: int, replica_class: type = Replica, dead: int | None = None) -> dict[bool, float]:
    """Mean ticks per height at heights whose round-0 primary is DEAD (True) and at the others."""
    c = _loaded_cluster(seed, 160, replica_class, dead)
    reached: dict[int, int] = {}
    assert c.run_until(lambda: reached.setdefault(c.height(0), c.now) is None or c.height(0) >= 80, 20_000)
    spans: dict[bool, list[int]] = defaultdict(list)
    for h in range(2, 81):
        spans[h % N == DEAD].append(reached[h] - reached[h - 1])
    _assert_safe(c)
    return {k: sum(v) / len(v) for k, v in spans.items()}


def test_a_dead_primary_costs_a_message_delay_not_a_round_timeout() -> None:
    for seed in (1, 2, 3):
        healthy = _ticks_per_height(seed)
        dead = _ticks_per_height(seed, dead=DEAD)
        mutant = _ticks_per_height(seed, MUTANTS["waits_for_dead_primaries"], dead=DEAD)
        # its turns cost less than twice a live primary's, where waiting for it costs
        # the round timeout (12 ticks in the simulation) on top
        assert dead[True] < 2 * dead[False], (seed, dead)
        assert mutant[True] > 3 * mutant[False], (seed, mutant)
        total = lambda t: t[True] + (N - 1) * t[False]  # noqa: E731
        assert total(dead) < 1.45 * total(healthy), (seed, healthy, dead)


def test_a_validator_back_from_the_dead_proposes_again() -> None:
    """Its round-0 turns are skipped while it is away; a probe turn lets it back in."""
    c = _loaded_cluster(5, 640)
    c.crash(DEAD, 200)
    assert c.run_until(lambda: c.hosts[DEAD].up and c.height(DEAD) == c.height(0) >= 40, 20_000)
    back_at = c.height(0)
    assert c.hosts[0].replica.turns.missed(DEAD, back_at + 1) >= 1, "its turns were missed while it was down"
    assert c.run_until(lambda: c.height(0) >= back_at + 2 * 32 * N, 40_000)
    proposers = [decode_header(b.header).proposer for b, _ in c.hosts[0].disk.chain[back_at:]]
    assert DEAD in proposers, "the validator that came back never proposed again"
    _assert_safe(c)
