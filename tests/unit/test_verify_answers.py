"""Checks of the auditors' answers and of two checkpoints (docs/verification.md section 2.2):
the one-line claim a valid verdict states, failure reasons that name the record or
checkpoint that failed, the dataset owner check, and `verify-consistency`'s exit codes
(2 for a file that is not a checkpoint or proof, 1 for a failed check, with a sentence
for checkpoints given in the wrong order)."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledgernode.auditing import answers, checkpoints
from ledgernode.auditing.answers import verify_answer
from ledgernode.auditing.checkpoints import verify_consistency_files
from ledgernode.cli import main
from ledgernode.records import decode_envelope
from ledgernode.storage import Store
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
    expired grant and one access, and a three-step provenance chain."""
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


def test_status_claim(ledger: Ledger) -> None:
    g, h = ledger.net.genesis, ledger.store.height
    answer = answers.cert_status(ledger.store, g, "LIC-1", T0 + 15 * DAY + 10 * 3_600_000)
    verdict = verify_answer(answer, "status", g)
    assert verdict.valid
    assert verdict.facts["claim"] == {
        "kind": "status",
        "zh": f"证照 LIC-1 在 2026-01-16 10:00 UTC 的状态：暂停，签发部门 market（2 条记录，检查点高度 {h}）",
        "en": f"certificate LIC-1 status at 2026-01-16 10:00 UTC: suspended, issued by market "
              f"(2 records, checkpoint height {h})",
        "number": "LIC-1", "at": T0 + 15 * DAY + 36_000_000, "status": "suspended", "issuer": "market",
        "records": 2, "checkpoint_height": h,
    }
    _claim_line(verdict)
    unknown = verify_answer(answers.cert_status(ledger.store, g, "NOPE", T0 + 1234), "status", g)
    assert unknown.facts["claim"]["en"] == (f"certificate NOPE status at 2026-01-01 00:00:01.234 UTC: not issued "
                                            f"(0 records, checkpoint height {h})")


def test_subject_claim_pages(ledger: Ledger) -> None:
    g, h, ids = ledger.net.genesis, ledger.store.height, ledger.ids
    first = answers.subject_history(ledger.store, g, "ds-1", limit=2)
    verdict = verify_answer(first, "subject", g)
    claim = verdict.facts["claim"]
    leaves = [r["leaf_index"] for r in first["records"]]
    assert claim["en"] == (f"subject ds-1: 2 records (leaves {leaves[0]} to {leaves[1]}), next page after leaf "
                           f"{leaves[1]}, checkpoint height {h}")
    assert claim["zh"] == f"主体 ds-1：2 条记录（日志位置 {leaves[0]}–{leaves[1]}），下一页从位置 {leaves[1]} 之后开始，检查点高度 {h}"
    assert (claim["records"], claim["leaves"], claim["next_after"]) == (2, leaves, leaves[1])
    _claim_line(verdict)
    last = answers.subject_history(ledger.store, g, "ds-1", after=first["next_after"])
    claim = verify_answer(last, "subject", g).facts["claim"]
    assert claim["records"] == 4 and "the node reports no more records" in claim["en"]
    assert first["records"][0]["id"] == ids["publish"]


def test_shares_claim_counts_grants_as_of_the_checkpoint(ledger: Ledger) -> None:
    g, h = ledger.net.genesis, ledger.store.height
    verdict = verify_answer(answers.dataset_shares(ledger.store, g, "ds-1"), "shares", g)
    claim = verdict.facts["claim"]
    assert claim["en"] == ("dataset ds-1 (owner market): 3 grants (1 live, 1 revoked, 1 expired at the checkpoint "
                           f"time), 1 access, 6 records, checkpoint height {h}")
    assert claim["zh"] == ("数据集 ds-1（所有者 market）：共享授权 3 项（截至检查点时间：有效 1、已撤销 1、已过期 1），"
                           f"访问 1 次，6 条记录，检查点高度 {h}")
    assert {k: claim[k] for k in ("grants", "live", "revoked", "expired", "accesses", "owner")} == {
        "grants": 3, "live": 1, "revoked": 1, "expired": 1, "accesses": 1, "owner": "market"}
    _claim_line(verdict)


def test_shares_owner_must_follow_from_the_publish_record(ledger: Ledger) -> None:
    g = ledger.net.genesis
    answer = answers.dataset_shares(ledger.store, g, "ds-1")
    lie = dict(answer, owner="health")
    failed = verify_answer(lie, "shares", g).checks[-1]
    assert (failed["check"], failed["part"]) == ("claims", "claims") and not failed["ok"]
    assert "the answer's dataset owner is not the department that signed its first publish record" in failed["error"]
    no_publish = copy.deepcopy(answer)
    no_publish["records"] = [r for r in answer["records"] if r["id"] != ledger.ids["publish"]]
    assert not verify_answer(no_publish, "shares", g).valid


