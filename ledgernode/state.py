"""Ledger state rules (DESIGN sections 4 and 7) that depend on what is committed.

The state is a small set of *facts* derived from committed records:

  owner/<dataset subject>   {"dept", "record"}          first dataset.publish
  cert/<certificate number> {"issuer", "status", "record"}
  grant/<grant record id hex> {"dataset", "owner", "to_dept", "expires", "revoked"}

`BlockState` layers a block's pending records and facts over a read-only
`StateView` (the store), so records are judged one after another exactly as
they will be committed: a ref or a grant earlier in the same block counts.
Every verdict depends only on the view, the record and the block time, so all
honest nodes reach the same one.
"""

from __future__ import annotations

from typing import Any, Protocol

from .errors import InvalidInput
from .genesis import Genesis, Signer
from .records import Envelope

CERT_TRANSITIONS = {
    "cert.suspend": ({"valid"}, "suspended"),
    "cert.resume": ({"suspended"}, "valid"),
    "cert.revoke": ({"valid", "suspended"}, "revoked"),
}


class StateView(Protocol):
    def is_committed(self, record_id: bytes) -> bool: ...

    def load_fact(self, kind: str, key: str) -> dict[str, Any] | None: ...


def _rule(message: str) -> InvalidInput:
    return InvalidInput("rule_violation", message, 409)


class BlockState:
    """The state as seen part-way through building or checking one block."""

    def __init__(self, view: StateView, genesis: Genesis, block_time: int) -> None:
        self.view = view
        self.genesis = genesis
        self.block_time = block_time
        self.record_ids: set[bytes] = set()
        self.facts: dict[tuple[str, str], dict[str, Any]] = {}

    def fact(self, kind: str, key: str) -> dict[str, Any] | None:
        pending = self.facts.get((kind, key))
        return pending if pending is not None else self.view.load_fact(kind, key)

    def has_record(self, record_id: bytes) -> bool:
        return record_id in self.record_ids or self.view.is_committed(record_id)

    def admit(self, env: Envelope, signer: Signer) -> None:
        """Check every ledger rule for `env`; on success record its effects."""
        rec = env.record
        if self.has_record(env.record_id):
            raise InvalidInput("duplicate", "record is already committed or in this block", 409)
        window = self.genesis.record_ts_window_ms
        if abs(rec.ts - self.block_time) > window:
            raise InvalidInput(
                "ts_window", f"record ts is more than {window} ms from the block time"
            )
        for ref in rec.refs:
            if not self.has_record(ref):
                raise _rule(f"ref {ref.hex()} is not committed")
        updates = self._type_rules(env, signer)
        self.record_ids.add(env.record_id)
        for kind, key, value in updates:
            self.facts[(kind, key)] = value

    def _type_rules(
        self, env: Envelope, signer: Signer
    ) -> list[tuple[str, str, dict[str, Any]]]:
        rec, body, rid = env.record, env.record.body, env.record_id.hex()
        if rec.type == "dataset.publish":
            owner = self.fact("owner", rec.subject)
            if owner is not None and owner["dept"] != signer.dept:
                raise _rule(f"dataset {rec.subject!r} is owned by {owner['dept']}")
            if owner is None:
                return [("owner", rec.subject, {"dept": signer.dept, "record": rid})]
            return []
        if rec.type == "share.grant":
            self._require_owner(rec.subject, signer)
            if body["expires"] <= self.block_time:
                raise _rule("grant expires before the block time")
            grant = {
                "dataset": rec.subject, "owner": signer.dept, "to_dept": body["to_dept"],
                "expires": body["expires"], "revoked": False,
            }
            return [("grant", rid, grant)]
        if rec.type == "share.revoke":
            self._require_owner(rec.subject, signer)
            grant = self._grant(body["grant"], rec.subject)
            if grant["revoked"]:
                raise _rule("grant is already revoked")
            return [("grant", body["grant"].hex(), {**grant, "revoked": True})]
        if rec.type == "share.access":
            grant = self._grant(body["grant"], rec.subject)
            if grant["to_dept"] != signer.dept:
                raise _rule(f"grant is for {grant['to_dept']}, not {signer.dept}")
            if grant["revoked"] or grant["expires"] <= self.block_time:
                raise _rule("grant is not live at the block time")
            return []
        if rec.type == "cert.issue":
            if self.fact("cert", rec.subject) is not None:
                raise _rule(f"certificate {rec.subject!r} was issued before")
            cert = {"issuer": signer.dept, "status": "valid", "record": rid}
            return [("cert", rec.subject, cert)]
        if rec.type in CERT_TRANSITIONS:
            return [("cert", rec.subject, self._cert_change(rec.type, rec.subject, signer, rid))]
        return []  # evidence.notarize and trace.event have no rule beyond section 4

    def _require_owner(self, dataset: str, signer: Signer) -> None:
        owner = self.fact("owner", dataset)
        if owner is None:
            raise _rule(f"dataset {dataset!r} was never published")
        if owner["dept"] != signer.dept:
            raise _rule(f"dataset {dataset!r} is owned by {owner['dept']}, not {signer.dept}")

    def _grant(self, grant_id: bytes, dataset: str) -> dict[str, Any]:
        grant = self.fact("grant", grant_id.hex())
        if grant is None or grant["dataset"] != dataset:
            raise _rule(f"no grant {grant_id.hex()} for dataset {dataset!r}")
        return grant

    def _cert_change(
        self, record_type: str, number: str, signer: Signer, rid: str
    ) -> dict[str, Any]:
        cert = self.fact("cert", number)
        if cert is None:
            raise _rule(f"certificate {number!r} was never issued")
        if cert["issuer"] != signer.dept:
            raise _rule(f"certificate {number!r} was issued by {cert['issuer']}")
        allowed_from, to = CERT_TRANSITIONS[record_type]
        if cert["status"] not in allowed_from:
            raise _rule(f"{record_type} is not allowed on a {cert['status']} certificate")
        return {**cert, "status": to, "record": rid}
