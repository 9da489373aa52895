"""Every record gets a definitive answer, on real nodes (docs/protocol.md section 5):
committed, or refused with the rule it breaks, or rejected after admission with why.
Records that cannot commit make no block, and leave no trace in the state map: an
auditor's version 2 answer about their subject proves they are not there."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import pytest

from ledgernode import crypto
from ledgernode.auditing.answers import verify_answer
from ledgernode.records import sign_record

from .procs import Cluster, wait_until

METRICS_TIMEOUT_S = 60.0  # bounds one request; not a speed requirement
CERT_BODY = {"cert_type": "licence", "holder": crypto.sha256(b"holder"), "content_hash": crypto.sha256(b"c"),
             "valid_from": 1, "valid_until": 2**40}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("answers"))
    try:
        c.start_all()
        yield c
    finally:
        c.stop_all()


def signed(c: Cluster, rtype: str, subject: str, body: dict[str, Any], refs: tuple[bytes, ...] = ()) -> bytes:
    return sign_record(c.client, "gov-itest", rtype, subject, body, int(time.time() * 1000), os.urandom(16), refs)


def committed(c: Cluster, node: int = 0) -> dict[str, Any]:
    status, doc = c.submit(node, c.record("progress"), wait=True)
    assert status == 200 and doc["status"] == "committed", (status, doc)
    return doc


def committed_at(c: Cluster, node: int, rid: str) -> None:
    wait_until(f"record {rid} to commit at node {node}", lambda: (
        (answer := c.request(node, "GET", f"/v1/records/{rid}"))[1].get("status") == "committed", answer))


def verified_claim(c: Cluster, doc: dict[str, Any], kind: str) -> dict[str, Any]:
    """The claim of a version 2 answer, checked by the offline verifier against the genesis."""
    assert doc["format"] == "ledgernode-answer/2" and doc["kind"] == kind, doc.get("format")
    verdict = verify_answer(doc, kind, c.genesis)
    assert verdict.valid, verdict.checks[-1]
    claim: dict[str, Any] = verdict.facts["claim"]
    return claim


def empty_round0_blocks(c: Cluster, upto: int) -> list[int]:
    out = []
    for h in range(1, upto + 1):
        block = c.get(0, f"/v1/blocks/{h}")
        if not block["envelopes"] and block["qc"]["round"] == 0:
            out.append(h)
    return out


def test_a_record_that_breaks_a_rule_is_refused_at_once_and_makes_no_block(cluster: Cluster) -> None:
    before = committed(cluster)["height"]
    for k in range(10):
        status, doc = cluster.submit(k % cluster.n, signed(
            cluster, "trace.event", f"LOT-{k}", {"activity": "mix"}, refs=(crypto.sha256(b"nothing %d" % k),)),
            wait=True)
        assert status == 409, (status, doc)
        assert doc["error"]["code"] == "rule_violation" and doc["error"]["rule"] == "ref.known", doc
        assert "names no record" in doc["error"]["message"]
    after = committed(cluster)["height"]
    assert after == before + 1  # nothing was built for the ten refused records
    assert empty_round0_blocks(cluster, after) == []
    # The state proves it: no record about LOT-3 as of the head (an absent subject entry).
    doc = cluster.get(0, "/v1/subjects/LOT-3")
    assert (doc["records"], doc["total"], doc["next_from"], doc["list"]["entry"]["value"]) == ([], 0, None, None)
    claim = verified_claim(cluster, doc, "subject")
    assert claim["complete"] and "no records about LOT-3 (complete: there are none)" in claim["en"], claim


def test_rival_certificates_on_two_nodes_one_commits_the_other_is_told(cluster: Cluster) -> None:
    """The same certificate number issued at node 0 and node 1 at once: exactly one commits;
    the other is refused at admission (the rival arrived by gossip first) or rejected when a
    block was built, with the rule named either way, and GET says so afterwards."""
    for round_ in range(3):
        number = f"LIC-RACE-{round_}"
        rivals = [signed(cluster, "cert.issue", number, CERT_BODY) for _ in range(2)]
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda i: cluster.submit(i, rivals[i], wait=True), range(2)))
        codes = sorted(status for status, _ in answers)
        assert codes == [200, 409], answers
        winner = next(doc for status, doc in answers if status == 200)
        at = next(i for i, (status, _) in enumerate(answers) if status == 409)
        loser = answers[at][1]
        assert loser["error"]["rule"] == "cert.number_unused", loser
        assert f"certificate {number} was already issued by justice" in loser["error"]["message"]
        if loser.get("status") == "rejected":  # dropped after admission: remembered for GET
            status, doc = cluster.request(at, "GET", f"/v1/records/{loser['id']}")
            assert status == 200 and doc == loser, (status, doc)
        committed_at(cluster, 0, winner["id"])
        # The certificate's status answer holds exactly the winner: the loser is in no list.
        answer = cluster.get(0, f"/v1/certificates/{number}/status")
        assert [r["id"] for r in answer["records"]] == [winner["id"]]
        assert (answer["status"], answer["issuer"]) == ("expired", "justice")  # valid_until 2**40 ms: 2004
        claim = verified_claim(cluster, answer, "status")
        assert claim["complete"] and "all 1 record about it (complete)" in claim["en"], claim
    head = committed(cluster)["height"]
    assert empty_round0_blocks(cluster, head) == []


def test_refusals_are_counted_in_metrics(cluster: Cluster) -> None:
    status, doc = cluster.submit(2, signed(cluster, "cert.suspend", "LIC-NEVER", {"reason": "r", "effective": 1}))
    assert status == 409 and doc["error"]["rule"] == "cert.issued", doc
    assert doc["error"]["message"] == "certificate LIC-NEVER was never issued"
    with urllib.request.urlopen(cluster.api(2) + "/metrics", timeout=METRICS_TIMEOUT_S) as resp:
        text = resp.read().decode()
    assert re.search(r'^ledgernode_rejected_total\{reason="rule_violation"\} [1-9]', text, re.M), text


def test_sigterm_answers_waiting_clients_and_stops_promptly(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A node with no quorum (its peers are down) holds a ?wait request; SIGTERM answers it
    503 at once and the process exits cleanly, not after the request's 30 s."""
    c = Cluster(tmp_path_factory.mktemp("sigterm"))
    c.start(0)
    try:
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(c.request, 0, "POST", "/v1/records?wait=1&timeout_ms=30000", c.record("held"),
                                  "application/msgpack")
            wait_until("the request to be waiting", lambda: (c.get(0, "/v1/status")["waiting"] == 1, None))
            proc = c.procs.pop(0)
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            status, doc = waiting.result(timeout=METRICS_TIMEOUT_S)
            code = proc.wait(timeout=METRICS_TIMEOUT_S)
            print(f"SIGTERM with a waiting client: answered and exited in {time.monotonic() - start:.2f} s")
        assert status == 503 and doc["error"]["code"] == "backpressure", (status, doc)
        assert code == 0
    finally:
        c.stop_all()


def test_a_record_whose_gossip_was_lost_still_commits(cluster: Cluster) -> None:
    """Node 2 is cut off when a record reaches it, so its one gossip of the record is lost
    and only it holds the record; once the links are back it sends its oldest waiting
    records again and the record commits (f or fewer holders gather no round change)."""
    def faults(spec: dict[str, Any]) -> None:
        status, doc = cluster.request(2, "POST", "/v1/debug/faults", json.dumps(spec).encode())
        assert status == 200, doc

    faults({"partition": [[2], [0, 1, 3]]})
    try:
        status, doc = cluster.submit(2, cluster.record("lonely"))
        assert status == 202, (status, doc)
    finally:
        faults({})
    rid = doc["id"]
    wait_until("the lonely record to commit", lambda: (
        cluster.request(0, "GET", f"/v1/records/{rid}")[1].get("status") == "committed",
        cluster.request(2, "GET", f"/v1/records/{rid}")[1].get("status")))
