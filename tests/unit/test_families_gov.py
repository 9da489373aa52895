"""Governance (families/gov.py, docs/protocol.md section 13): the bodies of gov.propose and
gov.approve, who may sign them, the quorum over the validators, and the key and dept
changes applied at the end of the approving block: facts, state map entries, Members,
and what the next blocks may sign."""

from __future__ import annotations

from typing import Any

import pytest

from ledgernode import codec, crypto, ledgermap, statemap
from ledgernode.blocks import build_block, check_block
from ledgernode.errors import InvalidInput
from ledgernode.families import gov
from ledgernode.genesis import VALIDATOR_NAME_MAX_CHARS
from ledgernode.records import check_signer, decode_envelope
from ledgernode.storage import Store
from ledgernode.storage.kv import MemoryKV
from tests.fixtures import T0, seeded_key
from tests.unit.test_state import CERT_BODY, G, NET, notarize

DAY = 86_400_000
NEW_KEY = seeded_key("joining-client")
SMALL_ORDER = bytes([1] + [0] * 31)  # the identity point: screened out

EXAMPLES: dict[str, dict[str, Any]] = {
    "gov.propose": {"action": "key.add", "args": {  # keys in canonical order: the tests compare bytes
        "dept": "justice", "name": "Ministry of Justice", "pubkey": NEW_KEY.public.raw, "roles": ["cert.*"]},
        "expires": T0 + DAY},
    "gov.approve": {"proposal": bytes(32)},
}
# values the kinds gov declares must refuse (tests/unit/test_records.py tries each)
BAD_VALUES: dict[str, list[Any]] = {
    "action": ["key.delete", "", None, 5, ["key.add"]],
    "args": [None, [], "pubkey", 7, b"\x00"],
}


def signer_key(rtype: str) -> crypto.PrivateKey | None:
    """The key the tests every type meets sign `rtype` with: a validator's for gov.*."""
    return NET.validators[0] if rtype.startswith("gov.") else None


def propose(v: int, subject: str, action: str, args: dict[str, Any], expires: int = T0 + DAY,
            ts: int = T0) -> bytes:
    return NET.record(0, "gov.propose", subject, {"action": action, "args": args, "expires": expires},
                      ts=ts, key=NET.validators[v])


def approve(v: int, subject: str, proposal: bytes, ts: int = T0) -> bytes:
    return NET.record(0, "gov.approve", subject, {"proposal": proposal}, ts=ts, key=NET.validators[v])


def add_args(key: crypto.PrivateKey = NEW_KEY, dept: str = "ecology", roles: list[str] | None = None) -> dict[str, Any]:
    return {"pubkey": key.public.raw, "dept": dept, "name": f"Dept {dept}", "roles": roles or ["cert.*"]}


def rid(raw: bytes) -> bytes:
    return decode_envelope(raw, G).record_id


def block(store: Store, raws: list[bytes], t: int | None = None) -> list[InvalidInput | None]:
    """Build a block of `raws` as a proposer would, check it as a replica would, commit it;
    per raw, None if it was taken, else why not."""
    envs = [decode_envelope(r, store.members(G)) for r in raws]
    parent = store.head()
    t = t if t is not None else (parent.time + 1 if parent else T0)
    checked, rejected = build_block(envs, parent, store, store.frontier, G, t, 0)
    again = check_block(checked.block, parent, store, store.frontier, G)
    assert again.facts == checked.facts and again.map_change.root == checked.map_change.root
    store.commit(again, NET.qc(again))
    why = {id(env): exc for env, exc in rejected}
    return [why.get(id(env)) for env in envs]


def taken(results: list[InvalidInput | None]) -> None:
    assert results == [None] * len(results), [r and r.message for r in results]


def rule_of(result: InvalidInput | None) -> str | None:
    assert result is not None, "the record was taken"
    return result.rule if result.code == "rule_violation" else result.code


