"""HTTP API for auditors: checkpoints, consistency proofs, subject histories (paged by
list position), certificate status and dataset shares (the whole list), provenance (back
and forward), v2 bundles (the head as their checkpoint) and the printable certificate,
over the fake NodeService of test_api.py.

Answers are saved to files and checked with the real CLI in a subprocess
(`python -m ledgernode verify --kind ...`, `verify-consistency`), the way an
auditor would; a tampered copy must make the CLI exit 1.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from ledgernode import aio
from ledgernode.auditing import answers, certificate
from ledgernode.auditing.answers import verify_answer
from ledgernode.auditing.bundle import build_bundle
from ledgernode.genesis import Genesis, parse
from ledgernode.records import SUBJECT_MAX_CHARS, decode_envelope
from ledgernode.verify import verify_bundle
from tests.fixtures import DEPTS, T0, Net, commit_records, content
from tests.unit.api_fake import MSGPACK, REPO, FakeNode, error_of, notarize, rid

DAY = 86_400_000
NASTY = '<script>alert("x")</script> & 京'
CERT_STEPS = [("cert.suspend", 10), ("cert.resume", 20), ("cert.revoke", 30)]



async def add(client: aio.TestClient, node: FakeNode, *raws: bytes) -> list[str]:
    """Submit `raws` over the API and commit them as one block; their record ids."""
    for raw in raws:
        resp = await client.post("/v1/records", data=raw, headers=MSGPACK)
        assert resp.status == 202, await resp.text()
    await node.commit()
    return [rid(raw, node.net) for raw in raws]


@pytest.fixture
async def ledger(client: aio.TestClient, node: FakeNode, net: Net) -> dict[str, str]:
    """Provenance across four departments, a certificate's life, a shared dataset, a nasty subject."""
    ids: dict[str, str] = {}
    [ids["raw"]] = await add(client, node, net.record(0, "trace.event", "batch-7", {
        "activity": "harvest", "location": "farm"}))
    [ids["proc"]] = await add(client, node, net.record(1, "trace.event", "lot-3", {
        "activity": "processing"}, refs=(bytes.fromhex(ids["raw"]),)))
    [ids["pack"]] = await add(client, node, net.record(2, "trace.event", "box-9", {
        "activity": "packaging", "content_hash": content("box")}, refs=(bytes.fromhex(ids["proc"]),)))
    [ids["retail"]] = await add(client, node, net.record(3, "trace.event", "sku-1", {
        "activity": "retail"}, refs=(bytes.fromhex(ids["pack"]),)))
    [ids["cert.issue"]] = await add(client, node, net.record(1, "cert.issue", "LIC-1", {
        "cert_type": "license", "holder": content("holder"), "content_hash": content("doc"),
        "valid_from": T0, "valid_until": T0 + 100 * DAY}))
    for rtype, day in CERT_STEPS:
        [ids[rtype]] = await add(client, node, net.record(1, rtype, "LIC-1", {
            "reason": rtype, "effective": T0 + day * DAY}))
    [ids["publish"]] = await add(client, node, net.record(1, "dataset.publish", "ds-1", {
        "title": "permits", "content_hash": content("d"), "schema_hash": content("s"),
        "classification": "internal"}))
    [ids["grant"]] = await add(client, node, net.record(1, "share.grant", "ds-1", {
        "to_dept": DEPTS[2], "purpose": "audit", "legal_basis": "law 1", "expires": T0 + DAY}))
    [ids["access"]] = await add(client, node, net.record(2, "share.access", "ds-1", {
        "grant": bytes.fromhex(ids["grant"]), "purpose": "audit", "content_hash": content("d")}))
    [ids["revoke"]] = await add(client, node, net.record(1, "share.revoke", "ds-1", {
        "grant": bytes.fromhex(ids["grant"])}))
    [ids["nasty"], ids["slash"]] = await add(
        client, node,
        net.record(1, "evidence.notarize", NASTY, {
            "content_hash": content("n"), "media_type": "text/html", "size": 3,
            "title": "<b>bold</b> & \"quoted\""}),
        notarize(net, "x/y"))
    return ids


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "ledgernode", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


