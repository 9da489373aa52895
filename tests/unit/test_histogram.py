"""Histograms (ledgernode.histogram): which bucket a value lands in, and the exposition text."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, strategies as st

from ledgernode.histogram import OVERFLOW_LABEL, Histogram, bound_text

SAMPLE = re.compile(r'^([a-z_]+)(\{(?:[a-z_]+="(?:[^"\\]|\\.)*",?)*\})? (\S+)$')


def samples(text: str) -> dict[str, float]:
    """Every sample line of `text` (name with labels -> value); each line must parse."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, line
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def test_a_value_on_a_bound_is_in_that_bucket_and_above_the_last_in_inf() -> None:
    h = Histogram("t_seconds", "Test.", (0.1, 1.0, 10.0))
    assert [h.bucket_index(v) for v in (0.0, 0.1, 0.10001, 1.0, 5.0, 10.0, 10.5, math.inf)] == [0, 0, 1, 1, 2, 2, 3, 3]
    for v in (0.05, 0.1, 0.5, 1.0, 20.0):
        h.observe(v)
    got = samples(h.render())
    assert got == {
        't_seconds_bucket{le="0.1"}': 2, 't_seconds_bucket{le="1"}': 4, 't_seconds_bucket{le="10"}': 4,
        't_seconds_bucket{le="+Inf"}': 5, "t_seconds_sum": pytest.approx(21.65), "t_seconds_count": 5,
    }


def test_an_unlabelled_histogram_shows_zeros_before_its_first_observation() -> None:
    text = Histogram("t_bytes", "Bytes of a thing.", (1024, 16 << 20)).render()
    assert text.splitlines() == [
        "# HELP t_bytes Bytes of a thing.", "# TYPE t_bytes histogram",
        't_bytes_bucket{le="1024"} 0', 't_bytes_bucket{le="16777216"} 0', 't_bytes_bucket{le="+Inf"} 0',
        "t_bytes_sum 0", "t_bytes_count 0",
    ]
    assert text.endswith("\n")


def test_labelled_series_are_rendered_apart_and_escaped() -> None:
    h = Histogram("t_seconds", "Test.", (1.0,), ("route", "method"))
    assert "t_seconds_bucket" not in h.render()  # no label set seen yet
    h.observe(0.5, "/v1/records/{id}", "GET")
    h.observe(2.0, "/v1/records/{id}", "GET")
    h.observe(0.25, 'a"b\\c', "POST")
    got = samples(h.render())
    assert got['t_seconds_bucket{route="/v1/records/{id}",method="GET",le="1"}'] == 1
    assert got['t_seconds_bucket{route="/v1/records/{id}",method="GET",le="+Inf"}'] == 2
    assert got['t_seconds_count{route="/v1/records/{id}",method="GET"}'] == 2
    assert got['t_seconds_sum{route="/v1/records/{id}",method="GET"}'] == 2.5
    assert got['t_seconds_count{route="a\\"b\\\\c",method="POST"}'] == 1


def test_label_sets_past_the_bound_share_one_overflow_series() -> None:
    h = Histogram("t_seconds", "Test.", (1.0,), ("route",), series_max=3)
    for k in range(10):
        h.observe(0.5, f"/r{k}")
    assert len(h.series) == 3 + 1
    assert h.series[(OVERFLOW_LABEL,)].count == 7
    h.observe(0.5, "/r1")  # a label set kept before the bound still counts as itself
    assert h.series[("/r1",)].count == 2


def test_nan_is_ignored_and_bounds_must_increase() -> None:
    h = Histogram("t", "Test.", (1.0,))
    h.observe(math.nan)
    assert h.series[()].count == 0
    with pytest.raises(AssertionError):
        Histogram("t", "Test.", (2.0, 1.0))
    with pytest.raises(AssertionError):
        Histogram("t", "Test.", (1.0, math.inf))


def test_bound_text() -> None:
    assert [bound_text(b) for b in (0.005, 0.1, 1.0, 2.5, 1 << 20, math.inf)] == [
        "0.005", "0.1", "1", "2.5", "1048576", "+Inf"]


@given(st.lists(st.floats(min_value=0, max_value=1e6), max_size=50))
def test_cumulative_counts_match_a_direct_count(values: list[float]) -> None:
    bounds = (0.5, 1.0, 10.0, 1000.0)
    h = Histogram("t", "Test.", bounds)
    for v in values:
        h.observe(v)
    got = samples(h.render())
    for b in bounds:
        assert got[f't_bucket{{le="{bound_text(b)}"}}'] == sum(1 for v in values if v <= b)
    assert got['t_bucket{le="+Inf"}'] == got["t_count"] == len(values)
    assert got["t_sum"] == pytest.approx(sum(values))
