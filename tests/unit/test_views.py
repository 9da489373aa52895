"""Auditors' answers: built from a store, verified offline, and refused when tampered."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from ledgernode.auditing import answers, checkpoints
from ledgernode.auditing.answers import verify_answer
from ledgernode.auditing.bundle import build_bundle
from ledgernode.auditing.checkpoints import verify_consistency_files
from ledgernode.errors import InvalidInput, NotFound
from ledgernode.records import decode_envelope
from ledgernode.storage import Store
from ledgernode.verify import verify_bundle
from tests.fixtures import T0, Net, commit_records, content

DAY = 86_400_000


def rid(net: Net, raw: bytes) -> bytes:
    return decode_envelope(raw, net.genesis).record_id


@pytest.fixture
def ledger() -> tuple[Net, Store, dict[str, bytes]]:
    """Provenance across four departments and a certificate's whole life."""
    net, store = Net(), Store.memory()
    ids: dict[str, bytes] = {}
    raw = net.record(0, "trace.event", "batch-7", {"activity": "harvest", "location": "farm"})
    commit_records(net, store, [raw], T0)
    ids["raw"] = rid(net, raw)
    proc = net.record(1, "trace.event", "lot-3", {"activity": "processing"}, refs=(ids["raw"],))
    commit_records(net, store, [proc], T0 + 1)
    ids["proc"] = rid(net, proc)
    pack = net.record(2, "trace.event", "box-9", {"activity": "packaging", "content_hash": content("box")},
                      refs=(ids["proc"],))
    retail = net.record(3, "trace.event", "sku-1", {"activity": "retail"}, refs=(ids["proc"],), ts=T0 + 2)
    commit_records(net, store, [pack], T0 + 2)
    ids["pack"] = rid(net, pack)
    retail = net.record(3, "trace.event", "sku-1", {"activity": "retail"}, refs=(ids["pack"],), ts=T0 + 3)
    commit_records(net, store, [retail], T0 + 3)
    ids["retail"] = rid(net, retail)
    cert = {"cert_type": "license", "holder": content("holder"), "content_hash": content("doc"),
            "valid_from": T0, "valid_until": T0 + 100 * DAY}
    steps = [("cert.issue", cert, T0 + 10), ("cert.suspend", {"reason": "audit", "effective": T0 + 10 * DAY}, T0 + 11),
             ("cert.resume", {"reason": "ok", "effective": T0 + 20 * DAY}, T0 + 12),
             ("cert.revoke", {"reason": "fraud", "effective": T0 + 30 * DAY}, T0 + 13)]
    for rtype, body, t in steps:
        r = net.record(1, rtype, "LIC-1", body, ts=t)
        commit_records(net, store, [r], t)
        ids[rtype] = rid(net, r)
    return net, store, ids


def test_provenance_graph_across_four_departments(ledger: Any) -> None:
    net, store, ids = ledger
    answer = answers.provenance(store, net.genesis, ids["retail"], 8)
    assert {r["id"] for r in answer["records"]} == {ids[k].hex() for k in ("raw", "proc", "pack", "retail")}
    assert sorted(answer["edges"]) == sorted([[ids["retail"].hex(), ids["pack"].hex()],
                                              [ids["pack"].hex(), ids["proc"].hex()],
                                              [ids["proc"].hex(), ids["raw"].hex()]])
    assert not answer["truncated"]
    assert verify_answer(answer, "provenance", net.genesis).valid
    shallow = answers.provenance(store, net.genesis, ids["retail"], 1)
    assert not shallow["truncated"] and len(shallow["records"]) == 2
    assert verify_answer(shallow, "provenance", net.genesis).valid
    # dropping an ancestor within the requested depth is caught, edges and all
    dropped = copy.deepcopy(answer)
    gone = ids["proc"].hex()
    dropped["records"] = [r for r in dropped["records"] if r["id"] != gone]
    dropped["edges"] = [e for e in dropped["edges"] if e[0] != gone]
    assert not verify_answer(dropped, "provenance", net.genesis).valid


