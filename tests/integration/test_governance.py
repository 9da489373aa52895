"""Governance on real nodes (docs/governance.md, docs/protocol.md section 13): a department
joins with a new client key by a quorum of validators, through `ledgernode gov`, the key
signs, it is revoked, and from then on it is refused with 409 key_revoked while the
record it signed before keeps a bundle that verifies from the genesis file alone. A
client submits at a steady rate throughout; every record it was told committed is on
every node."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ledgernode import crypto
from ledgernode.blocks import decode_header
from ledgernode.records import sign_record

from .procs import Cluster, SteadyClient, running, wait_until

CLI_TIMEOUT_S = 60.0


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledgernode", *args], capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S)


def gov(c: Cluster, i: int, *args: str) -> dict[str, Any]:
    """`ledgernode gov ...` against node i with validator i's key; its JSON answer."""
    key = ["--key", str(c.root / f"node{i}" / "validator.pem")] if args[0] != "list" else []
    done = cli("gov", *args, "--api", c.api(i), *key)
    assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
    return json.loads(done.stdout)


def proposal(c: Cluster, i: int, pid: str) -> dict[str, Any]:
    (found,) = [p for p in gov(c, i, "list", "--all", "--json")["proposals"] if p["id"] == pid]
    return found


def notarize(c: Cluster, key: crypto.PrivateKey, subject: str) -> bytes:
    body = {"content_hash": crypto.sha256(subject.encode()), "media_type": "text/plain", "size": 1,
            "title": subject}
    return sign_record(key, "gov-itest", "evidence.notarize", subject, body, int(time.time() * 1000),
                       os.urandom(16))


def applied(c: Cluster, pid: str, approvers: tuple[int, ...], nodes: int | None = None) -> None:
    """Approve `pid` with these validators, then wait until nodes 0 to `nodes` - 1 (default:
    the genesis's) show it applied."""
    for i in approvers:
        answer = gov(c, i, "approve", pid, "--wait")
        assert answer["status"] == "committed", answer
    for i in range(c.n if nodes is None else nodes):
        wait_until(f"node {i} shows {pid} applied",
                   lambda i=i: (proposal(c, i, pid)["state"] == "applied", None))


def verify(c: Cluster, bundle: dict[str, Any], path: Path) -> subprocess.CompletedProcess[str]:
    path.write_text(json.dumps(bundle))
    return cli("verify", str(path), "--genesis", str(c.root / "genesis.json"))


