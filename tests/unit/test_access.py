"""Read access (ledgernode/access.py) over a store of real committed records: who may read a
record about a sensitive dataset, who may have an evidence bundle, and revoked keys."""

from __future__ import annotations

import dataclasses

import pytest

from ledgernode import access
from ledgernode.access import AUDIT_READ, Denied, Reader
from ledgernode.records import decode_envelope
from ledgernode.storage import Store
from ledgernode.families import dataset
from tests.fixtures import T0, commit_records
from tests.unit.test_state import (
    DAY, HEALTH, JUSTICE, MARKET, NET, PUBLISH_BODY, G, grant, issue, notarize, revoke, rid,
)


def reader(dept: str, roles: tuple[str, ...] = ("evidence.*",)) -> Reader:
    return Reader("0" * 16, dept, roles, "signature")


def sensitive(client: int = JUSTICE, subject: str = "DS-1") -> bytes:
    return NET.record(client, "dataset.publish", subject, {**PUBLISH_BODY, "classification": "sensitive"})


@pytest.fixture
def store() -> Store:
    return Store.memory()


def env(raw: bytes):  # type: ignore[no-untyped-def]
    return decode_envelope(raw, G)


def now(store: Store) -> int:
    head = store.head()
    assert head is not None
    return head.time


def test_records_of_a_sensitive_dataset_are_for_its_owner_grantees_and_auditors(store: Store) -> None:
    p, g = sensitive(), grant(JUSTICE, to_dept="market")
    commit_records(NET, store, [p, g])
    members = store.members(G)
    for raw in (p, g):
        access.check_records(reader("justice"), [env(raw)], store, members, now(store))  # the owner
        access.check_records(reader("market"), [env(raw)], store, members, now(store))  # granted
        access.check_records(reader("customs", (AUDIT_READ,)), [env(raw)], store, members, now(store))
        with pytest.raises(Denied) as err:
            access.check_records(reader("health"), [env(raw)], store, members, now(store))
        assert err.value.right == "dataset:DS-1" and "sensitive dataset DS-1" in err.value.message
    with pytest.raises(Denied):  # a wildcard write role is not the read right
        access.check_records(reader("health", ("*",)), [env(p)], store, members, now(store))


def test_a_revoked_grant_ends_the_grantees_right(store: Store) -> None:
    g = grant(JUSTICE, to_dept="market")
    commit_records(NET, store, [sensitive(), g])
    commit_records(NET, store, [revoke(JUSTICE, rid(g))])
    with pytest.raises(Denied):
        access.check_records(reader("market"), [env(g)], store, store.members(G), now(store))


def test_an_expired_grant_ends_the_grantees_right(store: Store) -> None:
    g = grant(JUSTICE, to_dept="market", expires=T0 + 10)
    commit_records(NET, store, [sensitive(), g], time_ms=T0)
    members = store.members(G)
    access.check_records(reader("market"), [env(g)], store, members, T0 + 9)
    with pytest.raises(Denied):
        access.check_records(reader("market"), [env(g)], store, members, T0 + 10)  # expires <= the head's time


def test_an_owner_fact_of_before_counts_no_grantee_and_never_starts_counting() -> None:
    """An owner fact written before grantees were kept ({"dept", "record"} only) never
    learnt of the grants made then: it stays without grantees, which only denies."""
    old = {"dept": "justice", "record": "00" * 32}
    after = dataset._grantees(old, "market", "11" * 32, T0 + DAY)
    assert "grantees" not in after and after == old


def test_records_of_public_and_internal_datasets_and_other_families_are_for_any_key(store: Store) -> None:
    internal = NET.record(JUSTICE, "dataset.publish", "DS-2", PUBLISH_BODY)
    cert = issue(HEALTH)
    commit_records(NET, store, [internal, cert])
    access.check_records(reader("customs"), [env(internal), env(cert)], store, store.members(G), now(store))


def test_a_reclassified_dataset_follows_its_latest_publish(store: Store) -> None:
    commit_records(NET, store, [sensitive()])
    later = NET.record(JUSTICE, "dataset.publish", "DS-1", {**PUBLISH_BODY, "classification": "public"})
    commit_records(NET, store, [later])
    access.check_records(reader("customs"), [env(later)], store, store.members(G), now(store))


def test_bundles_are_for_the_signer_the_departments_named_and_auditors(store: Store) -> None:
    note, g = notarize(JUSTICE), grant(JUSTICE, subject="DS-2", to_dept="health")
    commit_records(NET, store, [note, NET.record(JUSTICE, "dataset.publish", "DS-2", PUBLISH_BODY), g])
    members = store.members(G)
    access.check_bundle(reader("justice"), env(note), store, members, now(store))
    access.check_bundle(reader("health"), env(g), store, members, now(store))  # named in to_dept
    access.check_bundle(reader("market", (AUDIT_READ,)), env(note), store, members, now(store))
    with pytest.raises(Denied) as err:
        access.check_bundle(reader("market"), env(note), store, members, now(store))
    assert err.value.right == "party" and "justice" in err.value.message
    assert access.parties(env(g), members) == {"justice", "health"}


def test_a_revoked_or_unknown_key_is_no_reader(store: Store) -> None:
    commit_records(NET, store, [notarize(JUSTICE)])
    members = store.members(G)
    key_id = NET.clients[MARKET].public.key_id
    assert access.reader_of(members, key_id, store.log_size, "signature") == Reader(
        key_id, "market", members.signers[key_id].roles, "signature")
    assert access.reader_of(members, "f" * 16, store.log_size, "signature") is None
    revoked = dataclasses.replace(members, signers={
        **members.signers, key_id: dataclasses.replace(members.signers[key_id], until=store.log_size)})
    assert access.reader_of(revoked, key_id, store.log_size, "signature") is None