def save(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.fixture
def genesis_file(tmp_path: Path, net: Net) -> Path:
    path = tmp_path / "genesis.json"
    path.write_bytes(net.genesis.raw)
    return path


async def ok_json(resp: aio.ClientResponse) -> Any:
    body = await resp.json()
    assert resp.status == 200, body
    return body


def flip_b64(value: str, pos: int = 7) -> str:
    data = bytearray(base64.b64decode(value))
    data[pos % len(data)] ^= 0x01
    return base64.b64encode(bytes(data)).decode()


def flip_hex(value: str) -> str:
    return ("0" if value[0] != "0" else "1") + value[1:]


def tamperings(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One changed record, one changed proof element, one changed checkpoint byte."""
    record, proof, checkpoint = (copy.deepcopy(answer) for _ in range(3))
    record["records"][-1]["envelope"] = flip_b64(record["records"][-1]["envelope"])
    entry = next(e for e in proof["records"] if e["inclusion"])
    entry["inclusion"][0] = flip_hex(entry["inclusion"][0])
    checkpoint["checkpoint"]["header"] = flip_b64(checkpoint["checkpoint"]["header"], 20)
    return {"record": record, "proof": proof, "checkpoint": checkpoint}


def check_with_cli(tmp_path: Path, genesis_file: Path, answer: dict[str, Any], kind: str) -> None:
    """The saved answer verifies with the CLI; each tampered copy fails (one through the CLI)."""
    good = cli("verify", save(tmp_path / f"{kind}.json", answer), "--genesis", genesis_file, "--kind", kind)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "有效 VALID" in good.stdout
    genesis = genesis_of(genesis_file)
    bad = tamperings(answer)
    for name, doc in bad.items():
        assert not verify_answer(doc, kind, genesis).valid, name
    proc = cli("verify", save(tmp_path / f"{kind}-bad.json", bad["record"]), "--genesis", genesis_file,
               "--kind", kind)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "无效 INVALID" in proc.stdout


def genesis_of(path: Path) -> Genesis:
    return parse(path.read_bytes())


# -- empty ledger -----------------------------------------------------------------


async def test_every_answer_is_404_while_the_ledger_is_empty(client: aio.TestClient) -> None:
    for path in ["/v1/checkpoints/1", "/v1/subjects/LIC-1", "/v1/certificates/LIC-1/status",
                 "/v1/datasets/ds-1/shares", "/v1/provenance/" + "ab" * 32,
                 "/v1/records/" + "ab" * 32 + "/certificate"]:
        await error_of(await client.get(path), 404, "not_found")
    body = await ok_json(await client.get("/v1/proofs/consistency?from=0&to=0"))
    assert body == {"from": 0, "to": 0, "proof": []}


# -- checkpoints and consistency ----------------------------------------------------


async def test_checkpoints_and_consistency_verify_with_the_cli(
    client: aio.TestClient, node: FakeNode, ledger: dict[str, str], tmp_path: Path,
    genesis_file: Path,
) -> None:
    old = await ok_json(await client.get("/v1/checkpoints/2"))
    assert old["height"] == 2 and old["log_size"] == 2
    assert old == await ok_json(await client.get("/v1/checkpoints/002"))
    head = node.store.height
    new = await ok_json(await client.get(f"/v1/checkpoints/{head}"))
    assert new == await ok_json(await client.get("/v1/checkpoint"))
    proof = await ok_json(await client.get(
        f"/v1/proofs/consistency?from={old['log_size']}&to={new['log_size']}"))
    assert proof["from"] == old["log_size"] and proof["to"] == new["log_size"] and proof["proof"]
    files = [save(tmp_path / n, d) for n, d in (("old.json", old), ("new.json", new), ("proof.json", proof))]
    good = cli("verify-consistency", *files, "--genesis", genesis_file)
    assert good.returncode == 0, good.stdout + good.stderr
    assert f"log grew from 2 leaves (height 2) to {new['log_size']}" in good.stdout
    swapped = cli("verify-consistency", files[1], files[0], files[2], "--genesis", genesis_file)
    assert swapped.returncode == 1
    bad = copy.deepcopy(proof)
    bad["proof"][-1] = flip_hex(bad["proof"][-1])
    proc = cli("verify-consistency", files[0], files[1], save(tmp_path / "bad.json", bad),
               "--genesis", genesis_file)
    assert proc.returncode == 1 and "无效 INVALID" in proc.stdout
    forged = dict(new, header=flip_b64(new["header"], 30))
    proc = cli("verify-consistency", files[0], save(tmp_path / "forged.json", forged), files[2],
               "--genesis", genesis_file)
    assert proc.returncode == 1


async def test_checkpoint_and_consistency_errors(
    client: aio.TestClient, node: FakeNode, ledger: dict[str, str]
) -> None:
    head, size = node.store.height, node.store.log_size
    for bad in ["abc", "0", "-1", "1.5", "0x1"]:
        await error_of(await client.get(f"/v1/checkpoints/{bad}"), 400, "bad_height")
    await error_of(await client.get(f"/v1/checkpoints/{head + 1}"), 404, "not_found")
    await error_of(await client.get("/v1/checkpoints/" + "9" * 60), 404, "not_found")
    for query in ["", "from=1", "to=2", "from=abc&to=2", "from=-1&to=2", "from=1.5&to=2",
                  "from=1&to=", "from=1&to=" + "9" * 21]:
        await error_of(await client.get(f"/v1/proofs/consistency?{query}"), 400, "bad_query")
    for query in ["from=3&to=2", f"from=0&to={size + 1}", f"from={size + 1}&to={size + 1}",
                  "from=1&to=" + "9" * 20]:
        await error_of(await client.get(f"/v1/proofs/consistency?{query}"), 400, "bad_range")
    same = await ok_json(await client.get(f"/v1/proofs/consistency?from={size}&to={size}"))
    assert same["proof"] == []


# -- evidence against the head checkpoint --------------------------------------------------


async def test_evidence_against_the_head_verifies(
    client: aio.TestClient, node: FakeNode, ledger: dict[str, str], tmp_path: Path,
    genesis_file: Path, net: Net,
) -> None:
    bundle = await ok_json(await client.get(f"/v1/records/{ledger['raw']}/evidence"))
    assert bundle["format"] == "ledgernode-evidence/2" and "later" not in bundle
    assert set(bundle["state"]) == {"checkpoint", "consistency", "key"} and bundle["state"]["consistency"]
    verdict = verify_bundle(bundle, net.genesis)
    assert verdict.valid and verdict.facts["checkpoint"]["height"] == node.store.height
    assert verdict.facts["block"]["height"] == 1
    proc = cli("verify", save(tmp_path / "b.json", bundle), "--genesis", genesis_file)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bundle["state"]["consistency"][0] = flip_hex(bundle["state"]["consistency"][0])
    failed = verify_bundle(bundle, net.genesis).checks[-1]
    assert (failed["check"], failed["ok"]) == ("checkpoint", False)
    assert "the checkpoint does not extend the record's block" in failed["error"]
    # A record of the head block: the log has not grown since, the proof is empty.
    head = await ok_json(await client.get(f"/v1/records/{ledger['slash']}/evidence"))
    assert head["state"]["consistency"] == [] and verify_bundle(head, net.genesis).valid


# -- subject history ------------------------------------------------------------------


async def test_subject_history_verifies_and_pages(
    client: aio.TestClient, ledger: dict[str, str], tmp_path: Path, genesis_file: Path, net: Net
) -> None:
    answer = await ok_json(await client.get("/v1/subjects/LIC-1"))
    expected = [ledger[k] for k in ("cert.issue", "cert.suspend", "cert.resume", "cert.revoke")]
    assert answer["kind"] == "subject" and [r["id"] for r in answer["records"]] == expected
    assert (answer["list"]["positions"], answer["total"], answer["next_from"]) == ([0, 1, 2, 3], 4, None)
    check_with_cli(tmp_path, genesis_file, answer, "subject")
    first = await ok_json(await client.get("/v1/subjects/LIC-1?limit=3"))
    assert [r["id"] for r in first["records"]] == expected[:3] and first["next_from"] == 3
    rest = await ok_json(await client.get(f"/v1/subjects/LIC-1?limit=3&from={first['next_from']}"))
    assert [r["id"] for r in rest["records"]] == expected[3:] and rest["next_from"] is None
    assert rest["list"]["from"] == 3 and verify_answer(rest, "subject", net.genesis).valid
    middle = await ok_json(await client.get("/v1/subjects/LIC-1?from=1&limit=2"))
    assert [r["id"] for r in middle["records"]] == expected[1:3] and middle["list"]["positions"] == [1, 2]
    claim = verify_answer(middle, "subject", net.genesis).facts["claim"]
    assert claim["en"].startswith("subject LIC-1: records 2-3 of 4 about LIC-1 as of height")
    beyond = await ok_json(await client.get("/v1/subjects/LIC-1?from=" + "9" * 20))
    assert beyond["records"] == [] and beyond["list"]["from"] == 4 and beyond["next_from"] is None
    assert verify_answer(beyond, "subject", net.genesis).valid
    # `after` is gone: it no longer moves the page
    assert (await ok_json(await client.get("/v1/subjects/LIC-1?after=2")))["records"] == answer["records"]


async def test_subject_path_segments(
    client: aio.TestClient, ledger: dict[str, str], net: Net
) -> None:
    nasty = await ok_json(await client.get("/v1/subjects/" + quote(NASTY, safe="")))
    assert nasty["subject"] == NASTY and [r["id"] for r in nasty["records"]] == [ledger["nasty"]]
    slash = await ok_json(await client.get("/v1/subjects/" + quote("EV-x/y", safe="")))
    assert [r["id"] for r in slash["records"]] == [ledger["slash"]]
    unknown = await ok_json(await client.get("/v1/subjects/never-heard-of"))
    assert unknown["records"] == [] and verify_answer(unknown, "subject", net.genesis).valid
    longest = await ok_json(await client.get("/v1/subjects/" + "a" * SUBJECT_MAX_CHARS))
    assert longest["records"] == []


async def test_subject_errors(client: aio.TestClient, ledger: dict[str, str]) -> None:
    await error_of(await client.get("/v1/subjects/" + "a" * (SUBJECT_MAX_CHARS + 1)), 400, "bad_subject")
    for query, code in [("limit=0", "bad_limit"), (f"limit={answers.SUBJECT_PAGE_MAX + 1}", "bad_limit"),
                        ("limit=abc", "bad_query"), ("limit=-1", "bad_query"),
                        ("from=-5", "bad_query"), ("from=x", "bad_query"), ("from=1.5", "bad_query"),
                        ("from=" + "9" * 21, "bad_query")]:
        await error_of(await client.get(f"/v1/subjects/LIC-1?{query}"), 400, code)


# -- certificate status -------------------------------------------------------------------


@pytest.mark.parametrize("at,status", [
    (T0 - 1, "not_yet_valid"), (T0 + DAY, "valid"), (T0 + 10 * DAY, "suspended"),
    (T0 + 15 * DAY, "suspended"), (T0 + 20 * DAY, "valid"), (T0 + 25 * DAY, "valid"),
    (T0 + 30 * DAY, "revoked"), (T0 + 200 * DAY, "revoked"),
])
async def test_certificate_status_between_each_step(
    client: aio.TestClient, ledger: dict[str, str], net: Net, at: int, status: str
) -> None:
    answer = await ok_json(await client.get(f"/v1/certificates/LIC-1/status?at={at}"))
    assert answer["status"] == status and answer["at"] == at and answer["issuer"] == DEPTS[1]
    # the whole list, whatever the time: the records after `at` too
    assert [r["id"] for r in answer["records"]] == [ledger[k] for k in ("cert.issue", *(t for t, _ in CERT_STEPS))]
    assert answer["list"]["positions"] == [0, 1, 2, 3]
    assert verify_answer(answer, "status", net.genesis).valid


async def test_certificate_status_verifies_with_the_cli(
    client: aio.TestClient, ledger: dict[str, str], tmp_path: Path, genesis_file: Path
) -> None:
    answer = await ok_json(await client.get(f"/v1/certificates/LIC-1/status?at={T0 + 15 * DAY}"))
    assert answer["status"] == "suspended"
    assert [r["id"] for r in answer["records"]] == [ledger[k] for k in ("cert.issue", *(t for t, _ in CERT_STEPS))]
    check_with_cli(tmp_path, genesis_file, answer, "status")
    good = cli("verify", tmp_path / "status.json", "--genesis", genesis_file, "--kind", "status")
    assert "suspended, issued by market (from all 4 records about it (complete)" in good.stdout
    lie = dict(answer, status="valid")
    proc = cli("verify", save(tmp_path / "lie.json", lie), "--genesis", genesis_file, "--kind", "status")
    assert proc.returncode == 1 and "valid" in proc.stdout
    # hiding the suspension and what followed: the list is no longer whole
    hidden = copy.deepcopy(answer)
    hidden["records"] = hidden["records"][:1]
    hidden["list"]["positions"], hidden["list"]["list_inclusion"] = [0], hidden["list"]["list_inclusion"][:1]
    hidden["status"] = "valid"
    proc = cli("verify", save(tmp_path / "hidden.json", hidden), "--genesis", genesis_file, "--kind", "status")
    assert proc.returncode == 1 and "does not hold every record about it (1 of 4)" in proc.stdout


async def test_a_list_too_long_for_one_answer_is_422(
    client: aio.TestClient, ledger: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Status and shares answers hold the whole list; above the cap they are refused, not cut."""
    monkeypatch.setattr(answers, "CERT_RECORDS_MAX", 3)
    monkeypatch.setattr(answers, "SHARES_RECORDS_MAX", 3)
    body = await error_of(await client.get(f"/v1/certificates/LIC-1/status?at={T0}"), 422, "history_too_long")
    assert "/v1/subjects/" in body["error"]["message"]  # where to read it page by page
    await error_of(await client.get("/v1/datasets/ds-1/shares"), 422, "history_too_long")
    page = await ok_json(await client.get("/v1/subjects/LIC-1?limit=3"))
    assert len(page["records"]) == 3


async def test_certificate_status_defaults_and_errors(
    client: aio.TestClient, ledger: dict[str, str], net: Net
) -> None:
    before = time.time_ns() // 1_000_000
    answer = await ok_json(await client.get("/v1/certificates/LIC-1/status"))
    assert before <= answer["at"] <= time.time_ns() // 1_000_000
    unknown = await ok_json(await client.get("/v1/certificates/NOPE-9/status?at=0"))
    assert unknown["status"] == "not_issued" and unknown["issuer"] is None and unknown["records"] == []
    assert unknown["list"]["entry"]["value"] is None and unknown["list"]["positions"] == []
    assert verify_answer(unknown, "status", net.genesis).valid
    for query in ["at=abc", "at=-1", "at=1.5", "at=" + "1" * 21]:
        await error_of(await client.get(f"/v1/certificates/LIC-1/status?{query}"), 400, "bad_query")
    await error_of(await client.get("/v1/certificates/" + "n" * (SUBJECT_MAX_CHARS + 1) + "/status"),
                   400, "bad_subject")


# -- dataset shares ---------------------------------------------------------------------------


async def test_dataset_shares_verify_with_the_cli(
    client: aio.TestClient, ledger: dict[str, str], tmp_path: Path, genesis_file: Path
) -> None:
    answer = await ok_json(await client.get("/v1/datasets/ds-1/shares"))
    assert answer["owner"] == DEPTS[1] and len(answer["records"]) == 4
    assert answer["list"]["positions"] == [0, 1, 2, 3]
    [grant] = answer["grants"]
    assert grant["grant"] == ledger["grant"] and grant["to_dept"] == DEPTS[2]
    assert grant["revoked_by"] == ledger["revoke"]
    assert [(a["record"], a["dept"], a["purpose"]) for a in grant["accesses"]] == [
        (ledger["access"], DEPTS[2], "audit")]
    check_with_cli(tmp_path, genesis_file, answer, "shares")


async def test_dataset_shares_errors(client: aio.TestClient, ledger: dict[str, str]) -> None:
    await error_of(await client.get("/v1/datasets/never-published/shares"), 404, "not_found")
    await error_of(await client.get("/v1/datasets/" + "d" * (SUBJECT_MAX_CHARS + 1) + "/shares"),
                   400, "bad_subject")


# -- provenance -----------------------------------------------------------------------------


async def test_provenance_across_four_departments(
    client: aio.TestClient, ledger: dict[str, str], tmp_path: Path, genesis_file: Path, net: Net
) -> None:
    answer = await ok_json(await client.get(f"/v1/provenance/{ledger['retail']}"))
    assert (answer["depth"], answer["direction"]) == (8, "back")
    assert "truncated" not in answer and "lists" not in answer
    chain = [ledger[k] for k in ("retail", "pack", "proc", "raw")]
    assert {r["id"] for r in answer["records"]} == set(chain)
    assert sorted(answer["edges"]) == sorted([[a, b] for a, b in zip(chain, chain[1:])])
    signers = {net.genesis.signers[v.record.key].dept for v in
               (decode_envelope_of(r["envelope"], net) for r in answer["records"])}
    assert signers == set(DEPTS[:4])
    assert set(answer["keys"]) == {net.clients[i].public.key_id for i in range(4)}
    check_with_cli(tmp_path, genesis_file, answer, "provenance")
    dropped = dict(answer, edges=answer["edges"][1:])
    proc = cli("verify", save(tmp_path / "dropped.json", dropped), "--genesis", genesis_file,
               "--kind", "provenance")
    assert proc.returncode == 1
    shallow = await ok_json(await client.get(f"/v1/provenance/{ledger['retail']}?depth=1"))
    assert {r["id"] for r in shallow["records"]} == set(chain[:2])
    assert verify_answer(shallow, "provenance", net.genesis).valid
    assert shallow == await ok_json(await client.get(f"/v1/provenance/{ledger['retail']}?depth=1&direction=back"))
    leaf = await ok_json(await client.get(f"/v1/provenance/{ledger['raw']}?depth=0"))
    assert [r["id"] for r in leaf["records"]] == [ledger["raw"]] and leaf["edges"] == []


async def test_forward_provenance_is_a_recall(
    client: aio.TestClient, ledger: dict[str, str], tmp_path: Path, genesis_file: Path, net: Net
) -> None:
    """From the harvest forward: every record made from it, proven by refby lists."""
    answer = await ok_json(await client.get(f"/v1/provenance/{ledger['raw']}?direction=forward"))
    chain = [ledger[k] for k in ("raw", "proc", "pack", "retail")]
    assert answer["direction"] == "forward" and {r["id"] for r in answer["records"]} == set(chain)
    assert sorted(answer["edges"]) == sorted([[b, a] for a, b in zip(chain, chain[1:])])
    assert set(answer["lists"]) == set(chain)
    check_with_cli(tmp_path, genesis_file, answer, "provenance")
    good = cli("verify", tmp_path / "provenance.json", "--genesis", genesis_file, "--kind", "provenance")
    assert "all 3 descendants within depth 8, 3 edges (complete)" in good.stdout
    cut = copy.deepcopy(answer)  # the shop's retail record left out of the recall
    cut["records"] = [r for r in cut["records"] if r["id"] != ledger["retail"]]
    cut["edges"] = [e for e in cut["edges"] if ledger["retail"] not in e]
    del cut["lists"][ledger["retail"]]
    proc = cli("verify", save(tmp_path / "cut.json", cut), "--genesis", genesis_file, "--kind", "provenance")
    assert proc.returncode == 1 and "the referrers list of record" in proc.stdout
    one = await ok_json(await client.get(f"/v1/provenance/{ledger['proc']}?direction=forward&depth=1"))
    assert {r["id"] for r in one["records"]} == {ledger["proc"], ledger["pack"]}
    assert set(one["lists"]) == {ledger["proc"]} and verify_answer(one, "provenance", net.genesis).valid


async def test_a_graph_above_the_cap_is_422(
    client: aio.TestClient, ledger: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(answers, "PROVENANCE_NODES_MAX", 3)
    await error_of(await client.get(f"/v1/provenance/{ledger['retail']}"), 422, "graph_too_large")
    await error_of(await client.get(f"/v1/provenance/{ledger['raw']}?direction=forward"), 422, "graph_too_large")
    small = await ok_json(await client.get(f"/v1/provenance/{ledger['raw']}?direction=forward&depth=2"))
    assert len(small["records"]) == 3


def decode_envelope_of(b64_envelope: str, net: Net) -> Any:
    return decode_envelope(base64.b64decode(b64_envelope), net.genesis)


async def test_provenance_errors(client: aio.TestClient, ledger: dict[str, str]) -> None:
    await error_of(await client.get("/v1/provenance/" + "ab" * 32), 404, "not_found")
    for bad_id in ["abc", "AB" * 32, "zz" * 32]:
        await error_of(await client.get(f"/v1/provenance/{bad_id}"), 400, "bad_id")
    root = ledger["retail"]
    await error_of(await client.get(f"/v1/provenance/{root}?depth={answers.PROVENANCE_DEPTH_MAX + 1}"),
                   400, "bad_depth")
    for query in ["depth=abc", "depth=-1", "depth=" + "9" * 21]:
        await error_of(await client.get(f"/v1/provenance/{root}?{query}"), 400, "bad_query")
    for direction in ["up", "", "FORWARD", "back,forward"]:
        await error_of(await client.get(f"/v1/provenance/{root}?direction={direction}"), 400, "bad_direction")
    ok = await ok_json(await client.get(f"/v1/provenance/{root}?depth={answers.PROVENANCE_DEPTH_MAX}"))
    assert len(ok["records"]) == 4


# -- the printable certificate ------------------------------------------------------------------


def embedded_bundle(page: str) -> dict[str, Any]:
    [block] = re.findall(r'<script type="application/json" id="evidence-bundle">(.*?)</script>',
                         page, re.S)
    doc: dict[str, Any] = json.loads(block)
    return doc


async def test_certificate_page(
    client: aio.TestClient, ledger: dict[str, str], node: FakeNode, net: Net
) -> None:
    resp = await client.get(f"/v1/records/{ledger['nasty']}/certificate")
    page = await resp.text()
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    # untrusted fields are escaped: the only <script> is the bundle's JSON block
    assert page.count("<script") == 1 and "<script>alert" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 京" in page
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;" in page and "<b>" not in page
    for text in ("存证证书", "Evidence Certificate", ledger["nasty"], "evidence.notarize",
                 f"{DEPTS[1]} (Dept {DEPTS[1]})", net.clients[1].public.key_id, net.genesis.genesis_hash,
                 "python -m ledgernode verify bundle.json --genesis genesis.json"):
        assert text in page, text
    loc = node.locate(bytes.fromhex(ledger["nasty"]))
    assert loc is not None
    header = node.store.load_header(loc.height)
    assert header.block_hash.hex() in page and header.log_root.hex() in page
    assert f"<td>{loc.height}</td>" in page
    for i, _ in node.store.load_qc(loc.height).signatures:
        v = net.genesis.validators[i]
        assert f"<td>{v.dept}</td><td>{v.name}</td>" in page
    bundle = embedded_bundle(page)
    assert bundle == await ok_json(await client.get(f"/v1/records/{ledger['nasty']}/evidence"))
    assert verify_bundle(bundle, net.genesis).valid


async def test_certificate_bundle_extracts_and_verifies_offline(
    client: aio.TestClient, ledger: dict[str, str], tmp_path: Path, genesis_file: Path, net: Net
) -> None:
    resp = await client.get(f"/v1/records/{ledger['raw']}/certificate")
    page = await resp.text()
    assert resp.status == 200 and "consistency proven" in page
    (tmp_path / "certificate.html").write_text(page, encoding="utf-8")
    # the exact command the page prints: verify the saved page itself
    assert "python -m ledgernode verify certificate.html --genesis genesis.json" in page
    good = cli("verify", tmp_path / "certificate.html", "--genesis", genesis_file)
    assert good.returncode == 0, good.stdout + good.stderr
    cut = page.index('id="evidence-bundle"')  # alter the embedded bundle: what the verifier checks
    tampered = page[:cut] + page[cut:].replace(ledger["raw"], "0" * 64, 1)
    assert tampered != page
    (tmp_path / "tampered.html").write_text(tampered, encoding="utf-8")
    assert cli("verify", tmp_path / "tampered.html", "--genesis", genesis_file).returncode in (1, 2)
    bundle = embedded_bundle(page)
    assert bundle["state"]["consistency"] and verify_bundle(bundle, net.genesis).valid
    assert bundle == await ok_json(await client.get(f"/v1/records/{ledger['raw']}/evidence"))


async def test_certificate_errors(
    client: aio.TestClient, node: FakeNode, net: Net, ledger: dict[str, str]
) -> None:
    raw = notarize(net, "pending-one")
    await client.post("/v1/records", data=raw, headers=MSGPACK)
    await error_of(await client.get(f"/v1/records/{rid(raw, net)}/certificate"), 404, "not_found")
    await error_of(await client.get("/v1/records/" + "cd" * 32 + "/certificate"), 404, "not_found")
    for bad_id in ["abc", "AB" * 32]:
        await error_of(await client.get(f"/v1/records/{bad_id}/certificate"), 400, "bad_id")
    await node.commit()
    assert (await client.get(f"/v1/records/{rid(raw, net)}/certificate")).status == 200


def test_embedded_json_cannot_close_the_script(net: Net, node: FakeNode) -> None:
    raw = notarize(net, "embed")
    commit_records(net, node.store, [raw])
    bundle = build_bundle(node.store, net.genesis, bytes.fromhex(rid(raw, net)))
    bundle["note"] = "</script><script>alert(1)</script><!-- & >"
    page = certificate.render(bundle, net.genesis)
    assert page.count("</script>") == 1 and "<!--" not in page
    assert embedded_bundle(page) == bundle
    broken = dict(bundle, envelope=flip_b64(bundle["envelope"]))
    with pytest.raises(ValueError, match="does not verify"):
        certificate.render(broken, net.genesis)


# -- OpenAPI ------------------------------------------------------------------------------------


AUDITOR_QUERIES = {  # each documented parameter of the auditors' routes, with a value the node takes
    "/v1/proofs/consistency": {"from": "1", "to": "2"},
    "/v1/checkpoints/{height}": {},
    "/v1/records/{id}/evidence": {},
    "/v1/records/{id}/certificate": {},
    "/v1/subjects/{subject}": {"from": "1", "limit": "2"},
    "/v1/certificates/{number}/status": {"at": str(T0)},
    "/v1/datasets/{id}/shares": {},
    "/v1/provenance/{record_id}": {"depth": "2", "direction": "forward"},
}


async def test_openapi_documents_the_auditor_routes(client: aio.TestClient, ledger: dict[str, str]) -> None:
    doc = await ok_json(await client.get("/v1/openapi.json"))
    paths = doc["paths"]
    segments = {"height": "1", "id": ledger["raw"], "subject": "LIC-1", "number": "LIC-1",
                "record_id": ledger["raw"]}
    for path, query in AUDITOR_QUERIES.items():
        op = paths[path]["get"]
        params = {p["name"]: p for p in op["parameters"]}
        named = set(re.findall(r"{(\w+)}", path))
        assert set(params) == named | set(query), path
        assert all(params[n]["in"] == "path" for n in named) and all(params[q]["in"] == "query" for q in query)
        assert {"200", "400"} <= set(op["responses"]), path
        # every documented parameter is one the node reads: a documented value is answered 200
        url = re.sub(r"{(\w+)}", lambda m: segments[m.group(1)], path)
        if path == "/v1/datasets/{id}/shares":
            url = "/v1/datasets/ds-1/shares"
        resp = await client.get(url, params=query)
        assert resp.status == 200, (path, await resp.text())
    for path in ("/v1/certificates/{number}/status", "/v1/datasets/{id}/shares", "/v1/provenance/{record_id}"):
        assert "422" in paths[path]["get"]["responses"], path  # history_too_long, graph_too_large
    provenance = {p["name"]: p for p in paths["/v1/provenance/{record_id}"]["get"]["parameters"]}
    assert provenance["direction"]["schema"]["enum"] == ["back", "forward"]
    certificate_ok = paths["/v1/records/{id}/certificate"]["get"]["responses"]["200"]["content"]
    assert set(certificate_ok) == {"text/html"}
    assert "tree size" in paths["/v1/proofs/consistency"]["get"]["parameters"][0]["description"]
    schemas = doc["components"]["schemas"]
    for name in ("Consistency", "SubjectHistory", "CertStatus", "DatasetShares", "Provenance", "RecordList",
                 "MapEntry", "MapProof", "AnswerRecord"):
        assert name in schemas
    assert "next_after" not in schemas["SubjectHistory"]["properties"]
    assert "truncated" not in schemas["Provenance"]["properties"]
    assert schemas["SubjectHistory"]["properties"]["format"]["enum"] == ["ledgernode-answer/2"]


async def test_answers_have_the_documented_shapes(
    client: aio.TestClient, ledger: dict[str, str]
) -> None:
    """Top-level keys (and those of records, lists, entries, grants, accesses) are the schemas' properties."""
    schemas = (await ok_json(await client.get("/v1/openapi.json")))["components"]["schemas"]
    answers = {
        "Checkpoint": ["/v1/checkpoints/1"], "Consistency": ["/v1/proofs/consistency?from=1&to=3"],
        "SubjectHistory": ["/v1/subjects/LIC-1", "/v1/subjects/LIC-1?from=1&limit=1", "/v1/subjects/nobody"],
        "CertStatus": [f"/v1/certificates/LIC-1/status?at={T0}", "/v1/certificates/NOPE/status?at=0"],
        "DatasetShares": ["/v1/datasets/ds-1/shares"],
        "Provenance": [f"/v1/provenance/{ledger['retail']}", f"/v1/provenance/{ledger['raw']}?direction=forward"],
        "Evidence": [f"/v1/records/{ledger['raw']}/evidence"],
    }

    def entry_shape(entry: dict[str, Any]) -> None:
        assert set(entry) == set(schemas["MapEntry"]["properties"])
        assert set(entry["proof"]) == set(schemas["MapProof"]["properties"])

    def list_shape(lst: dict[str, Any]) -> None:
        assert set(lst) == set(schemas["RecordList"]["properties"])
        entry_shape(lst["entry"])

    for name, paths in answers.items():
        for path in paths:
            body = await ok_json(await client.get(path))
            schema = schemas[name]
            assert set(schema["required"]) <= set(body) <= set(schema["properties"]), (name, path)
            for entry in body.get("records", []):
                assert set(entry) == set(schemas["AnswerRecord"]["properties"]), name
            for key in body.get("keys", {}).values():
                entry_shape(key)
            if "list" in body:
                list_shape(body["list"])
            for lst in body.get("lists", {}).values():
                list_shape(lst)
            if name == "Evidence":
                entry_shape(body["state"]["key"])
            for grant in body.get("grants", []):
                assert set(grant) == set(schemas["Grant"]["properties"])
                for access in grant["accesses"]:
                    assert set(access) == set(schemas["Access"]["properties"])