def add_key(store: Store, subject: str = "P-1", args: dict[str, Any] | None = None) -> None:
    """key.add proposed by validator 0, approved by 1 and 2 (Q = 3 of 4), one block each."""
    p = propose(0, subject, "key.add", args or add_args())
    taken(block(store, [p]))
    taken(block(store, [approve(1, subject, rid(p))]))
    taken(block(store, [approve(2, subject, rid(p))]))


def map_value(store: Store, namespace: str, name: str) -> dict[str, Any] | None:
    head = store.head()
    assert head is not None
    raw = store.map_at(head.state).get(statemap.path(namespace, name))
    return None if raw is None else codec.decode(raw)


# -- bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize("action,args,needle", [
    ("key.add", {"pubkey": NEW_KEY.public.raw, "dept": "justice", "name": "x"}, "exactly the keys"),
    ("key.add", {**add_args(), "extra": 1}, "exactly the keys"),
    ("key.add", {**add_args(), "pubkey": SMALL_ORDER}, "body.args.pubkey"),
    ("key.add", {**add_args(), "pubkey": b"\x01" * 31}, "body.args.pubkey"),
    ("key.add", {**add_args(), "roles": []}, "body.args.roles"),
    ("key.add", {**add_args(), "roles": ["Cert"]}, "body.args.roles"),
    ("key.add", {**add_args(), "roles": ["cert.*"] * 33}, "body.args.roles"),
    ("key.add", {**add_args(), "dept": "a" * 65}, "body.args.dept"),
    ("key.add", {**add_args(), "dept": "-x"}, "body.args.dept"),
    ("key.add", {**add_args(), "name": "n" * 1025}, "body.args.name"),
    ("key.revoke", {"key_id": "", "reason": "lost"}, "body.args.key_id"),
    ("key.revoke", {"key_id": "ab", "reason": "r" * 65}, "body.args.reason"),
    ("validator.remove", {"pubkey": "00" * 32}, "body.args.pubkey"),
])
def test_args_must_be_exactly_the_actions(action: str, args: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_envelope(propose(0, "P-1", action, args), G)
    assert info.value.code == "invalid_record" and needle in info.value.message, info.value.message


def test_a_gov_body_nests_args_and_still_decodes_canonically() -> None:
    raw = propose(0, "P-1", "key.add", add_args())
    env = decode_envelope(raw, G)
    assert env.record.body["args"]["roles"] == ["cert.*"]
    assert check_signer(env, G).validator == 0


def test_only_a_validator_signs_governance_whatever_a_clients_roles() -> None:
    body = EXAMPLES["gov.propose"]
    for client in (0, 1):  # client 0 has the role "*"
        env = decode_envelope(NET.record(client, "gov.propose", "P-1", body), G)
        with pytest.raises(InvalidInput) as info:
            check_signer(env, G)
        assert (info.value.code, info.value.status) == ("role_denied", 403)


# -- quorum ------------------------------------------------------------------------------


def test_a_key_is_added_by_a_quorum_and_signs_from_the_next_block() -> None:
    store = Store.memory()
    taken(block(store, [notarize(0)]))
    p = propose(0, "P-1", "key.add", add_args())
    taken(block(store, [p, approve(1, "P-1", rid(p))]))  # 2 of Q = 3
    assert NEW_KEY.public.key_id not in store.members(G).signers
    assert store.load_fact("gov", "P-1")["applied"] is False
    signed_early = NET.record(0, "cert.issue", "C-0", CERT_BODY, key=NEW_KEY)
    final = approve(2, "P-1", rid(p))
    results = block(store, [final, signed_early])
    assert results[0] is None and results[1] is not None and results[1].code == "unknown_key"
    log_size = store.log_size  # the approving block ends here: the key's `from`
    member = store.members(G).signers[NEW_KEY.public.key_id]
    assert (member.dept, member.roles, member.from_leaf, member.until, member.validator) == (
        "ecology", ("cert.*",), log_size, None, None)
    assert "ecology" in store.members(G).depts
    assert map_value(store, "key", NEW_KEY.public.key_id) == {
        "pubkey": NEW_KEY.public.raw, "dept": "ecology", "roles": ["cert.*"], "from": log_size, "until": None}
    assert map_value(store, "dept", "ecology") == {"name": "Dept ecology", "from": log_size}
    assert codec.encode(store.load_fact("key", NEW_KEY.public.key_id)) == ledgermap.key_value(
        NEW_KEY.public.raw, "ecology", ["cert.*"], log_size, None)
    assert store.load_fact("gov", "P-1")["applied"] is True
    taken(block(store, [NET.record(0, "cert.issue", "C-1", CERT_BODY, key=NEW_KEY)]))
    # its roles still bind it, and the new dept is a dept records may name
    denied = block(store, [NET.record(0, "evidence.notarize", "E-1", {"content_hash": bytes(32),
                                      "media_type": "t", "size": 1, "title": "t"}, key=NEW_KEY)])
    assert denied[0] is not None and denied[0].code == "role_denied"
    grant = {"to_dept": "ecology", "purpose": "p", "legal_basis": "b", "expires": T0 + DAY}
    publish = NET.record(0, "dataset.publish", "DS-9", {"title": "t", "content_hash": bytes(32),
                         "schema_hash": bytes(32), "classification": "internal"})
    taken(block(store, [publish, NET.record(0, "share.grant", "DS-9", grant)]))


def test_one_block_may_propose_and_reach_the_quorum() -> None:
    store = Store.memory()
    p = propose(0, "P-1", "key.add", add_args())
    taken(block(store, [p, approve(1, "P-1", rid(p)), approve(2, "P-1", rid(p))]))
    assert NEW_KEY.public.key_id in store.members(G).signers
    late = block(store, [approve(3, "P-1", rid(p))])
    assert rule_of(late[0]) == "gov.open"


@pytest.mark.parametrize("case", ["twice", "expired", "wrong_id", "reused", "unknown"])
def test_approvals_that_break_a_rule(case: str) -> None:
    store = Store.memory()
    p = propose(0, "P-1", "key.add", add_args(), expires=T0 + 100)
    taken(block(store, [p]))
    raws = {
        "twice": approve(0, "P-1", rid(p)),
        "expired": approve(1, "P-1", rid(p), ts=T0 + 100),
        "wrong_id": approve(1, "P-1", bytes(32)),
        "reused": propose(1, "P-1", "key.add", add_args(seeded_key("other"))),
        "unknown": approve(1, "P-2", rid(p)),
    }
    t = T0 + 100 if case == "expired" else None
    rule = {"twice": "gov.approve_once", "expired": "gov.expires", "wrong_id": "gov.proposal",
            "reused": "gov.subject_unused", "unknown": "gov.proposal"}[case]
    assert rule_of(block(store, [raws[case]], t)[0]) == rule


def test_a_proposal_that_expired_is_refused() -> None:
    store = Store.memory()
    assert rule_of(block(store, [propose(0, "P-1", "key.add", add_args(), expires=T0)])[0]) == "gov.expires"


def test_the_second_add_of_one_key_in_a_block_is_refused_at_its_quorum() -> None:
    store = Store.memory()
    a, b = propose(0, "P-1", "key.add", add_args()), propose(1, "P-2", "key.add", add_args(dept="justice"))
    taken(block(store, [a, b]))
    results = block(store, [approve(1, "P-1", rid(a)), approve(2, "P-1", rid(a)),
                            approve(0, "P-2", rid(b)), approve(2, "P-2", rid(b))])
    assert results[:3] == [None, None, None] and rule_of(results[3]) == "gov.key_new"
    assert store.members(G).signers[NEW_KEY.public.key_id].dept == "ecology"
    # refused, the approval may come again later: the precondition still fails
    assert rule_of(block(store, [approve(2, "P-2", rid(b))])[0]) == "gov.key_new"


def test_a_revoked_key_signs_nothing_more_and_its_earlier_records_stay() -> None:
    store = Store.memory()
    before = NET.record(1, "cert.issue", "C-1", CERT_BODY)
    taken(block(store, [before]))
    key_id = NET.clients[1].public.key_id
    p = propose(0, "R-1", "key.revoke", {"key_id": key_id, "reason": "laptop stolen"})
    taken(block(store, [p, approve(1, "R-1", rid(p))]))
    pending = NET.record(1, "cert.revoke", "C-1", {"reason": "r", "effective": T0})
    results = block(store, [approve(2, "R-1", rid(p)), pending])
    assert results == [None, None]  # the revocation applies at the block's end: `pending` is before it
    until = store.log_size
    member = store.members(G).signers[key_id]
    assert (member.until, member.from_leaf) == (until, 0)
    assert map_value(store, "key", key_id)["until"] == until
    assert store.locate(rid(before)) is not None and store.locate(rid(pending)) is not None
    after = block(store, [NET.record(1, "cert.suspend", "C-2", {"reason": "r", "effective": T0})])
    assert after[0] is not None and (after[0].code, after[0].status) == ("key_revoked", 409)
    assert str(until) in after[0].message
    again = propose(0, "R-2", "key.revoke", {"key_id": key_id, "reason": "again"})
    assert rule_of(block(store, [again])[0]) == "gov.key_active"


@pytest.mark.parametrize("key_id,rule", [
    (NET.validators[3].public.key_id, "gov.key_not_validator"), ("0123456789abcdef", "gov.key_known")])
def test_what_a_revoke_may_not_name(key_id: str, rule: str) -> None:
    store = Store.memory()
    assert rule_of(block(store, [propose(0, "R-1", "key.revoke", {"key_id": key_id, "reason": "r"})])[0]) == rule


def test_an_added_validator_joins_the_set_of_the_next_height_with_a_key_of_every_role() -> None:
    store = Store.memory()
    args = {"dept": "ecology", "name": "Ministry of Ecology", "pubkey": NEW_KEY.public.raw}
    p = propose(0, "V-1", "validator.add", args)
    taken(block(store, [p, approve(1, "V-1", rid(p))]))
    before = store.members(G)
    assert before.n == 4 and "ecology" not in before.depts
    taken(block(store, [approve(2, "V-1", rid(p))]))
    height, log_size = store.height, store.log_size
    after = store.members(G)
    assert [v.pubkey for v in after.validators] == [*(v.pubkey for v in before.validators), NEW_KEY.public]
    assert (after.n, after.quorum, after.since) == (5, 4, height + 1)
    joined = after.signers[NEW_KEY.public.key_id]
    assert (joined.dept, joined.roles, joined.validator, joined.from_leaf, joined.until) == \
        ("ecology", ("*",), 4, log_size, None)
    assert "ecology" in after.depts
    assert map_value(store, "validators", "") == {
        "validators": [{"dept": v.dept, "name": v.name, "pubkey": v.pubkey.raw} for v in after.validators],
        "since": height + 1}
    assert map_value(store, "validators", "")["validators"][-1]["name"] == "Ministry of Ecology"
    assert map_value(store, "key", NEW_KEY.public.key_id) == ledgermap.key_entry(
        NEW_KEY.public.raw, "ecology", ["*"], log_size, None)
    assert map_value(store, "dept", "ecology") == ledgermap.dept_entry("Ministry of Ecology", log_size)
    assert store.load_fact("epoch", gov.epoch_key(height + 1)) == {"since": height + 1}
    # the next header names the grown set, whose new validator signs governance
    late = NET.record(0, "gov.propose", "K-9", {"action": "key.add", "args": add_args(seeded_key("k9"), "justice"),
                                                "expires": T0 + DAY}, key=NEW_KEY)
    taken(block(store, [late]))
    head = store.head()
    assert head is not None and head.valset == after.validator_set.valset_hash != G.valset_hash
    again = propose(1, "V-2", "validator.add", {**args, "dept": "justice"})
    assert rule_of(block(store, [again])[0]) == "gov.key_new"


def test_one_change_of_the_set_per_block_whether_it_adds_or_removes() -> None:
    store = Store.memory()
    a = propose(0, "V-1", "validator.add", {"dept": "ecology", "name": "E", "pubkey": NEW_KEY.public.raw})
    b = propose(1, "V-2", "validator.remove", {"pubkey": NET.validators[2].public.raw})
    taken(block(store, [a, b, approve(1, "V-1", rid(a)), approve(0, "V-2", rid(b))]))
    results = block(store, [approve(3, "V-2", rid(b)), approve(2, "V-1", rid(a))])
    assert results[0] is None and rule_of(results[1]) == "gov.one_set_change"
    assert store.members(G).n == 3 and store.members(G).signers.get(NEW_KEY.public.key_id) is None


def test_a_removed_validator_leaves_the_set_of_the_next_height_and_its_key_signs_no_more() -> None:
    store = Store.memory()
    gone = NET.validators[3].public
    p = propose(0, "V-2", "validator.remove", {"pubkey": gone.raw})
    taken(block(store, [p, approve(1, "V-2", rid(p))]))
    before = store.members(G)
    taken(block(store, [approve(2, "V-2", rid(p))]))
    height, log_size = store.height, store.log_size
    after = store.members(G)
    assert [v.pubkey for v in after.validators] == [v.pubkey for v in before.validators][:3]
    assert (after.n, after.quorum, after.since) == (3, 3, height + 1)
    assert after.signers[gone.key_id].until == log_size and after.signers[gone.key_id].validator is None
    assert map_value(store, "validators", "") == {
        "validators": [{"dept": v.dept, "name": v.name, "pubkey": v.pubkey.raw} for v in after.validators],
        "since": height + 1}
    assert store.load_fact("epoch", gov.epoch_key(height + 1)) == {"since": height + 1}
    # the next header names the new set, and its validator signs nothing more
    taken(block(store, [notarize(0, "EV-after")]))
    head = store.head()
    assert head is not None and head.valset == after.validator_set.valset_hash != G.valset_hash
    late = block(store, [NET.record(0, "gov.approve", "V-2", {"proposal": rid(p)}, key=NET.validators[3])])
    assert late[0] is not None and late[0].code == "key_revoked"


def test_one_change_of_the_set_per_block_and_only_of_a_validator_in_it() -> None:
    store = Store.memory()
    a = propose(0, "V-1", "validator.remove", {"pubkey": NET.validators[3].public.raw})
    b = propose(1, "V-2", "validator.remove", {"pubkey": NET.validators[2].public.raw})
    taken(block(store, [a, b, approve(1, "V-1", rid(a)), approve(0, "V-2", rid(b))]))
    results = block(store, [approve(2, "V-1", rid(a)), approve(3, "V-2", rid(b))])
    assert results[0] is None and rule_of(results[1]) == "gov.one_set_change"
    assert rule_of(block(store, [propose(0, "V-3", "validator.remove", {"pubkey": NEW_KEY.public.raw})])[0]) \
        == "gov.validator_known"


def test_a_header_that_leaves_out_the_change_is_an_invalid_block() -> None:
    store = Store.memory()
    p = propose(0, "P-1", "key.add", add_args())
    taken(block(store, [p, approve(1, "P-1", rid(p))]))
    envs = tuple(decode_envelope(approve(2, "P-1", rid(p)), G) for _ in range(1))
    parent = store.head()
    assert parent is not None
    checked, _ = build_block(list(envs), parent, store, store.frontier, G, parent.time + 1, 0)
    # the same records, with the state the map would have without the key entry
    without = ledgermap.block_change(store.map_at(parent.state),
                                     ledgermap.record_appends(parent.log_size, "P-1", ())).root
    assert without != checked.block.header.state
    from dataclasses import replace
    forged = replace(checked.block.header, state=without, raw=b"")
    forged = replace(forged, raw=forged.encode())
    with pytest.raises(InvalidInput, match="header state"):
        check_block(replace(checked.block, header=forged), parent, store, store.frontier, G)


def test_members_are_rebuilt_from_the_facts_when_the_store_is_opened_again() -> None:
    kv = MemoryKV()
    store = Store(kv)
    add_key(store)
    p = propose(0, "R-1", "key.revoke", {"key_id": NET.clients[2].public.key_id, "reason": "left"})
    taken(block(store, [p, approve(1, "R-1", rid(p)), approve(3, "R-1", rid(p))]))
    again = Store(kv).members(G)
    assert again == store.members(G)
    assert again.signers[NET.clients[2].public.key_id].until == store.log_size
    assert again.signers[NEW_KEY.public.key_id].from_leaf > 0


def test_effects_revoke_a_key_added_earlier_in_the_same_block() -> None:
    added = gov.Change("key.add", add_args(), "00")
    revoked = gov.Change("key.revoke", {"key_id": NEW_KEY.public.key_id, "reason": "typo"}, "01")
    out = gov.effects([added, revoked], 42, 7, Store.memory().members(G))
    assert [(kind, key) for kind, key, _ in out] == [
        ("key", NEW_KEY.public.key_id), ("dept", "ecology"), ("key", NEW_KEY.public.key_id)]
    assert out[-1][2]["from"] == 42 and out[-1][2]["until"] == 42


def test_a_full_set_takes_no_more_validators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gov, "VALIDATORS_MAX", NET.n)
    store = Store.memory()
    p = propose(0, "V-1", "validator.add", {"dept": "ecology", "name": "E", "pubkey": NEW_KEY.public.raw})
    assert rule_of(block(store, [p])[0]) == "gov.validators_max"


