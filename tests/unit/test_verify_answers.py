"""Checks of the auditors' answers and of two checkpoints (docs/verification.md section 2.2;
docs/protocol.md section 12, answers `ledgernode-answer/2`): the one-line claim a valid
verdict states (complete or which part of the list), the `list` check that catches a record
left out (of a subject, status or shares answer, or a referrer of a forward provenance
answer), an entry proven for another name or in another checkpoint's state, failure
reasons that name the record or checkpoint that failed, the claims checks, and
`verify-consistency`'s exit codes (2 for a file that is not a checkpoint or proof, 1 for a
failed check, with a sentence for checkpoints given in the wrong order)."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledgernode import statemap
from ledgernode.auditing import answers, checkpoints
from ledgernode.auditing.answers import verify_answer
from ledgernode.auditing.checkpoints import verify_consistency_files
from ledgernode.auditing.lists import entry_doc
from ledgernode.cli import main
from ledgernode.errors import InvalidInput
from ledgernode.records import decode_envelope
from ledgernode.storage import Store
from ledgernode.times import utc_short
from ledgernode.verify import Unusable, render
from tests.fixtures import T0, Net, commit_records, content
from tests.unit.test_verify import run_with_closed_stdout

DAY = 86_400_000


@dataclass
class Ledger:
    net: Net
    store: Store
    ids: dict[str, str]


def _commit(ledger: Ledger, name: str, raw: bytes, t: int) -> bytes:
    commit_records(ledger.net, ledger.store, [raw], t)
    rid = decode_envelope(raw, ledger.net.genesis).record_id
    ledger.ids[name] = rid.hex()
    return rid


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    """A licence issued and suspended by market, a dataset with a live, a revoked and an
    expired grant and one access, a three-step provenance chain (farm -> port -> shop)
    whose farm batch also went into a bakery's bread, and, last, a second licence."""
    net = Net()
    led = Ledger(net, Store.memory(), {})
    _commit(led, "issue", net.record(1, "cert.issue", "LIC-1", {
        "cert_type": "licence", "holder": content("h"), "content_hash": content("doc"),
        "valid_from": T0, "valid_until": T0 + 365 * DAY}, ts=T0 + 1), T0 + 1)
    _commit(led, "suspend", net.record(1, "cert.suspend", "LIC-1", {
        "reason": "audit", "effective": T0 + 10 * DAY}, ts=T0 + 2), T0 + 2)
    _commit(led, "publish", net.record(1, "dataset.publish", "ds-1", {
        "title": "t", "content_hash": content("d"), "schema_hash": content("s"),
        "classification": "internal"}, ts=T0 + 3), T0 + 3)
    grants = {}
    for i, (name, expires) in enumerate((("live", T0 + 100 * DAY), ("revoked", T0 + 100 * DAY),
                                         ("expired", T0 + 1000))):
        grants[name] = _commit(led, name, net.record(1, "share.grant", "ds-1", {
            "to_dept": "health", "purpose": "audit", "legal_basis": "law 1", "expires": expires},
            ts=T0 + 4 + i), T0 + 4 + i)
    _commit(led, "access", net.record(2, "share.access", "ds-1", {
        "grant": grants["live"], "purpose": "audit", "content_hash": content("d")}, ts=T0 + 8), T0 + 8)
    _commit(led, "revoke", net.record(1, "share.revoke", "ds-1", {"grant": grants["revoked"]}, ts=T0 + 9), T0 + 9)
    farm = _commit(led, "farm", net.record(0, "trace.event", "batch-7", {"activity": "harvest"}, ts=T0 + 10),
                   T0 + 10)
    port = _commit(led, "port", net.record(3, "trace.event", "lot-3", {"activity": "import"}, ts=T0 + 2000,
                                           refs=(farm,)), T0 + 2000)
    _commit(led, "shop", net.record(1, "trace.event", "sku-1", {"activity": "retail"}, ts=T0 + 2001,
                                    refs=(port,)), T0 + 2001)
    _commit(led, "bakery", net.record(2, "trace.event", "bread-2", {"activity": "baking"}, ts=T0 + 2002,
                                      refs=(farm,)), T0 + 2002)
    _commit(led, "issue2", net.record(1, "cert.issue", "LIC-2", {
        "cert_type": "licence", "holder": content("h2"), "content_hash": content("doc2"),
        "valid_from": T0, "valid_until": T0 + 365 * DAY}, ts=T0 + 2003), T0 + 2003)
    return led


def _flip_b64(value: str, pos: int) -> str:
    data = bytearray(base64.b64decode(value))
    data[pos % len(data)] ^= 0x01
    return base64.b64encode(bytes(data)).decode()


def _claim_line(verdict: Any) -> str:
    """The claim's line of the rendered verdict, checked to come before every check."""
    lines = render(verdict).splitlines()
    claim = verdict.facts["claim"]
    i = lines.index(f"已核实 verified: {claim['zh']} / {claim['en']}")
    assert all(i < j for j, line in enumerate(lines) if line.startswith("[通过 PASS]"))
    return lines[i]


# -- claims -----------------------------------------------------------------------------


def _as_of(ledger: Ledger) -> str:
    """"as of height H, <checkpoint time>": the head is every answer's checkpoint."""
    head = ledger.store.head()
    assert head is not None
    return f"as of height {head.height}, {utc_short(head.time)}"


