"""Ledger state rules (docs/protocol.md sections 4 and 5) through BlockState and chained blocks.

Here: the rules every record meets (duplicates, the ts window, refs), facts across
commits and determinism. The rules of each type are tested with its family
(tests/unit/test_families_<family>.py), which use the record builders and the
harness below."""

from __future__ import annotations

from typing import Any

import pytest

from ledgernode import codec
from ledgernode.blocks import CheckedBlock, build_block, check_block
from ledgernode.errors import InvalidInput
from ledgernode.genesis import build, parse
from ledgernode.records import RECORD_SIGN_PREFIX, Envelope, check_signer, decode_envelope
from ledgernode.state import BlockState
from ledgernode.storage import Store
from tests.fixtures import T0, Net, commit_records, content

NET = Net()
G = NET.genesis
JUSTICE, MARKET, HEALTH, CUSTOMS = 0, 1, 2, 3  # client index == dept index in DEPTS
WINDOW = G.record_ts_window_ms
DAY = 86_400_000

PUBLISH_BODY = {
    "title": "Register", "content_hash": content("data"), "schema_hash": content("schema"),
    "classification": "internal",
}
CERT_BODY = {
    "cert_type": "licence", "holder": content("holder"), "content_hash": content("cert"),
    "valid_from": T0, "valid_until": T0 + 365 * DAY,
}


# -- record builders ------------------------------------------------------------


def publish(client: int, subject: str = "DS-1", **kw: Any) -> bytes:
    return NET.record(client, "dataset.publish", subject, PUBLISH_BODY, **kw)


def grant(client: int, subject: str = "DS-1", to_dept: str = "market", expires: int = T0 + DAY,
          **kw: Any) -> bytes:
    body = {"to_dept": to_dept, "purpose": "checks", "legal_basis": "Art. 12", "expires": expires}
    return NET.record(client, "share.grant", subject, body, **kw)


def revoke(client: int, grant_id: bytes, subject: str = "DS-1", **kw: Any) -> bytes:
    return NET.record(client, "share.revoke", subject, {"grant": grant_id}, **kw)


def access(client: int, grant_id: bytes, subject: str = "DS-1", **kw: Any) -> bytes:
    body = {"grant": grant_id, "purpose": "audit", "content_hash": content("data")}
    return NET.record(client, "share.access", subject, body, **kw)


def issue(client: int, number: str = "CERT-1", **kw: Any) -> bytes:
    return NET.record(client, "cert.issue", number, CERT_BODY, **kw)


def change(client: int, rtype: str, number: str = "CERT-1", **kw: Any) -> bytes:
    return NET.record(client, rtype, number, {"reason": "r", "effective": T0}, **kw)


def notarize(client: int, subject: str = "EV-1", **kw: Any) -> bytes:
    body = {"content_hash": content(subject), "media_type": "text/plain", "size": 3, "title": "t"}
    return NET.record(client, "evidence.notarize", subject, body, **kw)


def trace(client: int, subject: str = "LOT-1", refs: tuple[bytes, ...] = (), **kw: Any) -> bytes:
    return NET.record(client, "trace.event", subject, {"activity": "mix"}, refs=refs, **kw)


def rid(raw: bytes) -> bytes:
    return decode_envelope(raw, G).record_id


# -- harness --------------------------------------------------------------------


def new_state(store: Store | None = None, block_time: int | None = None) -> BlockState:
    store = store if store is not None else Store.memory()
    if block_time is None:
        head = store.head()
        block_time = head.time + 1 if head else T0
    return BlockState(store, G, block_time)


def admit(state: BlockState, raw: bytes) -> Envelope:
    env = decode_envelope(raw, G)
    state.admit(env, check_signer(env, G))
    return env


def refuse(state: BlockState, raw: bytes, code: str = "rule_violation", needle: str | None = None,
           rule: str | None = None) -> None:
    """The record is rejected with `code` (and `rule`, if given) and leaves the block state untouched."""
    ids, facts = set(state.record_ids), dict(state.facts)
    with pytest.raises(InvalidInput) as info:
        admit(state, raw)
    assert info.value.code == code, info.value
    if code in ("rule_violation", "duplicate"):
        assert info.value.status == 409
    if needle is not None:
        assert needle in info.value.message, info.value.message
    if rule is not None:
        assert info.value.rule == rule, info.value.rule
    assert state.record_ids == ids and state.facts == facts


def verdicts(store: Store, raws: list[bytes], time_ms: int | None = None,
             commit: bool = True) -> list[str | None]:
    """Build a block of `raws` on the store's head; per raw, None if taken else the error code.

    With `commit`, the block is checked as a replica would and committed."""
    envs = [decode_envelope(r, G) for r in raws]
    parent = store.head()
    t = time_ms if time_ms is not None else (parent.time + 1 if parent else T0)
    checked, rejected = build_block(envs, parent, store, store.frontier, G, t, 0)
    codes = {id(env): exc.code for env, exc in rejected}
    if commit:
        again = check_block(checked.block, parent, store, store.frontier, G)
        assert again.facts == checked.facts
        store.commit(again, NET.qc(again))
    return [codes.get(id(env)) for env in envs]


