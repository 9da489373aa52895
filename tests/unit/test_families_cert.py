"""The certificate family (families/cert.py): the bodies of cert.*, their ledger rules
(docs/protocol.md section 5, through BlockState and chained blocks) and the view of a
certificate's status at a time."""

from __future__ import annotations

from typing import Any

import pytest

from ledgernode.errors import InvalidInput
from ledgernode.families import cert
from ledgernode.records import decode_envelope
from ledgernode.storage import Store
from tests.fixtures import T0, commit_records, content
from tests.unit.test_state import (
    DAY, G, HEALTH, JUSTICE, MARKET, NET, admit, change, fact, issue, new_state, refuse, verdicts,
)

# A valid body of each type (tests/unit/test_families_registry.py collects them for the
# tests every type meets).
EXAMPLES: dict[str, dict[str, Any]] = {
    "cert.issue": {
        "cert_type": "business-licence", "holder": content("holder"), "content_hash": content("cert"),
        "valid_from": T0, "valid_until": T0 + 1,
    },
    "cert.revoke": {"reason": "fraud", "effective": T0},
    "cert.suspend": {"reason": "inquiry", "effective": T0},
    "cert.resume": {"reason": "cleared", "effective": T0},
}


# -- bodies -----------------------------------------------------------------------


@pytest.mark.parametrize("delta", [0, -1, -T0])
def test_cert_issue_valid_until_must_be_after_valid_from(delta: int) -> None:
    body = {**EXAMPLES["cert.issue"], "valid_from": T0, "valid_until": T0 + delta}
    with pytest.raises(InvalidInput) as info:
        decode_envelope(NET.record(0, "cert.issue", "CERT-1", body), G)
    assert info.value.code == "invalid_record", info.value
    assert info.value.message == "cert.issue body.valid_until must be after valid_from"


def test_validity_is_checked_after_every_field() -> None:
    """The check across fields runs only once both times passed their kind."""
    body = {**EXAMPLES["cert.issue"], "valid_from": T0, "valid_until": "soon"}
    with pytest.raises(InvalidInput) as info:
        decode_envelope(NET.record(0, "cert.issue", "CERT-1", body), G)
    assert info.value.message == "cert.issue body.valid_until must be a non-negative int"


# -- certificates -----------------------------------------------------------------


def test_cert_issue_records_fact() -> None:
    state = new_state()
    env = admit(state, issue(HEALTH))
    rid_hex = env.record_id.hex()
    assert state.facts[("cert", "CERT-1")] == {"issuer": "health", "status": "valid", "record": rid_hex,
                                               "issue": rid_hex}


def test_cert_issue_once_per_subject() -> None:
    state = new_state()
    admit(state, issue(HEALTH))
    refuse(state, issue(HEALTH), needle="was already issued by health", rule="cert.number_unused")
    refuse(state, issue(MARKET), needle="was already issued by health", rule="cert.number_unused")
    admit(state, issue(MARKET, "CERT-2"))


def test_cert_issue_once_across_blocks() -> None:
    store = Store.memory()
    commit_records(NET, store, [issue(HEALTH)])
    commit_records(NET, store, [change(HEALTH, "cert.revoke")])
    # not even after revocation may the number be issued again
    assert verdicts(store, [issue(HEALTH), issue(JUSTICE), issue(HEALTH, "CERT-9")]) == [
        "rule_violation", "rule_violation", None]


REACH = {
    "valid": [],
    "suspended": ["cert.suspend"],
    "resumed": ["cert.suspend", "cert.resume"],
    "revoked": ["cert.revoke"],
    "suspended-revoked": ["cert.suspend", "cert.revoke"],
}
STATUS = {"valid": "valid", "suspended": "suspended", "resumed": "valid", "revoked": "revoked",
          "suspended-revoked": "revoked"}
ALLOWED = {
    ("valid", "cert.suspend"): "suspended",
    ("valid", "cert.revoke"): "revoked",
    ("suspended", "cert.resume"): "valid",
    ("suspended", "cert.revoke"): "revoked",
}
TRANSITIONS = [(start, op) for start in REACH for op in ("cert.suspend", "cert.resume", "cert.revoke")]


@pytest.mark.parametrize("start,op", TRANSITIONS, ids=[f"{s}-{o}" for s, o in TRANSITIONS])
def test_cert_transition_in_one_block(start: str, op: str) -> None:
    state = new_state()
    admit(state, issue(HEALTH))
    for step in REACH[start]:
        admit(state, change(HEALTH, step))
    status = STATUS[start]
    assert state.facts[("cert", "CERT-1")]["status"] == status
    target = ALLOWED.get((status, op))
    if target is None:
        refuse(state, change(HEALTH, op), needle=f"it is {status}", rule="cert.transition")
    else:
        env = admit(state, change(HEALTH, op))
        cert = state.facts[("cert", "CERT-1")]
        assert cert["status"] == target and cert["issuer"] == "health"
        assert cert["record"] == env.record_id.hex()


