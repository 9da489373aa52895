"""Turning HTTP requests into checked Python values, or a 4xx naming what is wrong.

Bodies are bounded before they are read: a declared Content-Length above the
limit is refused unread, and a body without one (chunked) is cut off by
aiohttp's `client_max_size` while it streams in. A client that drips its body
slower than `body_timeout_s` gets 408, so it cannot hold a handler forever. A
request with `Expect: 100-continue` and a declared length over the limit gets 413
instead of `100 Continue` (`declared_too_large`, asked by api/connections.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from .. import codec
from ..aio import web
from ..config import Limits
from ..errors import InvalidInput
from ..genesis import strict_object
from ..records import SUBJECT_MAX_CHARS
from .errors import ApiError

MSGPACK_TYPES = frozenset([
    "application/msgpack", "application/x-msgpack", "application/vnd.msgpack",
    # aiohttp reports this when a client sends no Content-Type at all; raw
    # bytes are then most plausibly an envelope.
    "application/octet-stream",
])
JSON_TYPE = "application/json"
JSON_MAX_DEPTH = 8
_HEX_ID = re.compile(r"[0-9a-f]{64}")
_HEIGHT = re.compile(r"[0-9]+")
# Any height with more digits is beyond every head; capping keeps int() away
# from Python's limit on converting very long digit strings.
_HEIGHT_DIGITS_MAX = 30
_TIMEOUT = re.compile(r"[0-9]{1,12}")
# Query integers (log sizes, leaf indexes, times in ms, limits): 20 digits hold
# every u64, and keep int() away from very long digit strings.
QUERY_INT_DIGITS_MAX = 20
_QUERY_INT = re.compile(r"[0-9]{1,%d}" % QUERY_INT_DIGITS_MAX)
_TRUE = frozenset(["1", "true"])
_FALSE = frozenset(["0", "false"])


def bad(code: str, message: str) -> InvalidInput:
    return InvalidInput(code, message, 400)


def declared_too_large(request: web.BaseRequest, limits: Limits) -> ApiError | None:
    """The 413 for a Content-Length above limits.body_max_bytes, else None. Also asked
    before `100 Continue` is sent (api/connections.py), so such a body is never invited."""
    declared = request.content_length
    if declared is not None and declared > limits.body_max_bytes:
        return ApiError(413, "body_too_large",
                        f"body of {declared} bytes exceeds the limit of {limits.body_max_bytes}")
    return None


async def read_body(request: web.Request, limits: Limits, timeout_s: float) -> bytes:
    """The whole request body, never more than limits.body_max_bytes, never empty."""
    refused = declared_too_large(request, limits)
    if refused is not None:
        raise refused
    try:
        async with asyncio.timeout(timeout_s):
            raw = await request.read()
    except TimeoutError:
        raise ApiError(408, "body_timeout", f"body not received within {timeout_s:g} s") from None
    except ConnectionError:
        raise ApiError(400, "incomplete_body", "connection lost while reading the body") from None
    except web.RequestPayloadError as exc:  # bad chunked framing or Content-Encoding
        raise ApiError(400, "bad_body", f"request body could not be read: {' '.join(str(exc).split())}") from None
    if not raw:
        raise bad("empty_body", "the request body is empty")
    return raw


def body_kind(request: web.Request) -> str:
    """"msgpack" or "json" from the Content-Type; 415 for anything else."""
    ctype = request.content_type.lower()
    if ctype in MSGPACK_TYPES:
        return "msgpack"
    if ctype == JSON_TYPE:
        return "json"
    raise ApiError(415, "unsupported_media_type",
                   f"Content-Type {ctype!r}: send application/msgpack or application/json")


def _depth(value: Any, depth: int = 0) -> int:
    if depth > JSON_MAX_DEPTH:
        return depth
    children: Any = ()
    if isinstance(value, dict):
        children = value.values()
    elif isinstance(value, list):
        children = value
    return max((_depth(c, depth + 1) for c in children), default=depth)


def json_object(
    raw: bytes, keys: frozenset[str] | None, required: frozenset[str]
) -> dict[str, Any]:
    """A JSON object with only `keys` (any when None), all of `required`; no duplicate keys."""
    try:
        doc = json.loads(raw, object_pairs_hook=strict_object)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise bad("bad_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise bad("bad_json", "body must be a JSON object")
    if _depth(doc) > JSON_MAX_DEPTH:
        raise bad("bad_json", f"JSON nests deeper than {JSON_MAX_DEPTH}")
    extra = sorted(set(doc) - keys) if keys is not None else []
    if extra:
        raise bad("bad_json", f"unexpected field(s) {', '.join(extra)}")
    missing = sorted(required - set(doc))
    if missing:
        raise bad("bad_json", f"missing field(s) {', '.join(missing)}")
    return doc


def unb64(value: Any, what: str) -> bytes:
    """Standard base64 with padding, strictly: no other characters, no missing '='."""
    if not isinstance(value, str):
        raise bad("bad_base64", f"{what} must be a base64 string")
    try:
        out = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise bad("bad_base64", f"{what} is not valid base64") from None
    if not out:
        raise bad("bad_base64", f"{what} is empty")
    return out


def single_envelope(raw: bytes, kind: str) -> bytes:
    if kind == "msgpack":
        return raw
    doc = json_object(raw, frozenset(["envelope"]), frozenset(["envelope"]))
    return unb64(doc["envelope"], "envelope")


def _array_length(raw: bytes) -> int | None:
    """The element count a msgpack array header declares, read before decoding.

    Peeking lets an over-long batch get a clear 413 instead of the codec's
    generic "malformed", without allocating anything for its elements."""
    first = raw[0]
    if 0x90 <= first <= 0x9F:
        return first & 0x0F
    if first == 0xDC and len(raw) >= 3:
        return int.from_bytes(raw[1:3], "big")
    if first == 0xDD and len(raw) >= 5:
        return int.from_bytes(raw[1:5], "big")
    return None


def _check_count(n: int, limits: Limits) -> None:
    if n > limits.batch_max_records:
        raise ApiError(413, "batch_too_large",
                       f"batch of {n} envelopes exceeds the limit of {limits.batch_max_records}")
    if n == 0:
        raise bad("empty_batch", "the batch holds no envelopes")


def batch_items(raw: bytes, kind: str, limits: Limits) -> list[bytes | InvalidInput]:
    """The batch's envelopes; an item that is not even bytes becomes its own error."""
    if kind == "json":
        doc = json_object(raw, frozenset(["envelopes"]), frozenset(["envelopes"]))
        items = doc["envelopes"]
        if not isinstance(items, list):
            raise bad("bad_json", "envelopes must be an array of base64 strings")
        _check_count(len(items), limits)
        out: list[bytes | InvalidInput] = []
        for i, item in enumerate(items):
            try:
                out.append(unb64(item, f"envelopes[{i}]"))
            except InvalidInput as exc:
                out.append(exc)
        return out
    declared = _array_length(raw)
    if declared is None:
        raise bad("bad_batch", "body must be a msgpack array of envelopes (bin values)")
    _check_count(declared, limits)
    value = codec.decode(raw, codec.Limits(
        input_max_bytes=limits.body_max_bytes, str_max_bytes=0,
        bin_max_bytes=limits.body_max_bytes, array_max_len=limits.batch_max_records,
        map_max_len=0, depth_max=1,
    ))
    if not isinstance(value, list) or not all(isinstance(v, bytes) for v in value):
        raise bad("bad_batch", "body must be a msgpack array of envelopes (bin values)")
    return list(value)