@pytest.mark.parametrize("at,status", [
    (T0 - 1, "not_yet_valid"), (T0 + DAY, "valid"), (T0 + 10 * DAY, "suspended"), (T0 + 15 * DAY, "suspended"),
    (T0 + 20 * DAY, "valid"), (T0 + 25 * DAY, "valid"), (T0 + 30 * DAY, "revoked"), (T0 + 200 * DAY, "revoked"),
])
def test_certificate_status_at_each_time(ledger: Any, at: int, status: str) -> None:
    net, store, _ = ledger
    answer = answers.cert_status(store, net.genesis, "LIC-1", at)
    assert answer["status"] == status and answer["issuer"] == net.genesis.validators[1].dept
    assert verify_answer(answer, "status", net.genesis).valid


def test_certificate_expires_and_unknown_is_not_issued(ledger: Any) -> None:
    net, store, _ = ledger
    r = net.record(2, "cert.issue", "LIC-2", {"cert_type": "x", "holder": content("h"), "content_hash": content("c"),
                                            "valid_from": T0, "valid_until": T0 + DAY}, ts=T0 + 20)
    commit_records(net, store, [r], T0 + 20)
    assert answers.cert_status(store, net.genesis, "LIC-2", T0 + 2 * DAY)["status"] == "expired"
    answer = answers.cert_status(store, net.genesis, "NOPE", T0)
    assert answer["status"] == "not_issued" and answer["records"] == []
    assert verify_answer(answer, "status", net.genesis).valid


def test_subject_history_pages(ledger: Any) -> None:
    net, store, ids = ledger
    first = answers.subject_history(store, net.genesis, "LIC-1", limit=3)
    assert [r["id"] for r in first["records"]] == [ids[k].hex() for k in ("cert.issue", "cert.suspend", "cert.resume")]
    assert verify_answer(first, "subject", net.genesis).valid
    rest = answers.subject_history(store, net.genesis, "LIC-1", after=first["next_after"], limit=3)
    assert [r["id"] for r in rest["records"]] == [ids["cert.revoke"].hex()] and rest["next_after"] is None
    with pytest.raises(InvalidInput):
        answers.subject_history(store, net.genesis, "LIC-1", limit=0)
    with pytest.raises(InvalidInput):
        answers.subject_history(store, net.genesis, "LIC-1", limit=answers.SUBJECT_PAGE_MAX + 1)


def test_dataset_shares(ledger: Any) -> None:
    net, store, _ = ledger
    pub = net.record(1, "dataset.publish", "ds-1", {"title": "t", "content_hash": content("d"),
                                                  "schema_hash": content("s"), "classification": "internal"}, ts=T0 + 30)
    commit_records(net, store, [pub], T0 + 30)
    grant = net.record(1, "share.grant", "ds-1", {"to_dept": net.genesis.validators[2].dept, "purpose": "audit",
                                                "legal_basis": "law 1", "expires": T0 + DAY}, ts=T0 + 31)
    commit_records(net, store, [grant], T0 + 31)
    access = net.record(2, "share.access", "ds-1", {"grant": rid(net, grant), "purpose": "audit",
                                                  "content_hash": content("d")}, ts=T0 + 32)
    revoke = net.record(1, "share.revoke", "ds-1", {"grant": rid(net, grant)}, ts=T0 + 33)
    commit_records(net, store, [access, revoke], T0 + 33)
    answer = answers.dataset_shares(store, net.genesis, "ds-1")
    [g] = answer["grants"]
    assert g["revoked_by"] == rid(net, revoke).hex() and g["accesses"][0]["dept"] == net.genesis.validators[2].dept
    assert verify_answer(answer, "shares", net.genesis).valid
    with pytest.raises(NotFound):
        answers.dataset_shares(store, net.genesis, "never")


