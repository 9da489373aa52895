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
    assert answer["direction"] == "back" and "truncated" not in answer and "lists" not in answer
    assert verify_answer(answer, "provenance", net.genesis).valid
    shallow = answers.provenance(store, net.genesis, ids["retail"], 1)
    assert {r["id"] for r in shallow["records"]} == {ids["retail"].hex(), ids["pack"].hex()}
    assert verify_answer(shallow, "provenance", net.genesis).valid
    # dropping an ancestor within the requested depth is caught, edges and all
    dropped = copy.deepcopy(answer)
    gone = ids["proc"].hex()
    dropped["records"] = [r for r in dropped["records"] if r["id"] != gone]
    dropped["edges"] = [e for e in dropped["edges"] if e[0] != gone]
    assert verify_answer(dropped, "provenance", net.genesis).checks[-1]["check"] == "list"


def test_forward_provenance_from_the_harvest(ledger: Any) -> None:
    """Everything made from the farm's batch, each hop proven by a refby list."""
    net, store, ids = ledger
    answer = answers.provenance(store, net.genesis, ids["raw"], 8, "forward")
    assert {r["id"] for r in answer["records"]} == {ids[k].hex() for k in ("raw", "proc", "pack", "retail")}
    assert sorted(answer["edges"]) == sorted([[ids["proc"].hex(), ids["raw"].hex()],
                                              [ids["pack"].hex(), ids["proc"].hex()],
                                              [ids["retail"].hex(), ids["pack"].hex()]])
    assert set(answer["lists"]) == {ids[k].hex() for k in ("raw", "proc", "pack", "retail")}
    assert answer["lists"][ids["retail"].hex()]["positions"] == []  # nothing was made from it
    assert verify_answer(answer, "provenance", net.genesis).valid
    mid = answers.provenance(store, net.genesis, ids["proc"], 1, "forward")
    assert {r["id"] for r in mid["records"]} == {ids["proc"].hex(), ids["pack"].hex()}
    assert set(mid["lists"]) == {ids["proc"].hex()} and verify_answer(mid, "provenance", net.genesis).valid
    leaf = answers.provenance(store, net.genesis, ids["retail"], 8, "forward")
    assert [r["id"] for r in leaf["records"]] == [ids["retail"].hex()] and leaf["edges"] == []
    assert verify_answer(leaf, "provenance", net.genesis).valid
    for depth, direction, code in ((-1, "forward", "bad_depth"), (answers.PROVENANCE_DEPTH_MAX + 1, "forward",
                                                                   "bad_depth"), (1, "up", "bad_direction")):
        with pytest.raises(InvalidInput) as info:
            answers.provenance(store, net.genesis, ids["raw"], depth, direction)
        assert info.value.code == code
    with pytest.raises(NotFound):
        answers.provenance(store, net.genesis, bytes(32), 1, "forward")


