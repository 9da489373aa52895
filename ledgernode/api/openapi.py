"""The OpenAPI 3.0 document served at GET /v1/openapi.json.

It is built from the same route table as the application (`document` takes the
(method, path) pairs the app registers and fails if one has no description), so
a route cannot be added without documenting it. Every operation lists every
status it can answer with, and the schemas give the exact shapes, so a
property-based tester (schemathesis) can check responses against them.
"""

from __future__ import annotations

from typing import Any

from ..auditing import answers
from ..config import Limits
from ..families import cert
from ..records import ENVELOPE_MAX_BYTES, SUBJECT_MAX_CHARS
from .auth import OPEN_PREFIXES, OPEN_ROUTES

JSON = "application/json"
HTML = "text/html"
MSGPACK = "application/msgpack"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: list[str] | None = None,
         extra: bool = False) -> dict[str, Any]:
    return {"type": "object", "properties": props,
            "required": list(props) if required is None else required,
            "additionalProperties": extra}


_HEX32 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_B64 = {"type": "string", "format": "byte"}
_INT = {"type": "integer", "minimum": 0}
_NULL_INT = {"type": "integer", "minimum": 0, "nullable": True}
_NULL_STR = {"type": "string", "nullable": True}
_HASHES = {"type": "array", "items": _HEX32}
_RECORDS = {"type": "array", "items": {"$ref": "#/components/schemas/AnswerRecord"}}
_ANSWER = {  # the fields every answer has (docs/protocol.md section 12.5)
    "format": {"type": "string", "enum": ["ledgernode-answer/2"]}, "chain_id": {"type": "string"},
    "genesis_hash": _HEX32, "checkpoint": {"$ref": "#/components/schemas/Checkpoint"},
    "epochs": {"type": "array", "items": {"type": "object"}},
    "keys": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/MapEntry"},
             "description": "key_id -> its key entry in the checkpoint's state"},
    "records": _RECORDS,
}

SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _obj({
        "code": {"type": "string"}, "message": {"type": "string"},
        "rule": {"type": "string", "description": "with code rule_violation: the ledger rule broken"},
    }, ["code", "message"])}),
    "Rejected": _obj({
        "id": _HEX32, "status": {"type": "string", "enum": ["rejected"]},
        "error": _obj({"code": {"type": "string"}, "message": {"type": "string"},
                       "rule": {"type": "string"}}, ["code", "message"]),
        "height": {**_INT, "description": "the height being built or committed when it was dropped"},
    }),
    "Hex32": _HEX32,
    "Base64": _B64,
    "Committed": _obj({
        "id": _HEX32, "status": {"type": "string", "enum": ["committed"]},
        "height": _INT, "leaf_index": _INT, "block_hash": _HEX32,
    }),
    "Pending": _obj({"id": _HEX32, "status": {"type": "string", "enum": ["pending"]}}),
    "Submitted": {"oneOf": [_ref("Committed"), _ref("Pending")]},
    "BatchResults": _obj({"results": {"type": "array", "items": {
        "oneOf": [_ref("Committed"), _ref("Pending"), _ref("Rejected"), _ref("Error")]}}}),
    "Record": _obj({
        "v": {"type": "integer", "enum": [1]}, "chain": {"type": "string"},
        "type": {"type": "string"}, "subject": {"type": "string"},
        "body": {"type": "object", "additionalProperties": True,
                 "description": "32-byte values as hex, other bytes as base64"},
        "refs": {"type": "array", "items": _HEX32}, "ts": _INT, "nonce": _B64,
        "key": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
    }),
    "RecordView": _obj({
        "id": _HEX32, "status": {"type": "string", "enum": ["committed", "pending"]},
        "height": _NULL_INT, "leaf_index": _NULL_INT, "envelope": _B64, "record": _ref("Record"),
        "signer_dept": {**_NULL_STR, "description": "the department of the signing key"},
    }),
    "QC": _obj({
        "height": _INT, "round": _INT, "block_hash": _HEX32,
        "signatures": {"type": "array", "items": _obj({"validator": _INT, "sig": _B64})},
    }),
    "Block": _obj({"height": _INT, "header": _B64, "qc": _ref("QC"),
                   "envelopes": {"type": "array", "items": _B64},
                   # the header's fields and the records decoded, for the browser console
                   "block_hash": _HEX32, "time_ms": _INT, "proposer": _INT, "log_start": _INT, "log_size": _INT,
                   "log_root": _HEX32, "records": {"type": "array", "items": {"type": "object"}}},
                  required=["height", "header", "qc", "envelopes"]),
    "Checkpoint": _obj({"height": _INT, "header": _B64, "qc": _ref("QC"),
                        "log_size": _INT, "log_root": _HEX32,
                        "epochs": {"type": "array", "items": {"type": "object"},
                                   "description": "the validator set's changes up to this checkpoint "
                                                  "(docs/protocol.md section 12.2)"}},
                       required=["height", "header", "qc", "log_size", "log_root"]),
    "MapProof": _obj({"leaf": {"type": "object", "nullable": True,
                               "properties": {"path": _HEX32, "value_hash": _HEX32}},
                      "siblings": {"type": "array", "maxItems": 256, "items": _HEX32}}),
    "MapEntry": _obj({"value": {**_B64, "nullable": True}, "proof": _ref("MapProof")}),
    "RecordList": _obj({
        "entry": _ref("MapEntry"), "from": _INT, "positions": {"type": "array", "items": _INT},
        "list_inclusion": {"type": "array", "items": _HASHES},
    }),
    "Evidence": _obj({
        "format": {"type": "string", "enum": ["ledgernode-evidence/2"]},
        "chain_id": {"type": "string"}, "genesis_hash": _HEX32, "record_id": _HEX32,
        "envelope": _B64, "leaf_index": _INT,
        "block": _obj({"header": _B64, "qc": _ref("QC")}),
        "inclusion": {"type": "array", "items": _HEX32},
        "epochs": {"type": "array", "items": {"type": "object"}},
        "state": _obj({"checkpoint": _obj({"header": _B64, "qc": _ref("QC")}), "consistency": _HASHES,
                       "key": _ref("MapEntry")}),
    }, ["format", "chain_id", "genesis_hash", "record_id", "envelope", "leaf_index", "block",
        "inclusion", "epochs", "state"]),
    "Consistency": _obj({"from": _INT, "to": _INT, "proof": _HASHES}),
    "AnswerRecord": _obj({"id": _HEX32, "leaf_index": _INT, "envelope": _B64, "inclusion": _HASHES}),
    "SubjectHistory": _obj({
        **_ANSWER, "kind": {"type": "string", "enum": ["subject"]}, "subject": {"type": "string"},
        "list": _ref("RecordList"), "total": _INT,
        "next_from": {**_NULL_INT, "description": "pass as ?from= for the next page; null: last page"},
    }),
    "CertStatus": _obj({
        **_ANSWER, "kind": {"type": "string", "enum": ["status"]}, "number": {"type": "string"}, "at": _INT,
        "status": {"type": "string", "enum": list(cert.STATUSES)},
        "issuer": {"type": "string", "nullable": True, "description": "department that issued it"},
        "list": {**_ref("RecordList"), "description": "every record about the certificate"},
    }),
    "Access": _obj({"record": _HEX32, "dept": _NULL_STR, "purpose": {"type": "string"}, "ts": _INT,
                    "content_hash": _HEX32}),
    "Grant": _obj({
        "grant": _HEX32, "by": _NULL_STR, "to_dept": {"type": "string"},
        "purpose": {"type": "string"}, "legal_basis": {"type": "string"}, "expires": _INT,
        "revoked_by": {**_HEX32, "nullable": True},
        "accesses": {"type": "array", "items": _ref("Access")},
    }),
    "DatasetShares": _obj({
        **_ANSWER, "kind": {"type": "string", "enum": ["shares"]}, "dataset": {"type": "string"},
        "owner": {"type": "string"}, "grants": {"type": "array", "items": _ref("Grant")},
        "list": {**_ref("RecordList"), "description": "every record about the dataset"},
    }),
    "Provenance": _obj({
        **_ANSWER, "kind": {"type": "string", "enum": ["provenance"]}, "root": _HEX32,
        "depth": {"type": "integer", "minimum": 0, "maximum": answers.PROVENANCE_DEPTH_MAX},
        "direction": {"type": "string", "enum": ["back", "forward"]},
        "edges": {"type": "array", "description": "[referrer, the record it refs]",
                  "items": {"type": "array", "items": _HEX32, "minItems": 2, "maxItems": 2}},
        "lists": {"type": "object", "additionalProperties": _ref("RecordList"),
                  "description": "forward only: the refby list of every record within depth - 1 hops"},
    }, [*_ANSWER, "kind", "root", "depth", "direction", "edges"]),  # a back answer has no `lists`
    "Status": {"type": "object", "additionalProperties": True,
               "description": "height, round, primary, skipped primaries, this node's index in the current "
                              "validator set (null: it follows) and the set's size, peers and their state, "
                              "mempool size; for the browser console: head_time_ms, mempool_max and validator_list "
                              "(each validator's department, link, last vote and whether it is primary)"},
    "Ok": _obj({"ok": {"type": "boolean", "enum": [True]}}),
    "Readiness": _obj({
        "ready": {"type": "boolean"}, "height": _INT, "peer_height": _INT, "validators_reachable": _INT,
        "quorum": _INT, "reasons": {"type": "array", "items": {"type": "string"}}}),
    "Equivocation": _obj({
        "format": {"type": "string", "enum": ["ledgernode-equivocation/1"]}, "chain_id": {"type": "string"},
        "validator": _INT, "dept": {"type": "string"},
        "kind": {"type": "string", "enum": ["proposal", "prepare", "commit", "round-change"]},
        "height": _INT, "round": _INT, "first": _B64, "second": _B64,
    }),
    "Equivocations": _obj({"equivocations": {"type": "array", "items": {"$ref": "#/components/schemas/Equivocation"}},
                           "next_after": {**_NULL_INT, "description": "pass as ?after= for the next page"}}),
    "Proposal": _obj({
        "id": {"type": "string"}, "record": _HEX32, "action": {"type": "string"},
        "args": {"type": "object", "description": "the action's arguments, bytes as lowercase hex"},
        "expires": _INT, "state": {"type": "string", "enum": ["open", "applied", "expired"]},
        "approvals": {"type": "array", "items": _obj({"key_id": {"type": "string"}, "dept": _NULL_STR})},
        "needed": {**_INT, "description": "approvals of validators still needed (0 unless open)"},
    }),
    "Proposals": _obj({"proposals": {"type": "array", "items": {"$ref": "#/components/schemas/Proposal"}},
                       "quorum": _INT,
                       "next_after": {**_NULL_STR, "description": "pass as ?after= for the next page"}}),
    "Index": {"type": "object", "additionalProperties": True,
              "description": "node, chain, head and links to this document and the docs"},
}