def test_status_claim(ledger: Ledger) -> None:
    g, h, as_of = ledger.net.genesis, ledger.store.height, _as_of(ledger)
    at = T0 + 15 * DAY + 10 * 3_600_000
    answer = answers.cert_status(ledger.store, g, "LIC-1", at)
    assert [r["id"] for r in answer["records"]] == [ledger.ids["issue"], ledger.ids["suspend"]]
    verdict = verify_answer(answer, "status", g)
    assert verdict.valid
    late = "; note: the time asked for is after the checkpoint, so later records may still change it"
    claim = verdict.facts["claim"]
    assert claim["en"] == (f"certificate LIC-1 status at 2026-01-16 10:00 UTC: suspended, issued by market "
                           f"(from all 2 records about it (complete) {as_of}){late}")
    assert claim["zh"].startswith("证照 LIC-1 在 2026-01-16 10:00 UTC 的状态：暂停，签发部门 market")
    assert claim["zh"].endswith("；注意：查询时间晚于检查点，之后的记录仍可能改变状态")
    assert {k: v for k, v in claim.items() if k not in ("zh", "en")} == {
        "kind": "status", "number": "LIC-1", "at": at, "status": "suspended", "issuer": "market",
        "records": 2, "complete": True, "checkpoint_height": h, "epoch": 0,
    }
    _claim_line(verdict)
    # asked for a time the checkpoint has passed: no warning, and the suspension is not yet effective
    early = verify_answer(answers.cert_status(ledger.store, g, "LIC-1", T0 + 2), "status", g).facts["claim"]
    assert early["en"] == (f"certificate LIC-1 status at 2026-01-01 00:00:00.002 UTC: valid, issued by market "
                           f"(from all 2 records about it (complete) {as_of})")
    unknown = verify_answer(answers.cert_status(ledger.store, g, "NOPE", T0 + 1234), "status", g)
    assert unknown.facts["claim"]["en"] == (f"certificate NOPE status at 2026-01-01 00:00:01.234 UTC: not issued "
                                            f"(from no records about it (complete: there are none) {as_of})")
    assert (unknown.facts["claim"]["records"], unknown.facts["claim"]["issuer"]) == (0, None)


def test_status_answers_hold_the_whole_list_whatever_the_time(ledger: Ledger) -> None:
    """Not just the records that decide the status: every record about the certificate."""
    g = ledger.net.genesis
    for at in (T0 - 1, T0 + 2, T0 + 15 * DAY):
        answer = answers.cert_status(ledger.store, g, "LIC-1", at)
        assert [r["id"] for r in answer["records"]] == [ledger.ids["issue"], ledger.ids["suspend"]]
        assert answer["list"]["from"] == 0 and answer["list"]["positions"] == [0, 1]
        assert verify_answer(answer, "status", g).valid
    assert answers.cert_status(ledger.store, g, "LIC-1", T0 - 1)["status"] == "not_yet_valid"


def test_subject_claim_pages(ledger: Ledger) -> None:
    g, ids, as_of = ledger.net.genesis, ledger.ids, _as_of(ledger)
    ds = [ids[k] for k in ("publish", "live", "revoked", "expired", "access", "revoke")]
    first = answers.subject_history(ledger.store, g, "ds-1", limit=2)
    assert [r["id"] for r in first["records"]] == ds[:2]
    assert (first["list"]["from"], first["list"]["positions"], first["total"], first["next_from"]) == (0, [0, 1], 6, 2)
    assert "after" not in first and "next_after" not in first
    assert all("height" not in r for r in first["records"])
    verdict = verify_answer(first, "subject", g)
    claim = verdict.facts["claim"]
    assert claim["en"] == f"subject ds-1: records 1-2 of 6 about ds-1 {as_of}"
    assert claim["zh"].startswith("主体 ds-1：关于 ds-1 的第 1–2 条记录（共 6 条），截至高度")
    assert (claim["records"], claim["total"], claim["from"], claim["complete"]) == (2, 6, 0, False)
    _claim_line(verdict)
    middle = answers.subject_history(ledger.store, g, "ds-1", start=1, limit=2)
    assert [r["id"] for r in middle["records"]] == ds[1:3] and middle["next_from"] == 3
    claim = verify_answer(middle, "subject", g).facts["claim"]
    assert claim["en"] == f"subject ds-1: records 2-3 of 6 about ds-1 {as_of}"
    last = answers.subject_history(ledger.store, g, "ds-1", start=first["next_from"])
    assert [r["id"] for r in last["records"]] == ds[2:] and last["next_from"] is None
    claim = verify_answer(last, "subject", g).facts["claim"]
    assert claim["en"] == f"subject ds-1: records 3-6 of 6 about ds-1 {as_of}" and not claim["complete"]
    whole = verify_answer(answers.subject_history(ledger.store, g, "ds-1"), "subject", g).facts["claim"]
    assert whole["en"] == f"subject ds-1: all 6 records about ds-1 (complete) {as_of}" and whole["complete"]
    beyond = answers.subject_history(ledger.store, g, "ds-1", start=99)
    assert beyond["records"] == [] and beyond["list"]["from"] == 6 and beyond["next_from"] is None
    claim = verify_answer(beyond, "subject", g).facts["claim"]
    assert claim["en"] == f"subject ds-1: no records from position 7 of the 6 about ds-1 {as_of}"
    assert not claim["complete"]
    none = verify_answer(answers.subject_history(ledger.store, g, "none"), "subject", g).facts["claim"]
    assert none["en"] == f"subject none: no records about none (complete: there are none) {as_of}"
    assert (none["records"], none["total"], none["complete"]) == (0, 0, True)
    for bad, code in (({"start": -1}, "bad_from"), ({"limit": 0}, "bad_limit"),
                      ({"limit": answers.SUBJECT_PAGE_MAX + 1}, "bad_limit")):
        with pytest.raises(InvalidInput) as info:
            answers.subject_history(ledger.store, g, "ds-1", **bad)
        assert info.value.code == code


