"""Derived views computed from records alone: the same code serves the node that
answers and the auditor who re-checks the answer offline.

Only pure functions of decoded envelopes here: no store, no network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .genesis import Genesis
from .records import Envelope

CERT_CHANGES = {"cert.suspend": "suspended", "cert.resume": "valid", "cert.revoke": "revoked"}


@dataclass(frozen=True)
class CertStatus:
    status: str  # not_issued | not_yet_valid | valid | suspended | revoked | expired
    issuer_key: str | None
    deciding: tuple[bytes, ...]  # record ids that decide the status, in log order


def certificate_status(history: list[Envelope], at_ms: int) -> CertStatus:
    """Status of a certificate at `at_ms` from its records in log order.

    A change (suspend/resume/revoke) counts once its `effective` time is <= at_ms;
    changes apply in log order, the order in which the ledger accepted them.
    Expiry and not-yet-valid come from the issue record's validity window and
    apply only to a certificate that is otherwise valid.
    """
    issue = next((e for e in history if e.record.type == "cert.issue"), None)
    if issue is None:
        return CertStatus("not_issued", None, ())
    deciding = [issue.record_id]
    status = "valid"
    for env in history:
        rec = env.record
        if rec.type in CERT_CHANGES and rec.body["effective"] <= at_ms:
            status = CERT_CHANGES[rec.type]
            deciding.append(env.record_id)
    body = issue.record.body
    if status == "valid" and at_ms < body["valid_from"]:
        status = "not_yet_valid"
    elif status == "valid" and at_ms >= body["valid_until"]:
        status = "expired"
    return CertStatus(status, issue.record.key, tuple(deciding))


def dataset_grants(history: list[Envelope], genesis: Genesis) -> list[dict[str, Any]]:
    """Grants of a dataset in log order, each with its revocation and its accesses."""
    grants: dict[str, dict[str, Any]] = {}
    for env in history:
        rec, rid = env.record, env.record_id.hex()
        signer = genesis.signers.get(rec.key)
        if rec.type == "share.grant":
            grants[rid] = {
                "grant": rid, "by": signer.dept if signer else None, "to_dept": rec.body["to_dept"],
                "purpose": rec.body["purpose"], "legal_basis": rec.body["legal_basis"],
                "expires": rec.body["expires"], "revoked_by": None, "accesses": [],
            }
        elif rec.type in ("share.revoke", "share.access") and rec.body["grant"].hex() in grants:
            grant = grants[rec.body["grant"].hex()]
            if rec.type == "share.revoke":
                grant["revoked_by"] = rid
            else:
                grant["accesses"].append({
                    "record": rid, "dept": signer.dept if signer else None, "purpose": rec.body["purpose"],
                    "ts": rec.ts, "content_hash": rec.body["content_hash"].hex(),
                })
    return list(grants.values())