_REASONS = {
    200: "OK", 202: "Accepted: admitted to the mempool, not yet committed",
    400: "Malformed or invalid input; error.code names the rule",
    403: "The signing key is unknown or not allowed this record type",
    404: "Not found", 405: "Method not allowed",
    408: "Request head or body not received in time (header_timeout, body_timeout)",
    409: "Conflicts with the ledger: refused at admission (error.rule names the rule), or with "
         "?wait dropped after admission (a Rejected answer)",
    413: "Body, envelope or batch over its limit",
    415: "Unsupported Content-Type", 500: "Internal error",
    417: "Expectation failed: only 100-continue is understood",
    431: "Request head over its limit (header_too_large)",
    422: "The answer would be too large to prove in one document (history_too_long, graph_too_large)",
    503: ("Backpressure (the mempool is full, or this node is building too many answers already) or "
          "too_many_connections or too_many_subscribers; retry after Retry-After seconds"),
    401: ("This node's reads are authenticated and the request is not signed by a registered key, or its "
          "signature is bad, stale, replayed or of an unknown key (docs/security.md section 9)"),
    429: "A per-client token bucket is empty (rate_limited); retry after Retry-After seconds",
}
# A read's answer on a node whose reads are authenticated, besides those of its route.
_READ_AUTH_ERRORS = {401: _REASONS[401], 403: "A registered key without the right this read needs (error.right)"}
_ALWAYS = (405, 429, 500)
_SUBMIT_ERRORS = (400, 403, 408, 409, 413, 415, 503)


