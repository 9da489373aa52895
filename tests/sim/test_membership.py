"""Validator sets that change at height boundaries (docs/governance.md section 6): the
consensus core counts each height over its own set, a host whose key joins the set
starts voting and proposing, one whose key leaves keeps following, and the checkers
K1-K6 hold (K3 checks every QC against the set of its height) with messages dropped
and replicas crashed. Mutants applying a change one height late, or counting a quorum
over the old set, are caught. Each run is seeded; a failure names its seed."""

from __future__ import annotations

import random

import pytest

from ledgernode.blocks import decode_header

from .cluster import Cluster, Faults
from .mutants import MUTANTS

GROW_AT, SHRINK_AT = 5, 12
TICKS_MAX = 6000
SEEDS = range(6)


def membership_cluster(seed: int, **kw: object) -> Cluster:
    """4 genesis validators and 1 spare: the spare joins at GROW_AT, validator 1 leaves
    at SHRINK_AT; drops, duplicates and (odd seeds) crashes before the network heals."""
    rng = random.Random(seed * 104_729 + 3)
    faults = Faults(drop=rng.choice([0.0, 0.05, 0.15]), dup=rng.choice([0.0, 0.1]),
                    latency_max=rng.randint(1, 4), heal_at=rng.randint(60, 300))
    if seed % 2:
        faults.crashes = [(rng.randint(1, faults.heal_at), rng.choice([0, 2, 3, 4]), rng.randint(5, 80))
                          for _ in range(2)]
    schedule = {GROW_AT: (0, 1, 2, 3, 4), SHRINK_AT: (0, 2, 3, 4)}
    return Cluster(seed, 4, faults, records=60, block_items_max=3, spares=1, schedule=schedule, **kw)  # type: ignore[arg-type]


def run(seed: int, **kw: object) -> tuple[Cluster, dict[str, list[str]]]:
    c = membership_cluster(seed, **kw)
    return c, c.run(TICKS_MAX)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_validator_joins_and_another_leaves(seed: int) -> None:
    c, result = run(seed)
    bad = {k: v[:3] for k, v in result.items() if v}
    assert not bad, f"simulation seed {seed} failed: {bad}"
    chain = [decode_header(b.header) for b, _ in c.hosts[0].disk.chain]
    assert len(chain) >= SHRINK_AT + 3, f"seed {seed}: the chain ended at height {len(chain)}"
    joined = c.set_at(GROW_AT).index_of(c.keys[4].public.raw)
    # the joining host proposed blocks of its own while it was a validator
    assert any(h.proposer == joined and GROW_AT <= h.height < SHRINK_AT for h in chain) or any(
        h.proposer == c.set_at(SHRINK_AT).index_of(c.keys[4].public.raw) for h in chain if h.height >= SHRINK_AT)
    # the host that left keeps following: it holds every record, and no QC after it left is its
    assert len(c.hosts[1].committed_items) == c.total_records
    for block, qc in c.hosts[0].disk.chain:
        height = decode_header(block.header).height
        signers = {c.set_at(height).keys[i].raw for i, _ in qc.signatures}
        assert (c.keys[1].public.raw in signers) <= (height < SHRINK_AT)
        assert (c.keys[4].public.raw in signers) <= (height >= GROW_AT)


def _safety_failures(results: list[dict[str, list[str]]]) -> list[list[str]]:
    return [[k for k, v in r.items() if v and k != "K5"] for r in results]


def test_applying_a_change_one_height_late_is_caught() -> None:
    results = [run(seed, mutation="late_set_change")[1] for seed in range(2)]
    assert all(any(r.values()) for r in results), results


def test_a_quorum_counted_over_the_old_set_is_caught() -> None:
    results = [run(seed, replica_class=MUTANTS["quorum_of_the_old_set"])[1] for seed in range(2)]
    assert all("K3" in kinds for kinds in _safety_failures(results)), results
