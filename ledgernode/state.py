"""Ledger state rules (docs/protocol.md sections 4 and 5) that depend on what is committed.

The state is a small set of *facts* derived from committed records:

  owner/<dataset subject>   {"dept", "record"}          first dataset.publish
  cert/<certificate number> {"issuer", "status", "record" (latest change), "issue"}
  grant/<grant record id hex> {"dataset", "owner", "to_dept", "expires", "revoked"}

`BlockState` layers a block's pending records and facts over a read-only
`StateView` (the store), so records are judged one after another exactly as
they will be committed: a ref or a grant earlier in the same block counts.
Every verdict depends only on the view, the record and the block time, so all
honest nodes reach the same one.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Protocol

from .errors import InvalidInput
from .genesis import Genesis, Signer
from .records import Envelope
from .times import utc_text

CERT_TRANSITIONS = {
    "cert.suspend": ({"valid"}, "suspended"),
    "cert.resume": ({"suspended"}, "valid"),
    "cert.revoke": ({"valid", "suspended"}, "revoked"),
}

FactKey = tuple[str, str]


class StateView(Protocol):
    def is_committed(self, record_id: bytes) -> bool: ...

    def load_fact(self, kind: str, key: str) -> dict[str, Any] | None: ...

    def locate(self, record_id: bytes) -> tuple[int, int] | None:
        """(leaf index, height) of a committed record: only for messages."""


def _rule(rule: str, message: str) -> InvalidInput:
    """A broken ledger rule: code `rule_violation`, `rule` names which (docs/protocol.md section 5)."""
    return InvalidInput("rule_violation", message, 409, rule=rule)


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
                raise _rule("ref.known", f"ref {ref.hex()} names no record that is committed "
                                         "or comes before this one")
        updates = self._type_rules(env, signer)
        self.record_ids.add(env.record_id)
        for kind, key, value in updates:
            self.touched.add((kind, key))
            self.written.add((kind, key))
            self.facts[(kind, key)] = value

    def _since(self, record_hex: str) -> str:
        """" at height N" for a committed record, " (not yet committed)" for one ahead of us."""
        rid = bytes.fromhex(record_hex)
        if rid in self.record_ids:
            return " (not yet committed)"
        where = self.view.locate(rid)
        return "" if where is None else f" at height {where[1]}"

    def _type_rules(
        self, env: Envelope, signer: Signer
    ) -> list[tuple[str, str, dict[str, Any]]]:
        rec, body, rid = env.record, env.record.body, env.record_id.hex()
        if rec.type == "dataset.publish":
            owner = self.fact("owner", rec.subject)
            if owner is not None and owner["dept"] != signer.dept:
                raise _rule("dataset.owner", f"dataset {rec.subject} is owned by {owner['dept']} "
                            f"(published{self._since(owner['record'])}); only its owner may re-publish it")
            if owner is None:
                return [("owner", rec.subject, {"dept": signer.dept, "record": rid})]
            return []
        if rec.type == "share.grant":
            self._require_owner(rec.subject, signer)
            if body["expires"] <= self.block_time:
                raise _rule("grant.expires", f"the grant expires at {utc_text(body['expires'])}, "
                            f"not after the block time {utc_text(self.block_time)}")
            grant = {
                "dataset": rec.subject, "owner": signer.dept, "to_dept": body["to_dept"],
                "expires": body["expires"], "revoked": False,
            }
            return [("grant", rid, grant)]
        if rec.type == "share.revoke":
            self._require_owner(rec.subject, signer)
            grant = self._grant(body["grant"], rec.subject)
            if grant["revoked"]:
                raise _rule("grant.live", f"grant {body['grant'].hex()} is already revoked")
            return [("grant", body["grant"].hex(), {**grant, "revoked": True})]
        if rec.type == "share.access":
            grant = self._grant(body["grant"], rec.subject)
            if grant["to_dept"] != signer.dept:
                raise _rule("access.grantee", f"grant {body['grant'].hex()} is for {grant['to_dept']}, "
                            f"not {signer.dept}")
            if grant["revoked"]:
                raise _rule("access.grant_live", f"grant {body['grant'].hex()} was revoked")
            if grant["expires"] <= self.block_time:
                raise _rule("access.grant_live", f"grant {body['grant'].hex()} expired at "
                            f"{utc_text(grant['expires'])}, before the block time {utc_text(self.block_time)}")
            return []
        if rec.type == "cert.issue":
            cert = self.fact("cert", rec.subject)
            if cert is not None:
                # `record` is the latest change; `issue` (kept since this field came in)
                # is the issuing record, whose height is the one to name
                since = self._since(cert["issue"]) if "issue" in cert else ""
                raise _rule("cert.number_unused", f"certificate {rec.subject} was already issued "
                            f"by {cert['issuer']}{since}")
            cert = {"issuer": signer.dept, "status": "valid", "record": rid, "issue": rid}
            return [("cert", rec.subject, cert)]
        if rec.type in CERT_TRANSITIONS:
            return [("cert", rec.subject, self._cert_change(rec.type, rec.subject, signer, rid))]
        return []  # evidence.notarize and trace.event have no rule beyond section 4

    def _require_owner(self, dataset: str, signer: Signer) -> None:
        owner = self.fact("owner", dataset)
        if owner is None:
            raise _rule("dataset.published", f"dataset {dataset} was never published")
        if owner["dept"] != signer.dept:
            raise _rule("dataset.owner", f"dataset {dataset} is owned by {owner['dept']}, not {signer.dept}")

    def _grant(self, grant_id: bytes, dataset: str) -> dict[str, Any]:
        grant = self.fact("grant", grant_id.hex())
        if grant is None or grant["dataset"] != dataset:
            raise _rule("grant.exists", f"no grant {grant_id.hex()} for dataset {dataset}")
        return grant

    def _cert_change(
        self, record_type: str, number: str, signer: Signer, rid: str
    ) -> dict[str, Any]:
        cert = self.fact("cert", number)
        if cert is None:
            raise _rule("cert.issued", f"certificate {number} was never issued")
        if cert["issuer"] != signer.dept:
            raise _rule("cert.issuer", f"certificate {number} was issued by {cert['issuer']}; "
                        f"only {cert['issuer']} may change it, not {signer.dept}")
        allowed_from, to = CERT_TRANSITIONS[record_type]
        if cert["status"] not in allowed_from:
            raise _rule("cert.transition", f"{record_type} is not allowed on certificate {number}: "
                        f"it is {cert['status']}{self._since(cert['record'])}")
        return {**cert, "status": to, "record": rid}


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