def record_id(text: str) -> bytes:
    if not _HEX_ID.fullmatch(text):
        raise bad("bad_id", "record id must be 64 lowercase hex characters")
    return bytes.fromhex(text)


def height(text: str) -> int:
    digits = text.lstrip("0")
    if not _HEIGHT.fullmatch(text) or not digits:
        raise bad("bad_height", "height must be an integer >= 1")
    return int(digits) if len(digits) <= _HEIGHT_DIGITS_MAX else 10**_HEIGHT_DIGITS_MAX


@dataclass(frozen=True)
class Wait:
    """Whether and how long a POST waits for its records to commit."""

    enabled: bool
    timeout_s: float


def wait_params(request: web.Request, limits: Limits) -> Wait:
    # Unknown query parameters are ignored, as HTTP clients and proxies expect.
    query = request.query
    flag = query.get("wait", "0").lower()
    if flag not in _TRUE | _FALSE:
        raise bad("bad_query", "wait must be 1, 0, true or false")
    timeout_ms = limits.wait_default_ms
    if "timeout_ms" in query:
        text = query["timeout_ms"]
        if not _TIMEOUT.fullmatch(text):
            raise bad("bad_query", "timeout_ms must be a non-negative integer")
        timeout_ms = int(text)
    return Wait(flag in _TRUE, min(timeout_ms, limits.wait_max_ms) / 1000)


def query_int(request: web.Request, name: str, default: int | None = None) -> int:
    """A non-negative integer query parameter; `default` when absent (None: required)."""
    text = request.query.get(name)
    if text is None:
        if default is None:
            raise bad("bad_query", f"query parameter {name} is required")
        return default
    if not _QUERY_INT.fullmatch(text):
        raise bad("bad_query",
                  f"{name} must be a non-negative integer of at most {QUERY_INT_DIGITS_MAX} digits")
    return int(text)


def prefers_html(request: web.Request) -> bool:
    """A browser asks for text/html before JSON in its Accept header."""
    accept = request.headers.get("Accept", "")
    html, js = accept.find("text/html"), accept.find("application/json")
    return html >= 0 and (js < 0 or html < js)


def query_flag(request: web.Request, name: str) -> bool:
    """A boolean query parameter: 1/true or 0/false, absent is false."""
    flag = request.query.get(name, "0").lower()
    if flag not in _TRUE | _FALSE:
        raise bad("bad_query", f"{name} must be 1, 0, true or false")
    return flag in _TRUE


def subject(text: str, what: str = "subject") -> str:
    """A record subject from a (percent-decoded) path segment: 1 to SUBJECT_MAX_CHARS chars."""
    if not 1 <= len(text) <= SUBJECT_MAX_CHARS:
        raise bad("bad_subject", f"{what} must be 1 to {SUBJECT_MAX_CHARS} characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise bad("bad_subject", f"{what} is not valid text") from None
    return text