def test_consistency_between_checkpoints(ledger: Any) -> None:
    net, store, _ = ledger
    old, new = checkpoints.checkpoint(store, 2), checkpoints.checkpoint(store)
    proof = checkpoints.consistency(store, old["log_size"], new["log_size"])
    assert verify_consistency_files(old, new, proof, net.genesis).valid
    assert not verify_consistency_files(new, old, proof, net.genesis).valid
    bad = copy.deepcopy(proof)
    bad["proof"][0] = "00" * 32
    assert not verify_consistency_files(old, new, bad, net.genesis).valid
    with pytest.raises(InvalidInput):
        checkpoints.consistency(store, 5, 3)
    with pytest.raises(NotFound):
        checkpoints.checkpoint(store, store.height + 1)


def test_bundle_with_later_section(ledger: Any) -> None:
    net, store, ids = ledger
    bundle = build_bundle(store, net.genesis, ids["raw"], later=True)
    verdict = verify_bundle(bundle, net.genesis)
    assert verdict.valid and verdict.checks[-1]["check"] == "later"
    tampered = copy.deepcopy(bundle)
    tampered["later"]["consistency"][0] = "11" * 32
    assert not verify_bundle(tampered, net.genesis).valid


def _flip_b64(value: str, pos: int) -> str:
    data = bytearray(base64.b64decode(value))
    data[pos % len(data)] ^= 0x01
    return base64.b64encode(bytes(data)).decode()


def _tamperings(answer: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for i in range(len(answer["records"])):
        for field in ("envelope",):
            for pos in (0, 7, -1):
                t = copy.deepcopy(answer)
                t["records"][i][field] = _flip_b64(t["records"][i][field], pos)
                out.append(t)
        for j in range(len(answer["records"][i]["inclusion"])):
            t = copy.deepcopy(answer)
            h = t["records"][i]["inclusion"][j]
            t["records"][i]["inclusion"][j] = ("0" if h[0] != "0" else "1") + h[1:]
            out.append(t)
    for pos in (0, 20, -1):
        t = copy.deepcopy(answer)
        t["checkpoint"]["header"] = _flip_b64(t["checkpoint"]["header"], pos)
        out.append(t)
    t = copy.deepcopy(answer)
    t["checkpoint"]["qc"]["signatures"][0]["sig"] = _flip_b64(t["checkpoint"]["qc"]["signatures"][0]["sig"], 3)
    out.append(t)
    return out


@pytest.mark.parametrize("kind", ["subject", "status", "provenance", "shares"])
def test_every_tampering_fails(ledger: Any, kind: str) -> None:
    net, store, ids = ledger
    if kind == "shares":
        pub = net.record(1, "dataset.publish", "ds-2", {"title": "t", "content_hash": content("d"),
                                                      "schema_hash": content("s"), "classification": "public"}, ts=T0 + 40)
        commit_records(net, store, [pub], T0 + 40)
        answer = answers.dataset_shares(store, net.genesis, "ds-2")
    else:
        answer = {"subject": lambda: answers.subject_history(store, net.genesis, "LIC-1"),
                  "status": lambda: answers.cert_status(store, net.genesis, "LIC-1", T0 + 15 * DAY),
                  "provenance": lambda: answers.provenance(store, net.genesis, ids["retail"], 8)}[kind]()
    assert verify_answer(answer, kind, net.genesis).valid
    for t in _tamperings(answer):
        assert not verify_answer(t, kind, net.genesis).valid
    if kind == "status":  # a lie about the status itself, with every proof intact
        t = copy.deepcopy(answer)
        t["status"] = "valid"
        assert not verify_answer(t, kind, net.genesis).valid
    if kind == "provenance":  # a dropped edge
        t = copy.deepcopy(answer)
        t["edges"] = t["edges"][1:]
        assert not verify_answer(t, kind, net.genesis).valid
    if kind == "subject":  # records out of order
        t = copy.deepcopy(answer)
        t["records"] = t["records"][::-1]
        assert not verify_answer(t, kind, net.genesis).valid
