"""The auditors' walk-through of README.md against a real node, CLI processes only.

One validator process (real LevelDB, real HTTP): issue a certificate, keep a
checkpoint, suspend the certificate, publish and share a dataset, trace a
product; then every read command saves its version 2 answer (a page of a
subject's list with `history --from`, provenance back and `--direction forward`)
and the real offline verifier accepts each file, as an auditor would run them,
its claim saying whether the answer holds the whole list ("complete") or which
part of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledgernode import crypto

from .procs import REQUEST_TIMEOUT_S, Cluster, running

REPO = Path(__file__).resolve().parents[2]
VALID_FROM_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
VALID_UNTIL_MS = 1_893_456_000_000  # 2030-01-01T00:00:00Z
SUSPENDED_FROM_MS = 1_790_000_000_000  # 2026-09-21, before the time asked about below
HOLDER = "ab" * 32


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with running(tmp_path, n=1) as c:
        yield c


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "ledgernode", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=REQUEST_TIMEOUT_S)


def ok(cwd: Path, *args: str) -> str:
    proc = cli(cwd, *args)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


def submit(cluster: Cluster, cwd: Path, key: Path, record_type: str, subject: str, body: dict[str, object],
           *extra: str) -> dict[str, object]:
    out = ok(cwd, "submit", "--api", cluster.api(0), "--key", str(key), "--type", record_type,
             "--subject", subject, "--body", json.dumps(body), "--wait", *extra)
    answer: dict[str, object] = json.loads(out)
    assert answer["status"] == "committed", answer
    return answer


def test_auditor_read_commands_against_a_real_node(cluster: Cluster, tmp_path: Path) -> None:
    key = tmp_path / "client.pem"
    crypto.save_private_key(key, cluster.client)
    api = cluster.api(0)
    readme = str(REPO / "README.md")
    issued = submit(cluster, tmp_path, key, "cert.issue", "LIC-1", {
        "cert_type": "business licence", "holder": HOLDER, "valid_from": VALID_FROM_MS,
        "valid_until": VALID_UNTIL_MS}, "--file", readme)
    ok(tmp_path, "checkpoint", "--api", api, "--out", "old-checkpoint.json")
    submit(cluster, tmp_path, key, "cert.suspend", "LIC-1", {"reason": "under audit",
                                                              "effective": SUSPENDED_FROM_MS})
    submit(cluster, tmp_path, key, "dataset.publish", "ds/justice/cases", {
        "title": "Cases", "content_hash": HOLDER, "schema_hash": HOLDER, "classification": "internal"})
    submit(cluster, tmp_path, key, "share.grant", "ds/justice/cases", {
        "to_dept": "justice", "purpose": "audit", "legal_basis": "art. 7", "expires": VALID_UNTIL_MS})
    first = submit(cluster, tmp_path, key, "trace.event", "lot-1", {"activity": "harvested"})
    second = submit(cluster, tmp_path, key, "trace.event", "lot-1", {"activity": "packed"},
                    "--ref", str(first["id"]))

    genesis = str(cluster.root / "genesis.json")
    saved = {  # file name -> (verify --kind, read command, what the verified claim says)
        "status": ("status", ["status", "LIC-1", "--at", "2026-12-02T10:00+08:00"],
                   "status at 2026-12-02 02:00 UTC: suspended, issued by justice (from all 2 records about it "
                   "(complete)"),
        "subject": ("subject", ["history", "LIC-1"], "subject LIC-1: all 2 records about LIC-1 (complete)"),
        "subject-page": ("subject", ["history", "LIC-1", "--from", "1", "--limit", "1"],
                         "subject LIC-1: records 2-2 of 2 about LIC-1"),
        "shares": ("shares", ["shares", "ds/justice/cases"], "(owner justice): 1 grant (1 live"),
        "provenance": ("provenance", ["provenance", str(second["id"])], "all 1 ancestor within depth 8, 1 edge "
                       "(complete)"),
        "made-from": ("provenance", ["provenance", str(first["id"]), "--depth", "1", "--direction", "forward"],
                      "all 1 descendant within depth 1, 1 edge (complete)"),
    }
    claims = {}
    for name, (kind, argv, says) in saved.items():
        summary = json.loads(ok(tmp_path, *argv, "--api", api, "--out", f"{name}.json"))
        assert summary["saved"] == [f"{name}.json"]
        assert summary["verify"].endswith(f"--kind {kind}"), summary
        verdict = json.loads(ok(tmp_path, "verify", f"{name}.json", "--genesis", genesis, "--kind", kind, "--json"))
        assert verdict["valid"] is True
        assert [(c["check"], c["ok"]) for c in verdict["checks"]][-2:] == [("list", True), ("claims", True)]
        claims[name] = verdict["facts"]["claim"]
        assert says in claims[name]["en"], (name, claims[name]["en"])
        assert ("complete" in claims[name]["en"]) is claims[name]["complete"], claims[name]
        text = ok(tmp_path, "verify", f"{name}.json", "--genesis", genesis, "--kind", kind)
        assert "有效 VALID" in text and claims[name]["en"] in text
    status = json.loads((tmp_path / "status.json").read_text())
    assert (status["status"], status["issuer"]) == ("suspended", "justice")
    assert len(status["records"]) == status["list"]["positions"][-1] + 1 == 2
    page = json.loads((tmp_path / "subject-page.json").read_text())
    assert (page["list"]["from"], page["list"]["positions"], page["total"], page["next_from"]) == (1, [1], 2, None)
    first_page = cli(tmp_path, "history", "LIC-1", "--limit", "1", "--api", api)
    assert first_page.returncode == 0 and json.loads(first_page.stdout)["next_from"] == 1
    assert "more records follow: ledgernode history LIC-1 --from 1" in first_page.stderr
    provenance = json.loads((tmp_path / "provenance.json").read_text())
    assert {r["id"] for r in provenance["records"]} == {first["id"], second["id"]}
    made_from = json.loads((tmp_path / "made-from.json").read_text())
    assert made_from["direction"] == "forward" and set(made_from["lists"]) == {first["id"]}
    assert made_from["edges"] == [[second["id"], first["id"]]]

    # The certificate's evidence bundle, verified with the file it names.
    assert status["records"][0]["id"] == issued["id"]
    ok(tmp_path, "evidence", "--api", api, "--id", str(issued["id"]), "--out", "bundle.json")
    verdict = json.loads(ok(tmp_path, "verify", "bundle.json", "--genesis", genesis, "--file", readme, "--json"))
    assert verdict["valid"] and [c["check"] for c in verdict["checks"]][-3:] == ["checkpoint", "key", "file"]
    assert verdict["facts"]["claim"]["file_matches"] is True

    ok(tmp_path, "consistency", "--api", api, "--from", "old-checkpoint.json", "--out", "proof.json",
       "--to-out", "new-checkpoint.json")
    verdict = ok(tmp_path, "verify-consistency", "old-checkpoint.json", "new-checkpoint.json", "proof.json",
                 "--genesis", genesis)
    assert "without rewriting" in verdict
    ok(tmp_path, "record", "--api", api, str(second["id"]))
