"""Per-client token buckets (ledgernode/throttle.py): burst, refill, Retry-After, bounds."""

from __future__ import annotations

from hypothesis import given, strategies as st

from ledgernode.throttle import Buckets, Throttle


def test_a_bucket_passes_its_burst_then_refuses_until_it_refills() -> None:
    b = Buckets(rate_per_s=10, burst=5)
    assert [b.take("k", 100.0) for _ in range(5)] == [None] * 5
    assert b.take("k", 100.0) == 1  # 1 token at 10/s: within a second
    assert b.take("k", 100.15) is None  # 0.15 s later one token is back
    assert b.take("other", 100.15) is None  # buckets are per client


def test_retry_after_covers_the_tokens_missing() -> None:
    b = Buckets(rate_per_s=2, burst=10)
    assert b.take("k", 0.0, cost=10) is None
    assert b.take("k", 0.0, cost=6) == 3  # 6 tokens at 2/s
    assert b.take("k", 3.0, cost=6) is None


def test_a_cost_above_the_burst_waits_for_a_whole_bucket_and_never_passes() -> None:
    b = Buckets(rate_per_s=5, burst=10)
    assert b.take("k", 0.0, cost=11) == 2
    assert b.take("k", 1_000.0, cost=11) == 2  # full again, still short of 11


def test_the_least_recently_seen_client_is_forgotten_past_the_bound() -> None:
    b = Buckets(rate_per_s=1, burst=1, max_entries=2)
    assert b.take("a", 0.0) is None and b.take("b", 0.0) is None
    assert b.take("a", 0.0) == 1  # a is drained and now the most recent
    assert b.take("c", 0.0) is None  # forgets b, the least recent
    assert len(b) == 2
    assert b.take("a", 0.0) == 1  # a is still remembered as drained


def test_the_throttle_counts_refusals_by_family() -> None:
    t = Throttle(write_rate_per_s=1, write_burst=1, read_rate_per_s=1, read_burst=2)
    assert t.take("read", "key", "k", 0.0) is None and t.take("read", "key", "k", 0.0) is None
    assert t.take("read", "key", "k", 0.0) == 1
    assert t.take("write", "address", "127.0.0.1", 0.0) is None
    assert t.take("write", "address", "127.0.0.1", 0.0) == 1
    text = t.render_metrics()
    assert 'ledgernode_rate_limited_total{kind="read",by="key"} 1' in text
    assert 'ledgernode_rate_limited_total{kind="write",by="address"} 1' in text
    assert 'ledgernode_rate_limited_total{kind="read",by="address"} 0' in text


@given(st.integers(1, 50), st.integers(1, 50), st.lists(st.floats(0, 10), min_size=1, max_size=60))
def test_no_client_gets_more_than_burst_plus_rate_times_elapsed(rate: int, burst: int, gaps: list[float]) -> None:
    b = Buckets(rate, burst)
    now, passed = 0.0, 0
    for gap in gaps:
        now += gap
        passed += b.take("k", now) is None
    assert passed <= burst + rate * now + 1e-9