def fact(store: Store, kind: str, key: str) -> dict[str, Any] | None:
    return store.load_fact(kind, key)


# -- rules without type state ------------------------------------------------------


def test_notarize_and_trace_have_no_type_rule() -> None:
    state = new_state()
    admit(state, notarize(JUSTICE))
    admit(state, notarize(MARKET))  # same subject, other dept: fine
    a = admit(state, trace(CUSTOMS, "LOT-1"))
    admit(state, trace(HEALTH, "LOT-2", refs=(a.record_id,)))
    assert state.facts == {}
    assert len(state.record_ids) == 4


# -- section 4 rules -------------------------------------------------------------


def test_duplicate_in_same_block() -> None:
    state = new_state()
    raw = notarize(JUSTICE)
    admit(state, raw)
    refuse(state, raw, "duplicate")
    # a re-signed envelope of the same record bytes is the same record
    env = decode_envelope(raw, G)
    twin = codec.encode([env.record_bytes, NET.clients[0].sign(RECORD_SIGN_PREFIX + env.record_bytes)])
    refuse(state, twin, "duplicate")


def test_duplicate_across_blocks() -> None:
    store = Store.memory()
    raw = notarize(JUSTICE)
    commit_records(NET, store, [raw])
    assert store.is_committed(rid(raw))
    refuse(new_state(store), raw, "duplicate")
    assert verdicts(store, [raw, notarize(JUSTICE, "EV-2")]) == ["duplicate", None]


def test_duplicate_in_one_built_block() -> None:
    store = Store.memory()
    raw = publish(JUSTICE)
    assert verdicts(store, [raw, raw, notarize(JUSTICE)]) == [None, "duplicate", None]
    assert store.log_size == 2


@pytest.mark.parametrize("offset,ok", [
    (0, True), (WINDOW, True), (-WINDOW, True), (WINDOW + 1, False), (-WINDOW - 1, False), (10 * WINDOW, False),
])
def test_ts_window(offset: int, ok: bool) -> None:
    block_time = T0 + 10 * WINDOW
    state = new_state(block_time=block_time)
    raw = notarize(JUSTICE, ts=block_time + offset)
    if ok:
        admit(state, raw)
    else:
        refuse(state, raw, "ts_window")


def test_ts_window_follows_genesis_param() -> None:
    raw_g = build(
        G.chain_id,
        [{"dept": v.dept, "name": v.name, "pubkey": v.pubkey.raw.hex()} for v in G.validators],
        [{"dept": "justice", "pubkey": NET.clients[0].public.raw.hex(), "roles": ["*"]}],
        {"record_ts_window_ms": 50},
    )
    g = parse(raw_g)
    state = BlockState(Store.memory(), g, T0)
    for offset, ok in ((50, True), (-50, True), (51, False), (-51, False)):
        env = decode_envelope(notarize(JUSTICE, ts=T0 + offset), g)
        if ok:
            state.admit(env, check_signer(env, g))
        else:
            with pytest.raises(InvalidInput) as info:
                state.admit(env, check_signer(env, g))
            assert info.value.code == "ts_window"


def test_ref_to_committed_record() -> None:
    store = Store.memory()
    a = trace(CUSTOMS, "LOT-1")
    commit_records(NET, store, [a])
    state = new_state(store)
    admit(state, trace(CUSTOMS, "LOT-2", refs=(rid(a),)))


def test_ref_earlier_in_same_block() -> None:
    state = new_state()
    a = admit(state, trace(CUSTOMS, "LOT-1"))
    b = admit(state, trace(CUSTOMS, "LOT-2"))
    admit(state, trace(CUSTOMS, "LOT-3", refs=(a.record_id, b.record_id)))


def test_ref_later_in_same_block_rejected() -> None:
    state = new_state()
    a = trace(CUSTOMS, "LOT-1")
    b = trace(CUSTOMS, "LOT-2", refs=(rid(a),))
    refuse(state, b, needle="names no record that is committed", rule="ref.known")
    admit(state, a)
    admit(state, b)  # now a is earlier in the block


def test_ref_later_in_built_block_rejected() -> None:
    store = Store.memory()
    a = trace(CUSTOMS, "LOT-1")
    b = trace(CUSTOMS, "LOT-2", refs=(rid(a),))
    assert verdicts(store, [b, a]) == ["rule_violation", None]
    assert verdicts(store, [b]) == [None]  # a is committed now


def test_ref_unknown_or_rejected_record() -> None:
    state = new_state()
    refuse(state, trace(CUSTOMS, "LOT-1", refs=(content("unknown"),)), needle="names no record that is committed", rule="ref.known")
    bad = publish(MARKET, "DS-1")
    admit(state, publish(JUSTICE, "DS-1"))
    refuse(state, bad)
    refuse(state, trace(CUSTOMS, "LOT-1", refs=(rid(bad),)), needle="names no record that is committed", rule="ref.known")
    ok = admit(state, notarize(JUSTICE))
    refuse(state, trace(CUSTOMS, "LOT-1", refs=(ok.record_id, content("unknown"))), needle="names no record that is committed", rule="ref.known")


