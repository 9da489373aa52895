"""Nothing left out: version 2 answers prove they are complete, on one real devnet.

Four validator processes (real LevelDB, real HTTP) commit a licence issued then
revoked, a subject with 12 records, a dataset with grants, an access and a
revocation, and a batch with the records made from it at two hops. Answers are
fetched through the HTTP API as an auditor would get them, saved, and checked with
the real verifier (`python -m ledgernode verify FILE --genesis G --kind K --json`).

Every untampered answer verifies (exit 0) and says in its claim whether it holds
the whole list ("complete") or which part of it ("records A-B of N"). Then each
answer is tampered the way someone hiding a record would: drop a record with or
without its list position, paste a later page as the first one, replace a revoked
licence by "not issued", alter one hash of a state-map proof, paste the list of an
earlier checkpoint, drop a referrer from a forward provenance graph (a recall of
everything made from a batch). Each must fail at the `list` check (exit 1), never
pass; an evidence bundle with an altered key proof fails at `key`
(DESIGN.md sections 11 and 12).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from ledgernode import crypto
from ledgernode.records import sign_record

from .procs import REQUEST_TIMEOUT_S, Cluster, wait_until

REPO = Path(__file__).resolve().parents[2]
CHAIN = "gov-itest"
DAY_MS = 86_400_000
LICENCE = "LIC-OMIT-2026-001"
NEVER_ISSUED = "LIC-OMIT-2026-404"
EVIDENCE = "EV-OMIT-7"
EVIDENCE_RECORDS = 12
DATASET = "ds/justice/omit-cases"
PAGE = 5
ANSWER_CHECKS = ["genesis", "epochs", "checkpoint", "records", "key", "list", "claims"]


# -- the devnet and what it holds ------------------------------------------------------------


@dataclass
class World:
    c: Cluster
    files: Path
    ids: dict[str, str] = field(default_factory=dict)  # name -> record id (hex)
    evidence_ids: list[str] = field(default_factory=list)  # EVIDENCE's records, in log order
    early: dict[str, dict[str, Any]] = field(default_factory=dict)  # answers kept before later records
    saved: int = 0

    @property
    def genesis(self) -> Path:
        return self.c.root / "genesis.json"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def signed(w: World, rtype: str, subject: str, body: dict[str, Any], refs: tuple[str, ...] = (),
           key: crypto.PrivateKey | None = None) -> bytes:
    return sign_record(key or w.c.client, CHAIN, rtype, subject, body, now_ms(), os.urandom(16),
                       tuple(bytes.fromhex(r) for r in refs))


def _committed_at_node0(c: Cluster, rid: str) -> tuple[bool, Any]:
    status, doc = c.request(0, "GET", f"/v1/records/{rid}")
    return status == 200 and doc.get("status") == "committed", (status, doc)


def commit(w: World, env: bytes) -> str:
    """Submit to node 0 and return the id once node 0 has committed it (?wait=1, and if that
    gave up while the record was pending, polling node 0 until it is committed)."""
    status, doc = w.c.submit(0, env, wait=True)
    assert status in (200, 202), (status, doc)
    if status == 202:
        wait_until(f"record {doc['id']} to commit", lambda: _committed_at_node0(w.c, doc["id"]))
    else:
        assert doc["status"] == "committed", doc
    return str(doc["id"])


def commit_batch(w: World, envs: list[bytes]) -> list[str]:
    """One POST /v1/records/batch?wait=1; the ids once node 0 has committed every one."""
    body = json.dumps({"envelopes": [base64.b64encode(e).decode() for e in envs]}).encode()
    status, doc = w.c.request(0, "POST", "/v1/records/batch?wait=1", body)
    assert status == 200, (status, doc)
    assert all(item.get("status") in ("committed", "pending") for item in doc["results"]), doc
    ids = [str(item["id"]) for item in doc["results"]]
    pending = [rid for rid, item in zip(ids, doc["results"]) if item["status"] == "pending"]

    def batch_committed() -> tuple[bool, Any]:
        not_yet = [state for done, state in (_committed_at_node0(w.c, rid) for rid in pending) if not done]
        return not not_yet, f"{len(not_yet)} not committed, e.g. {not_yet[:1]}"

    wait_until("the batch to commit at node 0", batch_committed)
    return ids


def api(w: World, path: str) -> dict[str, Any]:
    """An answer from node 0's API."""
    doc: dict[str, Any] = w.c.get(0, path)
    return doc