def test_provenance_claim(ledger: Ledger) -> None:
    g, h, ids = ledger.net.genesis, ledger.store.height, ledger.ids
    verdict = verify_answer(answers.provenance(ledger.store, g, bytes.fromhex(ids["shop"]), 8), "provenance", g)
    claim = verdict.facts["claim"]
    assert claim["en"] == (f"provenance of root record {ids['shop'][:16]}… (trace.event about sku-1): 2 ancestors "
                           f"to depth 8, 2 edges, checkpoint height {h}")
    assert claim["zh"] == (f"溯源：根记录 {ids['shop'][:16]}…（trace.event，主体 sku-1）在深度 8 以内有 2 个祖先记录、"
                           f"2 条引用，检查点高度 {h}")
    assert (claim["root"], claim["ancestors"], claim["truncated"]) == (ids["shop"], 2, False)
    _claim_line(verdict)
    shallow = answers.provenance(ledger.store, g, bytes.fromhex(ids["shop"]), 0)
    cut = dict(shallow, truncated=True)
    claim = verify_answer(cut, "provenance", g).facts["claim"]
    assert "0 ancestors to depth 0, 1 edge; the node truncated it, so ancestors may be missing" in claim["en"]


# -- failure reasons --------------------------------------------------------------------


def test_answer_reasons_name_the_record_or_checkpoint(ledger: Ledger) -> None:
    g = ledger.net.genesis
    answer = answers.subject_history(ledger.store, g, "ds-1")
    n = len(answer["records"])

    def failed(doc: dict[str, Any]) -> dict[str, Any]:
        verdict = verify_answer(doc, "subject", g)
        assert not verdict.valid
        return verdict.checks[-1]

    record = copy.deepcopy(answer)
    record["records"][1]["envelope"] = _flip_b64(record["records"][1]["envelope"], 40)
    f = failed(record)
    assert (f["check"], f["part"]) == ("records", "record_bytes")
    assert f["error"].startswith(f"第 2 条记录（共 {n} 条）：记录的内容被改动")
    assert f" / record 2 of {n}: the record's bytes were altered (its id / signature no longer match)" in f["error"]
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
    lie = copy.deepcopy(answer)
    lie["next_after"] = 0
    f = failed(lie)
    assert f["part"] == "claims" and "the answer's next-page position does not follow from its records" in f["error"]


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
    """With no records nothing compares the subject with a record, yet the claim line states
    it: an answer that does not name it as text is invalid."""
    g = ledger.net.genesis
    for kind, answer, field in (("subject", answers.subject_history(ledger.store, g, "nobody"), "subject"),
                                ("status", answers.cert_status(ledger.store, g, "NOPE", T0), "number")):
        assert answer["records"] == [] and verify_answer(answer, kind, g).valid
        for value in (None, 7, ["x"]):
            doc = dict(answer, **{field: value})
            failed = verify_answer(doc, kind, g).checks[-1]
            assert (failed["check"], failed["part"], failed["ok"]) == ("claims", "claims", False)
            assert f"the answer does not name its {'subject' if field == 'subject' else 'certificate number'}" \
                in failed["error"]
        missing = {k: v for k, v in answer.items() if k != field}
        assert not verify_answer(missing, kind, g).valid


@pytest.mark.parametrize("edges", [[[1, 2]], [["a"]], [["a", "b", "c"]], [[None, "b"]], [{"a": "b"}]])
def test_malformed_provenance_edges_fail_the_claims_check_without_a_crash(ledger: Ledger, edges: Any) -> None:
    g, ids = ledger.net.genesis, ledger.ids
    answer = answers.provenance(ledger.store, g, bytes.fromhex(ids["shop"]), 8)
    verdict = verify_answer(dict(answer, edges=answer["edges"] + edges), "provenance", g)
    failed = verdict.checks[-1]
    assert not verdict.valid and (failed["check"], failed["ok"]) == ("claims", False)
    assert "edges" in failed["error"]


def test_a_not_issued_answer_without_its_issuer_fails_the_claims_check(ledger: Ledger) -> None:
    g = ledger.net.genesis
    answer = answers.cert_status(ledger.store, g, "NOPE", T0 + 1234)
    assert answer["issuer"] is None and verify_answer(answer, "status", g).valid
    verdict = verify_answer({k: v for k, v in answer.items() if k != "issuer"}, "status", g)
    assert not verdict.valid and verdict.checks[-1]["check"] == "claims"


@pytest.mark.parametrize("root", [None, ["a"], {"a": 1}, 7])
def test_a_provenance_root_that_is_no_record_id_fails_without_a_crash(ledger: Ledger, root: Any) -> None:
    g, ids = ledger.net.genesis, ledger.ids
    answer = answers.provenance(ledger.store, g, bytes.fromhex(ids["shop"]), 8)
    verdict = verify_answer(dict(answer, root=root), "provenance", g)
    assert not verdict.valid and verdict.checks[-1]["check"] == "claims"


def test_a_huge_provenance_depth_costs_no_more_than_the_records(ledger: Ledger) -> None:
    """An answer may claim any depth: checking it walks the answer's records, not the depth."""
    g, ids = ledger.net.genesis, ledger.ids
    answer = answers.provenance(ledger.store, g, bytes.fromhex(ids["shop"]), 8)
    assert verify_answer(dict(answer, depth=10**30), "provenance", g).valid