def test_shares_claim_counts_grants_as_of_the_checkpoint(ledger: Ledger) -> None:
    g, as_of = ledger.net.genesis, _as_of(ledger)
    answer = answers.dataset_shares(ledger.store, g, "ds-1")
    assert len(answer["records"]) == 6 and answer["list"]["positions"] == list(range(6))
    verdict = verify_answer(answer, "shares", g)
    claim = verdict.facts["claim"]
    assert claim["en"] == ("dataset ds-1 (owner market): 3 grants (1 live, 1 revoked, 1 expired at the checkpoint "
                           f"time), 1 access; from all 6 records about it (complete) {as_of}")
    assert claim["zh"].startswith("数据集 ds-1（所有者 market）：共享授权 3 项（截至检查点时间：有效 1、已撤销 1、"
                                  "已过期 1），访问 1 次；依据")
    assert {k: claim[k] for k in ("grants", "live", "revoked", "expired", "accesses", "owner", "records",
                                  "complete")} == {
        "grants": 3, "live": 1, "revoked": 1, "expired": 1, "accesses": 1, "owner": "market", "records": 6,
        "complete": True}
    _claim_line(verdict)


def test_shares_owner_must_follow_from_the_publish_record(ledger: Ledger) -> None:
    g = ledger.net.genesis
    answer = answers.dataset_shares(ledger.store, g, "ds-1")
    lie = dict(answer, owner="health")
    failed = verify_answer(lie, "shares", g).checks[-1]
    assert (failed["check"], failed["part"]) == ("claims", "claims") and not failed["ok"]
    assert "the answer's dataset owner is not the department that signed its first publish record" in failed["error"]
    grants = copy.deepcopy(answer)
    grants["grants"][0]["purpose"] = "marketing"
    failed = verify_answer(grants, "shares", g).checks[-1]
    assert failed["check"] == "claims" and "the answer's grants, revocations or accesses" in failed["error"]


def test_provenance_claim(ledger: Ledger) -> None:
    g, h, ids, as_of = ledger.net.genesis, ledger.store.height, ledger.ids, _as_of(ledger)
    answer = answers.provenance(ledger.store, g, bytes.fromhex(ids["shop"]), 8)
    assert answer["direction"] == "back" and "lists" not in answer and "truncated" not in answer
    verdict = verify_answer(answer, "provenance", g)
    claim = verdict.facts["claim"]
    assert claim["en"] == f"provenance of root record {ids['shop'][:16]}…: all 2 ancestors within depth 8, 2 edges " \
                          f"(complete) {as_of}"
    assert claim["zh"].startswith(f"溯源：根记录 {ids['shop'][:16]}… 在深度 8 以内的全部来源记录 2 条、"
                                  "引用 2 条（完整）")
    assert {k: v for k, v in claim.items() if k not in ("zh", "en")} == {
        "kind": "provenance", "root": ids["shop"], "depth": 8, "direction": "back", "records": 3, "edges": 2,
        "complete": True, "checkpoint_height": h, "epoch": 0}
    _claim_line(verdict)
    shallow = answers.provenance(ledger.store, g, bytes.fromhex(ids["shop"]), 0)
    assert [r["id"] for r in shallow["records"]] == [ids["shop"]] and shallow["edges"] == []
    claim = verify_answer(shallow, "provenance", g).facts["claim"]
    assert f"all 0 ancestors within depth 0, 0 edges (complete) {as_of}" in claim["en"]


