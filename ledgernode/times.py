"""Ledger times: ms since the Unix epoch (docs/protocol.md section 4), the clock's now, shown
as ISO 8601 UTC, and read back from what people type (integer ms or ISO 8601)."""

from __future__ import annotations

import datetime
import re
import time

TIME_MAX_MS = 2**63 - 1  # the largest ledger time (a msgpack int64)
TIME_DIGITS_MAX = len(str(TIME_MAX_MS))  # more digits cannot be a ledger time
TIME_FORMS = ("integer ms since 1970-01-01 UTC, ISO 8601 with an offset "
              "(2026-12-02T10:00:00Z, 2026-12-02T10:00+08:00) or a date (2026-12-02, 00:00 UTC)")
_DIGITS = re.compile(r"[0-9]+")
_DATE = re.compile(r"[0-9]{4}-?[0-9]{2}-?[0-9]{2}")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_ONE_MS = datetime.timedelta(milliseconds=1)


def now_ms() -> int:
    """This machine's clock, as a ledger time."""
    return int(time.time() * 1000)


def utc_text(ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC, or the raw number if out of range."""
    try:
        # whole seconds, then the ms added exactly: ms / 1000 as a float loses the last digit
        t = datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc) + datetime.timedelta(
            milliseconds=ms % 1000)
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_short(ms: int) -> str:
    """A time for a claim line: "2026-12-02 10:00 UTC", seconds and milliseconds only if set."""
    try:
        t = datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"
    text = t.strftime("%Y-%m-%d %H:%M" + (":%S" if t.second or ms % 1000 else ""))
    return text + (f".{ms % 1000:03d}" if ms % 1000 else "") + " UTC"


def parse_time_ms(text: str) -> int:
    """Milliseconds since the Unix epoch (the ledger's times, docs/protocol.md section 4)
    from integer ms or ISO 8601; ValueError naming the accepted forms otherwise.

    A date and time must carry its UTC offset: guessing the reader's zone would
    silently move the instant an answer is about."""
    value = text.strip()
    if _DIGITS.fullmatch(value):
        if len(value) > TIME_DIGITS_MAX or int(value) > TIME_MAX_MS:
            raise ValueError(f"time {text!r} is beyond the largest ledger time ({TIME_MAX_MS} ms)")
        return int(value)
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"time {text!r}: give {TIME_FORMS}") from None
    if when.tzinfo is None:
        if not _DATE.fullmatch(value):
            raise ValueError(f"time {text!r} has no UTC offset: add Z or one like +08:00")
        when = when.replace(tzinfo=datetime.timezone.utc)
    ms = (when - _EPOCH) // _ONE_MS
    if ms < 0:
        raise ValueError(f"time {text!r} is before 1970-01-01T00:00:00Z")
    return ms
