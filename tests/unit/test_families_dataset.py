"""The dataset family (families/dataset.py): the bodies of dataset.publish and share.*,
their ledger rules (docs/protocol.md section 5, through BlockState and chained blocks)
and the derived views of a dataset (owner, grants)."""

from __future__ import annotations

from typing import Any

import pytest

from ledgernode.errors import InvalidInput
from ledgernode.families import dataset
from ledgernode.records import check_body, decode_envelope
from ledgernode.storage import Store
from tests.fixtures import T0, commit_records, content
from tests.unit.test_state import (
    DAY, G, HEALTH, JUSTICE, MARKET, NET, PUBLISH_BODY, access, admit, fact, grant, new_state, publish, refuse, revoke, rid,
    verdicts,
)

# A valid body of each type (tests/unit/test_families_registry.py collects them for the
# tests every type meets).
EXAMPLES: dict[str, dict[str, Any]] = {
    "dataset.publish": {
        "title": "Population register 2025", "content_hash": content("data"),
        "schema_hash": content("schema"), "classification": "internal",
    },
    "share.grant": {
        "to_dept": "market", "purpose": "licensing checks", "legal_basis": "Art. 12",
        "expires": T0 + 86_400_000,
    },
    "share.revoke": {"grant": content("grant")},
    "share.access": {"grant": content("grant"), "purpose": "audit", "content_hash": content("data")},
}
# Values the kinds this family declares must refuse.
BAD_VALUES: dict[str, list[Any]] = {
    "classification": ["secret", "Public", "", 1, None, b"public", ["public"]],
}
DEPTS = sorted(G.depts)
CLASSIFICATION = "internal"  # what tests.unit.test_state.publish declares


def test_republish_sets_the_classification_access_reads() -> None:
    state = new_state()
    admit(state, publish(JUSTICE))
    admit(state, NET.record(JUSTICE, "dataset.publish", "DS-1", {**PUBLISH_BODY, "classification": "sensitive"}))
    assert state.facts[("owner", "DS-1")]["classification"] == "sensitive"


def test_the_owner_fact_keeps_each_departments_live_grants_and_their_expiry() -> None:
    state = new_state()
    admit(state, publish(JUSTICE))
    g1, g2 = admit(state, grant(JUSTICE)), admit(state, grant(JUSTICE, expires=T0 + 2 * DAY))
    both = {g1.record_id.hex(): T0 + DAY, g2.record_id.hex(): T0 + 2 * DAY}
    assert state.facts[("owner", "DS-1")]["grantees"] == {"market": both}
    admit(state, revoke(JUSTICE, g1.record_id))
    assert state.facts[("owner", "DS-1")]["grantees"] == {"market": {g2.record_id.hex(): T0 + 2 * DAY}}
    admit(state, revoke(JUSTICE, g2.record_id))
    assert state.facts[("owner", "DS-1")]["grantees"] == {}


def test_the_owner_fact_keeps_the_grants_expiring_last_past_its_bound() -> None:
    state = new_state()
    admit(state, publish(JUSTICE))
    grants = [admit(state, grant(JUSTICE, expires=T0 + DAY + i)) for i in range(dataset.GRANTS_KEPT_PER_DEPT + 2)]
    kept = state.facts[("owner", "DS-1")]["grantees"]["market"]
    assert sorted(kept.values()) == [T0 + DAY + i for i in range(2, dataset.GRANTS_KEPT_PER_DEPT + 2)]
    assert grants[0].record_id.hex() not in kept


# -- bodies -----------------------------------------------------------------------


def test_every_genesis_dept_accepted_in_share_grant() -> None:
    for dept in DEPTS:
        body = {**EXAMPLES["share.grant"], "to_dept": dept}
        assert decode_envelope(NET.record(0, "share.grant", "DS-1", body), G).record.body["to_dept"] == dept


def test_every_classification_accepted() -> None:
    for value in ("public", "internal", "sensitive"):
        body = {**EXAMPLES["dataset.publish"], "classification": value}
        assert decode_envelope(NET.record(0, "dataset.publish", "DS-1", body), G).record.body == body
    assert dataset.CLASSIFICATIONS == ("public", "internal", "sensitive")