def test_forward_provenance_finds_every_record_made_from_a_batch(ledger: Ledger) -> None:
    """A food recall: from the farm's batch forward, the import, the bakery's bread and the shop's
    retail record, each proven with the refby list of what it was made into."""
    g, ids, as_of = ledger.net.genesis, ledger.ids, _as_of(ledger)
    answer = answers.provenance(ledger.store, g, bytes.fromhex(ids["farm"]), 8, "forward")
    assert {r["id"] for r in answer["records"]} == {ids[k] for k in ("farm", "port", "bakery", "shop")}
    assert sorted(answer["edges"]) == sorted([[ids["port"], ids["farm"]], [ids["bakery"], ids["farm"]],
                                              [ids["shop"], ids["port"]]])
    assert set(answer["lists"]) == {ids[k] for k in ("farm", "port", "bakery", "shop")}
    assert answer["lists"][ids["farm"]]["positions"] == [0, 1] and answer["lists"][ids["shop"]]["positions"] == []
    verdict = verify_answer(answer, "provenance", g)
    assert verdict.valid, verdict.checks[-1]
    claim = verdict.facts["claim"]
    assert claim["en"] == f"provenance of root record {ids['farm'][:16]}…: all 3 descendants within depth 8, " \
                          f"3 edges (complete) {as_of}"
    assert (claim["direction"], claim["records"]) == ("forward", 4)
    _claim_line(verdict)
    one = answers.provenance(ledger.store, g, bytes.fromhex(ids["farm"]), 1, "forward")
    assert {r["id"] for r in one["records"]} == {ids[k] for k in ("farm", "port", "bakery")}
    assert set(one["lists"]) == {ids["farm"]}  # lists of the records within depth - 1 hops only
    assert verify_answer(one, "provenance", g).facts["claim"]["en"].startswith(
        f"provenance of root record {ids['farm'][:16]}…: all 2 descendants within depth 1, 2 edges")
    # the same chain read back from the shop reaches the farm and not the bakery
    back = answers.provenance(ledger.store, g, bytes.fromhex(ids["shop"]), 8, "back")
    assert {r["id"] for r in back["records"]} == {ids[k] for k in ("shop", "port", "farm")}
    with pytest.raises(InvalidInput) as info:
        answers.provenance(ledger.store, g, bytes.fromhex(ids["farm"]), 1, "sideways")
    assert info.value.code == "bad_direction"