def subject_path(subject: str, start: int | None = None, limit: int | None = None) -> str:
    query = "&".join(f"{k}={v}" for k, v in (("from", start), ("limit", limit)) if v is not None)
    return f"/v1/subjects/{quote(subject, safe='')}" + (f"?{query}" if query else "")


def status_path(number: str) -> str:
    return f"/v1/certificates/{quote(number, safe='')}/status"


def shares_path(dataset: str) -> str:
    return f"/v1/datasets/{quote(dataset, safe='')}/shares"


def provenance_path(rid: str, depth: int, direction: str) -> str:
    return f"/v1/provenance/{rid}?depth={depth}&direction={direction}"


def cert_body() -> dict[str, Any]:
    t = now_ms()
    return {"cert_type": "food business licence", "holder": crypto.sha256(b"holder 91310000MA1FL0000X"),
            "content_hash": crypto.sha256(b"licence scan"), "valid_from": t - DAY_MS, "valid_until": t + 365 * DAY_MS}


def build(w: World) -> None:
    ids = w.ids
    # A licence issued, then revoked; its status answer is kept in between.
    ids["issue"] = commit(w, signed(w, "cert.issue", LICENCE, cert_body()))
    w.early["status"] = api(w, status_path(LICENCE))
    ids["revoke"] = commit(w, signed(w, "cert.revoke", LICENCE, {"reason": "food safety violation",
                                                                  "effective": now_ms()}))
    # A subject with 12 records: 11 in one batch, the subject's answer kept, then the 12th.
    notes = [signed(w, "evidence.notarize", EVIDENCE, {
        "content_hash": crypto.sha256(b"page %d" % k), "media_type": "image/jpeg", "size": 1000 + k,
        "title": f"inspection photo {k}"}) for k in range(EVIDENCE_RECORDS)]
    w.evidence_ids = commit_batch(w, notes[:-1])
    w.early["subject"] = api(w, subject_path(EVIDENCE))
    w.evidence_ids.append(commit(w, notes[-1]))
    # A dataset: published, granted to two departments, accessed by one (signed by the market
    # department's validator key: a second signer), one grant revoked.
    ids["publish"] = commit(w, signed(w, "dataset.publish", DATASET, {
        "title": "Case files", "content_hash": crypto.sha256(b"cases v1"),
        "schema_hash": crypto.sha256(b"cases schema"), "classification": "internal"}))
    grant = {"purpose": "inspection", "legal_basis": "Food Safety Law art. 110", "expires": now_ms() + 30 * DAY_MS}
    ids["grant-market"] = commit(w, signed(w, "share.grant", DATASET, {"to_dept": "market", **grant}))
    ids["grant-health"] = commit(w, signed(w, "share.grant", DATASET, {"to_dept": "health", **grant}))
    ids["access"] = commit(w, signed(w, "share.access", DATASET, {
        "grant": bytes.fromhex(ids["grant-market"]), "purpose": "inspection",
        "content_hash": crypto.sha256(b"cases v1")}, key=w.c.keys[1]))
    ids["share-revoke"] = commit(w, signed(w, "share.revoke", DATASET, {"grant": bytes.fromhex(ids["grant-health"])}))
    # Batch 7 and what was made from it: two crates (hop 1), two shop lots (hop 2), one sale (hop 3).
    ids["batch"] = commit(w, signed(w, "trace.event", "batch-7", {"activity": "harvested", "location": "Farm 12"}))
    ids["crate-1"] = commit(w, signed(w, "trace.event", "batch-7/crate-1", {"activity": "packed"}, (ids["batch"],)))
    ids["crate-2"] = commit(w, signed(w, "trace.event", "batch-7/crate-2", {"activity": "packed"}, (ids["batch"],)))
    ids["shop-1"] = commit(w, signed(w, "trace.event", "shop-1/lot-3", {"activity": "received"}, (ids["crate-1"],)))
    ids["shop-2"] = commit(w, signed(w, "trace.event", "shop-2/lot-9", {"activity": "mixed"},
                                     (ids["crate-1"], ids["crate-2"])))
    ids["sale"] = commit(w, signed(w, "trace.event", "shop-1/sale-1", {"activity": "sold"}, (ids["shop-1"],)))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    c = Cluster(tmp_path_factory.mktemp("omissions"))
    try:
        c.start_all()
        w = World(c, tmp_path_factory.mktemp("answers"))
        build(w)
        yield w
    finally:
        c.stop_all()


