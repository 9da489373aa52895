"""The validator set grows and shrinks on real nodes (docs/governance.md sections 3 and 5,
docs/protocol.md section 13). A 4-node network adds a fifth validator by governance;
its node, started only then with the genesis file, a key no genesis holds and an empty
data directory, catches up through the change (every QC checked against the set of its
height), votes and takes its turn as primary, and approves the next change itself: an
original validator leaves and its process keeps following. Then the client's key is
revoked, and the node that left starts again from an empty data directory: it catches
up through both changes. A client submits at a steady rate throughout: every record is
committed on every node or refused with a reason, and evidence bundles of records from
every epoch verify from the genesis file alone."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path
from typing import Any

from ledgernode.blocks import decode_header

from .procs import Cluster, SteadyClient, running, wait_until
from .test_governance import applied, gov, verify

JOINER = 4  # the spare node: its key is in no genesis


def statuses(c: Cluster, nodes: int) -> list[tuple[Any, Any]]:
    """(validator, validators) of /v1/status on nodes 0 to `nodes` - 1."""
    return [(st["validator"], st["validators"]) for st in (c.get(i, "/v1/status") for i in range(nodes))]


def proposers_and_signers(c: Cluster, node: int, heights: range) -> tuple[set[int], set[int]]:
    proposers, signers = set(), set()
    for height in heights:
        block = c.get(node, f"/v1/blocks/{height}")
        signers |= {s["validator"] for s in block["qc"]["signatures"]}
        proposers.add(decode_header(base64.b64decode(block["header"])).proposer)
    return proposers, signers


def committed(c: Cluster, doc: dict[str, Any]) -> None:
    assert doc.get("status") == "committed", doc


def test_a_fifth_validator_joins_then_an_original_leaves_then_a_client_key_is_revoked(tmp_path: Path) -> None:
    with running(tmp_path, spare=1, start=False) as c:
        for i in range(c.n):
            c.start(i)  # the joiner's node is not started yet
        steady = SteadyClient(c, "steady", nodes=(1, 2, 3))
        epoch_records = [c.submit(1, c.record("epoch-1"), wait=True)[1]]
        joiner_key = tmp_path / f"node{JOINER}" / "validator.pem"
        answer = gov(c, 0, "propose", "--action", "validator.add", "--id", "JOIN-tax", "--dept", "tax",
                     "--name", "State Taxation Administration", "--pubkey-file", str(joiner_key), "--wait")
        committed(c, answer)
        applied(c, "JOIN-tax", (1, 2))
        added_at = max(c.get(i, "/v1/status")["height"] for i in range(c.n))
        # Q is 4 of 5 now: the four running validators carry on without the fifth
        epoch_records.append(c.submit(2, c.record("epoch-2"), wait=True)[1])
        assert statuses(c, c.n) == [(i, 5) for i in range(c.n)]

        c.start(JOINER)  # the genesis file, a key of no genesis, an empty data directory
        wait_until("the joiner to catch up and vote", lambda: (
            (st := c.get(JOINER, "/v1/status"))["validator"] == JOINER and st["height"] >= epoch_records[1]["height"],
            st))
        # it proposes in its turn: the first, or (having missed turns while it was away) its
        # next probe turn (consensus/turns.py); and it signs QCs
        seen: dict[str, Any] = {"next": c.get(JOINER, "/v1/status")["height"] + 1, "proposers": set(),
                                "signers": set()}

        def joiner_proposed() -> tuple[bool, Any]:
            top = c.get(JOINER, "/v1/status")["height"]
            proposers, signers = proposers_and_signers(c, JOINER, range(seen["next"], top + 1))
            seen["next"], seen["proposers"], seen["signers"] = top + 1, seen["proposers"] | proposers, \
                seen["signers"] | signers
            return JOINER in seen["proposers"] and JOINER in seen["signers"], (top, seen, steady.summary())

        wait_until("a block the joiner proposed", joiner_proposed)
        epoch_records.append(c.submit(JOINER, c.record("epoch-2-via-joiner"), wait=True)[1])

        (tmp_path / "leaving.hex").write_text(c.keys[0].public.raw.hex())
        committed(c, gov(c, 1, "propose", "--action", "validator.remove", "--id", "LEAVE-0",
                         "--pubkey-file", str(tmp_path / "leaving.hex"), "--wait"))
        applied(c, "LEAVE-0", (2, 3, JOINER), c.nodes)  # Q = 4 of 5: the joiner's approval is needed
        removed_at = max(c.get(i, "/v1/status")["height"] for i in range(c.nodes))
        epoch_records.append(c.submit(3, c.record("epoch-3"), wait=True)[1])
        wait_until("the set of four on every node", lambda: (statuses(c, c.nodes) == [
            (None, 4), (0, 4), (1, 4), (2, 4), (3, 4)], statuses(c, c.nodes)))
        follower_at = c.get(0, "/v1/status")["height"]
        after = c.submit(0, c.record("epoch-3-via-follower"), wait=True)[1]  # a follower takes records too
        committed(c, after)
        wait_until("the follower to follow", lambda: (c.get(0, "/v1/status")["height"] > follower_at, None))

        committed(c, gov(c, JOINER, "propose", "--action", "key.revoke", "--id", "REVOKE-client",
                         "--key-id", c.client.public.key_id, "--reason", "retired", "--wait"))
        applied(c, "REVOKE-client", (1, 2), c.nodes)  # Q = 3 of 4
        wait_until("the steady client to be refused", lambda: (bool(steady.failures), steady.summary()))
        steady.finish()
        for doc in epoch_records:
            committed(c, doc)
        status, doc = c.submit(JOINER, c.record("after-revocation"))
        assert (status, doc["error"]["code"]) == (409, "key_revoked"), doc

        # none lost: every record the client was told committed is on every node; every
        # refusal names the revocation
        assert steady.ids, steady.summary()
        assert all("key_revoked" in json.dumps(f) for f in steady.failures), steady.failures[:5]
        for rid in steady.ids[:: max(1, len(steady.ids) // 20)] + [d["id"] for d in epoch_records]:
            for node in range(c.nodes):
                assert c.get(node, f"/v1/records/{rid}")["status"] == "committed"
        heights = [d["height"] for d in epoch_records]
        assert heights[0] <= added_at < heights[1] <= heights[2] <= removed_at < heights[3], (heights, added_at)

        # a node that starts afresh from the genesis file catches up through both changes
        head = max(c.get(i, "/v1/status")["height"] for i in range(1, c.nodes))
        c.kill(0)
        shutil.rmtree(tmp_path / "node0" / "data")
        c.start(0)
        wait_until(f"node 0 to catch up to {head} again", lambda: (c.get(0, "/v1/status")["height"] >= head, None))
        assert c.get(0, "/v1/status")["validator"] is None
        since_restart = (tmp_path / "node0" / "node.log").read_text().split("up at height 0 (0 records)")[-1]
        changes = re.findall(r"the validator set changes at height \d+: (\d) validators, this node (\w+)",
                             since_restart)
        assert changes == [("5", "is"), ("4", "follows")], since_restart[-3000:]

        # every epoch's records verify from the genesis alone, from the follower and the joiner
        for doc in epoch_records:
            for node in (0, JOINER):
                bundle = c.get(node, f"/v1/records/{doc['id']}/evidence")
                checked = verify(c, bundle, tmp_path / f"{doc['id']}-{node}.json")
                assert checked.returncode == 0, checked.stdout + checked.stderr
                assert "validator epoch" in checked.stdout, checked.stdout
