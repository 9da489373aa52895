"""Test-only traffic faults for peer links (`POST /v1/debug/faults`, debug_endpoints only).

Drops are drawn from the node's own `random.Random(seed)`, so a test that sets a seed
gets the same drops for the same sequence of frames.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInput


@dataclass
class Faults:
    """Test-only traffic faults, applied to what this node sends and receives."""

    drop: float = 0.0
    delay_ms: int = 0
    groups: list[set[int]] = field(default_factory=list)  # partition: talk only within a group
    seed: int = 0
    rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def drops(self) -> bool:
        """Is this frame dropped (probability `drop`)?"""
        return bool(self.drop) and self.rng.random() < self.drop

    def blocks(self, me: int, peer: int) -> bool:
        if not self.groups:
            return False
        mine = next((g for g in self.groups if me in g), {me})
        return peer not in mine

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Faults:
        drop = spec.get("drop", 0.0)
        delay = spec.get("delay_ms", 0)
        groups = spec.get("partition", [])
        seed = spec.get("seed", 0)
        if isinstance(drop, bool) or not isinstance(drop, (int, float)) or not 0 <= drop <= 1:
            raise InvalidInput("bad_faults", "drop must be a number in [0, 1]")
        if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= 60_000:
            raise InvalidInput("bad_faults", "delay_ms must be an int in [0, 60000]")
        if not isinstance(groups, list) or not all(
                isinstance(g, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in g)
                for g in groups):
            raise InvalidInput("bad_faults", "partition must be a list of lists of validator indexes")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise InvalidInput("bad_faults", "seed must be an int in [0, 2**64)")
        return cls(float(drop), delay, [set(g) for g in groups], seed)
