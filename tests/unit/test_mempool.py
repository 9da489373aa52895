"""Mempool: bounded, arrival-ordered, duplicate-free pool of admitted envelopes."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgernode import codec
from ledgernode.mempool import Mempool
from ledgernode.records import Envelope, decode_envelope
from ledgernode.service import Backpressure
from tests.fixtures import T0, Net, content

NET = Net()


def envelope(i: int, ts: int = T0) -> Envelope:
    raw = NET.record(0, "evidence.notarize", f"subject-{i}",
                     {"content_hash": content(f"c{i}"), "media_type": "text/plain", "size": i, "title": f"t{i}"},
                     ts=ts)
    return decode_envelope(raw, NET.genesis)


POOL = [envelope(i) for i in range(24)]


def test_add_contains_get_len() -> None:
    pool = Mempool(10)
    assert len(pool) == 0 and POOL[0].record_id not in pool and pool.get(POOL[0].record_id) is None
    assert pool.add(POOL[0]) is True
    assert pool.add(POOL[1]) is True
    assert len(pool) == 2
    assert POOL[0].record_id in pool and POOL[1].record_id in pool and POOL[2].record_id not in pool
    assert pool.get(POOL[1].record_id) is POOL[1]
    assert pool.get(b"\x00" * 32) is None


def test_duplicate_is_ignored_and_keeps_the_first_copy() -> None:
    pool = Mempool(10)
    assert pool.add(POOL[0]) is True
    again = decode_envelope(POOL[0].raw, NET.genesis)  # equal record, distinct object
    assert again.record_id == POOL[0].record_id
    assert pool.add(again) is False
    assert len(pool) == 1
    assert pool.get(POOL[0].record_id) is POOL[0]


def test_by_raw_finds_only_the_exact_admitted_bytes() -> None:
    pool = Mempool(10)
    pool.add(POOL[0])
    assert pool.by_raw(POOL[0].raw) is POOL[0]
    record_bytes, sig = codec.decode(POOL[0].raw)
    other = decode_envelope(codec.encode([record_bytes, bytes([sig[0] ^ 1]) + sig[1:]]), NET.genesis)
    assert other.record_id == POOL[0].record_id and other.raw != POOL[0].raw
    assert pool.add(other) is False  # same record: a duplicate
    assert pool.by_raw(other.raw) is None  # but not the bytes that were admitted
    pool.remove([POOL[0].record_id])
    assert pool.by_raw(POOL[0].raw) is None


def test_duplicate_of_a_present_record_is_not_backpressure_when_full() -> None:
    pool = Mempool(2)
    pool.add(POOL[0])
    pool.add(POOL[1])
    assert pool.add(POOL[0]) is False  # already there: no error even though full


def test_backpressure_when_full_and_stays_bounded() -> None:
    pool = Mempool(3)
    for env in POOL[:3]:
        assert pool.add(env)
    for env in POOL[3:10]:
        with pytest.raises(Backpressure) as err:
            pool.add(env)
        assert err.value.retry_after_s >= 1
        assert "3" in str(err.value)
        assert len(pool) == 3 and env.record_id not in pool
    assert [e.record_id for e in pool.oldest(10)] == [e.record_id for e in POOL[:3]]


def test_room_frees_up_after_remove() -> None:
    pool = Mempool(2)
    pool.add(POOL[0])
    pool.add(POOL[1])
    with pytest.raises(Backpressure):
        pool.add(POOL[2])
    pool.remove([POOL[0].record_id])
    assert pool.add(POOL[2]) is True
    assert [e.record_id for e in pool.oldest(5)] == [POOL[1].record_id, POOL[2].record_id]


def test_max_records_must_be_positive() -> None:
    with pytest.raises(AssertionError):
        Mempool(0)


def test_oldest_keeps_arrival_order() -> None:
    pool = Mempool(100)
    order = [POOL[i] for i in (5, 2, 9, 0, 7, 3)]
    for env in order:
        pool.add(env)
    pool.add(POOL[2])  # a duplicate does not move the record
    ids = [e.record_id for e in order]
    assert [e.record_id for e in pool.oldest(3)] == ids[:3]
    assert [e.record_id for e in pool.oldest(6)] == ids
    assert [e.record_id for e in pool.oldest(100)] == ids
    assert pool.oldest(0) == []
    assert len(pool) == 6  # oldest() only reads


def test_re_added_record_goes_to_the_back() -> None:
    pool = Mempool(10)
    for env in POOL[:3]:
        pool.add(env)
    pool.remove([POOL[0].record_id])
    pool.add(POOL[0])
    assert [e.record_id for e in pool.oldest(3)] == [POOL[1].record_id, POOL[2].record_id, POOL[0].record_id]


def test_remove_ignores_unknown_ids_and_duplicates() -> None:
    pool = Mempool(10)
    for env in POOL[:4]:
        pool.add(env)
    pool.remove([POOL[1].record_id, b"\x01" * 32, POOL[1].record_id, POOL[3].record_id])
    assert len(pool) == 2
    assert [e.record_id for e in pool.oldest(10)] == [POOL[0].record_id, POOL[2].record_id]
    pool.remove([])
    assert len(pool) == 2


def test_expire_drops_records_outside_the_ts_window() -> None:
    window = 1_000
    now = T0 + 10_000
    timed = {
        "old": envelope(100, ts=now - window - 1),
        "edge_old": envelope(101, ts=now - window),
        "now": envelope(102, ts=now),
        "edge_new": envelope(103, ts=now + window),
        "future": envelope(104, ts=now + window + 1),
    }
    pool = Mempool(10)
    for env in timed.values():
        pool.add(env)
    assert len(pool.expire(now, window)) == 2
    assert timed["old"].record_id not in pool and timed["future"].record_id not in pool
    assert pool.by_raw(timed["old"].raw) is None and pool.by_raw(timed["now"].raw) is timed["now"]
    assert [e.record_id for e in pool.oldest(10)] == [
        timed[k].record_id for k in ("edge_old", "now", "edge_new")]
    assert pool.expire(now, window) == []  # nothing more to drop
    assert len(pool.expire(now + 2 * window + 1, window)) == 3
    assert len(pool) == 0


def test_expire_on_empty_pool() -> None:
    assert Mempool(1).expire(T0, 1) == []


# -- model-based -------------------------------------------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, len(POOL) - 1)),
        st.tuples(st.just("remove"), st.lists(st.integers(0, len(POOL) - 1), max_size=4)),
        st.tuples(st.just("oldest"), st.integers(0, len(POOL) + 2)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(max_records=st.integers(1, 8), steps=ops)
def test_random_add_remove_matches_a_model(max_records: int, steps: list[tuple[str, Any]]) -> None:
    pool = Mempool(max_records)
    model: OrderedDict[bytes, Envelope] = OrderedDict()
    for op, arg in steps:
        if op == "add":
            env = POOL[arg]
            if env.record_id in model:
                assert pool.add(env) is False
            elif len(model) >= max_records:
                with pytest.raises(Backpressure):
                    pool.add(env)
            else:
                assert pool.add(env) is True
                model[env.record_id] = env
        elif op == "remove":
            ids = [POOL[i].record_id for i in arg]
            pool.remove(ids)
            for rid in ids:
                model.pop(rid, None)
        else:
            got = pool.oldest(arg)
            assert [e.record_id for e in got] == list(model)[:arg]
        assert len(pool) == len(model) <= max_records
        for env in POOL:
            assert (env.record_id in pool) == (env.record_id in model)
            assert pool.get(env.record_id) is model.get(env.record_id)
            assert pool.by_raw(env.raw) is model.get(env.record_id)
    assert [e.record_id for e in pool.oldest(len(POOL))] == list(model)


def test_submission_times_are_kept_only_for_records_in_the_pool() -> None:
    pool = Mempool(10)
    for env in POOL[:3]:
        pool.add(env)
    ids = [env.record_id for env in POOL[:3]]
    pool.mark_submitted([POOL[0].raw, POOL[1].raw, POOL[5].raw], 100.0)  # POOL[5] never joined
    assert pool.waited_s(ids, 102.5) == [2.5, 2.5]  # POOL[2] came by gossip: no time
    pool.remove([POOL[0].record_id])
    assert pool.waited_s(ids, 103.0) == [3.0]
    pool.expire(T0 + 10**9, 1)  # every record leaves, and its time with it
    assert pool.waited_s(ids, 104.0) == [] and pool._submitted_s == {}