def test_a_graph_too_large_is_refused_not_cut(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    g, ids = ledger.net.genesis, ledger.ids
    monkeypatch.setattr(answers, "PROVENANCE_NODES_MAX", 3)
    assert len(answers.provenance(ledger.store, g, bytes.fromhex(ids["shop"]), 8)["records"]) == 3
    with pytest.raises(InvalidInput) as info:
        answers.provenance(ledger.store, g, bytes.fromhex(ids["farm"]), 8, "forward")
    assert (info.value.code, info.value.status) == ("graph_too_large", 422)
    monkeypatch.setattr(answers, "CERT_RECORDS_MAX", 1)
    with pytest.raises(InvalidInput) as info:
        answers.cert_status(ledger.store, g, "LIC-1", T0)
    assert (info.value.code, info.value.status) == ("history_too_long", 422)
    assert answers.cert_status(ledger.store, g, "LIC-2", T0)["status"] == "valid"  # one record: not too long
    monkeypatch.setattr(answers, "SHARES_RECORDS_MAX", 5)
    with pytest.raises(InvalidInput) as info:
        answers.dataset_shares(ledger.store, g, "ds-1")
    assert (info.value.code, info.value.status) == ("history_too_long", 422)


# -- nothing left out ---------------------------------------------------------------------


def _failed(doc: dict[str, Any], kind: str, g: Any) -> dict[str, Any]:
    verdict = verify_answer(doc, kind, g)
    assert not verdict.valid
    failed = verdict.checks[-1]
    assert not failed["ok"] and [c["ok"] for c in verdict.checks[:-1]] == [True] * (len(verdict.checks) - 1)
    return failed


def _without(answer: dict[str, Any], record_id: str, trim_list: bool) -> dict[str, Any]:
    """`answer` with one record left out; with `trim_list` also its position and list proof,
    the list's later positions renumbered as if the record had never been there."""
    doc = copy.deepcopy(answer)
    i = [r["id"] for r in doc["records"]].index(record_id)
    del doc["records"][i]
    if trim_list:
        lst = doc["list"]
        del lst["list_inclusion"][i]
        lst["positions"] = lst["positions"][:-1]
    return doc


def test_a_record_left_out_of_a_subject_answer_fails_the_list(ledger: Ledger) -> None:
    g, ids = ledger.net.genesis, ledger.ids
    answer = answers.subject_history(ledger.store, g, "ds-1")
    assert verify_answer(answer, "subject", g).valid
    failed = _failed(_without(answer, ids["revoked"], False), "subject", g)
    assert failed["check"] == "list" and "do not match its records (a record was left out)" in failed["error"]
    failed = _failed(_without(answer, ids["revoked"], True), "subject", g)  # the later records moved up
    assert failed["check"] == "list" and "proof for position 2 fails" in failed["error"]
    # leaving out the last record and its position is an honest page, and says it is not all
    page = _without(answer, ids["revoke"], True)
    assert _failed(page, "subject", g)["check"] == "claims"  # it still says no page follows
    page["next_from"] = 5
    claim = verify_answer(page, "subject", g).facts["claim"]
    assert not claim["complete"] and claim["en"].startswith("subject ds-1: records 1-5 of 6 about ds-1")
    # one left out of the middle, its position skipped: the positions are no longer consecutive
    skip = copy.deepcopy(answer)
    del skip["records"][2]
    del skip["list"]["list_inclusion"][2]
    del skip["list"]["positions"][2]
    assert skip["list"]["positions"] == [0, 1, 3, 4, 5]
    failed = _failed(skip, "subject", g)
    assert failed["check"] == "list" and "positions skip one" in failed["error"]
    # a page that claims to start one later than it does: every list proof is for another position
    shifted = copy.deepcopy(answers.subject_history(ledger.store, g, "ds-1", start=1, limit=2))
    shifted["list"]["from"], shifted["list"]["positions"] = 2, [2, 3]
    failed = _failed(shifted, "subject", g)
    assert failed["check"] == "list" and "proof for position 2 fails" in failed["error"]


def test_a_wrong_entry_proof_fails_the_list(ledger: Ledger) -> None:
    g = ledger.net.genesis
    answer = answers.subject_history(ledger.store, g, "ds-1")
    other = answers.subject_history(ledger.store, g, "LIC-1")
    swapped = copy.deepcopy(answer)
    swapped["list"]["entry"] = other["list"]["entry"]  # a real entry of this state, for another name
    failed = _failed(swapped, "subject", g)
    assert failed["check"] == "list" and "the entry of another name" in failed["error"]
    altered = copy.deepcopy(answer)
    altered["list"]["entry"]["proof"]["siblings"][0] = "00" * 32
    assert _failed(altered, "subject", g)["check"] == "list"
    extra = copy.deepcopy(answer)
    extra["list"]["entry"]["note"] = "x"  # entries have exactly their keys
    failed = _failed(extra, "subject", g)
    assert failed["check"] == "list" and "its fields are wrong" in failed["error"]
    renamed = dict(answer, subject="LIC-1")  # the records are not in LIC-1's list
    assert _failed(renamed, "subject", g)["check"] == "list"


def test_a_record_left_out_of_a_status_answer_fails_the_list(ledger: Ledger) -> None:
    """A node hiding the suspension: the issue alone, claiming the licence valid."""
    g, ids = ledger.net.genesis, ledger.ids
    answer = answers.cert_status(ledger.store, g, "LIC-1", T0 + 15 * DAY)
    assert answer["status"] == "suspended"
    for trim in (False, True):
        hidden = dict(_without(answer, ids["suspend"], trim), status="valid")
        failed = _failed(hidden, "status", g)
        assert (failed["check"], failed["part"]) == ("list", "list")
        if trim:
            assert "the answer does not hold every record about it (1 of 2)" in failed["error"]


def test_a_status_answer_cannot_pass_off_another_names_absence(ledger: Ledger) -> None:
    """"Not issued" with the empty list of a name that really has none: the entry's proof is
    for that name's path, not the certificate's."""
    g = ledger.net.genesis
    answer = answers.cert_status(ledger.store, g, "LIC-1", T0 + 15 * DAY)
    absent = answers.cert_status(ledger.store, g, "NOPE", T0 + 15 * DAY)
    assert absent["list"]["entry"]["value"] is None and verify_answer(absent, "status", g).valid
    forged = dict(answer, records=absent["records"], list=absent["list"], status="not_issued", issuer=None)
    failed = _failed(forged, "status", g)
    assert failed["check"] == "list" and "does not match the checkpoint's state root" in failed["error"]
    # the real entry with none of its positions: not the whole list
    empty = dict(answer, records=[], status="not_issued", issuer=None,
                 list=dict(answer["list"], positions=[], list_inclusion=[]))
    failed = _failed(empty, "status", g)
    assert failed["check"] == "list" and "(0 of 2)" in failed["error"]


def test_an_absence_proven_in_another_checkpoints_state_fails_the_list(ledger: Ledger) -> None:
    """LIC-2 was issued in the last block: the state before it proves, truly, that it had no
    records then. Against the answer's checkpoint that proof fails."""
    g, store = ledger.net.genesis, ledger.store
    answer = answers.cert_status(store, g, "LIC-2", T0 + DAY)
    assert answer["status"] == "valid" and verify_answer(answer, "status", g).valid
    before = store.load_header(store.height - 1)
    stale = entry_doc(store.map_at(before.state), "subject", "LIC-2")
    assert stale["value"] is None
    assert statemap.verify(before.state, statemap.path("subject", "LIC-2"), None,
                           statemap.proof_from_json(stale["proof"]))  # a genuine proof, of another state
    forged = dict(answer, records=[], status="not_issued", issuer=None,
                  list={"entry": stale, "from": 0, "positions": [], "list_inclusion": []})
    failed = _failed(forged, "status", g)
    assert failed["check"] == "list" and "does not match the checkpoint's state root" in failed["error"]


def test_a_record_left_out_of_a_shares_answer_fails_the_list(ledger: Ledger) -> None:
    """A node hiding the revocation, its grants made to agree with the records it kept."""
    g, ids = ledger.net.genesis, ledger.ids
    answer = answers.dataset_shares(ledger.store, g, "ds-1")
    for trim in (False, True):
        hidden = _without(answer, ids["revoke"], trim)
        for grant in hidden["grants"]:
            grant["revoked_by"] = None
        failed = _failed(hidden, "shares", g)
        assert (failed["check"], failed["part"]) == ("list", "list")
    access = _failed(_without(answer, ids["access"], True), "shares", g)  # the list is checked before claims
    assert access["check"] == "list"


def test_a_referrer_left_out_of_a_forward_answer_fails_the_list(ledger: Ledger) -> None:
    g, ids = ledger.net.genesis, ledger.ids
    answer = answers.provenance(ledger.store, g, bytes.fromhex(ids["farm"]), 8, "forward")
    for gone in ("bakery", "shop"):  # a direct referrer of the root, and one two hops away
        doc = copy.deepcopy(answer)
        doc["records"] = [r for r in doc["records"] if r["id"] != ids[gone]]
        doc["edges"] = [e for e in doc["edges"] if ids[gone] not in e]
        del doc["lists"][ids[gone]]
        failed = _failed(doc, "provenance", g)
        assert failed["check"] == "list" and "referrers" in failed["error"], failed
    # the referrers list of the farm's batch cut to the one record the node chose to keep
    cut = copy.deepcopy(answer)
    cut["records"] = [r for r in cut["records"] if r["id"] != ids["bakery"]]
    cut["edges"] = [e for e in cut["edges"] if ids["bakery"] not in e]
    del cut["lists"][ids["bakery"]]
    farm = cut["lists"][ids["farm"]]
    assert farm["positions"] == [0, 1]  # the port's record first: it was committed before the bakery's
    farm["positions"], farm["list_inclusion"] = [0], farm["list_inclusion"][:1]
    failed = _failed(cut, "provenance", g)
    assert failed["check"] == "list" and "are missing (1 of 2)" in failed["error"]
    no_list = copy.deepcopy(answer)
    del no_list["lists"][ids["port"]]
    assert _failed(no_list, "provenance", g)["check"] == "list"
    extra_list = copy.deepcopy(answers.provenance(ledger.store, g, bytes.fromhex(ids["farm"]), 1, "forward"))
    extra_list["lists"][ids["port"]] = answer["lists"][ids["port"]]  # beyond depth - 1 hops
    assert _failed(extra_list, "provenance", g)["check"] == "list"
    relabelled = dict(answer, direction="back")  # the edges point the other way
    assert _failed(relabelled, "provenance", g)["check"] == "list"


def test_a_provenance_answer_holds_exactly_the_records_within_depth(ledger: Ledger) -> None:
    g, ids = ledger.net.genesis, ledger.ids
    back = answers.provenance(ledger.store, g, bytes.fromhex(ids["shop"]), 8)
    dropped = copy.deepcopy(back)
    dropped["records"] = [r for r in dropped["records"] if r["id"] != ids["farm"]]
    dropped["edges"] = [e for e in dropped["edges"] if ids["farm"] not in e]
    failed = _failed(dropped, "provenance", g)
    assert failed["check"] == "list" and "a record within the requested depth is missing" in failed["error"]
    shallower = dict(back, depth=1)  # the farm record lies beyond one hop
    failed = _failed(shallower, "provenance", g)
    assert failed["check"] == "list" and "beyond the requested depth" in failed["error"]
    edge = dict(back, edges=back["edges"][1:])
    failed = _failed(edge, "provenance", g)
    assert failed["check"] == "list" and "edges are not exactly the links" in failed["error"]


# -- failure reasons --------------------------------------------------------------------


def test_positions_that_only_compare_equal_fail_the_list_without_a_crash(ledger: Ledger) -> None:
    """0.0 == 0 and True == 1 in Python: positions must be ints, not merely equal to them."""
    g = ledger.net.genesis
    answer = answers.subject_history(ledger.store, g, "ds-1")
    for fake in ([float(p) for p in answer["list"]["positions"]],
                 [True if p == 1 else p for p in answer["list"]["positions"]]):
        doc = copy.deepcopy(answer)
        doc["list"]["positions"] = fake
        failed = _failed(doc, "subject", g)
        assert failed["check"] == "list" and "positions" in failed["error"]


def test_answer_reasons_name_the_record_or_checkpoint(ledger: Ledger) -> None:
    g = ledger.net.genesis
    answer = answers.subject_history(ledger.store, g, "ds-1")
    n = len(answer["records"])

    def failed(doc: dict[str, Any]) -> dict[str, Any]:
        return _failed(doc, "subject", g)

    record = copy.deepcopy(answer)
    record["records"][1]["envelope"] = _flip_b64(record["records"][1]["envelope"], 40)
    f = failed(record)  # the record's id (kept for people, and checked) no longer matches its bytes
    assert (f["check"], f["part"]) in (("records", "record_id"), ("records", "record_bytes"))
    assert f["error"].startswith(f"第 2 条记录（共 {n} 条）：")
    assert f" / record 2 of {n}: the record's " in f["error"]
    del record["records"][1]["id"]  # without an id: altered bytes are another leaf, not in the log
    f = failed(record)
    assert (f["check"], f["part"]) == ("records", "inclusion")
    assert (f" / record 2 of {n}: the record's inclusion proof does not lead to the log root of the checkpoint"
            in f["error"])
    wrong_id = copy.deepcopy(answer)
    wrong_id["records"][1]["id"] = answer["records"][2]["id"]
    assert failed(wrong_id)["check"] == "records"
    garbage = copy.deepcopy(answer)
    garbage["records"][0]["envelope"] = "not base64"
    f = failed(garbage)
    assert (f["check"], f["part"]) == ("records", "record_bytes") and f"record 1 of {n}" in f["error"]
    proof = copy.deepcopy(answer)
    proof["records"][3]["inclusion"][0] = "00" * 32
    f = failed(proof)
    assert f["part"] == "inclusion" and (f"record 4 of {n}: the record's inclusion proof does not lead to the log "
                                         "root of the checkpoint") in f["error"]
    summary = copy.deepcopy(answer)
    summary["checkpoint"]["log_size"] -= 1
    f = failed(summary)
    assert (f["check"], f["part"]) == ("checkpoint", "checkpoint")
    assert "the checkpoint's summary (log size, log root or height) differs from its signed header" in f["error"]
    short = copy.deepcopy(answer)
    short["checkpoint"]["qc"]["signatures"].pop()
    f = failed(short)
    assert f["part"] == "qc" and "too few validators signed the checkpoint (a quorum is needed)" in f["error"]
    header = copy.deepcopy(answer)
    header["checkpoint"]["header"] = "not base64"
    assert "the checkpoint's header: missing or damaged (not base64 text)" in failed(header)["error"]
    signer = next(iter(answer["keys"]))
    no_key = copy.deepcopy(answer)
    del no_key["keys"][signer]
    f = failed(no_key)
    assert (f["check"], f["part"]) == ("key", "key") and "key entry is damaged" in f["error"]
    other_key = copy.deepcopy(answer)
    [other] = answers.subject_history(ledger.store, g, "lot-3")["keys"].values()  # the port's key
    other_key["keys"][signer] = other
    f = failed(other_key)
    assert f["check"] == "key" and "key entry is the entry of another name" in f["error"]
    wrong_proof = copy.deepcopy(answer)
    lists = wrong_proof["list"]["list_inclusion"]
    lists[0], lists[1] = lists[1], lists[0]
    f = failed(wrong_proof)
    assert f["check"] == "list" and "proof for position 0 fails" in f["error"]


def test_wrong_kind_says_what_the_file_is(ledger: Ledger) -> None:
    g = ledger.net.genesis
    status = answers.cert_status(ledger.store, g, "LIC-1", T0)
    with pytest.raises(Unusable, match=r"is a 'status' answer \(a certificate's status\), not a 'subject' answer: "
                                       r"check it with --kind status"):
        verify_answer(status, "subject", g)
    with pytest.raises(Unusable, match=r"error answer from a node \(not_found: gone\), saved by mistake"):
        verify_answer({"error": {"code": "not_found", "message": "gone"}}, "status", g)
    with pytest.raises(Unusable, match="an empty JSON object"):
        verify_answer({}, "status", g)


# -- two checkpoints ----------------------------------------------------------------------


def _consistency(ledger: Ledger) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    old, new = checkpoints.checkpoint(ledger.store, 3), checkpoints.checkpoint(ledger.store)
    return old, new, checkpoints.consistency(ledger.store, old["log_size"], new["log_size"])


def test_consistency_claim(ledger: Ledger) -> None:
    old, new, proof = _consistency(ledger)
    verdict = verify_consistency_files(old, new, proof, ledger.net.genesis)
    h = ledger.store.height
    assert verdict.facts["claim"] == {
        "zh": f"账本日志从 3 条记录（高度 3）增长到 {new['log_size']} 条（高度 {h}），已有记录未被改写",
        "en": f"log grew from 3 leaves (height 3) to {new['log_size']} (height {h}) without rewriting",
        "old_height": 3, "old_log_size": 3, "new_height": h, "new_log_size": new["log_size"],
    }
    _claim_line(verdict)


def test_swapped_checkpoints_are_said_to_be_swapped(ledger: Ledger) -> None:
    old, new, proof = _consistency(ledger)
    failed = verify_consistency_files(new, old, proof, ledger.net.genesis).checks[-1]
    assert failed["part"] == "order" and not failed["ok"]
    assert (f"the checkpoints look swapped: the old one (height {ledger.store.height}, log size {new['log_size']}) "
            "is newer than the new one (height 3, log size 3). Give the older checkpoint first: "
            "python -m ledgernode verify-consistency OLDER.json NEWER.json PROOF.json") in failed["error"]
    assert failed["error"].startswith("两个检查点的顺序似乎颠倒了")
    other = checkpoints.consistency(ledger.store, 2, new["log_size"])
    failed = verify_consistency_files(old, new, other, ledger.net.genesis).checks[-1]
    assert failed["part"] == "proof" and "the consistency proof is not for these two checkpoints" in failed["error"]
    assert f"fetch /v1/proofs/consistency?from=3&to={new['log_size']}" in failed["error"]
    bad = copy.deepcopy(proof)
    bad["proof"][0] = "00" * 32
    failed = verify_consistency_files(old, new, bad, ledger.net.genesis).checks[-1]
    assert failed["part"] == "proof" and "the consistency proof fails" in failed["error"]
    forged = dict(new, header=_flip_b64(new["header"], 30))
    failed = verify_consistency_files(old, forged, proof, ledger.net.genesis).checks[-1]
    assert "the new checkpoint's" in failed["error"]


def test_files_that_are_not_checkpoints_are_unusable(ledger: Ledger) -> None:
    old, new, proof = _consistency(ledger)
    error = {"error": {"code": "not_found", "message": "no block at height 99"}}
    status = answers.cert_status(ledger.store, ledger.net.genesis, "LIC-1", T0)
    for args, words in [
        ((error, new, proof), "the old checkpoint file is an error answer from a node (not_found: no block at height"),
        (({}, new, proof), "the old checkpoint file is an empty JSON object, not a checkpoint"),
        ((old, status, proof), "the new checkpoint file is a 'status' answer, not a checkpoint"),
        ((old, new, new), "the proof file is a checkpoint, not a consistency proof"),
        ((old, new, error), "the proof file is an error answer"),
    ]:
        with pytest.raises(Unusable) as info:
            verify_consistency_files(*args, ledger.net.genesis)
        assert words in str(info.value), str(info.value)


def test_cli_exit_codes(ledger: Ledger, tmp_path: Path, capsys: Any) -> None:
    old, new, proof = _consistency(ledger)
    files = {}
    for name, doc in (("old", old), ("new", new), ("proof", proof), ("empty", {}), ("list", []),
                      ("error", {"error": {"code": "not_found", "message": "x"}})):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(doc))
    genesis = tmp_path / "genesis.json"
    genesis.write_bytes(ledger.net.genesis.raw)

    def run(*names: str) -> int:
        return main(["verify-consistency", *map(str, (files[n] for n in names)), "--genesis", str(genesis)])

    assert run("old", "new", "proof") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].startswith("已核实 verified: 账本日志从 3 条记录") and "log grew from 3 leaves" in out
    for names in (("error", "new", "proof"), ("empty", "new", "proof"), ("old", "list", "proof"),
                  ("old", "new", "empty")):
        assert run(*names) == 2, names
        captured = capsys.readouterr()
        assert "cannot verify" in captured.err and captured.out == "", names
    assert run("new", "old", "proof") == 1
    assert "the checkpoints look swapped" in capsys.readouterr().out
    proc = run_with_closed_stdout("verify-consistency", str(files["old"]), str(files["new"]), str(files["proof"]),
                                  "--genesis", str(genesis))
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()


