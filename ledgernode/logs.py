"""Operator logs: one setup for `run` and `devnet`, and rate limits that keep a
flood of bad input from turning into a flood of log lines.

`configure(level, fmt)` installs one handler on the root logger: `text`
(`time name LEVEL message`) or `json` (one object a line: ts, level, logger,
msg). `Throttle` lets a caller log a line for a cause at most once per
interval and folds what it held back into the next line ("(+41 more in 10 s)").
Times come from the caller (monotonic seconds), so the class is testable
without a clock.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
THROTTLE_CAUSES_MAX = 1_000  # distinct causes remembered; the oldest is forgotten past this


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def configure(level: str = "info", fmt: str = "text") -> None:
    """Send every log line to stderr at `level` and above, as `fmt` (`text` or `json`)."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r}: expected one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiohttp logs every malformed request with a traceback at ERROR; our
    # middleware and metrics already count bad requests, so keep its server
    # logger to real failures only.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)


@dataclass
class _Cause:
    last_s: float
    held: int


class Throttle:
    """At most one line per cause per `interval_s`; held-back lines are counted."""

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        assert interval_s > 0
        self.logger = logger
        self.interval_s = interval_s
        self._causes: dict[str, _Cause] = {}

    def log(self, level: int, cause: str, message: str, *args: object, now_s: float | None = None) -> bool:
        """Log `message % args` unless `cause` was logged less than an interval ago.
        Returns whether a line was written."""
        now = time.monotonic() if now_s is None else now_s
        seen = self._causes.get(cause)
        if seen is not None and now - seen.last_s < self.interval_s:
            seen.held += 1
            return False
        held = seen.held if seen is not None else 0
        if seen is None and len(self._causes) >= THROTTLE_CAUSES_MAX:
            self._causes.pop(next(iter(self._causes)))
        self._causes[cause] = _Cause(now, 0)
        if held:
            message += f" (+{held} more in the last {self.interval_s:g} s)"
        self.logger.log(level, message, *args)
        return True