def test_a_validator_added_in_a_block_is_a_validator_to_the_rest_of_it() -> None:
    """A key.revoke of the key a validator.add adds, approved later in the same block, is
    refused: by the state the rule sees, the key is a validator's."""
    store = Store.memory()
    add = propose(0, "V-1", "validator.add", {"dept": "ecology", "name": "E", "pubkey": NEW_KEY.public.raw})
    revoke = propose(1, "R-1", "key.revoke", {"key_id": NEW_KEY.public.key_id, "reason": "r"})
    taken(block(store, [add, approve(1, "V-1", rid(add))]))
    results = block(store, [approve(2, "V-1", rid(add)), revoke])
    assert results[0] is None and rule_of(results[1]) == "gov.key_not_validator"
    assert store.members(G).signers[NEW_KEY.public.key_id].until is None


def test_after_a_set_change_a_block_takes_proposals_and_refuses_only_a_second_approval() -> None:
    store = Store.memory()
    a = propose(0, "V-1", "validator.add", {"dept": "ecology", "name": "E", "pubkey": NEW_KEY.public.raw})
    taken(block(store, [a, approve(1, "V-1", rid(a))]))
    b = propose(1, "V-2", "validator.remove", {"pubkey": NET.validators[3].public.raw})
    taken(block(store, [approve(2, "V-1", rid(a)), b]))  # b approves nothing yet: it is taken
    assert store.members(G).n == 5


def test_a_validators_name_is_held_to_the_genesis_bound() -> None:
    store = Store.memory()
    long_name = "x" * (VALIDATOR_NAME_MAX_CHARS + 1)
    p = propose(0, "V-1", "validator.add", {"dept": "ecology", "name": long_name, "pubkey": NEW_KEY.public.raw})
    assert rule_of(block(store, [p])[0]) == "gov.validator_name"
