"""The SDK's calls without I/O: the request for each call and the reading of each answer.

`Core` holds everything both front ends of ledgernode/client.py need, in the style of
a protocol library that moves no bytes itself: signing records and requests, the
request of each call (path, query, body, content type, timeout), the parsing of each
answer (JSON or raw bytes, `ApiError` from the `{"error": {"code", "message"}}` body),
how long to wait before retrying a 503 or a 429 (docs/security.md section 10), and the
event stream's parser and reconnect rule (`EventFeed`, docs/protocol.md section 9).
The errors, and the helpers that build record bodies from JSON, live here too.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from . import codec, crypto, families, genesis as genesis_mod, httpsig, records, sse, tls, verify
from .times import now_ms
from .config import Limits
from .families.schema import HASH

DEFAULT_TIMEOUT_S = 10.0
# A waiting POST may be held by the node up to its wait_max_ms; the HTTP timeout
# must outlast that, plus this much for the answer to arrive.
WAIT_SLACK_S = 5.0
NODE_WAIT_MAX_MS = Limits().wait_max_ms
RETRIES_503_MAX = 3
RETRY_AFTER_DEFAULT_S = 1.0
RETRY_AFTER_MAX_S = 30.0
ERROR_TEXT_MAX_CHARS = 500
FILE_CHUNK_BYTES = 1 << 20
MSGPACK = "application/msgpack"
JSON = "application/json"
USER_AGENT = "ledgernode-client/1"
_HEX_ID = re.compile(r"[0-9a-f]{64}")
# events(): a dropped stream is opened again from the last id, waiting EVENTS_BACKOFF_S, then
# twice as long each time up to EVENTS_BACKOFF_MAX_S; after EVENTS_RECONNECTS_MAX attempts in
# a row that bring no event, the error is raised. No byte for EVENTS_IDLE_TIMEOUT_S (four of
# the node's default heartbeats) counts as a dropped stream.
EVENTS_RECONNECTS_MAX = 8
EVENTS_BACKOFF_S = 0.5
EVENTS_BACKOFF_MAX_S = 15.0
EVENTS_IDLE_TIMEOUT_S = 60.0


class ClientError(Exception):
    """Base of every error the SDK raises for a failed call."""


class ApiError(ClientError):
    """The node answered 4xx/5xx. `body` is the JSON error answer (or one built for it).

    `details` is the answer's `error` object (code, message and any more fields);
    `rule` is its `rule` for a `rule_violation` (docs/protocol.md section 5), else None."""

    def __init__(self, status: int, code: str, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body if body is not None else {"error": {"code": code, "message": message}}
        err = self.body.get("error")
        self.details: dict[str, Any] = dict(err) if isinstance(err, dict) else {}
        rule = self.details.get("rule")
        self.rule: str | None = rule if isinstance(rule, str) else None


class RecordRejected(ApiError):
    """A record passed admission but was rejected when a block was built (a ledger
    rule of docs/protocol.md sections 4-5 failed then). The answer is
    `{"id", "status": "rejected", "error": {"code", "message"}, "height"}`; the
    record will never commit, so submitting it again cannot help."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        err = body.get("error")
        err = err if isinstance(err, dict) else {}
        super().__init__(status, str(err.get("code", "rejected")), str(err.get("message", "")), body)
        self.record_id = str(body.get("id"))
        height = body.get("height")
        self.height: int | None = height if isinstance(height, int) and not isinstance(height, bool) else None
        self.args = (f"record {self.record_id} was rejected at height {self.height}: {self.code}: {self.message}",)


def rejection(answer: Mapping[str, Any], status: int = 409) -> RecordRejected | None:
    """The RecordRejected that `answer` (a submit answer or one batch item) stands for, or None."""
    if answer.get("status") != "rejected" or not isinstance(answer.get("id"), str):
        return None
    return RecordRejected(status, dict(answer))


class TransportError(ClientError):
    """No usable answer: connection refused or reset, timeout, answer over the size limit."""


# -- record bodies from JSON -------------------------------------------------------


def hash_fields(record_type: str) -> frozenset[str]:
    """Body fields of `record_type` of kind hash (32 bytes; 64 hex in JSON), from its schema."""
    rtype = families.TYPES.get(record_type)
    if rtype is None:
        raise ValueError(f"unknown record type {record_type!r} (known: {', '.join(families.TYPES)})")
    return rtype.fields_of(HASH)


