"""Whose round-0 turns are skipped: a primary that missed its last turn (docs/consensus.md, "A dead primary").

Theory of operation
-------------------
The primary of (h, r) stays `(h + r) % n` (docs/protocol.md section 8). What
changes is how long a replica waits for it. Validator v has the round-0 turn
of every height t with t % n == v; it *missed* that turn when the block
committed at t names another proposer (a block prepared in round 0 and
re-proposed later still names v, so a slow round 0 is not a miss).

`Turns` keeps the proposers of the last `n * TURNS_LOOKBACK` committed heights,
which every replica of the chain knows alike, so all agree on who is skipped:
- a validator that missed its latest turn is a *suspect*; while at most f
  validators are suspects, a round whose primary is a suspect times out after
  `SKIP_TICKS` and no replica builds for it (so one dead validator costs one
  message delay per turn, not a round timeout);
- every `PROBE_EVERY_TURNS`-th round-0 turn of a suspect is a *probe*: the
  round times out after half the base timeout, so a validator that came back
  proposes again and stops being a suspect;
- more than f suspects mean the network, not some validators, failed: nobody
  is skipped then, and the plain rotation with full timeouts applies.

Timers never decide safety (docs/consensus.md, "Why it is safe"); a replica
with a different view of the suspects would only wait longer or shorter.
"""

from __future__ import annotations

from typing import Iterable

TURNS_LOOKBACK = 16  # a validator's round-0 turns looked back over
PROBE_EVERY_TURNS = 32  # a suspect gets a real (shortened) round-0 turn this often
SKIP_TICKS = 1  # wait for a suspect primary: one tick


class Turns:
    """The proposers of the last `n * TURNS_LOOKBACK` committed heights."""

    def __init__(self, n: int, f: int, recent: Iterable[tuple[int, int]] = ()) -> None:
        self.n, self.f = n, f
        self.proposers: dict[int, int] = {}  # height -> header.proposer
        for height, proposer in recent:
            self.record(height, proposer)

    @staticmethod
    def window(n: int, committed_height: int) -> range:
        """Heights whose proposers a replica at `committed_height` must be given."""
        return range(max(1, committed_height - n * TURNS_LOOKBACK + 1), committed_height + 1)

    def record(self, height: int, proposer: int) -> None:
        # dicts keep insertion order: the last key is the latest height recorded
        assert height >= 1 and (not self.proposers or height == next(reversed(self.proposers)) + 1), \
            "proposers recorded in height order"
        self.proposers[height] = proposer
        self.proposers.pop(height - self.n * TURNS_LOOKBACK, None)

    def missed(self, validator: int, height: int) -> int:
        """Consecutive round-0 turns before `height` that `validator` had and missed,
        latest first, up to TURNS_LOOKBACK."""
        turn = height - 1 - (height - 1 - validator) % self.n  # latest t < height with t % n == validator
        count = 0
        for _ in range(TURNS_LOOKBACK):
            proposer = self.proposers.get(turn)
            if proposer is None or proposer == validator:
                break
            count += 1
            turn -= self.n
        return count

    def suspects(self, height: int) -> frozenset[int]:
        """Validators skipped at `height`: empty when more than f missed their turn."""
        found = frozenset(v for v in range(self.n) if self.missed(v, height))
        return found if len(found) <= self.f else frozenset()

    def is_probe(self, height: int) -> bool:
        """Is round 0 of `height` a suspect's real (shortened) turn?"""
        return (height // self.n) % PROBE_EVERY_TURNS == 0