def test_check_body_directly() -> None:
    depts = frozenset({"justice"})
    check_body("share.grant", {**EXAMPLES["share.grant"], "to_dept": "justice"}, depts)
    with pytest.raises(InvalidInput) as info:
        check_body("share.grant", EXAMPLES["share.grant"], depts)  # "market" not in these depts
    assert info.value.code == "invalid_record" and "to_dept" in info.value.message


def test_classification_message_names_every_value() -> None:
    with pytest.raises(InvalidInput) as info:
        check_body("dataset.publish", {**EXAMPLES["dataset.publish"], "classification": "secret"}, G.depts)
    assert info.value.message == ("dataset.publish body.classification must be one of "
                                  "public, internal, sensitive")


# -- dataset.publish ------------------------------------------------------------


def test_first_publish_fixes_owner() -> None:
    state = new_state()
    env = admit(state, publish(JUSTICE))
    owner = {"dept": "justice", "record": env.record_id.hex(), "classification": CLASSIFICATION, "grantees": {}}
    assert state.facts == {("owner", "DS-1"): owner}
    assert state.fact("owner", "DS-1") == owner
    assert env.record_id in state.record_ids


def test_republish_by_owner_keeps_first_record() -> None:
    state = new_state()
    first = admit(state, publish(JUSTICE))
    admit(state, publish(JUSTICE))
    admit(state, publish(JUSTICE, key=NET.validators[JUSTICE]))  # another key of the same dept
    assert state.facts[("owner", "DS-1")]["record"] == first.record_id.hex()


def test_publish_by_other_dept_rejected_same_block() -> None:
    state = new_state()
    admit(state, publish(JUSTICE))
    refuse(state, publish(MARKET), needle="owned by justice", rule="dataset.owner")
    refuse(state, publish(HEALTH, key=NET.validators[HEALTH]))
    admit(state, publish(MARKET, "DS-2"))  # a different dataset is free
    assert state.facts[("owner", "DS-2")]["dept"] == "market"


def test_publish_owner_across_blocks() -> None:
    store = Store.memory()
    first = rid(p := publish(JUSTICE))
    commit_records(NET, store, [p])
    owner = {"dept": "justice", "record": first.hex(), "classification": CLASSIFICATION, "grantees": {}}
    assert fact(store, "owner", "DS-1") == owner
    assert verdicts(store, [publish(MARKET), publish(JUSTICE)]) == ["rule_violation", None]
    assert fact(store, "owner", "DS-1") == owner


# -- share.grant ------------------------------------------------------------------


def test_grant_by_owner_records_grant_fact() -> None:
    state = new_state()
    admit(state, publish(JUSTICE))
    env = admit(state, grant(JUSTICE, expires=T0 + 5))
    assert state.facts[("grant", env.record_id.hex())] == {
        "dataset": "DS-1", "owner": "justice", "to_dept": "market", "expires": T0 + 5, "revoked": False,
    }


def test_grant_only_by_owner() -> None:
    state = new_state()
    admit(state, publish(JUSTICE))
    refuse(state, grant(MARKET), needle="owned by justice", rule="dataset.owner")
    refuse(state, grant(MARKET, to_dept="market"))
    refuse(state, grant(HEALTH, key=NET.validators[HEALTH]))


def test_grant_not_before_publish() -> None:
    state = new_state()
    refuse(state, grant(JUSTICE), needle="never published", rule="dataset.published")
    admit(state, publish(JUSTICE))
    admit(state, grant(JUSTICE))  # publish earlier in the same block counts


def test_grant_before_publish_in_block_order() -> None:
    store = Store.memory()
    assert verdicts(store, [grant(JUSTICE), publish(JUSTICE), grant(JUSTICE)]) == [
        "rule_violation", None, None]


@pytest.mark.parametrize("offset,ok", [(-DAY, False), (-1, False), (0, False), (1, True), (DAY, True)])
def test_grant_expires_must_be_after_block_time(offset: int, ok: bool) -> None:
    state = new_state(block_time=T0 + 1000)
    admit(state, publish(JUSTICE))
    raw = grant(JUSTICE, expires=T0 + 1000 + offset)
    if ok:
        admit(state, raw)
    else:
        refuse(state, raw, needle="expires", rule="grant.expires")