# -- the real verifier -----------------------------------------------------------------------


def verify(w: World, doc: dict[str, Any], kind: str | None) -> tuple[int, dict[str, Any]]:
    """Save `doc` and run `python -m ledgernode verify FILE --genesis G [--kind K] --json`."""
    w.saved += 1
    path = w.files / f"{w.saved:03d}-{kind or 'evidence'}.json"
    path.write_text(json.dumps(doc, indent=1))
    argv = [sys.executable, "-m", "ledgernode", "verify", str(path), "--genesis", str(w.genesis), "--json"]
    if kind is not None:
        argv += ["--kind", kind]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=w.files, timeout=REQUEST_TIMEOUT_S,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode in (0, 1), (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    verdict: dict[str, Any] = json.loads(proc.stdout)
    return proc.returncode, verdict


def valid(w: World, doc: dict[str, Any], kind: str) -> dict[str, Any]:
    """The claim of an answer that must verify: exit 0, every check passed."""
    rc, verdict = verify(w, doc, kind)
    assert rc == 0 and verdict["valid"] is True, verdict["checks"][-1]
    assert [c["check"] for c in verdict["checks"]] == ANSWER_CHECKS
    assert all(c["ok"] for c in verdict["checks"])
    claim: dict[str, Any] = verdict["facts"]["claim"]
    assert claim["kind"] == kind
    return claim


def fails(w: World, doc: dict[str, Any], kind: str | None, check: str = "list") -> str:
    """Verify a tampered document: exit 1, every check before `check` passed, `check` failed
    (the last of the verdict's checks). Its reason."""
    rc, verdict = verify(w, doc, kind)
    last = verdict["checks"][-1]
    assert rc == 1 and verdict["valid"] is False, ("accepted", verdict["facts"].get("claim"))
    assert last["check"] == check and not last["ok"], last
    assert all(c["ok"] for c in verdict["checks"][:-1]), verdict["checks"]
    assert last["error"]
    return str(last["error"])


# -- tampering helpers -----------------------------------------------------------------------


def drop(doc: dict[str, Any], i: int, *, position: bool = True, renumber: bool = False) -> dict[str, Any]:
    """`doc` without its i-th record; with `position`, also without that record's position and
    list proof; with `renumber`, its positions made consecutive again from `from`."""
    out = copy.deepcopy(doc)
    del out["records"][i]
    lst = out["list"]
    if position:
        del lst["positions"][i]
        del lst["list_inclusion"][i]
    if renumber:
        lst["positions"] = list(range(lst["from"], lst["from"] + len(lst["positions"])))
    return out


def flip_hex(text: str, at: int = 10) -> str:
    """One hex digit changed."""
    digit = "0" if text[at] != "0" else "1"
    return text[:at] + digit + text[at + 1:]


def ids_of(doc: dict[str, Any]) -> list[str]:
    return [r["id"] for r in doc["records"]]


def without(doc: dict[str, Any], rid: str) -> dict[str, Any]:
    """A provenance answer without record `rid` (and nothing else changed)."""
    out = copy.deepcopy(doc)
    out["records"] = [r for r in out["records"] if r["id"] != rid]
    assert len(out["records"]) == len(doc["records"]) - 1
    return out


def same_checkpoint(*docs: dict[str, Any]) -> bool:
    return len({d["checkpoint"]["header"] for d in docs}) == 1


def fetch_together(w: World, *paths: str) -> list[dict[str, Any]]:
    """Answers to `paths` against one checkpoint (fetched again if a block committed between)."""
    return wait_until("answers against one checkpoint", lambda: (
        same_checkpoint(*(docs := [api(w, p) for p in paths])), docs))


# -- untampered answers verify and say what they cover --------------------------------------------


def test_a_whole_subject_verifies_and_says_complete(world: World) -> None:
    doc = api(world, subject_path(EVIDENCE))
    assert ids_of(doc) == world.evidence_ids
    assert (doc["total"], doc["next_from"], doc["list"]["from"]) == (EVIDENCE_RECORDS, None, 0)
    assert doc["list"]["positions"] == list(range(EVIDENCE_RECORDS))
    assert all(set(r) >= {"id", "leaf_index", "envelope", "inclusion"} and "height" not in r for r in doc["records"])
    claim = valid(world, doc, "subject")
    assert claim["complete"] is True and (claim["records"], claim["total"]) == (EVIDENCE_RECORDS, EVIDENCE_RECORDS)
    assert f"all {EVIDENCE_RECORDS} records about {EVIDENCE} (complete)" in claim["en"], claim["en"]


def test_pages_verify_and_say_which_records_of_how_many(world: World) -> None:
    pages, start = [], 0
    while start is not None:
        page = api(world, subject_path(EVIDENCE, start, PAGE))
        assert page["list"]["from"] == start and page["total"] == EVIDENCE_RECORDS
        pages.append(page)
        start = page["next_from"]
    assert [p["list"]["from"] for p in pages] == [0, 5, 10]
    assert [p["next_from"] for p in pages] == [5, 10, None]
    assert sum((ids_of(p) for p in pages), []) == world.evidence_ids
    for page, (a, b) in zip(pages, [(1, 5), (6, 10), (11, 12)]):
        claim = valid(world, page, "subject")
        assert claim["complete"] is False and claim["from"] == a - 1 and claim["records"] == b - a + 1
        assert f"records {a}-{b} of {EVIDENCE_RECORDS} about {EVIDENCE}" in claim["en"], claim["en"]
        assert "complete" not in claim["en"]
    # Past the end: an honest empty page, not "no records".
    claim = valid(world, api(world, subject_path(EVIDENCE, EVIDENCE_RECORDS, PAGE)), "subject")
    assert claim["records"] == 0 and claim["total"] == EVIDENCE_RECORDS and not claim["complete"]


def test_status_shares_and_provenance_verify_complete(world: World) -> None:
    status = api(world, status_path(LICENCE))
    assert (status["status"], status["issuer"]) == ("revoked", "justice")
    assert ids_of(status) == [world.ids["issue"], world.ids["revoke"]]
    claim = valid(world, status, "status")
    assert claim["status"] == "revoked" and "revoked" in claim["en"] and "issued by justice" in claim["en"]
    assert "all 2 records about it (complete)" in claim["en"], claim["en"]

    unknown = api(world, status_path(NEVER_ISSUED))
    assert (unknown["status"], unknown["issuer"], unknown["records"]) == ("not_issued", None, [])
    claim = valid(world, unknown, "status")
    assert "not issued" in claim["en"] and "(complete: there are none)" in claim["en"], claim["en"]

    shares = api(world, shares_path(DATASET))
    assert shares["owner"] == "justice" and len(shares["records"]) == 5 and len(shares["keys"]) == 2
    assert [(g["to_dept"], g["revoked_by"], len(g["accesses"])) for g in shares["grants"]] == [
        ("market", None, 1), ("health", world.ids["share-revoke"], 0)]
    claim = valid(world, shares, "shares")
    assert claim["complete"] is True and "all 5 records about it (complete)" in claim["en"], claim["en"]
    assert (claim["grants"], claim["revoked"], claim["accesses"]) == (2, 1, 1)

    back = api(world, provenance_path(world.ids["shop-2"], 2, "back"))
    assert set(ids_of(back)) == {world.ids[k] for k in ("shop-2", "crate-1", "crate-2", "batch")}
    claim = valid(world, back, "provenance")
    assert "all 3 ancestors within depth 2, 4 edges (complete)" in claim["en"], claim["en"]


def test_forward_provenance_of_a_batch_is_everything_made_from_it(world: World) -> None:
    """A food recall: everything made from batch 7 within two hops, with the proof that
    no referrer was left out; the sale at hop 3 is beyond the depth asked for."""
    ids = world.ids
    doc = api(world, provenance_path(ids["batch"], 2, "forward"))
    assert set(ids_of(doc)) == {ids[k] for k in ("batch", "crate-1", "crate-2", "shop-1", "shop-2")}
    assert set(doc["lists"]) == {ids["batch"], ids["crate-1"], ids["crate-2"]}
    assert sorted(map(tuple, doc["edges"])) == sorted([
        (ids["crate-1"], ids["batch"]), (ids["crate-2"], ids["batch"]), (ids["shop-1"], ids["crate-1"]),
        (ids["shop-2"], ids["crate-1"]), (ids["shop-2"], ids["crate-2"])])
    claim = valid(world, doc, "provenance")
    assert claim["complete"] is True and claim["direction"] == "forward"
    assert "all 4 descendants within depth 2, 5 edges (complete)" in claim["en"], claim["en"]
    deeper = api(world, provenance_path(ids["batch"], 3, "forward"))
    assert ids["sale"] in ids_of(deeper)
    assert "all 5 descendants within depth 3" in valid(world, deeper, "provenance")["en"]


# -- (a), (f): a record dropped from a subject's answer ---------------------------------------------


def test_a_record_removed_with_its_position_fails_list(world: World) -> None:
    doc = api(world, subject_path(EVIDENCE))
    # (a) the record and its position gone, the positions renumbered to look whole: position 5's
    # proof now names the next record's leaf, and the list's tree says otherwise.
    error = fails(world, drop(doc, 5, renumber=True), "subject")
    assert "position 5" in error, error
    # Only the record gone: the list still names 12 positions for 11 records.
    fails(world, drop(doc, 5, position=False), "subject")
    # The first record gone and the rest claimed to start at position 0.
    assert "position 0" in fails(world, drop(doc, 0, renumber=True), "subject")


def test_positions_that_skip_one_fail_list(world: World) -> None:
    """(f) a middle record removed with its position and proof, nothing renumbered."""
    doc = api(world, subject_path(EVIDENCE))
    tampered = drop(doc, 6)
    assert tampered["list"]["positions"] == [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11]
    error = fails(world, tampered, "subject")
    assert "skip" in error, error


def test_dropping_an_end_record_leaves_an_honest_page_not_a_complete_answer(world: World) -> None:
    """A subject answer may be a page: without its last record, or without its first one and
    starting at position 1, it still verifies, but its claim says which 11 of the 12 it
    holds, never that it is complete."""
    doc = api(world, subject_path(EVIDENCE))
    page = drop(doc, EVIDENCE_RECORDS - 1)
    # Left saying there is no next page, its next_from contradicts its list.
    assert "next_from 11" in fails(world, page, "subject", "claims")
    page["next_from"] = EVIDENCE_RECORDS - 1
    claim = valid(world, page, "subject")
    assert claim["complete"] is False and (claim["records"], claim["total"]) == (11, 12)
    assert f"records 1-11 of 12 about {EVIDENCE}" in claim["en"] and "complete" not in claim["en"]
    later = drop(doc, 0)
    later["list"]["from"] = 1
    claim = valid(world, later, "subject")
    assert claim["complete"] is False and claim["from"] == 1
    assert f"records 2-12 of 12 about {EVIDENCE}" in claim["en"], claim["en"]


# -- (b): a page removed ----------------------------------------------------------------------------


def test_a_later_page_passed_off_as_the_first_fails_list(world: World) -> None:
    """(b) the first page hidden: page 2's records and list pasted into page 1's answer,
    claiming they start at position 0."""
    first, second = fetch_together(world, subject_path(EVIDENCE, 0, PAGE), subject_path(EVIDENCE, PAGE, PAGE))
    forged = copy.deepcopy(first)
    forged["records"] = copy.deepcopy(second["records"])
    forged["list"] = copy.deepcopy(second["list"])
    forged["list"]["from"] = 0
    forged["list"]["positions"] = list(range(PAGE))
    forged["next_from"] = PAGE
    error = fails(world, forged, "subject")
    assert "position 0" in error, error
    # Claiming from = 0 but keeping page 2's positions does not hold either.
    forged["list"]["positions"] = second["list"]["positions"]
    fails(world, forged, "subject")


# -- (c): a revoked licence passed off as never issued --------------------------------------------------


def test_a_revoked_licence_cannot_be_shown_as_not_issued(world: World) -> None:
    revoked, unknown = fetch_together(world, status_path(LICENCE), status_path(NEVER_ISSUED))
    assert revoked["status"] == "revoked"

    def not_issued(lst: dict[str, Any]) -> dict[str, Any]:
        forged = copy.deepcopy(revoked)
        forged.update(status="not_issued", issuer=None, records=[], keys={}, list=lst)
        return forged

    # The list of a number that was never issued (a proof of absence, of another path).
    fails(world, not_issued(copy.deepcopy(unknown["list"])), "status")
    # The real name's entry with its value erased: its proof shows the entry present.
    entry = {"value": None, "proof": copy.deepcopy(revoked["list"]["entry"]["proof"])}
    fails(world, not_issued({"entry": entry, "from": 0, "positions": [], "list_inclusion": []}), "status")
    # The same proof with its leaf removed, as if the subtree were empty.
    entry = {"value": None, "proof": {**revoked["list"]["entry"]["proof"], "leaf": None}}
    fails(world, not_issued({"entry": entry, "from": 0, "positions": [], "list_inclusion": []}), "status")
    # The real entry, no positions: a status answer must cover the whole list.
    lst = {**copy.deepcopy(revoked["list"]), "positions": [], "list_inclusion": []}
    error = fails(world, not_issued(lst), "status")
    assert "0 of 2" in error, error


def test_a_revocation_left_out_of_a_status_answer_fails_list(world: World) -> None:
    """The revoke record (the last of the list) dropped with its position: a consistent
    page of the list, but a status answer must hold every record."""
    doc = api(world, status_path(LICENCE))
    forged = drop(doc, 1)
    forged.update(status="valid")
    error = fails(world, forged, "status")
    assert "1 of 2" in error, error
    # The first page of the licence's history (the issue alone), relabelled as a status answer.
    page = api(world, subject_path(LICENCE, 0, 1))
    forged = {k: v for k, v in page.items() if k not in ("subject", "total", "next_from")}
    forged.update(kind="status", number=LICENCE, at=doc["at"], status="valid", issuer="justice")
    assert "1 of 2" in fails(world, forged, "status")


def test_a_dataset_answer_without_its_revocation_fails_list(world: World) -> None:
    doc = api(world, shares_path(DATASET))
    assert ids_of(doc)[-1] == world.ids["share-revoke"]
    forged = drop(doc, len(doc["records"]) - 1)
    forged["grants"][1]["revoked_by"] = None
    fails(world, forged, "shares")
    # A grant in the middle dropped (the access stays), positions renumbered.
    fails(world, drop(doc, 2, renumber=True), "shares")


# -- (d): a state-map proof altered -------------------------------------------------------------------


def test_a_tampered_map_proof_fails_list(world: World) -> None:
    for path, kind in ((subject_path(EVIDENCE), "subject"), (status_path(LICENCE), "status")):
        doc = api(world, path)
        siblings = doc["list"]["entry"]["proof"]["siblings"]
        assert siblings, "the state map holds more than one entry"
        for j in (0, len(siblings) - 1):
            forged = copy.deepcopy(doc)
            forged["list"]["entry"]["proof"]["siblings"][j] = flip_hex(siblings[j])
            assert "state root" in fails(world, forged, kind)
        # The entry's value (n and the list's root) altered, or a list proof's hash.
        forged = copy.deepcopy(doc)
        forged["list"]["entry"]["proof"]["leaf"]["value_hash"] = flip_hex(
            doc["list"]["entry"]["proof"]["leaf"]["value_hash"])
        fails(world, forged, kind)
        forged = copy.deepcopy(doc)
        forged["list"]["list_inclusion"][0][0] = flip_hex(doc["list"]["list_inclusion"][0][0])
        fails(world, forged, kind)


# -- (e): the list of an earlier checkpoint ----------------------------------------------------------


def test_a_list_from_an_earlier_checkpoint_fails_list(world: World) -> None:
    early, later = world.early["subject"], api(world, subject_path(EVIDENCE))
    # Each answer on its own is honest about the checkpoint it was taken at.
    early_claim = valid(world, early, "subject")
    assert early_claim["complete"] and early_claim["total"] == EVIDENCE_RECORDS - 1
    assert early_claim["checkpoint_height"] < valid(world, later, "subject")["checkpoint_height"]
    # The later answer without its 12th record, with the list from when there were 11.
    forged = drop(later, EVIDENCE_RECORDS - 1)
    forged["list"] = copy.deepcopy(early["list"])
    assert "state root" in fails(world, forged, "subject")

    # The licence as it stood before its revocation, pasted into today's answer.
    early_status, status = world.early["status"], api(world, status_path(LICENCE))
    assert valid(world, early_status, "status")["status"] == "valid"
    forged = drop(status, 1)
    forged.update(status="valid", list=copy.deepcopy(early_status["list"]))
    fails(world, forged, "status")


# -- (g): a referrer left out of a recall -----------------------------------------------------------


def test_a_referrer_left_out_of_a_forward_provenance_fails_list(world: World) -> None:
    ids = world.ids
    doc = api(world, provenance_path(ids["batch"], 2, "forward"))
    shop = ids["shop-1"]
    # Only the record dropped: crate 1's referrers list still names two positions.
    fails(world, without(doc, shop), "provenance")
    # The record and its edge dropped, and its position in crate 1's list: renumbered, shop 2's
    # proof does not hold at position 0; left as it was, the list is a part of crate 1's
    # referrers (position 1 of 2), not all of them.
    forged = without(doc, shop)
    forged["edges"] = [e for e in forged["edges"] if e[0] != shop]
    crate = forged["lists"][ids["crate-1"]]
    assert crate["positions"] == [0, 1]  # shop 1, then shop 2, in log order
    crate["positions"], crate["list_inclusion"] = [0], [crate["list_inclusion"][1]]
    assert "position 0" in fails(world, forged, "provenance")
    crate["from"], crate["positions"] = 1, [1]
    error = fails(world, forged, "provenance")
    assert "referrers" in error and "missing (1 of 2)" in error, error
    # A whole crate gone (the record, its list and its edges).
    crate2 = ids["crate-2"]
    forged = without(doc, crate2)
    del forged["lists"][crate2]
    forged["edges"] = [e for e in forged["edges"] if crate2 not in e]
    fails(world, forged, "provenance")
    # Back provenance without the batch itself.
    back = api(world, provenance_path(ids["shop-2"], 2, "back"))
    fails(world, without(back, ids["batch"]), "provenance")


def test_forward_provenance_above_500_records_is_refused(world: World) -> None:
    root = commit(world, signed(world, "trace.event", "batch-bulk", {"activity": "harvested"}))
    commit_batch(world, [signed(world, "trace.event", f"batch-bulk/bag-{k}", {"activity": "bagged"}, (root,))
                         for k in range(500)])
    status, doc = world.c.request(0, "GET", provenance_path(root, 1, "forward"))
    assert status == 422 and doc["error"]["code"] == "graph_too_large", (status, doc)
    # Depth 0 is the root alone, and verifies.
    claim = valid(world, api(world, provenance_path(root, 0, "forward")), "provenance")
    assert "all 0 descendants within depth 0" in claim["en"], claim["en"]


# -- (h): an evidence bundle's key proof -----------------------------------------------------------


def test_a_bundle_with_a_tampered_key_proof_fails_key(world: World) -> None:
    bundle = api(world, f"/v1/records/{world.ids['access']}/evidence")
    assert bundle["format"] == "ledgernode-evidence/2" and "later" not in bundle
    rc, verdict = verify(world, bundle, None)
    assert rc == 0 and verdict["valid"], verdict["checks"][-1]
    assert verdict["facts"]["record"]["signer"]["dept"] == "market"
    siblings = bundle["state"]["key"]["proof"]["siblings"]
    assert siblings
    for j in range(len(siblings)):
        forged = copy.deepcopy(bundle)
        forged["state"]["key"]["proof"]["siblings"][j] = flip_hex(siblings[j], 63)
        assert "state root" in fails(world, forged, None, "key")
    # Another signer's key entry (the client's), proven in the same state.
    mine, other = wait_until("two bundles against one checkpoint", lambda: (
        (pair := [api(world, f"/v1/records/{world.ids[k]}/evidence") for k in ("access", "publish")])[0]["state"][
            "checkpoint"] == pair[1]["state"]["checkpoint"], pair))
    forged = copy.deepcopy(mine)
    forged["state"]["key"] = other["state"]["key"]
    fails(world, forged, None, "key")