def json_body(record_type: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    """A record body from JSON values: 64-hex strings in hash fields become 32 bytes.

    Ints stay ints and text stays text; floats are refused here with a clear
    message (the ledger has none: times are ms, sizes bytes)."""
    hashes = hash_fields(record_type)
    body: dict[str, Any] = {}
    for name, value in doc.items():
        if isinstance(value, float):
            raise ValueError(f"body.{name}: floats are not allowed; use an int (times are ms since the epoch)")
        if name in hashes and isinstance(value, str):
            if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
                raise ValueError(f"body.{name}: a hash field takes 64 hex characters (a SHA-256)")
            value = bytes.fromhex(value)
        body[name] = value
    return body


def sha256_file(path: Path) -> tuple[bytes, int]:
    """(SHA-256, size in bytes) of a file, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(FILE_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.digest(), size


def body_with_file(record_type: str, body: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """`body` with content_hash = SHA-256 of the file (and, for evidence.notarize,
    size, media_type and title taken from the file when absent)."""
    rtype = families.TYPES.get(record_type)
    if rtype is None or "content_hash" not in rtype.field_names:
        raise ValueError(f"a {record_type} body has no content_hash field to take from a file")
    digest, size = sha256_file(path)
    out = dict(body)
    if out.get("content_hash", digest) != digest:
        raise ValueError(f"body.content_hash differs from the SHA-256 of {path}")
    out["content_hash"] = digest
    if record_type == "evidence.notarize":
        out.setdefault("size", size)
        out.setdefault("media_type", mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        out.setdefault("title", path.name)
    return out


def id_hex(record_id: str | bytes) -> str:
    """A record id as 64 lowercase hex characters (from hex or 32 raw bytes)."""
    if isinstance(record_id, bytes):
        if len(record_id) != records.ID_BYTES:
            raise ValueError(f"a record id is {records.ID_BYTES} bytes")
        return record_id.hex()
    text = record_id.lower()
    if not _HEX_ID.fullmatch(text):
        raise ValueError("a record id is 64 hex characters")
    return text


def count_arg(value: int, what: str, minimum: int = 0) -> int:
    """`value` if it is an int (not a bool) of at least `minimum`; ValueError before any request."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {value!r}")
    return value


def optional_count(value: int | None, what: str, minimum: int = 0) -> int | None:
    return None if value is None else count_arg(value, what, minimum)


def _segment(text: str, what: str) -> str:
    """One percent-encoded path segment ('/' becomes %2F): subjects, numbers and dataset
    ids are 1 to SUBJECT_MAX_CHARS chars (docs/protocol.md section 4)."""
    if not isinstance(text, str) or not 1 <= len(text) <= records.SUBJECT_MAX_CHARS:
        raise ValueError(f"a {what} is 1 to {records.SUBJECT_MAX_CHARS} characters")
    return quote(text, safe="")


def with_query(path: str, params: Mapping[str, int | str | None]) -> str:
    """`path` with the params that are not None as its query (absent ones take the node's default)."""
    query = {name: str(value) for name, value in params.items() if value is not None}
    return path + ("?" + urlencode(query) if query else "")


# -- the shared core -----------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One HTTP request and what its answer should be parsed as."""

    method: str
    path: str
    body: bytes | None = None
    content_type: str | None = None
    timeout_s: float | None = None
    raw: bool = False  # answer is bytes, not JSON