def test_grant_expiry_judged_at_block_time_across_blocks() -> None:
    store = Store.memory()
    commit_records(NET, store, [publish(JUSTICE)], time_ms=T0)
    raw = grant(JUSTICE, expires=T0 + 10)
    assert verdicts(store, [raw], time_ms=T0 + 10, commit=False) == ["rule_violation"]
    assert verdicts(store, [raw], time_ms=T0 + 9) == [None]


# -- share.revoke -----------------------------------------------------------------


def test_revoke_by_owner_marks_grant_revoked() -> None:
    state = new_state()
    admit(state, publish(JUSTICE))
    g = admit(state, grant(JUSTICE))
    admit(state, revoke(JUSTICE, g.record_id))
    assert state.facts[("grant", g.record_id.hex())] == {
        "dataset": "DS-1", "owner": "justice", "to_dept": "market", "expires": T0 + DAY, "revoked": True,
    }


def test_revoke_only_by_owner() -> None:
    state = new_state()
    admit(state, publish(JUSTICE))
    g = admit(state, grant(JUSTICE))
    refuse(state, revoke(MARKET, g.record_id), needle="owned by justice", rule="dataset.owner")  # not even the grantee
    refuse(state, revoke(HEALTH, g.record_id))


def test_revoke_needs_existing_grant_for_this_dataset() -> None:
    state = new_state()
    p1 = admit(state, publish(JUSTICE))
    admit(state, publish(JUSTICE, "DS-2"))
    g = admit(state, grant(JUSTICE))
    refuse(state, revoke(JUSTICE, content("no such grant")), needle="no grant", rule="grant.exists")
    refuse(state, revoke(JUSTICE, p1.record_id), needle="no grant", rule="grant.exists")  # a record, but not a grant
    refuse(state, revoke(JUSTICE, g.record_id, subject="DS-2"), needle="no grant", rule="grant.exists")
    admit(state, revoke(JUSTICE, g.record_id))


def test_revoke_not_twice() -> None:
    state = new_state()
    admit(state, publish(JUSTICE))
    g = admit(state, grant(JUSTICE))
    admit(state, revoke(JUSTICE, g.record_id))
    refuse(state, revoke(JUSTICE, g.record_id), needle="already revoked", rule="grant.live")


def test_revoke_across_blocks() -> None:
    store = Store.memory()
    g = grant(JUSTICE)
    commit_records(NET, store, [publish(JUSTICE), g])
    assert fact(store, "grant", rid(g).hex())["revoked"] is False
    assert verdicts(store, [revoke(MARKET, rid(g)), revoke(JUSTICE, rid(g))]) == ["rule_violation", None]
    assert fact(store, "grant", rid(g).hex())["revoked"] is True
    assert verdicts(store, [revoke(JUSTICE, rid(g))], commit=False) == ["rule_violation"]


# -- share.access -----------------------------------------------------------------


def test_access_by_grantee() -> None:
    state = new_state()
    admit(state, publish(JUSTICE))
    g = admit(state, grant(JUSTICE, to_dept="market"))
    before = dict(state.facts)
    a = admit(state, access(MARKET, g.record_id))
    assert state.facts == before  # access changes no fact
    assert a.record_id in state.record_ids
    admit(state, access(MARKET, g.record_id, key=NET.validators[MARKET]))  # any key of the dept


def test_access_only_by_grantees_dept() -> None:
    state = new_state()
    admit(state, publish(JUSTICE))
    g = admit(state, grant(JUSTICE, to_dept="market"))
    refuse(state, access(HEALTH, g.record_id), needle="is for market, not health", rule="access.grantee")
    refuse(state, access(JUSTICE, g.record_id), needle="is for market, not justice", rule="access.grantee")  # not even the owner


