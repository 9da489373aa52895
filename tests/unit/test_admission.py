"""Admission (ledgernode.admission, state.PendingState): the ledger rules at the door,
judged against committed state plus the records ahead in the mempool.

The property test checks the incremental bookkeeping against a naive reference that
judges the whole pool from scratch with a fresh BlockState, over random sequences of
submissions, commits of our own records and commits of rival records."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgernode.admission import RECHECK_MAX_RECORDS, Admission
from ledgernode.blocks import build_block
from ledgernode.errors import InvalidInput
from ledgernode.mempool import Mempool
from ledgernode.records import Envelope, check_signer, decode_envelope
from ledgernode.service import Backpressure
from ledgernode.state import BlockState
from ledgernode.storage import Store
from tests.fixtures import T0, Net, content

NET = Net()
G = NET.genesis
JUSTICE, MARKET = 0, 1
CERT_BODY = {"cert_type": "licence", "holder": content("h"), "content_hash": content("c"),
             "valid_from": T0, "valid_until": T0 + 10**9}
CAP = G.block_max_records


def issue(client: int, number: str) -> Envelope:
    return decode_envelope(NET.record(client, "cert.issue", number, CERT_BODY), G)


def change(client: int, rtype: str, number: str) -> Envelope:
    return decode_envelope(NET.record(client, rtype, number, {"reason": "r", "effective": T0}), G)


def notarize(refs: tuple[bytes, ...] = ()) -> Envelope:
    body = {"content_hash": content("e"), "media_type": "text/plain", "size": 1, "title": "t"}
    return decode_envelope(NET.record(JUSTICE, "evidence.notarize", "EV", body, refs=refs), G)


def reference(store: Store, pool: Mempool, env: Envelope | None, t: int) -> str | None:
    """Judge the whole pool in order from the store (every pending record must pass), then `env`."""
    state = BlockState(store, G, t)
    for pending in pool.oldest(len(pool)):
        state.admit(pending, check_signer(pending, G))  # raises if the pool is inconsistent
    if env is None:
        return None
    try:
        state.admit(env, check_signer(env, G))
    except InvalidInput as exc:
        return exc.code
    return None


def commit(store: Store, envs: list[Envelope], t: int) -> Any:
    checked, refused = build_block(envs, store.head(), store, store.frontier, G, t, 0)
    store.commit(checked, NET.qc(checked))
    return checked, refused


def fresh() -> tuple[Store, Mempool, Admission]:
    store, pool = Store.memory(), Mempool(1_000)
    return store, pool, Admission(G, store, pool)


# -- examples -------------------------------------------------------------------------


def test_records_ahead_in_the_mempool_count() -> None:
    store, pool, adm = fresh()
    first = issue(JUSTICE, "LIC-1")
    adm.admit(first, T0)
    adm.admit(change(JUSTICE, "cert.suspend", "LIC-1"), T0)  # builds on a pending issue
    with pytest.raises(InvalidInput) as info:
        adm.admit(issue(MARKET, "LIC-1"), T0)
    assert info.value.rule == "cert.number_unused" and "(not yet committed)" in info.value.message
    with pytest.raises(InvalidInput) as info:
        adm.admit(change(JUSTICE, "cert.suspend", "LIC-1"), T0)
    assert info.value.rule == "cert.transition" and "it is suspended" in info.value.message
    adm.admit(notarize(refs=(first.record_id,)), T0)  # a ref to a pending record
    assert len(pool) == 3 and len(adm.pending) == 3


def test_a_rival_commit_re_judges_the_pool() -> None:
    store, pool, adm = fresh()
    mine = issue(JUSTICE, "LIC-1")
    adm.admit(mine, T0)
    suspend = change(JUSTICE, "cert.suspend", "LIC-1")
    adm.admit(suspend, T0)
    unrelated = issue(JUSTICE, "LIC-2")
    adm.admit(unrelated, T0)
    checked, _ = commit(store, [issue(MARKET, "LIC-1")], T0 + 1)  # another node's block got there first
    failed = adm.committed(checked, CAP, T0 + 2)
    assert [(e.record_id, x.rule) for e, x in failed] == [
        (mine.record_id, "cert.number_unused"), (suspend.record_id, "cert.issuer")]
    assert [e.record_id for e in pool.oldest(10)] == [unrelated.record_id]
    assert "at height 1" in failed[0][1].message
    # the pool's view follows the store: market's certificate may now be suspended by market
    adm.admit(change(MARKET, "cert.suspend", "LIC-1"), T0 + 3)


def test_a_reused_number_names_the_height_it_was_issued_at() -> None:
    """Not the height of its latest change (the certificate's fact keeps both)."""
    store, pool, adm = fresh()
    commit(store, [issue(JUSTICE, "LIC-5")], T0)  # height 1
    commit(store, [change(JUSTICE, "cert.suspend", "LIC-5")], T0 + 1)  # height 2
    with pytest.raises(InvalidInput) as info:
        adm.admit(issue(MARKET, "LIC-5"), T0 + 2)
    assert info.value.message == "certificate LIC-5 was already issued by justice at height 1"


def test_committing_our_own_records_keeps_the_rest() -> None:
    store, pool, adm = fresh()
    a, b = issue(JUSTICE, "LIC-1"), change(JUSTICE, "cert.suspend", "LIC-1")
    adm.admit(a, T0)
    adm.admit(b, T0)
    checked, _ = commit(store, [a], T0 + 1)
    assert adm.committed(checked, 1, T0 + 2) == []  # a full block: no unforced re-judgement
    assert [e.record_id for e in pool.oldest(10)] == [b.record_id]
    with pytest.raises(InvalidInput, match="it is suspended"):
        adm.admit(change(JUSTICE, "cert.suspend", "LIC-1"), T0 + 3)


def test_builder_refusals_take_dependants_with_them() -> None:
    store, pool, adm = fresh()
    parent = notarize()
    adm.admit(parent, T0)
    child = notarize(refs=(parent.record_id,))
    adm.admit(child, T0)
    failed = adm.refused_by_builder([(parent, InvalidInput("ts_window", "late"))], T0)
    assert [e.record_id for e, _ in failed] == [parent.record_id, child.record_id]
    assert failed[1][1].rule == "ref.known" and len(pool) == 0 and len(adm.pending) == 0


def test_recheck_drops_records_whose_ts_no_longer_fits() -> None:
    store, pool, adm = fresh()
    adm.admit(notarize(), T0)
    assert adm.recheck(T0 + G.record_ts_window_ms) == []
    [(env, exc)] = adm.recheck(T0 + G.record_ts_window_ms + 1)
    assert exc.code == "ts_window" and len(pool) == 0


def test_full_pool_is_backpressure_and_admits_nothing() -> None:
    store = Store.memory()
    pool = Mempool(1)
    adm = Admission(G, store, pool)
    adm.admit(notarize(), T0)
    refused = issue(JUSTICE, "LIC-9")
    with pytest.raises(Backpressure):
        adm.admit(refused, T0)
    assert len(adm.pending) == 1  # the refused record left no trace in the pool's state
    checked, _ = commit(store, pool.oldest(1), T0 + 1)
    assert adm.committed(checked, CAP, T0 + 2) == []
    adm.admit(refused, T0 + 3)  # so, once there is room, LIC-9 is still free to issue


def test_a_large_pool_is_not_re_judged_unforced(monkeypatch: pytest.MonkeyPatch) -> None:
    store, pool, adm = fresh()
    pool.max_records = RECHECK_MAX_RECORDS + 2
    for _ in range(RECHECK_MAX_RECORDS + 2):
        adm.admit(notarize(), T0)
    rebuilds: list[int] = []
    real = adm.pending.rebuild
    monkeypatch.setattr(adm.pending, "rebuild", lambda envs, t: rebuilds.append(t) or real(envs, t))
    checked, _ = commit(store, pool.oldest(1), T0 + 1)
    assert adm.committed(checked, CAP, T0 + 2) == [] and rebuilds == []  # over the size: skipped
    checked, _ = commit(store, pool.oldest(1), T0 + 3)
    assert adm.committed(checked, CAP, T0 + 4) == [] and rebuilds == [T0 + 4]  # at the size: done


def test_a_key_revoked_by_a_commit_takes_its_pending_records_out_of_the_pool() -> None:
    """Even in a pool too large to be re-judged unforced: who may sign changed."""
    store, pool, adm = fresh()
    mine, other = issue(MARKET, "LIC-1"), issue(JUSTICE, "LIC-2")
    adm.admit(mine, T0)
    adm.admit(other, T0)
    body = {"action": "key.revoke", "args": {"key_id": NET.clients[MARKET].public.key_id, "reason": "stolen"},
            "expires": T0 + 10**6}
    propose = decode_envelope(NET.record(0, "gov.propose", "R-1", body, key=NET.validators[0]), G)
    approvals = [decode_envelope(NET.record(0, "gov.approve", "R-1", {"proposal": propose.record_id},
                                            key=NET.validators[v]), G) for v in (1, 2)]
    checked, refused = commit(store, [propose, *approvals], T0 + 1)
    assert not refused
    failed = adm.committed(checked, 3, T0 + 2)  # a full block: only the key change forces the re-judgement
    assert [(env.record_id, exc.code) for env, exc in failed] == [(mine.record_id, "key_revoked")]
    assert list(pool.oldest(len(pool))) == [other]
    with pytest.raises(InvalidInput) as info:
        adm.admit(issue(MARKET, "LIC-3"), T0 + 3)
    assert (info.value.code, info.value.status) == ("key_revoked", 409)


def test_a_set_change_approved_through_the_pool_leaves_no_trace_once_committed() -> None:
    """The pool empties with the block that applied a validator.remove: the next change of
    the set is judged against the new head, not against the pool's old block (where a
    second change would break gov.one_set_change) nor its old members."""
    store, pool, adm = fresh()

    def gov_record(v: int, rtype: str, subject: str, body: dict[str, Any]) -> Envelope:
        return decode_envelope(NET.record(0, rtype, subject, body, key=NET.validators[v]), store.members(G))

    leaving = NET.validators[3].public.raw
    propose = gov_record(0, "gov.propose", "V-1", {"action": "validator.remove", "args": {"pubkey": leaving},
                                                   "expires": T0 + 10**6})
    records = [propose, *(gov_record(v, "gov.approve", "V-1", {"proposal": propose.record_id}) for v in (1, 2))]
    for env in records:
        adm.admit(env, T0)  # the last approval reaches Q in the pool's own judgement
    checked, refused = commit(store, records, T0 + 1)
    assert not refused and store.members(G).n == 3
    assert adm.committed(checked, CAP, T0 + 2) == [] and not pool
    nxt = gov_record(0, "gov.propose", "V-2", {"action": "validator.remove",
                                               "args": {"pubkey": NET.validators[2].public.raw}, "expires": T0 + 10**6})
    adm.admit(nxt, T0 + 3)
    with pytest.raises(InvalidInput) as info:  # the old set's key is no validator's now
        adm.admit(gov_record(3, "gov.approve", "V-2", {"proposal": nxt.record_id}), T0 + 3)
    assert info.value.code == "key_revoked"


# -- against the naive reference ---------------------------------------------------------

NUMBERS = ["C1", "C2"]
CHANGES = ["cert.suspend", "cert.resume", "cert.revoke"]
step = st.one_of(
    st.tuples(st.just("issue"), st.sampled_from([JUSTICE, MARKET]), st.sampled_from(NUMBERS)),
    st.tuples(st.just("change"), st.sampled_from([JUSTICE, MARKET]), st.sampled_from(CHANGES),
              st.sampled_from(NUMBERS)),
    st.tuples(st.just("ref"), st.integers(0, 40)),
    st.tuples(st.just("commit"), st.integers(1, 4)),
    st.tuples(st.just("rival"), st.sampled_from([JUSTICE, MARKET]), st.sampled_from(NUMBERS),
              st.sampled_from(["cert.issue"] + CHANGES)),
)


def _record(s: tuple[Any, ...], made: list[bytes]) -> Envelope:
    if s[0] == "issue":
        return issue(s[1], s[2])
    if s[0] == "change":
        return change(s[1], s[2], s[3])
    return notarize(refs=(made[s[1] % len(made)],) if made else ())


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=40))
def test_admission_agrees_with_judging_the_whole_pool_afresh(steps: list[tuple[Any, ...]]) -> None:
    store, pool, adm = fresh()
    made: list[bytes] = []
    for i, s in enumerate(steps):
        t = T0 + 10 * i
        if s[0] == "commit":
            checked, refused = commit(store, pool.oldest(s[1]), t)
            assert refused == []  # the pool is always committable in order
            adm.committed(checked, s[1] + 1, t + 1)  # room to spare: an unforced re-judgement too
        elif s[0] == "rival":
            env = issue(s[1], s[2]) if s[3] == "cert.issue" else change(s[1], s[3], s[2])
            checked, refused = commit(store, [env], t)
            if not refused:
                adm.committed(checked, 1, t + 1)  # a full block: only facts it changed force work
        else:
            env = _record(s, made)
            made.append(env.record_id)
            expected = reference(store, pool, env, t)
            try:
                adm.admit(env, t)
                got = None
            except InvalidInput as exc:
                got = exc.code
            assert got == expected, (s, got, expected)
        reference(store, pool, None, t + 2)  # the pool stays consistent after every step
        assert len(adm.pending) == len(pool)