def test_facts_survive_commit_unchanged() -> None:
    store = Store.memory()
    g = grant(JUSTICE)
    checked = commit_records(NET, store, [publish(JUSTICE), g, issue(HEALTH), change(HEALTH, "cert.suspend")])
    assert len(checked.facts) == 3
    for (kind, key), value in checked.facts.items():
        assert store.load_fact(kind, key) == value
    assert store.load_fact("owner", "DS-404") is None


# -- determinism ----------------------------------------------------------------------


def _history() -> list[tuple[list[bytes], int]]:
    g1 = grant(JUSTICE, expires=T0 + DAY)
    g2 = grant(JUSTICE, to_dept="health", expires=T0 + DAY)
    return [
        ([publish(JUSTICE), g1, g2, issue(HEALTH), trace(CUSTOMS, "LOT-1")], T0),
        ([revoke(JUSTICE, rid(g2)), change(HEALTH, "cert.suspend"), notarize(MARKET)], T0 + 10),
    ]


HISTORY = _history()
_G1, _G2 = rid(HISTORY[0][0][1]), rid(HISTORY[0][0][2])
CANDIDATES = [
    access(MARKET, _G1),                  # ok
    access(HEALTH, _G2),                  # revoked
    change(HEALTH, "cert.resume"),        # ok
    change(HEALTH, "cert.resume"),        # not suspended any more
    publish(MARKET),                      # not the owner
    HISTORY[0][0][0],                     # duplicate of a committed record
    trace(CUSTOMS, "LOT-2", refs=(rid(HISTORY[0][0][4]),)),  # ok
    issue(HEALTH),                        # issued before
    grant(JUSTICE, "DS-1", expires=T0 + 20),  # expires at block time
    notarize(JUSTICE, "EV-late", ts=T0 + 20 + WINDOW + 1),  # outside the window
]
EXPECTED = [None, "rule_violation", None, "rule_violation", "rule_violation", "duplicate", None,
            "rule_violation", "rule_violation", "ts_window"]


def _store_from(blocks: list[tuple[list[bytes], int]]) -> Store:
    store = Store.memory()
    for raws, t in blocks:
        commit_records(NET, store, list(raws), time_ms=t)
    return store


def _judge_all(store: Store, block_time: int) -> tuple[list[str | None], dict[Any, Any]]:
    state = BlockState(store, G, block_time)
    out: list[str | None] = []
    for raw in CANDIDATES:
        env = decode_envelope(raw, G)
        try:
            state.admit(env, check_signer(env, G))
            out.append(None)
        except InvalidInput as exc:
            out.append(exc.code)
    return out, state.facts


def test_same_block_same_result_on_independent_stores() -> None:
    a, b = _store_from(HISTORY), _store_from(HISTORY)
    assert a.head().block_hash == b.head().block_hash
    envs_a = [decode_envelope(r, G) for r in CANDIDATES]
    envs_b = [decode_envelope(r, G) for r in CANDIDATES]
    built_a, rej_a = build_block(envs_a, a.head(), a, a.frontier, G, T0 + 20, 1)
    built_b, rej_b = build_block(envs_b, b.head(), b, b.frontier, G, T0 + 20, 1)
    assert [e.code for _, e in rej_a] == [e.code for _, e in rej_b] == [c for c in EXPECTED if c]
    assert built_a.block.header.raw == built_b.block.header.raw
    assert built_a.facts == built_b.facts and built_a.nodes == built_b.nodes
    # a replica checks the proposer's block against its own store
    checked_a = check_block(built_a.block, a.head(), a, a.frontier, G)
    checked_b = check_block(built_a.block, b.head(), b, b.frontier, G)
    assert_same_checked(checked_a, checked_b)
    assert checked_a.facts == built_a.facts
    assert checked_a.facts[("cert", "CERT-1")]["status"] == "valid"


def assert_same_checked(x: CheckedBlock, y: CheckedBlock) -> None:
    assert x.facts == y.facts
    assert list(x.facts) == list(y.facts)
    assert x.nodes == y.nodes
    assert x.frontier.root() == y.frontier.root() and x.frontier.size == y.frontier.size


def test_verdicts_depend_on_committed_records_not_block_layout() -> None:
    one_block = [([r for raws, _ in HISTORY for r in raws], T0)]
    per_record = [([r], T0 + i) for i, r in enumerate(r for raws, _ in HISTORY for r in raws)]
    results = [_judge_all(_store_from(h), T0 + 20) for h in (HISTORY, one_block, per_record)]
    assert results[0][0] == EXPECTED
    for verdict, facts in results[1:]:
        assert verdict == results[0][0]
        assert facts == results[0][1]