def test_an_empty_answer_must_still_name_its_subject(ledger: Ledger) -> None:
    """With no records nothing compares the subject with a record, yet the list's entry is
    named by it and the claim line states it: an answer that does not name it as text is invalid."""
    g = ledger.net.genesis
    for kind, answer, field in (("subject", answers.subject_history(ledger.store, g, "nobody"), "subject"),
                                ("status", answers.cert_status(ledger.store, g, "NOPE", T0), "number")):
        assert answer["records"] == [] and verify_answer(answer, kind, g).valid
        for value in (None, 7, ["x"]):
            doc = dict(answer, **{field: value})
            failed = verify_answer(doc, kind, g).checks[-1]
            assert (failed["check"], failed["part"], failed["ok"]) == ("list", "list", False)
            assert "the answer does not name its subject as text" in failed["error"]
        missing = {k: v for k, v in answer.items() if k != field}
        assert verify_answer(missing, kind, g).checks[-1]["check"] == "list"
        elsewhere = dict(answer, **{field: "LIC-1"})  # its empty list is no proof about LIC-1
        assert verify_answer(elsewhere, kind, g).checks[-1]["check"] == "list"


@pytest.mark.parametrize("edges", [[[1, 2]], [["a"]], [["a", "b", "c"]], [[None, "b"]], [{"a": "b"}]])
def test_malformed_provenance_edges_fail_the_list_check_without_a_crash(ledger: Ledger, edges: Any) -> None:
    g, ids = ledger.net.genesis, ledger.ids
    for direction, root in (("back", "shop"), ("forward", "farm")):
        answer = answers.provenance(ledger.store, g, bytes.fromhex(ids[root]), 8, direction)
        verdict = verify_answer(dict(answer, edges=answer["edges"] + edges), "provenance", g)
        failed = verdict.checks[-1]
        assert not verdict.valid and (failed["check"], failed["ok"]) == ("list", False)
        assert "edges" in failed["error"]