def _error(status: int) -> dict[str, Any]:
    out: dict[str, Any] = {"description": _REASONS[status],
                           "content": {JSON: {"schema": _ref("Error")}}}
    if status in (429, 503):
        out["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
    return out


def _op(
    summary: str,
    ok: dict[int, Any],
    errors: tuple[int, ...] = (),
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, content in ok.items():
        responses[str(status)] = {"description": _REASONS[status], "content": content}
    for status in sorted(set(errors) | set(_ALWAYS)):
        responses.setdefault(str(status), _error(status))  # an answer given above stays
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    return op


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def _wait_params() -> list[dict[str, Any]]:
    return [
        {"name": "wait", "in": "query", "required": False,
         "description": "1 or true: wait (bounded) until committed",
         "schema": {"type": "string", "enum": ["0", "1", "false", "true"]}},
        {"name": "timeout_ms", "in": "query", "required": False,
         "description": "how long ?wait=1 waits; capped by the node's wait_max_ms",
         "schema": {"type": "integer", "minimum": 0, "maximum": 999_999_999_999}},
    ]


_ID = {"name": "id", "in": "path", "required": True, "description": "record id", "schema": _HEX32}
_HEIGHT = {"name": "height", "in": "path", "required": True,
           "schema": {"type": "integer", "minimum": 1}}
_QUERY_INT = {"type": "integer", "minimum": 0, "maximum": 10**20 - 1}


def _segment(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "description": description + " (percent-encoded; may contain '/' as %2F)",
            "schema": {"type": "string", "minLength": 1, "maxLength": SUBJECT_MAX_CHARS}}


def _query(name: str, description: str, required: bool = False,
           schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema or _QUERY_INT}


def _audit_operations() -> dict[tuple[str, str], dict[str, Any]]:
    """The auditors' answers: each verifies offline with `ledgernode verify --kind KIND`."""
    size = "a log size (tree size: the number of records in the log), not a block height"
    return {
        ("GET", "/v1/records/{id}/certificate"): _op(
            "Printable evidence certificate (存证证书), Chinese and English, bundle embedded",
            {200: {HTML: {"schema": {"type": "string"}}}}, (400, 404, 503), [_ID]),
        ("GET", "/v1/checkpoints/{height}"): _op(
            "The committed header at a height with its QC", {200: _json(_ref("Checkpoint"))},
            (400, 404), [_HEIGHT]),
        ("GET", "/v1/proofs/consistency"): _op(
            "RFC 9162 consistency proof: the log of size `to` extends the log of size `from`",
            {200: _json(_ref("Consistency"))}, (400,),
            [_query("from", f"older size, {size}", True), _query("to", f"newer size, {size}", True)]),
        ("GET", "/v1/subjects/{subject}"): _op(
            "A page of a subject's record list in log order, proven complete or which part it is "
            "(kind subject); an empty list is proven too",
            {200: _json(_ref("SubjectHistory"))}, (400, 404, 503),
            [_segment("subject", "record subject"),
             _query("from", "list position to start at (next_from), default 0"),
             _query("limit", f"page size, default {answers.SUBJECT_PAGE_DEFAULT}",
                    schema={"type": "integer", "minimum": 1, "maximum": answers.SUBJECT_PAGE_MAX})]),
        ("GET", "/v1/certificates/{number}/status"): _op(
            "A certificate's status at a time, with every record about it, proven complete (kind status)",
            {200: _json(_ref("CertStatus"))}, (400, 404, 422, 503),
            [_segment("number", "certificate number"),
             _query("at", "time in ms since the Unix epoch; default now")]),
        ("GET", "/v1/datasets/{id}/shares"): _op(
            "A dataset's grants, revocations and accesses, with proofs (kind shares)",
            {200: _json(_ref("DatasetShares"))}, (400, 404, 422, 503),
            [_segment("id", "dataset id (the subject of its dataset.publish)")]),
        ("GET", "/v1/provenance/{record_id}"): _op(
            "The derivation graph within depth hops: what it was made from (back, following refs) or "
            "everything made from it (forward, following refby lists), proven complete (kind provenance)",
            {200: _json(_ref("Provenance"))}, (400, 404, 422, 503),
            [{**_ID, "name": "record_id"},
             _query("depth", "how many hops to follow, default 8",
                    schema={"type": "integer", "minimum": 0,
                            "maximum": answers.PROVENANCE_DEPTH_MAX}),
             _query("direction", "back (default) or forward",
                    schema={"type": "string", "enum": ["back", "forward"]})]),
    }


def _operations(limits: Limits) -> dict[tuple[str, str], dict[str, Any]]:
    single = {"required": True, "content": {
        MSGPACK: {"schema": {"type": "string", "format": "binary",
                             "description": f"one envelope, at most {ENVELOPE_MAX_BYTES} bytes"}},
        JSON: {"schema": _obj({"envelope": _B64})},
    }}
    batch = {"required": True, "content": {
        MSGPACK: {"schema": {"type": "string", "format": "binary",
                             "description": "msgpack array of envelopes (bin values)"}},
        JSON: {"schema": _obj({"envelopes": {"type": "array", "items": _B64, "minItems": 1,
                                             "maxItems": limits.batch_max_records}})},
    }}
    return {
        ("POST", "/v1/records"): _op(
            "Submit one signed envelope",
            {200: _json(_ref("Committed")), 202: _json(_ref("Pending")),
             409: _json({"oneOf": [_ref("Error"), _ref("Rejected")]})},
            _SUBMIT_ERRORS, _wait_params(), single),
        ("POST", "/v1/records/batch"): _op(
            "Submit envelopes; one result per envelope, in order",
            {200: _json(_ref("BatchResults"))}, _SUBMIT_ERRORS, _wait_params(), batch),
        ("GET", "/v1/records/{id}"): _op(
            "A committed, pending or recently rejected record",
            {200: _json({"oneOf": [_ref("RecordView"), _ref("Rejected")]})}, (400, 404), [_ID]),
        ("GET", "/v1/records/{id}/evidence"): _op(
            "Evidence bundle of a committed record (docs/protocol.md section 8)",
            {200: _json(_ref("Evidence"))}, (400, 404, 503), [_ID]),
        ("GET", "/v1/blocks/{height}"): _op(
            "A committed block with its QC", {200: _json(_ref("Block"))}, (400, 404, 503), [_HEIGHT]),
        ("GET", "/v1/checkpoint"): _op(
            "The latest committed header with its QC; 404 before the first block",
            {200: _json(_ref("Checkpoint"))}, (404,)),
        ("GET", "/v1/status"): _op("Node status", {200: _json(_ref("Status"))}),
        ("GET", "/v1/equivocations"): _op(
            "Proofs that a validator signed two values for one slot, oldest first",
            {200: _json(_ref("Equivocations"))}, (400,),
            [{"name": "after", "in": "query", "required": False, "schema": {"type": "integer", "minimum": -1}},
             {"name": "limit", "in": "query", "required": False,
              "schema": {"type": "integer", "minimum": 1, "maximum": 100}}]),
        ("GET", "/v1/governance/proposals"): _op(
            "Governance proposals by id: open, applied or expired, with their approvals (docs/governance.md)",
            {200: _json(_ref("Proposals"))}, (400,),
            [{"name": "after", "in": "query", "required": False, "schema": {"type": "string"}},
             {"name": "limit", "in": "query", "required": False,
              "schema": {"type": "integer", "minimum": 1, "maximum": 100}}]),
        ("GET", "/v1/events"): _op(
            "Server-Sent Events (docs/protocol.md section 14): `record` per committed record (id: its "
            "leaf index), `block` after its block's last record (id: b<height>), `heartbeat` with the "
            f"head every {limits.events_heartbeat_ms} ms while idle, `cutoff` (reason, resume) before the "
            "node closes the stream. Resumes after the Last-Event-ID header; no id: new events only",
            {200: {"text/event-stream": {"schema": {"type": "string"}}}}, (400, 503),
            [_query("after", "resume after this event id instead of Last-Event-ID: a leaf index, or "
                    "b<height> (b0: from the beginning)",
                    schema={"type": "string", "pattern": "^(b?(0|[1-9][0-9]{0,19}))$"}),
             _query("types", "comma list of record types or family.* (e.g. cert.*,data.grant); "
                    "filters record events only", schema={"type": "string"}),
             _query("subject", "only records about this subject; filters record events only",
                    schema={"type": "string", "minLength": 1, "maxLength": SUBJECT_MAX_CHARS})]),
        ("GET", "/v1/genesis"): _op(
            "The exact genesis file bytes", {200: _json({"type": "object"})}),
        ("GET", "/healthz"): _op("Liveness", {200: _json(_ref("Ok"))}),
        ("GET", "/readyz"): _op(
            "Readiness: caught up with the peers and a quorum of the validators reachable; 503 says why not",
            {200: _json(_ref("Readiness")), 503: _json(_ref("Readiness"))}),
        ("GET", "/"): _op("This node, its chain and head, and where to read on (HTML for browsers)",
                          {200: {**_json(_ref("Index")), HTML: {"schema": {"type": "string"}}}}),
        ("GET", "/ui/"): _op("The browser console (ledgernode/console)", {200: {HTML: {"schema": {"type": "string"}}}}),
        ("GET", "/ui/{asset}"): _op(
            "A file of the browser console (script, style sheet); ETag and 304", {200: {
                "text/javascript": {"schema": {"type": "string"}}, "text/css": {"schema": {"type": "string"}}}},
            (404,), [{"name": "asset", "in": "path", "required": True, "description": "its path under /ui/",
                      "schema": {"type": "string", "maxLength": 200}}]),
        ("GET", "/metrics"): _op(
            "Prometheus metrics", {200: {"text/plain": {"schema": {"type": "string"}}}}),
        ("GET", "/v1/openapi.json"): _op("This document", {200: _json({"type": "object"})}),
        ("POST", "/v1/debug/faults"): _op(
            "Debug builds only: set peer-traffic faults {drop, delay_ms, partition, seed} (net/faults.py)",
            {200: _json(_ref("Ok"))},
            (400, 408, 413, 415),
            body={"required": True, "content": _json({"type": "object"})}),
        **_audit_operations(),
    }


def document(routes: list[tuple[str, str]], limits: Limits, version: str) -> dict[str, Any]:
    """OpenAPI 3.0 for exactly `routes`; KeyError if a route has no description here."""
    ops = _operations(limits)
    paths: dict[str, dict[str, Any]] = {}
    for method, path in routes:
        op = ops[(method, path)]
        if method == "GET" and path not in OPEN_ROUTES and not path.startswith(OPEN_PREFIXES):
            for status, text in _READ_AUTH_ERRORS.items():
                op["responses"].setdefault(str(status), {"description": text,
                                                         "content": {JSON: {"schema": _ref("Error")}}})
        paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "ledgernode HTTP API", "version": version,
            "description": "JSON everywhere; 32-byte hashes and ids as lowercase hex, other "
                           "byte strings as standard base64 with padding. Every error is "
                           '{"error": {"code", "message"}}.',
        },
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
