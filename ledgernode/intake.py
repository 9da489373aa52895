"""Record intake: envelopes from clients and peers into the mempool (docs/protocol.md section 5).

Theory of operation. `Intake.admit` takes a list of envelope bytes (one API request or
one gossip frame): records already waiting or committed answer at once; the rest are
decoded on the event loop and their signatures verified once, in chunks on the worker
threads (`Verification`). Each then meets the record time window and the ledger rules
against committed state plus the records ahead of it (`Admission`); a record whose rule
depends on something this node may simply not have yet (a ref, an issued certificate)
while it catches up gets `CatchingUp` (503), not a verdict. What was admitted is handed
to `on_admitted` (gossip, and wake the consensus loop). Records that leave the mempool
later without committing (a rival won, their window passed) are remembered in
`Outcomes` with why (`rejected`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .admission import Admission, Failed
from .errors import InvalidInput
from .genesis import Genesis
from .mempool import Mempool
from .outcomes import Outcomes
from .records import Envelope
from .service import Backpressure, CatchingUp, RateLimited, Rejection, Submitted, locate_in
from .throttle import Throttle
from .storage import Store
from .times import now_ms
from .verification import Verification, kept

# Rules a record breaks when something it depends on is not there yet: on a node that
# is behind, that is no verdict (the network may have it committed).
DEPENDENCY_RULES = frozenset(["ref.known", "cert.issued", "dataset.published", "grant.exists"])


class Intake:
    def __init__(self, genesis: Genesis, store: Store, mempool: Mempool, admission: Admission,
                 verification: Verification, outcomes: Outcomes, reject: Callable[[str], None],
                 behind: Callable[[], int | None], on_admitted: Callable[[list[bytes], bool], None],
                 throttle: Throttle | None = None) -> None:
        """`behind()`: the height peers showed us while we have not applied it, else None.
        `throttle`: per-client token buckets; a client's records take one token each from
        their signing key's bucket (a peer's gossip takes none)."""
        self.genesis, self.store, self.mempool = genesis, store, mempool
        self.admission, self.verification, self.outcomes = admission, verification, outcomes
        self.reject, self.behind, self.on_admitted = reject, behind, on_admitted
        self.throttle = throttle

    def known(self, env: Envelope) -> Submitted | None:
        """A record already committed or waiting here needs no new admission."""
        if env.record_id in self.mempool:
            return Submitted(env, None)
        where = locate_in(self.store, env.record_id)
        return None if where is None else Submitted(env, where)

    async def admit(self, raws: list[bytes], gossip: bool) -> list[Submitted | Exception]:
        """Check and admit envelopes: each signature verified once, off the event loop.
        `gossip`: they came from a client here (a peer's gossip is not sent on again)."""
        arrived_s = time.monotonic()
        if len(self.mempool) >= self.mempool.max_records:
            self.reject("mempool_full")
            return [Backpressure(f"mempool holds {self.mempool.max_records} records; retry later")] * len(raws)
        results: list[Submitted | Exception | None] = []
        fresh: list[bytes] = []
        for raw in raws:
            env = self.mempool.by_raw(raw)
            results.append(Submitted(env, None) if env is not None else None)
            if env is None:
                fresh.append(raw)
        checked = iter(await self.verification.decode_and_verify(fresh))
        added: list[bytes] = []
        now = now_ms()
        head = self.store.head()
        rule_time = now if head is None else max(now, head.time + 1)  # as the next block's builder would
        for k, slot in enumerate(results):
            if slot is None:
                results[k] = self._one(next(checked), now, rule_time, added, gossip)
        if added:
            if gossip:  # a client's: the submit-to-commit time counts from here (ledgernode/metrics.py)
                self.mempool.mark_submitted(added, arrived_s)
            self.on_admitted(added, gossip)
        return [r for r in results if r is not None]

    def _one(self, item: Envelope | InvalidInput, now: int, rule_time: int,
             added: list[bytes], from_client: bool = False) -> Submitted | Exception:
        window = self.genesis.record_ts_window_ms
        try:
            if isinstance(item, InvalidInput):
                raise item
            known = self.known(item)
            if known is not None:
                return known
            if abs(item.record.ts - now) > window:
                raise InvalidInput("ts_window", f"record ts is more than {window} ms from now")
            if from_client and self.throttle is not None:
                wait = self.throttle.take("write", "key", item.record.key, time.monotonic())
                if wait is not None:
                    raise RateLimited(f"key {item.record.key} wrote more records than its limit; retry in {wait} s",
                                      wait)
            self._judge(item, rule_time)
        except (InvalidInput, Backpressure) as exc:
            self.reject(exc.code if isinstance(exc, InvalidInput) else
                        "catching_up" if isinstance(exc, CatchingUp) else
                        "rate_limited" if isinstance(exc, RateLimited) else "mempool_full")
            return kept(exc)
        added.append(item.raw)
        return Submitted(item, None)

    def _judge(self, env: Envelope, rule_time: int) -> None:
        try:
            self.admission.admit(env, rule_time)
        except InvalidInput as exc:
            target = self.behind() if exc.rule in DEPENDENCY_RULES else None
            if target is not None:
                raise CatchingUp(f"this node is catching up (height {self.store.height} of {target}) "
                                 f"and cannot judge this record yet ({exc.message}): retry shortly") from None
            raise

    def rejected(self, failed: Failed, height: int) -> None:
        """Records that left the mempool without committing: answer their waiters and
        remember why, so a later GET /v1/records/{id} can tell (docs/protocol.md section 5)."""
        if not failed:
            return
        for _, exc in failed:
            self.reject(f"dropped_{exc.code}")
        self.outcomes.rejected((Rejection(env.record_id, exc.code, exc.message, height, exc.rule)
                                for env, exc in failed), now_ms())