def test_a_graph_above_the_cap_is_refused(ledger: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above PROVENANCE_NODES_MAX records the answer is 422 graph_too_large, never cut short."""
    net, store, ids = ledger
    monkeypatch.setattr(answers, "PROVENANCE_NODES_MAX", 3)
    for direction, root in (("back", "retail"), ("forward", "raw")):
        with pytest.raises(InvalidInput) as info:
            answers.provenance(store, net.genesis, ids[root], 8, direction)
        assert (info.value.code, info.value.status) == ("graph_too_large", 422)
        assert len(answers.provenance(store, net.genesis, ids[root], 2, direction)["records"]) == 3


@pytest.mark.parametrize("at,status", [
    (T0 - 1, "not_yet_valid"), (T0 + DAY, "valid"), (T0 + 10 * DAY, "suspended"), (T0 + 15 * DAY, "suspended"),
    (T0 + 20 * DAY, "valid"), (T0 + 25 * DAY, "valid"), (T0 + 30 * DAY, "revoked"), (T0 + 200 * DAY, "revoked"),
])
def test_certificate_status_at_each_time(ledger: Any, at: int, status: str) -> None:
    net, store, _ = ledger
    answer = answers.cert_status(store, net.genesis, "LIC-1", at)
    assert answer["status"] == status and answer["issuer"] == net.genesis.validators[1].dept
    assert verify_answer(answer, "status", net.genesis).valid


def test_certificate_status_returns_the_whole_list(ledger: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every record about the certificate, whatever the time: not only those that decide it."""
    net, store, ids = ledger
    every = [ids[k].hex() for k in ("cert.issue", "cert.suspend", "cert.resume", "cert.revoke")]
    for at in (T0 - 1, T0 + DAY, T0 + 200 * DAY):
        answer = answers.cert_status(store, net.genesis, "LIC-1", at)
        assert [r["id"] for r in answer["records"]] == every
        assert answer["list"]["from"] == 0 and answer["list"]["positions"] == [0, 1, 2, 3]
    monkeypatch.setattr(answers, "CERT_RECORDS_MAX", 3)
    with pytest.raises(InvalidInput) as info:
        answers.cert_status(store, net.genesis, "LIC-1", T0)
    assert (info.value.code, info.value.status) == ("history_too_long", 422)


def test_certificate_expires_and_unknown_is_not_issued(ledger: Any) -> None:
    net, store, _ = ledger
    r = net.record(2, "cert.issue", "LIC-2", {"cert_type": "x", "holder": content("h"), "content_hash": content("c"),
                                            "valid_from": T0, "valid_until": T0 + DAY}, ts=T0 + 20)
    commit_records(net, store, [r], T0 + 20)
    expired = answers.cert_status(store, net.genesis, "LIC-2", T0 + 2 * DAY)
    assert expired["status"] == "expired" and expired["issuer"] == net.genesis.validators[2].dept
    assert verify_answer(expired, "status", net.genesis).valid
    answer = answers.cert_status(store, net.genesis, "NOPE", T0)
    assert answer["status"] == "not_issued" and answer["records"] == [] and answer["issuer"] is None
    assert answer["list"]["entry"]["value"] is None and answer["list"]["positions"] == []
    assert verify_answer(answer, "status", net.genesis).valid


def test_subject_history_pages(ledger: Any) -> None:
    net, store, ids = ledger
    every = [ids[k].hex() for k in ("cert.issue", "cert.suspend", "cert.resume", "cert.revoke")]
    first = answers.subject_history(store, net.genesis, "LIC-1", limit=3)
    assert [r["id"] for r in first["records"]] == every[:3]
    assert (first["list"]["positions"], first["total"], first["next_from"]) == ([0, 1, 2], 4, 3)
    assert verify_answer(first, "subject", net.genesis).valid
    rest = answers.subject_history(store, net.genesis, "LIC-1", first["next_from"], 3)
    assert [r["id"] for r in rest["records"]] == every[3:] and rest["next_from"] is None
    assert rest["list"]["from"] == 3 and verify_answer(rest, "subject", net.genesis).valid
    middle = answers.subject_history(store, net.genesis, "LIC-1", start=1, limit=2)
    assert [r["id"] for r in middle["records"]] == every[1:3] and middle["next_from"] == 3
    assert verify_answer(middle, "subject", net.genesis).valid
    # paging covers each position once: the pages together are the whole list
    pages, start = [], 0
    while start is not None:
        page = answers.subject_history(store, net.genesis, "LIC-1", start, 1)
        pages += [r["id"] for r in page["records"]]
        start = page["next_from"]
    assert pages == every
    for bad in (dict(limit=0), dict(limit=answers.SUBJECT_PAGE_MAX + 1), dict(start=-1)):
        with pytest.raises(InvalidInput):
            answers.subject_history(store, net.genesis, "LIC-1", **bad)


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
    assert len(answer["records"]) == 4 and answer["list"]["positions"] == [0, 1, 2, 3]
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


def test_bundle_checkpoint_section(ledger: Any) -> None:
    """A v2 bundle always carries the head as its checkpoint, a consistency proof from the
    record's block to it and the signer's key entry in its state."""
    net, store, ids = ledger
    bundle = build_bundle(store, net.genesis, ids["raw"])
    assert bundle["format"] == "ledgernode-evidence/2" and "later" not in bundle
    assert set(bundle["state"]) == {"checkpoint", "consistency", "key"} and bundle["state"]["consistency"]
    verdict = verify_bundle(bundle, net.genesis)
    assert verdict.valid and [c["check"] for c in verdict.checks][-2:] == ["checkpoint", "key"]
    assert verdict.facts["checkpoint"]["height"] == store.height and verdict.facts["block"]["height"] == 1
    tampered = copy.deepcopy(bundle)
    tampered["state"]["consistency"][0] = "11" * 32
    failed = verify_bundle(tampered, net.genesis).checks[-1]
    assert not failed["ok"] and failed["check"] == "checkpoint"
    other_key = copy.deepcopy(bundle)
    other_key["state"]["key"] = build_bundle(store, net.genesis, ids["proc"])["state"]["key"]
    failed = verify_bundle(other_key, net.genesis).checks[-1]
    assert not failed["ok"] and failed["check"] == "key"
    head = build_bundle(store, net.genesis, ids["cert.revoke"])  # in the head block: nothing to prove
    assert head["state"]["consistency"] == [] and verify_bundle(head, net.genesis).valid


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
    for key_id in answer["keys"]:
        t = copy.deepcopy(answer)
        t["keys"][key_id]["value"] = _flip_b64(t["keys"][key_id]["value"], 5)
        out.append(t)
    lists = [answer["list"]] if "list" in answer else list(answer.get("lists", {}).values())
    for n, lst in enumerate(lists):
        for i, proof in enumerate(lst["list_inclusion"]):
            for j in range(len(proof)):
                t = copy.deepcopy(answer)
                target = t["list"] if "list" in t else list(t["lists"].values())[n]
                h = target["list_inclusion"][i][j]
                target["list_inclusion"][i][j] = ("0" if h[0] != "0" else "1") + h[1:]
                out.append(t)
        t = copy.deepcopy(answer)
        target = t["list"] if "list" in t else list(t["lists"].values())[n]
        if target["entry"]["value"] is not None:
            target["entry"]["value"] = _flip_b64(target["entry"]["value"], 3)
            out.append(t)
    return out


@pytest.mark.parametrize("kind", ["subject", "status", "provenance", "forward", "shares"])
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
                  "provenance": lambda: answers.provenance(store, net.genesis, ids["retail"], 8),
                  "forward": lambda: answers.provenance(store, net.genesis, ids["raw"], 8, "forward")}[kind]()
        kind = "provenance" if kind == "forward" else kind
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