def test_access_needs_grant_for_this_dataset() -> None:
    state = new_state()
    admit(state, publish(JUSTICE))
    admit(state, publish(JUSTICE, "DS-2"))
    g = admit(state, grant(JUSTICE))
    refuse(state, access(MARKET, g.record_id, subject="DS-2"), needle="no grant", rule="grant.exists")
    refuse(state, access(MARKET, content("nothing")), needle="no grant", rule="grant.exists")


def test_access_before_grant_in_block_order() -> None:
    store = Store.memory()
    commit_records(NET, store, [publish(JUSTICE)])
    g = grant(JUSTICE)
    assert verdicts(store, [access(MARKET, rid(g)), g, access(MARKET, rid(g))]) == [
        "rule_violation", None, None]


def test_access_rejected_after_revoke() -> None:
    state = new_state()
    admit(state, publish(JUSTICE))
    g = admit(state, grant(JUSTICE))
    admit(state, access(MARKET, g.record_id))
    admit(state, revoke(JUSTICE, g.record_id))
    refuse(state, access(MARKET, g.record_id), needle="was revoked", rule="access.grant_live")


def test_access_rejected_after_revoke_across_blocks() -> None:
    store = Store.memory()
    g = grant(JUSTICE)
    commit_records(NET, store, [publish(JUSTICE), g])
    commit_records(NET, store, [revoke(JUSTICE, rid(g))])
    assert verdicts(store, [access(MARKET, rid(g))], commit=False) == ["rule_violation"]


@pytest.mark.parametrize("block_time,ok", [(T0 + 98, True), (T0 + 99, True), (T0 + 100, False), (T0 + 5000, False)])
def test_access_grant_expiry_at_block_time(block_time: int, ok: bool) -> None:
    store = Store.memory()
    g = grant(JUSTICE, expires=T0 + 100)
    commit_records(NET, store, [publish(JUSTICE), g], time_ms=T0)
    state = new_state(store, block_time)
    raw = access(MARKET, rid(g))
    if ok:
        admit(state, raw)
    else:
        refuse(state, raw, needle="expired at", rule="access.grant_live")


# -- derived views ----------------------------------------------------------------


def _history(raws: list[bytes]) -> list[Any]:
    return [decode_envelope(raw, G) for raw in raws]


def test_dataset_owner_is_the_signer_of_the_first_publish() -> None:
    first, again = publish(HEALTH), publish(JUSTICE)
    assert dataset.dataset_owner(_history([grant(HEALTH), first, again]), G.key_depts) == "health"
    assert dataset.dataset_owner(_history([grant(HEALTH)]), G.key_depts) is None
    assert dataset.dataset_owner([], G.key_depts) is None


def test_dataset_grants_in_log_order_with_revocations_and_accesses() -> None:
    g1 = grant(JUSTICE, to_dept="market", expires=T0 + DAY)
    g2 = grant(JUSTICE, to_dept="health", expires=T0 + 2 * DAY)
    a1 = access(MARKET, rid(g1))
    r2 = revoke(JUSTICE, rid(g2))
    stray = access(MARKET, content("no such grant"))  # names no grant of this history: left out
    envs = _history([publish(JUSTICE), g1, g2, a1, r2, stray])
    assert dataset.dataset_grants(envs, G.key_depts) == [
        {"grant": rid(g1).hex(), "by": "justice", "to_dept": "market", "purpose": "checks",
         "legal_basis": "Art. 12", "expires": T0 + DAY, "revoked_by": None,
         "accesses": [{"record": rid(a1).hex(), "dept": "market", "purpose": "audit", "ts": T0,
                       "content_hash": content("data").hex()}]},
        {"grant": rid(g2).hex(), "by": "justice", "to_dept": "health", "purpose": "checks",
         "legal_basis": "Art. 12", "expires": T0 + 2 * DAY, "revoked_by": rid(r2).hex(), "accesses": []},
    ]
    assert dataset.dataset_grants(envs[:1], G.key_depts) == []


def test_the_family_holds_exactly_its_types() -> None:
    assert [t.name for t in dataset.FAMILY.types] == list(EXAMPLES)
    assert "share.access" in dataset.FAMILY and "cert.issue" not in dataset.FAMILY
    assert [t.name for t in dataset.FAMILY.types if t.for_every_dept] == ["share.access"]
