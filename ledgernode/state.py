"""Ledger state rules (docs/protocol.md sections 4 and 5) that depend on what is committed.

The state is a small set of *facts* derived from committed records, each kept by
the family that writes it (families/dataset.py: dataset owners and grants;
families/cert.py: certificates). Here are the rules every record meets (section 4:
duplicates, the ts window, refs) and the dispatch to its type's own rule.

`BlockState` layers a block's pending records and facts over a read-only
`StateView` (the store), so records are judged one after another exactly as
they will be committed: a ref or a grant earlier in the same block counts.
Every verdict depends only on the view, the record and the block time, so all
honest nodes reach the same one.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Protocol

from . import maptree
from .errors import InvalidInput
from .families import TYPES, gov
from .families.schema import Rule, violation
from .genesis import Genesis, Signer
from .members import Members
from .records import Envelope

FactKey = tuple[str, str]
# Bound once: the lookup every admitted record makes. Only decoded records reach
# `admit`, and decoding refuses a type that is not in the registry.
_RULES: dict[str, Rule] = {name: rtype.rule for name, rtype in TYPES.items()}


class StateView(Protocol):
    def is_committed(self, record_id: bytes) -> bool: ...

    def load_fact(self, kind: str, key: str) -> dict[str, Any] | None: ...

    def locate(self, record_id: bytes) -> tuple[int, int] | None:
        """(leaf index, height) of a committed record: only for messages."""

    def map_at(self, root: bytes) -> maptree.StateMap:
        """The state map at a committed root (docs/protocol.md section 11)."""

    def members(self, genesis: Genesis) -> Members:
        """Who may sign at the committed head (members.py)."""


class BlockState:
    """The state as seen part-way through building or checking one block."""

    def __init__(self, view: StateView, genesis: Genesis, block_time: int) -> None:
        self.view = view
        self.genesis = genesis
        self.block_time = block_time
        self.record_ids: set[bytes] = set()
        self.facts: dict[FactKey, dict[str, Any]] = {}
        self.touched: set[FactKey] = set()  # facts read or written by the last `admit`
        self.written: set[FactKey] = set()  # facts written by the last `admit`
        self._members = view.members(genesis)  # the parent's: one block is judged against one state
        self.approved: list[gov.Change] = []  # governance changes, applied at the block's end
        self._seen_keys: dict[str, Signer] = {}  # keys as those changes leave them

    @property
    def members(self) -> Members:
        return self._members

    def key(self, key_id: str) -> Signer | None:
        self.touched.add((gov.KEY, key_id))
        seen = self._seen_keys.get(key_id)
        return seen if seen is not None else self.members.signers.get(key_id)

    @property
    def set_changed(self) -> bool:
        return any(change.action in gov.SET_ACTIONS for change in self.approved)

    def approve(self, change: gov.Change) -> None:
        self.approved.append(change)
        key_id, seen = gov.seen_key(change, self.key, self.members.n)
        self._seen_keys[key_id] = seen

    def finish(self, log_size: int, height: int) -> None:
        """Block `height` ends at `log_size`: apply its approved changes, in order, as
        facts (docs/protocol.md section 13)."""
        for kind, key, value in gov.effects(self.approved, log_size, height, self.members):
            self.written.add((kind, key))
            self.facts[(kind, key)] = value

    def fact(self, kind: str, key: str) -> dict[str, Any] | None:
        self.touched.add((kind, key))
        pending = self.facts.get((kind, key))
        return pending if pending is not None else self.view.load_fact(kind, key)

    def has_record(self, record_id: bytes) -> bool:
        return record_id in self.record_ids or self.view.is_committed(record_id)

    def admit(self, env: Envelope, signer: Signer, known_new: bool = False) -> None:
        """Check every ledger rule for `env`; on success record its effects. `known_new`:
        the caller has just seen that the record is neither committed nor here."""
        rec = env.record
        self.touched, self.written = set(), set()
        if not known_new and self.has_record(env.record_id):
            raise InvalidInput("duplicate", "record is already committed or in this block", 409)
        window = self.genesis.record_ts_window_ms
        if abs(rec.ts - self.block_time) > window:
            raise InvalidInput(
                "ts_window", f"record ts is more than {window} ms from the block time"
            )
        for ref in rec.refs:
            if not self.has_record(ref):
                raise violation("ref.known", f"ref {ref.hex()} names no record that is committed "
                                             "or comes before this one")
        updates = _RULES[rec.type](self, env, signer)
        self.record_ids.add(env.record_id)
        for kind, key, value in updates:
            self.touched.add((kind, key))
            self.written.add((kind, key))
            self.facts[(kind, key)] = value

    def since(self, record_hex: str) -> str:
        """" at height N" for a committed record, " (not yet committed)" for one ahead of us."""
        rid = bytes.fromhex(record_hex)
        if rid in self.record_ids:
            return " (not yet committed)"
        where = self.view.locate(rid)
        return "" if where is None else f" at height {where[1]}"


class PendingState:
    """Committed state plus every record waiting in this node's mempool, in order.

    Admission judges a new record against it, so a record that cannot commit
    after the ones ahead of it is refused at once (409) instead of waiting in the
    mempool to be dropped by the block builder. It is advisory: the builder and
    every replica judge again with `BlockState`. For each pending record it keeps
    the facts it read or wrote, so the runtime can tell whether a committed block
    changed a fact a pending record relied on (`relies_on`) and then re-judge the
    pool (`rebuild`).
    """

    def __init__(self, view: StateView, genesis: Genesis) -> None:
        self.view, self.genesis = view, genesis
        self._state = BlockState(view, genesis, 0)
        self._keys_of: dict[bytes, frozenset[FactKey]] = {}
        self._touched: Counter[FactKey] = Counter()
        self._writer: dict[FactKey, bytes] = {}

    def __len__(self) -> int:
        return len(self._keys_of)

    def admit(self, env: Envelope, signer: Signer, time_ms: int) -> None:
        """Raise InvalidInput if `env` cannot follow the pending records; else add it."""
        self._state.block_time = time_ms
        # Admission looked the record up a moment ago, and a rebuild judges the pool
        # just after its committed records left it: no second store read per record.
        self._state.admit(env, signer, known_new=True)
        keys = frozenset(self._state.touched)
        self._keys_of[env.record_id] = keys
        self._touched.update(keys)
        for key in self._state.written:
            self._writer[key] = env.record_id

    def forget(self, record_ids: Iterable[bytes]) -> None:
        """These records left the pool by commit: the store now holds their effects
        (a fact another pending record wrote later stays, as the newer value)."""
        for rid in record_ids:
            keys = self._keys_of.pop(rid, None)
            if keys is None:
                continue
            self._state.record_ids.discard(rid)
            for key in keys:
                self._touched[key] -= 1
                if self._touched[key] <= 0:
                    del self._touched[key]
                if self._writer.get(key) == rid:
                    del self._writer[key]
                    self._state.facts.pop(key, None)

    def relies_on(self, keys: Iterable[FactKey]) -> bool:
        """Does a pending record read or write any of these facts?"""
        return any(key in self._touched for key in keys)

    def rebuild(self, envs: Iterable[tuple[Envelope, Signer]], time_ms: int) -> list[tuple[Envelope, InvalidInput]]:
        """Judge the pool again from the committed state; return the records that now fail."""
        self._state = BlockState(self.view, self.genesis, time_ms)
        self._keys_of.clear()
        self._touched.clear()
        self._writer.clear()
        failed = []
        for env, signer in envs:
            try:
                self.admit(env, signer, time_ms)
            except InvalidInput as exc:
                failed.append((env, exc))
        return failed
