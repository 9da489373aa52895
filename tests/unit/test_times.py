"""Ledger times as text (ledgernode.times): ISO 8601 UTC out, ms or ISO 8601 in."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgernode.records import TIME_MAX_MS as RECORD_TIME_MAX_MS
from ledgernode.times import TIME_MAX_MS, parse_time_ms, utc_short, utc_text
from tests.fixtures import T0


def _ms(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=timezone.utc).timestamp() * 1000)  # type: ignore[misc]


def test_times_in_iso_8601_and_ms() -> None:
    assert parse_time_ms("2026-12-02T10:00:00Z") == _ms(2026, 12, 2, 10)
    assert parse_time_ms("2026-12-02T10:00+08:00") == _ms(2026, 12, 2, 2)
    assert parse_time_ms("2026-12-02") == _ms(2026, 12, 2)  # a date is 00:00 UTC
    assert parse_time_ms("20261202") == 20261202  # digits alone are ms
    assert parse_time_ms(" 1767225600000 ") == T0
    assert parse_time_ms("2026-01-01T00:00:00.5Z") == T0 + 500
    assert parse_time_ms(str(TIME_MAX_MS)) == TIME_MAX_MS


@pytest.mark.parametrize("text, says", [
    ("2026-12-02T10:00", "no UTC offset"),
    ("tomorrow", "ISO 8601"),
    ("-5", "ISO 8601"),
    ("", "ISO 8601"),
    ("1969-12-31T23:59:59Z", "before 1970"),
    (str(TIME_MAX_MS + 1), "beyond"),
    ("9" * 40, "beyond"),
])
def test_bad_times_say_what_is_accepted(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_time_ms(text)




def test_shown_times() -> None:
    assert utc_text(T0) == "2026-01-01T00:00:00.000Z"
    assert utc_short(T0) == "2026-01-01 00:00 UTC"
    assert utc_short(T0 + 61_005) == "2026-01-01 00:01:01.005 UTC"
    assert utc_text(TIME_MAX_MS) == f"{TIME_MAX_MS} ms"  # beyond what a calendar shows
    assert TIME_MAX_MS == RECORD_TIME_MAX_MS


@given(st.integers(0, 253_402_300_799_999))  # through 9999-12-31
def test_a_shown_time_reads_back_as_the_same_instant(ms: int) -> None:
    assert parse_time_ms(utc_text(ms)) == ms
