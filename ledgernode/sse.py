"""The event stream's wire format (GET /v1/events, docs/protocol.md section 14): the typed
event values, their Server-Sent Events framing, the event ids a client resumes from, and
an incremental parser of the stream. No I/O: api/events.py writes events with
`encode_event`, the SDK (ledgernode/client.py) reads them with `EventParser`.

    event: record        id: <leaf index>   one committed record
    event: block         id: b<height>      after the block's last record event
    event: heartbeat     id: <position>     while idle: the head, and where the stream is
    event: cutoff        id: <position>     the last event before the node closes the stream
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, TypeAlias

EVENT_NAMES = ("record", "block", "heartbeat", "cutoff")
ID_DIGITS_MAX = 20  # a u64 leaf index or height
_LEAF_ID = re.compile(r"0|[1-9][0-9]{0,%d}" % (ID_DIGITS_MAX - 1))
_BLOCK_ID = re.compile(r"b(0|[1-9][0-9]{0,%d})" % (ID_DIGITS_MAX - 1))
LINE_MAX_BYTES = 64 << 10  # of one line of the stream, as a reader accepts it
EVENT_MAX_BYTES = 64 << 10  # of one event's data lines together


# -- event ids ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AfterLeaf:
    """Every record up to leaf `leaf` was covered (sent, or skipped by a filter); the event of
    its block is still owed when `leaf` was the block's last record."""

    leaf: int

    def text(self) -> str:
        return str(self.leaf)


@dataclass(frozen=True)
class AfterBlock:
    """Block `height` was covered, its block event included; `b0` is the beginning."""

    height: int

    def text(self) -> str:
        return f"b{self.height}"


EventId: TypeAlias = AfterLeaf | AfterBlock


def decode_event_id(text: str) -> EventId:
    """`L` (a leaf index) or `b<H>` (a height), in decimal without leading zeros; ValueError else."""
    if _LEAF_ID.fullmatch(text):
        return AfterLeaf(int(text))
    if _BLOCK_ID.fullmatch(text):
        return AfterBlock(int(text[1:]))
    raise ValueError("an event id is a leaf index (e.g. 41) or b and a height (e.g. b7; b0: the beginning)")


# -- events ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordEvent:
    id: str  # the record id, 64 hex
    type: str
    subject: str | None
    height: int
    leaf_index: int
    block_hash: str  # hex


@dataclass(frozen=True)
class BlockEvent:
    height: int
    block_hash: str
    records: int
    log_size: int
    log_root: str
    time_ms: int | None  # the header's time


@dataclass(frozen=True)
class Heartbeat:
    """The head checkpoint, and `position`: the id to resume from (past skipped records too)."""

    height: int
    log_size: int
    log_root: str
    block_hash: str | None  # None before the first block
    position: str


@dataclass(frozen=True)
class Cutoff:
    """The node closes the stream (`reason`: slow, node_stopping); `resume` is the id to send."""

    reason: str
    resume: str


Event: TypeAlias = RecordEvent | BlockEvent | Heartbeat | Cutoff


def event_id(event: Event) -> str:
    match event:
        case RecordEvent(leaf_index=leaf):
            return str(leaf)
        case BlockEvent(height=height):
            return f"b{height}"
        case Heartbeat(position=position):
            return position
        case Cutoff(resume=resume):
            return resume


def event_name(event: Event) -> str:
    return _data(event)[0]


def _data(event: Event) -> tuple[str, dict[str, Any]]:
    match event:
        case RecordEvent():
            return "record", {"id": event.id, "type": event.type, "subject": event.subject,
                              "height": event.height, "leaf_index": event.leaf_index,
                              "block_hash": event.block_hash}
        case BlockEvent():
            data = {"height": event.height, "block_hash": event.block_hash, "records": event.records,
                    "log_size": event.log_size, "log_root": event.log_root}
            return "block", data if event.time_ms is None else {**data, "time_ms": event.time_ms}
        case Heartbeat():
            return "heartbeat", {"height": event.height, "log_size": event.log_size,
                                 "log_root": event.log_root, "block_hash": event.block_hash}
        case Cutoff():
            return "cutoff", {"reason": event.reason, "resume": event.resume}


def encode_event(event: Event) -> bytes:
    """One event as SSE text: `event:`, `id:`, one `data:` line of JSON (ASCII: escapes keep
    every newline out of it), and the blank line that ends it."""
    name, data = _data(event)
    text = json.dumps(data, separators=(",", ":"))
    return f"event: {name}\nid: {event_id(event)}\ndata: {text}\n\n".encode("ascii")


def _int(doc: dict[str, Any], name: str, nullable: bool = False) -> Any:
    value = doc.get(name)
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"event field {name} is not an integer")
    return value


def _str(doc: dict[str, Any], name: str, nullable: bool = False) -> Any:
    value = doc.get(name)
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise ValueError(f"event field {name} is not a string")
    return value


def decode_event(name: str, ident: str, data: str) -> Event | None:
    """The typed event of one dispatched SSE event; None for a name this reader does not
    know (a newer node's); ValueError for a known one that is malformed."""
    if name not in EVENT_NAMES:
        return None
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError(f"the data of a {name} event is not a JSON object")
    match name:
        case "record":
            return RecordEvent(_str(doc, "id"), _str(doc, "type"), _str(doc, "subject", True),
                               _int(doc, "height"), _int(doc, "leaf_index"), _str(doc, "block_hash"))
        case "block":
            return BlockEvent(_int(doc, "height"), _str(doc, "block_hash"), _int(doc, "records"),
                              _int(doc, "log_size"), _str(doc, "log_root"), _int(doc, "time_ms", True))
        case "heartbeat":
            return Heartbeat(_int(doc, "height"), _int(doc, "log_size"), _str(doc, "log_root"),
                             _str(doc, "block_hash", True), ident)
        case _:
            return Cutoff(_str(doc, "reason"), _str(doc, "resume"))


class EventParser:
    """Lines of an SSE stream in, typed events out (the SSE rules: `field: value` lines, a
    blank line dispatches, `:` starts a comment, data lines join with a newline)."""

    def __init__(self) -> None:
        self.name, self.ident, self.size = "", "", 0
        self.data: list[str] = []

    def feed(self, line: str) -> Event | None:
        """One line without its line ending; the event it completes, if any."""
        if not line:
            name, ident, data = self.name or "message", self.ident, "\n".join(self.data)
            had_data = bool(self.data)
            self.name, self.ident, self.data, self.size = "", "", [], 0
            return decode_event(name, ident, data) if had_data else None
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self.name = value
        elif field == "id" and "\0" not in value:
            self.ident = value
        elif field == "data":
            self.size += len(value) + 1
            if self.size > EVENT_MAX_BYTES:
                raise ValueError(f"an event's data exceeds {EVENT_MAX_BYTES} bytes")
            self.data.append(value)
        return None
