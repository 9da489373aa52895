"""Random cluster configurations derived from a seed, so one seed replays one run."""

from __future__ import annotations

import random

from .byzantine import KINDS
from .cluster import Cluster, Faults

LIVENESS_TICKS_AFTER_HEAL = 3000


def random_cluster(seed: int, mutation: str | None = None, replica_class: type | None = None) -> Cluster:
    rng = random.Random(seed * 7919 + 17)
    n = rng.randint(4, 7)
    f = (n - 1) // 3
    byz_nodes = rng.sample(range(n), rng.randint(0, f))
    faults = Faults(
        drop=rng.choice([0.0, 0.02, 0.1, 0.25]),
        dup=rng.choice([0.0, 0.05, 0.2]),
        latency_max=rng.randint(1, 6),
        heal_at=rng.randint(50, 500),
        byzantine={i: rng.choice(sorted(KINDS)) for i in byz_nodes},
    )
    honest = [i for i in range(n) if i not in byz_nodes]
    for _ in range(rng.randint(0, 2)):
        start = rng.randrange(faults.heal_at)
        side = frozenset(rng.sample(range(n), rng.randint(1, n - 1)))
        faults.partitions.append((start, min(faults.heal_at, start + rng.randint(10, 300)), side))
    for _ in range(rng.randint(0, 3)):
        faults.crashes.append((rng.randint(1, faults.heal_at), rng.choice(honest), rng.randint(5, 150)))
    extra = {} if replica_class is None else {"replica_class": replica_class}
    return Cluster(seed, n, faults, records=rng.randint(10, 40), mutation=mutation,
                   between_crash_p=0.01 if mutation == "no_persist" else 0.0, **extra)


def run_seed(seed: int, **kw: object) -> tuple[Cluster, dict[str, list[str]]]:
    cluster = random_cluster(seed, **kw)  # type: ignore[arg-type]
    result = cluster.run(cluster.faults.heal_at + 150 + LIVENESS_TICKS_AFTER_HEAL)
    return cluster, result
