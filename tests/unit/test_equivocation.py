"""Equivocation proofs (ledgernode.equivocation): built from two signed messages, checked
offline against the genesis file alone, every broken proof refused with the part named."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from ledgernode import codec
from ledgernode.consensus import Commit, Prepare, Proposal, RoundChange
from ledgernode.consensus.messages import NO_ROUND, encode_message
from ledgernode.equivocation import FORMAT, encode_pair, to_json, verify_equivocations
from ledgernode.verify import Unusable
from tests.sim.cluster import keys_and_genesis, signed_copy

KEYS, G = keys_and_genesis(4)
H1, H2 = b"\x01" * 32, b"\x02" * 32


def proof(first: Any, second: Any, sender: int = 2) -> dict[str, Any]:
    return to_json(encode_pair(signed_copy(KEYS[sender], first), signed_copy(KEYS[sender], second)), G)


def prepares(sender: int = 2, height: int = 7, round_: int = 1) -> dict[str, Any]:
    return proof(Prepare(G.chain_id, height, round_, H1, sender), Prepare(G.chain_id, height, round_, H2, sender),
                 sender)


@pytest.mark.parametrize("first,second", [
    (Prepare(G.chain_id, 7, 1, H1, 2), Prepare(G.chain_id, 7, 1, H2, 2)),
    (Commit(G.chain_id, 7, 1, H1, 2), Commit(G.chain_id, 7, 1, H2, 2)),
    (Proposal(G.chain_id, 7, 1, H1, 2), Proposal(G.chain_id, 7, 1, H2, 2)),
    (RoundChange(G.chain_id, 7, 1, NO_ROUND, b"", 2), RoundChange(G.chain_id, 7, 1, 0, H2, 2)),
])
def test_two_signed_values_for_one_slot_verify(first: Any, second: Any) -> None:
    doc = proof(first, second)
    assert doc["format"] == FORMAT and (doc["validator"], doc["dept"], doc["height"], doc["round"]) == (2, "d2", 7, 1)
    verdict = verify_equivocations(doc, G)
    assert verdict.valid, verdict.checks
    assert "validator 2 (d2) signed two different" in verdict.facts["claim"]["en"]
    assert "at height 7 round 1" in verdict.facts["claim"]["en"]


def test_a_page_of_proofs_verifies_each() -> None:
    page = {"equivocations": [prepares(2), prepares(3, height=9)], "next_after": None}
    verdict = verify_equivocations(page, G)
    assert verdict.valid and len(verdict.facts["claim"]["cases"]) == 2
    page["equivocations"][1]["round"] = 5
    verdict = verify_equivocations(page, G)
    assert not verdict.valid and "proof 2 of 2" in verdict.checks[-1]["error"]


def _resigned(doc: dict[str, Any], which: str, key: int) -> dict[str, Any]:
    msg = Prepare(G.chain_id, 7, 1, H1 if which == "first" else H2, 2)
    return {**doc, which: base64.b64encode(encode_message(signed_copy(KEYS[key], msg))).decode()}


BROKEN = {
    "same value twice": lambda d: {**d, "second": d["first"]},
    "signed by another key": lambda d: _resigned(d, "second", 3),
    "claims another round": lambda d: {**d, "round": 2},
    "claims another validator": lambda d: {**d, "validator": 3},
    "not base64": lambda d: {**d, "first": "***"},
    "not a message": lambda d: {**d, "first": base64.b64encode(codec.encode([1, 2])).decode()},
    "another chain": lambda d: {**d, "chain_id": "other"},
    "another dept": lambda d: {**d, "dept": "d0"},
    "a status is no signed message": lambda d: {**d, "first": base64.b64encode(
        codec.encode(["status", G.chain_id, 7, 2])).decode()},
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_proof_fails_with_the_part_named(name: str) -> None:
    doc = BROKEN[name](copy.deepcopy(prepares()))
    verdict = verify_equivocations(doc, G)
    assert not verdict.valid
    assert verdict.checks[-1]["part"] in ("first", "second", "values", "format", "genesis"), verdict.checks


def test_files_that_are_no_proofs_are_unusable() -> None:
    with pytest.raises(Unusable):
        verify_equivocations({"equivocations": []}, G)
    with pytest.raises(Unusable):
        verify_equivocations({"equivocations": [prepares()] * 101}, G)
    assert not verify_equivocations({"format": "other"}, G).valid


def test_after_a_validator_leaves_a_proof_names_the_set_of_its_height() -> None:
    """Validator 1 leaves at the end of block 1: from height 2, index 1 is the genesis's
    validator 2. Its proof carries the change (`epochs`) and verifies from the genesis
    alone; without it the index would name another key, and the proof fails."""
    from ledgernode.auditing.epochs import epochs_doc
    from ledgernode.records import decode_envelope
    from ledgernode.storage import Store
    from tests.fixtures import T0, Net, commit_records

    net, store = Net(), Store.memory()
    body = {"action": "validator.remove", "args": {"pubkey": net.validators[1].public.raw}, "expires": T0 + 10**6}
    p = net.record(0, "gov.propose", "V-1", body, key=net.validators[0])
    pid = decode_envelope(p, net.genesis).record_id
    commit_records(net, store, [p, *(net.record(0, "gov.approve", "V-1", {"proposal": pid}, key=net.validators[v])
                                     for v in (2, 3))])
    g, chain = net.genesis, net.chain_id
    key = net.validators[2]  # index 1 at height 2
    raw = encode_pair(signed_copy(key, Prepare(chain, 2, 0, H1, 1)), signed_copy(key, Prepare(chain, 2, 0, H2, 1)))
    doc = to_json(raw, g, lambda height: epochs_doc(store, height))
    assert len(doc["epochs"]) == 1 and doc["dept"] == g.validators[2].dept
    verdict = verify_equivocations(doc, g)
    assert verdict.valid and verdict.facts["claim"]["cases"][0]["dept"] == g.validators[2].dept
    assert not verify_equivocations({**doc, "epochs": [], "dept": g.validators[1].dept}, g).valid
    assert not verify_equivocations({**doc, "dept": g.validators[1].dept}, g).valid