def header_map(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Answer headers with lowercase names (HTTP header names are case-insensitive)."""
    return {name.lower(): value for name, value in items}


def _retry_after_s(headers: Mapping[str, str]) -> float:
    value = headers.get("retry-after", "")
    if value.strip().isdigit():
        return min(float(value.strip()), RETRY_AFTER_MAX_S)
    return RETRY_AFTER_DEFAULT_S


def error_from(status: int, body: bytes) -> ApiError:
    try:
        doc = json.loads(body)
        rejected = rejection(doc, status) if isinstance(doc, dict) else None
        if rejected is not None:
            return rejected
        err = doc["error"]
        code, message = str(err["code"]), str(err["message"])
    except (ValueError, TypeError, KeyError):
        text = body[:ERROR_TEXT_MAX_CHARS].decode("utf-8", "replace")
        return ApiError(status, f"http_{status}", text or "no error body")
    return ApiError(status, code, message, doc)


class Core:
    def __init__(self, api_url: str, key: crypto.PrivateKey | None = None,
                 chain_id: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 ca_file: str | os.PathLike[str] | None = None) -> None:
        """`key` signs the records this client submits and its reads (docs/security.md
        section 10: a node whose reads are authenticated answers only signed ones);
        `ca_file`: the CA that signed the node's certificate, for an https:// api_url."""
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"api_url must be like http://127.0.0.1:7100, got {api_url!r}")
        self.api_url = api_url.rstrip("/")
        self.key = key
        self.chain_id = chain_id
        self.timeout_s = timeout_s
        self.ssl_context = tls.client_context(ca_file) if ca_file is not None else None

    def _signed(self, method: str, target: str) -> dict[str, str]:
        """The signature headers of a read of `target` (path and query), if the client has a key."""
        if self.key is None or method != "GET":
            return {}
        parts = urlsplit(target)
        return httpsig.sign_request(self.key, method, parts.path, f"?{parts.query}", int(time.time()))

    # requests ------------------------------------------------------------------------

    def _wait_query(self, wait: bool, timeout_ms: int | None) -> tuple[str, float]:
        if not wait:
            return "", self.timeout_s
        query = {"wait": "1"} | ({} if timeout_ms is None else {"timeout_ms": str(timeout_ms)})
        held_ms = NODE_WAIT_MAX_MS if timeout_ms is None else min(timeout_ms, NODE_WAIT_MAX_MS)
        return "?" + urlencode(query), max(self.timeout_s, held_ms / 1000 + WAIT_SLACK_S)

    def _submit_call(self, envelope: bytes, wait: bool, timeout_ms: int | None) -> Call:
        query, timeout_s = self._wait_query(wait, timeout_ms)
        return Call("POST", "/v1/records" + query, bytes(envelope), MSGPACK, timeout_s)

    def _batch_call(self, envelopes: Iterable[bytes], wait: bool, timeout_ms: int | None) -> Call:
        query, timeout_s = self._wait_query(wait, timeout_ms)
        body = codec.encode([bytes(e) for e in envelopes])
        return Call("POST", "/v1/records/batch" + query, body, MSGPACK, timeout_s)

    @staticmethod
    def _get(path: str, raw: bool = False) -> Call:
        return Call("GET", path, raw=raw)

    # auditors' reads: answers the offline verifier checks (docs/protocol.md section 9)

    @classmethod
    def _checkpoint_call(cls, height: int | None) -> Call:
        if height is None:
            return cls._get("/v1/checkpoint")
        return cls._get(f"/v1/checkpoints/{count_arg(height, 'height', 1)}")

    @classmethod
    def _consistency_call(cls, old_size: int, new_size: int) -> Call:
        sizes = {"from": count_arg(old_size, "old log size"), "to": count_arg(new_size, "new log size")}
        return cls._get(with_query("/v1/proofs/consistency", sizes))

    @classmethod
    def _history_call(cls, subject: str, start: int | None, limit: int | None) -> Call:
        page = {"from": optional_count(start, "from"), "limit": optional_count(limit, "limit", 1)}
        return cls._get(with_query(f"/v1/subjects/{_segment(subject, 'subject')}", page))

    @classmethod
    def _status_call(cls, number: str, at_ms: int | None) -> Call:
        path = f"/v1/certificates/{_segment(number, 'certificate number')}/status"
        return cls._get(with_query(path, {"at": optional_count(at_ms, "at (ms)")}))

    @classmethod
    def _shares_call(cls, dataset: str) -> Call:
        return cls._get(f"/v1/datasets/{_segment(dataset, 'dataset id')}/shares")

    @classmethod
    def _provenance_call(cls, record_id: str | bytes, depth: int | None, direction: str) -> Call:
        if direction not in ("back", "forward"):
            raise ValueError("direction is back (what it was made from) or forward (what was made from it)")
        query = {"depth": optional_count(depth, "depth"), "direction": direction}
        return cls._get(with_query(f"/v1/provenance/{id_hex(record_id)}", query))

    @classmethod
    def _equivocations_call(cls, after: int | None, limit: int | None) -> Call:
        query = {"after": optional_count(after, "after", -1), "limit": optional_count(limit, "limit", 1)}
        return cls._get(with_query("/v1/equivocations", query))

    @classmethod
    def _proposals_call(cls, after: str | None, limit: int | None) -> Call:
        return cls._get(with_query("/v1/governance/proposals",
                                   {"after": after, "limit": optional_count(limit, "limit", 1)}))

    def _headers(self, call: Call) -> dict[str, str]:
        """Built anew for every attempt: a signed read's nonce is never sent twice."""
        headers = {"Accept": "*/*" if call.raw else JSON, "User-Agent": USER_AGENT}
        if call.content_type:
            headers["Content-Type"] = call.content_type
        return headers | self._signed(call.method, call.path)

    # answers -------------------------------------------------------------------------

    def _retry_delay(self, status: int, headers: Mapping[str, str], attempt: int) -> float | None:
        """Seconds to wait before retrying, or None to stop: only 503 (the node is busy) and 429
        (this client's token bucket is empty: docs/security.md section 10), at most
        RETRIES_503_MAX times."""
        if status not in (429, 503) or attempt >= RETRIES_503_MAX:
            return None
        return _retry_after_s(headers)

    @staticmethod
    def _checked(status: int, body: bytes) -> bytes:
        """The body of a 2xx answer; ApiError for anything else."""
        if not 200 <= status < 300:
            raise error_from(status, body)
        return body

    @staticmethod
    def _json(call: Call, body: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise ApiError(200, "bad_response", f"{call.method} {call.path}: answer is not a JSON object")
        return doc

    @staticmethod
    def _outcome(answer: dict[str, Any]) -> dict[str, Any]:
        """A submit answer, unless it says the record was rejected (then RecordRejected),
        whatever the status code it came with."""
        rejected = rejection(answer, 409)
        if rejected is not None:
            raise rejected
        return answer

    # records -------------------------------------------------------------------------

    def _sign(self, record_type: str, subject: str, body: Mapping[str, Any],
              refs: Iterable[str | bytes], ts: int | None) -> bytes:
        if self.key is None:
            raise ValueError("this client has no key: pass key= to sign records")
        assert self.chain_id is not None
        ref_ids = tuple(bytes.fromhex(id_hex(r)) for r in refs)
        when = now_ms() if ts is None else ts
        return records.sign_record(self.key, self.chain_id, record_type, subject, dict(body),
                                   when, os.urandom(records.NONCE_BYTES), ref_ids)

    @staticmethod
    def _chain_of(genesis_bytes: bytes) -> str:
        return genesis_mod.parse(genesis_bytes).chain_id

    @staticmethod
    def verify_evidence(bundle: dict[str, Any], genesis_bytes: bytes,
                        original: Path | None = None) -> verify.Verdict:
        """Verify a bundle in-process exactly as `python -m ledgernode verify` does.

        Trust comes only from `genesis_bytes`: pass the genesis file you pinned,
        not one just fetched from the node you are checking, when it matters."""
        return verify.verify_bundle(bundle, genesis_mod.parse(genesis_bytes), original)


class EventFeed:
    """What events() keeps across reconnects: the query, the last id seen, the attempts that
    brought nothing, and the parser of the stream now open (ledgernode/sse.py)."""

    def __init__(self, types: Iterable[str] | str | None, subject: str | None, after: str | None,
                 heartbeats: bool) -> None:
        names = [types] if isinstance(types, str) else list(types or ())
        if subject is not None:
            _segment(subject, "subject")  # 1 to 256 chars: ValueError before any request
        self.path = with_query("/v1/events", {"types": ",".join(names) or None, "subject": subject})
        if after is not None:
            sse.decode_event_id(after)  # ValueError before any request
        self.last, self.heartbeats, self.failures = after, heartbeats, 0
        self.parser = sse.EventParser()

    def headers(self) -> dict[str, str]:
        """For the next connection: a fresh parser, and where to resume."""
        self.parser = sse.EventParser()
        headers = {"Accept": "text/event-stream", "User-Agent": USER_AGENT}
        return headers | ({"Last-Event-ID": self.last} if self.last is not None else {})

    def feed(self, line: bytes) -> sse.Event | None:
        """One line of the stream; the event to hand out, if it completes one."""
        if len(line) > sse.LINE_MAX_BYTES:
            raise TransportError(f"an event stream line is longer than {sse.LINE_MAX_BYTES} bytes")
        try:
            event = self.parser.feed(line.decode("utf-8").rstrip("\r\n"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise TransportError(f"malformed event stream: {exc}") from None
        if event is None:
            return None
        self.last, self.failures = sse.event_id(event), 0
        match event:
            case sse.Cutoff():
                return None  # the node closes the stream: the next connection resumes from here
            case sse.Heartbeat():
                return event if self.heartbeats else None
            case _:
                return event

    def retry_delay(self, error: ClientError) -> float:
        """Seconds before reconnecting after `error`; the error itself when it will not pass."""
        if isinstance(error, ApiError) and error.status != 503:
            raise error
        self.failures += 1
        if self.failures > EVENTS_RECONNECTS_MAX:
            raise error
        return min(EVENTS_BACKOFF_S * 2 ** (self.failures - 1), EVENTS_BACKOFF_MAX_S)


class StreamEnded(TransportError):
    """The node closed an event stream (events() reconnects)."""