def test_a_department_joins_signs_and_its_revoked_key_is_refused(tmp_path: Path) -> None:
    with running(tmp_path) as c:
        steady = SteadyClient(c, "steady")
        new_key = crypto.generate_private_key()
        crypto.save_private_key(tmp_path / "ecology.pem", new_key)
        # a client key, even with the role "*", cannot sign governance
        status, doc = c.submit(0, sign_record(c.client, "gov-itest", "gov.approve", "JOIN-1",
                                              {"proposal": bytes(32)}, int(time.time() * 1000), os.urandom(16)))
        assert (status, doc["error"]["code"]) == (403, "role_denied"), doc

        answer = gov(c, 0, "propose", "--action", "key.add", "--id", "JOIN-1", "--dept", "ecology",
                     "--name", "Ministry of Ecology and Environment", "--pubkey-file", str(tmp_path / "ecology.pem"),
                     "--roles", "evidence.*", "--wait")
        assert answer["status"] == "committed", answer
        shown = proposal(c, 3, "JOIN-1")
        assert (shown["state"], shown["needed"], shown["args"]["dept"]) == ("open", 2, "ecology")
        status, doc = c.submit(1, notarize(c, new_key, "early"), wait=True)
        assert (status, doc["error"]["code"]) == (403, "unknown_key"), doc

        applied(c, "JOIN-1", (1, 2))
        status, before = c.submit(2, notarize(c, new_key, "signed-before-revocation"), wait=True)
        assert status == 200 and before["status"] == "committed", before

        revoke = gov(c, 3, "propose", "--action", "key.revoke", "--id", "REVOKE-1", "--key-id",
                     new_key.public.key_id, "--reason", "laptop stolen", "--wait")
        assert revoke["status"] == "committed", revoke
        applied(c, "REVOKE-1", (0, 1))
        for i in range(c.n):
            status, doc = c.submit(i, notarize(c, new_key, f"after-{i}"))
            assert (status, doc["error"]["code"]) == (409, "key_revoked"), doc

        bundle = c.get(0, f"/v1/records/{before['id']}/evidence")
        checked = verify(c, bundle, tmp_path / "before.json")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "signed before the key was revoked at leaf" in checked.stdout, checked.stdout
        gov_bundle = c.get(3, f"/v1/records/{revoke['id']}/evidence")
        checked = verify(c, gov_bundle, tmp_path / "revoke.json")
        assert checked.returncode == 0, checked.stdout + checked.stderr

        steady.finish()
        assert steady.ids and not steady.failures, steady.summary()
        for i in range(c.n):
            for rid in steady.ids[:: max(1, len(steady.ids) // 20)]:
                assert c.get(i, f"/v1/records/{rid}")["status"] == "committed"


def test_a_removed_validator_keeps_following_and_a_node_away_at_the_change_catches_up(tmp_path: Path) -> None:
    """Validator 0 leaves, so every other validator takes a new index (1, 2, 3 become 0, 1,
    2); node 3 is cut off while the change commits. The three that stay need all three votes
    (n = 3, Q = 3), so the chain goes on only once node 3, cut off but running, has
    fetched the change, though its peers now name themselves by indexes it does not know
    yet, and votes under its new index; node 0 keeps following. Bundles of both epochs verify from the genesis alone."""
    with running(tmp_path) as c:
        steady = SteadyClient(c, "steady", nodes=(1, 2))
        status, before = c.submit(1, c.record("before-the-change"), wait=True)
        assert status == 200 and before["status"] == "committed", before
        (tmp_path / "leaving.hex").write_text(c.keys[0].public.raw.hex())
        answer = gov(c, 1, "propose", "--action", "validator.remove", "--id", "LEAVE-0",
                     "--pubkey-file", str(tmp_path / "leaving.hex"), "--wait")
        assert answer["status"] == "committed", answer
        steady.finish()  # what follows stalls the chain on purpose until node 3 is back
        assert steady.ids and not steady.failures, steady.summary()
        cut_off = json.dumps({"partition": [[0, 1, 2], [3]]}).encode()
        for i in range(c.n):  # node 3 stays up, hearing nothing while the change commits
            assert c.request(i, "POST", "/v1/debug/faults", cut_off)[0] == 200
        for i in (0, 2):
            answer = gov(c, i, "approve", "LEAVE-0", "--wait")
            assert answer["status"] == "committed", answer
        changed_at = answer["height"]
        assert c.get(3, "/v1/status")["height"] < changed_at
        for i in range(c.n):
            assert c.request(i, "POST", "/v1/debug/faults", b"{}")[0] == 200
        resumed = SteadyClient(c, "resumed", nodes=(0, 1, 2))
        status, after = c.submit(2, c.record("after-the-change"), wait=True)
        assert status == 200 and after["status"] == "committed", after
        assert after["height"] > changed_at
        # two rotations of the new set: each of the three proposes under its new index
        top = changed_at + 7
        wait_until(f"height {top}", lambda: (c.get(1, "/v1/status")["height"] >= top, resumed.summary()))
        resumed.finish()
        assert not resumed.failures, resumed.summary()
        for node in range(c.n):
            wait_until(f"node {node} to hold height {top}",
                       lambda node=node: (c.get(node, "/v1/status")["height"] >= top, None))
        assert [(st["validator"], st["validators"]) for st in (c.get(i, "/v1/status") for i in range(c.n))] == [
            (None, 3), (0, 3), (1, 3), (2, 3)]
        proposers = set()
        for height in range(changed_at + 1, top + 1):
            block = c.get(0, f"/v1/blocks/{height}")
            assert sorted(s["validator"] for s in block["qc"]["signatures"]) == [0, 1, 2], block["qc"]
            proposers.add(decode_header(base64.b64decode(block["header"])).proposer)
        assert proposers == {0, 1, 2}, proposers
        for doc, node in ((before, 0), (after, 0), (after, 3)):
            bundle = c.get(node, f"/v1/records/{doc['id']}/evidence")
            assert len(bundle["epochs"]) == 1, bundle["epochs"]
            checked = verify(c, bundle, tmp_path / f"{doc['id']}.json")
            assert checked.returncode == 0, checked.stdout + checked.stderr
            assert "validator epoch 1" in checked.stdout, checked.stdout
        status, doc = c.submit(0, sign_record(c.keys[0], "gov-itest", "gov.approve", "LEAVE-0",
                                              {"proposal": bytes(32)}, int(time.time() * 1000), os.urandom(16)))
        assert (status, doc["error"]["code"]) == (409, "key_revoked"), doc
        for rid in steady.ids[:: max(1, len(steady.ids) // 10)] + resumed.ids[:: max(1, len(resumed.ids) // 10)]:
            for node in range(c.n):
                assert c.get(node, f"/v1/records/{rid}")["status"] == "committed"
