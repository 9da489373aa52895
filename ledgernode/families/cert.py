"""Certificates (docs/protocol.md section 5): cert.issue and the changes cert.revoke,
cert.suspend and cert.resume, with their ledger rules and the view of a certificate's
status at a time.

Fact (state.BlockState writes it, docs/storage.md lists its key):

  cert/<certificate number>   {"issuer", "status", "record" (latest change), "issue"}

The ledger keeps the status as changes are accepted (`Transition.rule`); the view
(`certificate_status`) recomputes it at any time from the records, using each
change's `effective` time. Both read the one transition table below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..genesis import Signer
from .schema import HASH, TEXT, TIME, Family, Field, Ledger, RecordType, Update, violation

if TYPE_CHECKING:
    from ..records import Envelope

CERT = "cert"  # fact kind
# every status `certificate_status` gives (the ledger's fact holds only the middle three)
STATUSES = ("not_issued", "not_yet_valid", "valid", "suspended", "revoked", "expired")


def _issue(ledger: Ledger, env: Envelope, signer: Signer) -> list[Update]:
    rec, rid = env.record, env.record_id.hex()
    cert = ledger.fact(CERT, rec.subject)
    if cert is not None:
        # `record` is the latest change; `issue` (kept since this field came in)
        # is the issuing record, whose height is the one to name
        since = ledger.since(cert["issue"]) if "issue" in cert else ""
        raise violation("cert.number_unused", f"certificate {rec.subject} was already issued "
                        f"by {cert['issuer']}{since}")
    return [(CERT, rec.subject, {"issuer": signer.dept, "status": "valid", "record": rid, "issue": rid})]


def _validity(body: dict[str, Any]) -> str | None:
    if body["valid_from"] >= body["valid_until"]:
        return "body.valid_until must be after valid_from"
    return None


@dataclass(frozen=True)
class Transition:
    """A change of a certificate's status: allowed from these statuses, to `to`."""

    name: str
    allowed_from: frozenset[str]
    to: str

    def rule(self, ledger: Ledger, env: Envelope, signer: Signer) -> list[Update]:
        number = env.record.subject
        cert = ledger.fact(CERT, number)
        if cert is None:
            raise violation("cert.issued", f"certificate {number} was never issued")
        if cert["issuer"] != signer.dept:
            raise violation("cert.issuer", f"certificate {number} was issued by {cert['issuer']}; "
                            f"only {cert['issuer']} may change it, not {signer.dept}")
        if cert["status"] not in self.allowed_from:
            raise violation("cert.transition", f"{self.name} is not allowed on certificate {number}: "
                            f"it is {cert['status']}{ledger.since(cert['record'])}")
        return [(CERT, number, {**cert, "status": self.to, "record": env.record_id.hex()})]


TRANSITIONS = {t.name: t for t in (
    Transition("cert.revoke", frozenset({"valid", "suspended"}), "revoked"),
    Transition("cert.suspend", frozenset({"valid"}), "suspended"),
    Transition("cert.resume", frozenset({"suspended"}), "valid"),
)}
_CHANGE_FIELDS = (Field("reason", TEXT), Field("effective", TIME))

ISSUE = RecordType("cert.issue", (
    Field("cert_type", TEXT), Field("holder", HASH), Field("content_hash", HASH),
    Field("valid_from", TIME), Field("valid_until", TIME),
), _issue, body_check=_validity)
FAMILY = Family("cert", (ISSUE, *(RecordType(t.name, _CHANGE_FIELDS, t.rule) for t in TRANSITIONS.values())))


# -- derived view (the node's answer and the auditors' re-check share it) ------------------


@dataclass(frozen=True)
class CertStatus:
    status: str  # one of STATUSES
    issuer_key: str | None
    deciding: tuple[bytes, ...]  # record ids that decide the status, in log order


def certificate_status(history: list[Envelope], at_ms: int) -> CertStatus:
    """Status of a certificate at `at_ms` from its records in log order.

    A change (suspend/resume/revoke) counts once its `effective` time is <= at_ms;
    changes apply in log order, the order in which the ledger accepted them.
    Expiry and not-yet-valid come from the issue record's validity window and
    apply only to a certificate that is otherwise valid.
    """
    issue = next((e for e in history if e.record.type == ISSUE.name), None)
    if issue is None:
        return CertStatus("not_issued", None, ())
    deciding = [issue.record_id]
    status = "valid"
    for env in history:
        rec = env.record
        change = TRANSITIONS.get(rec.type)
        if change is not None and rec.body["effective"] <= at_ms:
            status = change.to
            deciding.append(env.record_id)
    body = issue.record.body
    if status == "valid" and at_ms < body["valid_from"]:
        status = "not_yet_valid"
    elif status == "valid" and at_ms >= body["valid_until"]:
        status = "expired"
    return CertStatus(status, issue.record.key, tuple(deciding))
