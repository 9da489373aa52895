"""Per-client limits (docs/security.md section 10): token buckets per signing key and per
source address, one family for writes and one for reads.

A bucket holds up to `burst` tokens and refills at `rate_per_s`; a request takes one token
per record it submits (writes) or one (reads). An empty bucket answers 429 with
Retry-After: the seconds until the tokens it needs are back. Buckets are kept for the
BUCKETS_MAX clients seen most recently; a client forgotten comes back with a full bucket,
which only ever errs towards letting a request through, never towards refusing one.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from dataclasses import dataclass

from .config import Limits

BUCKETS_MAX = 100_000  # per family: clients remembered (about 100 bytes each)
KINDS = ("write", "read")
BYS = ("key", "address")


@dataclass
class _Bucket:
    tokens: float
    stamp_s: float


class Buckets:
    """The buckets of one family (say, reads by key)."""

    def __init__(self, rate_per_s: int, burst: int, max_entries: int = BUCKETS_MAX) -> None:
        assert rate_per_s > 0 and burst > 0 and max_entries > 0
        self.rate_per_s, self.burst, self.max_entries = rate_per_s, burst, max_entries
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str, now_s: float, cost: int = 1) -> int | None:
        """Take `cost` tokens from `client`'s bucket: None if it had them, else the whole
        seconds to wait (Retry-After). A cost above the burst can never pass: its wait is
        the time to refill a whole bucket, and the caller should say the request is too big."""
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now_s)
            self._buckets[client] = bucket
            if len(self._buckets) > self.max_entries:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
            elapsed = max(0.0, now_s - bucket.stamp_s)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate_per_s)
            bucket.stamp_s = now_s
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return None
        missing = self.burst if cost > self.burst else cost - bucket.tokens
        return max(1, math.ceil(missing / self.rate_per_s))


class Throttle:
    """The four families, and what they refused (for /metrics)."""

    def __init__(self, write_rate_per_s: int, write_burst: int, read_rate_per_s: int, read_burst: int) -> None:
        self.families = {
            (kind, by): Buckets(rate, burst)
            for kind, rate, burst in (("write", write_rate_per_s, write_burst), ("read", read_rate_per_s, read_burst))
            for by in BYS
        }
        self.refused: Counter[tuple[str, str]] = Counter()

    def take(self, kind: str, by: str, client: str, now_s: float, cost: int = 1) -> int | None:
        wait = self.families[(kind, by)].take(client, now_s, cost)
        if wait is not None:
            self.refused[(kind, by)] += 1
        return wait

    def render_metrics(self) -> str:
        name = "ledgernode_rate_limited_total"
        lines = [f"# HELP {name} Requests answered 429 by a per-client token bucket, by kind (write or read) "
                 "and by what the bucket is kept for (signing key or source address).",
                 f"# TYPE {name} counter"]
        lines += [f'{name}{{kind="{k}",by="{b}"}} {self.refused[(k, b)]}' for k in KINDS for b in BYS]
        return "\n".join(lines) + "\n"


def throttle_of(limits: Limits) -> Throttle:
    return Throttle(limits.write_rate_per_s, limits.write_burst, limits.read_rate_per_s, limits.read_burst)