def test_a_not_issued_answer_without_its_issuer_fails_the_claims_check(ledger: Ledger) -> None:
    g = ledger.net.genesis
    answer = answers.cert_status(ledger.store, g, "NOPE", T0 + 1234)
    assert answer["issuer"] is None and verify_answer(answer, "status", g).valid
    verdict = verify_answer({k: v for k, v in answer.items() if k != "issuer"}, "status", g)
    assert not verdict.valid and verdict.checks[-1]["check"] == "claims"
    issued = answers.cert_status(ledger.store, g, "LIC-1", T0 + 15 * DAY)
    for lie in ({"issuer": "health"}, {"issuer": None}, {"status": "revoked"}, {"at": "soon"}):
        verdict = verify_answer(dict(issued, **lie), "status", g)
        assert not verdict.valid and verdict.checks[-1]["check"] == "claims", lie


@pytest.mark.parametrize("root", [None, ["a"], {"a": 1}, 7, "00" * 32])
def test_a_provenance_root_that_is_no_record_id_fails_without_a_crash(ledger: Ledger, root: Any) -> None:
    g, ids = ledger.net.genesis, ledger.ids
    for direction, start in (("back", "shop"), ("forward", "farm")):
        answer = answers.provenance(ledger.store, g, bytes.fromhex(ids[start]), 8, direction)
        verdict = verify_answer(dict(answer, root=root), "provenance", g)
        assert not verdict.valid and verdict.checks[-1]["check"] == "list"
        assert "the answer's root, depth or direction is wrong" in verdict.checks[-1]["error"]


def test_a_huge_provenance_depth_costs_no_more_than_the_records(ledger: Ledger) -> None:
    """An answer may claim any depth: checking it walks the answer's records, not the depth."""
    g, ids = ledger.net.genesis, ledger.ids
    answer = answers.provenance(ledger.store, g, bytes.fromhex(ids["shop"]), 8)
    assert verify_answer(dict(answer, depth=10**30), "provenance", g).valid
    forward = answers.provenance(ledger.store, g, bytes.fromhex(ids["farm"]), 8, "forward")
    assert verify_answer(dict(forward, depth=10**30), "provenance", g).valid
