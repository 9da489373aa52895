"""Admission: which verified records may wait for a block, and which must be refused.

Theory of operation. A record whose signature checked out is judged by the
ledger rules (docs/protocol.md section 5) against the committed state plus the
records already waiting in this node's mempool, in arrival order
(`state.PendingState`). One that cannot commit after them is refused at once
(409 `rule_violation`, the rule named), so an accepted record is one that will
commit unless a rival record gets in first.

The builder and every replica judge each block again, so admission is advice,
never a vote. When the pool's judgement may have gone stale it is re-judged
from the committed state (`PendingState.rebuild`) and the records that now
fail leave the pool; the runtime reports them as rejected. That happens when:

- a committed block changed a fact a pending record read or wrote (a rival
  issued the same certificate number first, a grant was revoked, ...);
- the block builder refused records (they may have been ahead of others);
- a block was committed with room to spare, or on a periodic tick, while the
  pool is small (`RECHECK_MAX_RECORDS`): then records the primary refused for
  reasons we do not see in our facts (its clock) do not linger here, keep the
  replica active and cost a round change for nothing.
"""

from __future__ import annotations

from .blocks import CheckedBlock
from .errors import InvalidInput
from .genesis import Genesis, Signer
from .mempool import Mempool
from .families import gov
from .records import Envelope, check_registered
from .service import Backpressure
from .state import PendingState, StateView

RECHECK_MAX_RECORDS = 5_000  # pool size up to which an unforced re-judgement is cheap enough

Failed = list[tuple[Envelope, InvalidInput]]


class Admission:
    def __init__(self, genesis: Genesis, view: StateView, mempool: Mempool) -> None:
        self.genesis, self.view = genesis, view
        self.mempool = mempool
        self.pending = PendingState(view, genesis)

    def admit(self, env: Envelope, time_ms: int) -> None:
        """Add a verified envelope, or raise Backpressure (pool full) / InvalidInput (a rule,
        or a key revoked since its signature was checked)."""
        if len(self.mempool) >= self.mempool.max_records:
            raise Backpressure(f"mempool holds {self.mempool.max_records} records; retry later")
        self.pending.admit(env, check_registered(env, self.view.members(self.genesis)), time_ms)
        added = self.mempool.add(env)
        assert added, "a record in the mempool is caught as a duplicate before the rules"

    def _rejudge(self, time_ms: int) -> Failed:
        members = self.view.members(self.genesis)
        signed: list[tuple[Envelope, Signer]] = []
        failed: Failed = []
        for env in self.mempool.oldest(len(self.mempool)):
            try:  # a revoked key's records leave the pool (docs/protocol.md section 13)
                signed.append((env, check_registered(env, members)))
            except InvalidInput as exc:
                failed.append((env, exc))
        failed += self.pending.rebuild(signed, time_ms)
        self.mempool.remove([env.record_id for env, _ in failed])
        return failed

    def committed(self, checked: CheckedBlock, block_cap: int, time_ms: int) -> Failed:
        """A block is on disk: its records leave the pool; return those that now fail."""
        ids = [env.record_id for env in checked.block.envelopes]
        self.mempool.remove(ids)
        self.pending.forget(ids)
        if not self.mempool:
            # a fresh pending state over the new head: what `forget` cannot undo (a change
            # a pending approval reached, the members it was judged against) goes with it
            self.pending.rebuild([], time_ms)
            return []
        roomy = len(ids) < block_cap and len(self.mempool) <= RECHECK_MAX_RECORDS
        members_changed = any(kind in gov.MAP_KINDS for kind, _ in checked.facts)
        if self.pending.relies_on(checked.facts) or roomy or members_changed:
            return self._rejudge(time_ms)
        return []

    def refused_by_builder(self, refused: Failed, time_ms: int) -> Failed:
        """The builder refused these: drop them, and whatever relied on them."""
        if not refused:
            return []
        self.mempool.remove([env.record_id for env, _ in refused])
        return refused + self._rejudge(time_ms)

    def recheck(self, time_ms: int) -> Failed:
        """Periodic: re-judge a small pool; in a large one only drop records whose ts
        can no longer fit a block (and re-judge if any did: others may rely on them)."""
        if not self.mempool:
            return []
        if len(self.mempool) <= RECHECK_MAX_RECORDS:
            return self._rejudge(time_ms)
        window = self.genesis.record_ts_window_ms
        stale = self.mempool.expire(time_ms, window)
        if not stale:
            return []
        late = InvalidInput("ts_window", f"record ts fell more than {window} ms behind the clock "
                            "before the record could be committed")
        return [(env, late) for env in stale] + self._rejudge(time_ms)
