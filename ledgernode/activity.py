"""What a node tells its operator at INFO, at a rate a person can read.

The runtime reports events here; this module decides what becomes a log line:

- commits: at most one line per `COMMIT_LINE_S` naming the newest block
  (height, records, round) and a summary of the blocks since the last line;
- round changes, with their cause, each one;
- catch-up: progress lines (from, to, records/s, ETA) at most one per
  `CATCHUP_LINE_S`, and one line when the node has caught up;
- input the node refused (peers, blocks, admission): one line per code per
  `REJECTED_LINE_S`, with the total so far (the counts are in /metrics).

Times come from `clock` (monotonic seconds) so tests can drive it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from .logs import Throttle
from .progress import eta_text

COMMIT_LINE_S = 1.0
CATCHUP_LINE_S = 1.0
REJECTED_LINE_S = 10.0


@dataclass
class _Window:
    """Blocks and records since the last summary line."""

    since_s: float
    blocks: int = 0
    records: int = 0
    last: tuple[int, int, int] | None = None  # (height, records, round) of the newest block


@dataclass
class _CatchUp:
    start_s: float  # when the first fetched block committed: rates count from there
    start_height: int  # the height before it
    first_records: int  # its records (not part of the rate)
    records: int = 0
    last_line_s: float = 0.0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class Activity:
    def __init__(self, logger: logging.Logger, clock: Callable[[], float] = time.monotonic) -> None:
        self.log, self.clock = logger, clock
        self.window = _Window(clock())
        self.catchup: _CatchUp | None = None
        self.rejections = Throttle(logger, REJECTED_LINE_S)

    def started(self, key_id: str, validator: int | None, chain: str, api: tuple[str, int], peer: tuple[str, int],
                peers: dict[str, tuple[str, int]], height: int, log_size: int) -> None:
        links = ", ".join(f"{key[:8]}={h}:{p}" for key, (h, p) in sorted(peers.items())) or "none"
        role = "follows (its key is no validator's of the current set)" if validator is None \
            else f"is validator {validator} of the current set"
        self.log.info("node %s of chain %s up at height %d (%d records), %s: API http://%s:%d, "
                      "peer port %s:%d, peers %s", key_id, chain, height, log_size, role, *api, *peer, links)

    def committed(self, height: int, records: int, round_: int) -> None:
        w = self.window
        w.blocks += 1
        w.records += records
        w.last = (height, records, round_)
        self.flush()

    def flush(self) -> None:
        """Write the commit summary if one is due (also called on every tick)."""
        w, now = self.window, self.clock()
        if w.last is None or now - w.since_s < COMMIT_LINE_S:
            return
        height, records, round_ = w.last
        self.log.info("committed height %d (%s, round %d); %s, %s in the last %.1f s", height,
                      _count(records, "record"), round_, _count(w.blocks, "block"), _count(w.records, "record"),
                      now - w.since_s)
        self.window = _Window(now)

    def round_changed(self, height: int, old: int, new: int, cause: str) -> None:
        self.log.info("height %d: round %d -> %d (%s)", height, old, new, cause)

    def fetched(self, height: int, records: int, target: int) -> None:
        """A block from catch-up was committed; `target` is the highest height peers reported."""
        now = self.clock()
        c = self.catchup
        if c is None:
            c = self.catchup = _CatchUp(now, height - 1, records, last_line_s=now)
            self.log.info("catching up from height %d to %d", height - 1, max(target, height))
        c.records += records
        if now - c.last_line_s < CATCHUP_LINE_S:
            return
        c.last_line_s = now
        elapsed = max(now - c.start_s, 1e-6)
        blocks_s = (height - c.start_height - 1) / elapsed
        eta = eta_text(target - height, blocks_s)
        self.log.info("catching up: height %d of %d, %.0f records/s, %.1f blocks/s, ETA %s",
                      height, max(target, height), (c.records - c.first_records) / elapsed, blocks_s, eta)

    def live(self, height: int) -> None:
        """The node committed a block by voting again: any catch-up is over."""
        c = self.catchup
        if c is None:
            return
        self.catchup = None
        self.log.info("caught up at height %d: %d blocks, %d records in %.1f s", height,
                      height - 1 - c.start_height, c.records, self.clock() - c.start_s)

    def rejected(self, code: str, total: int) -> None:
        self.rejections.log(logging.INFO, code, "refused input: %s (%d so far)", code, total,
                            now_s=self.clock())