@pytest.mark.parametrize("start,op", TRANSITIONS, ids=[f"{s}-{o}" for s, o in TRANSITIONS])
def test_cert_transition_across_blocks(start: str, op: str) -> None:
    store = Store.memory()
    commit_records(NET, store, [issue(HEALTH)])
    for step in REACH[start]:
        commit_records(NET, store, [change(HEALTH, step)])
    status = STATUS[start]
    assert fact(store, "cert", "CERT-1")["status"] == status
    target = ALLOWED.get((status, op))
    assert verdicts(store, [change(HEALTH, op)]) == [None if target else "rule_violation"]
    assert fact(store, "cert", "CERT-1")["status"] == (target or status)


@pytest.mark.parametrize("op", ["cert.suspend", "cert.resume", "cert.revoke"])
def test_cert_change_only_by_issuing_dept(op: str) -> None:
    state = new_state()
    admit(state, issue(HEALTH))
    if op == "cert.resume":
        admit(state, change(HEALTH, "cert.suspend"))
    refuse(state, change(MARKET, op), needle="issued by health; only health may change it, not market", rule="cert.issuer")
    refuse(state, change(JUSTICE, op, key=NET.validators[JUSTICE]), needle="issued by health; only health may change it, not justice", rule="cert.issuer")
    admit(state, change(HEALTH, op, key=NET.validators[HEALTH]))  # any key of the issuing dept


@pytest.mark.parametrize("op", ["cert.suspend", "cert.resume", "cert.revoke"])
def test_cert_change_needs_issued_cert(op: str) -> None:
    state = new_state()
    refuse(state, change(HEALTH, op), needle="never issued", rule="cert.issued")
    admit(state, issue(HEALTH, "CERT-2"))
    refuse(state, change(HEALTH, op), needle="never issued", rule="cert.issued")


# -- the one transition table ------------------------------------------------------


def test_transitions_are_the_change_types_and_name_known_statuses() -> None:
    assert [t.name for t in cert.FAMILY.types] == list(EXAMPLES)
    assert set(cert.TRANSITIONS) == cert.FAMILY.names - {"cert.issue"}
    for t in cert.TRANSITIONS.values():
        assert t.allowed_from <= set(cert.STATUSES) and t.to in cert.STATUSES
    assert {(s, op): t.to for op, t in cert.TRANSITIONS.items() for s in t.allowed_from} == ALLOWED


# -- derived view -------------------------------------------------------------------

VALID_FROM, VALID_UNTIL = T0 + 10 * DAY, T0 + 20 * DAY
LIFE_BODY = {"cert_type": "licence", "holder": content("holder"), "content_hash": content("cert"),
             "valid_from": VALID_FROM, "valid_until": VALID_UNTIL}


def _life(*steps: tuple[str, int]) -> list[Any]:
    """An issue record, then a change per (type, effective) step, decoded in log order."""
    raws = [NET.record(HEALTH, "cert.issue", "LIFE-1", LIFE_BODY)]
    raws += [NET.record(HEALTH, op, "LIFE-1", {"reason": "r", "effective": at}) for op, at in steps]
    return [decode_envelope(raw, G) for raw in raws]


def test_status_without_an_issue_record() -> None:
    assert cert.certificate_status([], T0) == cert.CertStatus("not_issued", None, ())
    status = cert.certificate_status(_life(("cert.suspend", T0))[1:], T0)
    assert status.status == "not_issued" and status.deciding == ()


@pytest.mark.parametrize("at,status", [
    (VALID_FROM - 1, "not_yet_valid"), (VALID_FROM, "valid"), (VALID_UNTIL - 1, "valid"), (VALID_UNTIL, "expired"),
])
def test_status_follows_the_validity_window(at: int, status: str) -> None:
    history = _life()
    got = cert.certificate_status(history, at)
    assert got == cert.CertStatus(status, NET.clients[HEALTH].public.key_id, (history[0].record_id,))


def test_changes_count_from_their_effective_time_in_log_order() -> None:
    history = _life(("cert.suspend", VALID_FROM + 1), ("cert.resume", VALID_FROM + 2),
                    ("cert.revoke", VALID_FROM + 3))
    ids = [env.record_id for env in history]
    expected = {VALID_FROM: ("valid", ids[:1]), VALID_FROM + 1: ("suspended", ids[:2]),
                VALID_FROM + 2: ("valid", ids[:3]), VALID_FROM + 3: ("revoked", ids),
                VALID_UNTIL: ("revoked", ids)}
    for at, (status, deciding) in expected.items():
        got = cert.certificate_status(history, at)
        assert (got.status, list(got.deciding)) == (status, deciding), at


def test_a_suspension_hides_expiry_and_not_yet_valid() -> None:
    history = _life(("cert.suspend", T0))
    assert cert.certificate_status(history, VALID_FROM - 1).status == "suspended"
    assert cert.certificate_status(history, VALID_UNTIL).status == "suspended"


def test_ledger_fact_and_view_agree_on_every_reachable_status() -> None:
    """The rule (the fact) and the view (status at a time) read the same table."""
    for start, steps in REACH.items():
        state = new_state()
        admit(state, NET.record(HEALTH, "cert.issue", "LIFE-1", LIFE_BODY))
        for op in steps:
            admit(state, NET.record(HEALTH, op, "LIFE-1", {"reason": "r", "effective": T0}))
        fact_status = state.facts[("cert", "LIFE-1")]["status"]
        assert fact_status == STATUS[start]
        assert cert.certificate_status(_life(*((op, T0) for op in steps)), VALID_FROM).status == fact_status
