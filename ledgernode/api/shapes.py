"""JSON shapes the API answers with (docs/protocol.md section 2 rules for bytes).

32-byte values (hashes, record ids) are lowercase hex; every other byte string
(envelopes, headers, signatures, nonces) is standard base64 with padding.
"""

from __future__ import annotations

import json
from typing import Any

from ..aio import web
from ..codec import b64
from ..genesis import Genesis
from ..members import AnyDept, Members
from ..records import ID_BYTES, Envelope, decode_envelope
from ..service import Location, Outcome, Rejection, Submitted
from ..storage import Store


def jsonable(value: Any) -> Any:
    """`value` with every bytes turned into hex (32 bytes) or base64 (other lengths)."""
    if isinstance(value, bytes):
        return value.hex() if len(value) == ID_BYTES else b64(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def respond(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return respond_body(json_body(payload), status, headers)


def json_body(payload: Any) -> bytes:
    """The compact JSON bytes of a payload (bytes as hex or base64: `jsonable`)."""
    return json.dumps(jsonable(payload), separators=(",", ":")).encode("utf-8")


def respond_body(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer whose bytes `json_body` made (off the event loop, for big answers)."""
    return web.Response(status=status, body=body, content_type="application/json", charset="utf-8",
                        headers=headers)


def committed(loc: Location) -> dict[str, Any]:
    return {
        "id": loc.record_id.hex(), "status": "committed", "height": loc.height,
        "leaf_index": loc.leaf_index, "block_hash": loc.block_hash.hex(),
    }


def pending(record_id: bytes) -> dict[str, Any]:
    return {"id": record_id.hex(), "status": "pending"}


def rejected(rej: Rejection) -> dict[str, Any]:
    """A record dropped after admission (docs/protocol.md section 5): the error says why."""
    error: dict[str, Any] = {"code": rej.code, "message": rej.message}
    if rej.rule is not None:
        error["rule"] = rej.rule
    return {"id": rej.record_id.hex(), "status": "rejected", "error": error, "height": rej.height}


def outcome(item: Outcome) -> dict[str, Any]:
    return committed(item) if isinstance(item, Location) else rejected(item)


def submitted(item: Submitted) -> dict[str, Any]:
    if item.location is not None:
        return committed(item.location)
    return pending(item.envelope.record_id)


def record_view(env: Envelope, loc: Location | None) -> dict[str, Any]:
    """GET /v1/records/{id}: the envelope and its decoded record fields."""
    rec = env.record
    return {
        "id": env.record_id.hex(),
        "status": "committed" if loc is not None else "pending",
        "height": loc.height if loc is not None else None,
        "leaf_index": loc.leaf_index if loc is not None else None,
        "envelope": b64(env.raw),
        "record": {
            "v": rec.v, "chain": rec.chain, "type": rec.type, "subject": rec.subject,
            "body": jsonable(rec.body),
            # refs are record ids, always hex, whatever jsonable's length rule says
            "refs": [r.hex() for r in rec.refs],
            "ts": rec.ts, "nonce": b64(rec.nonce), "key": rec.key,
        },
    }


def block_view(store: Store, height: int, genesis: Genesis | None = None) -> dict[str, Any]:
    """GET /v1/blocks/{height}; with `genesis`, also the header's fields and each record
    decoded with its signer's department (the browser console shows them without a msgpack
    decoder of its own)."""
    header = store.load_header(height)
    raws = store.load_envelopes(header.log_start, header.log_size)
    view: dict[str, Any] = {
        "height": height,
        "header": b64(header.raw),
        "qc": store.load_qc(height).to_json(),
        "envelopes": [b64(e) for e in raws],
    }
    if genesis is not None:
        registry, members = AnyDept.of(genesis), store.members(genesis)
        view.update({
            "block_hash": header.block_hash.hex(), "time_ms": header.time, "proposer": header.proposer,
            "log_start": header.log_start, "log_size": header.log_size, "log_root": header.log_root.hex(),
            "records": [{"leaf_index": header.log_start + i, **_record_summary(decode_envelope(raw, registry), members)}
                        for i, raw in enumerate(raws)],
        })
    return view


def _record_summary(env: Envelope, members: Members) -> dict[str, Any]:
    rec = env.record
    return {"id": env.record_id.hex(), "type": rec.type, "subject": rec.subject, "key": rec.key,
            "signer_dept": members.dept_of(rec.key), "ts": rec.ts, "body": jsonable(rec.body),
            "refs": [r.hex() for r in rec.refs]}


DOCS = {
    "openapi": "/v1/openapi.json",
    "console": "/ui/",
    "status": "/v1/status",
    "checkpoint": "/v1/checkpoint",
    "genesis": "/v1/genesis",
    "metrics": "/metrics",
    "docs": "docs/protocol.md, docs/verification.md and README.md in the ledgernode source",
}


def index_view(status: dict[str, Any], version: str) -> dict[str, Any]:
    """GET /: which node this is and where to read on."""
    return {
        "name": "ledgernode", "version": version,
        "chain_id": status.get("chain_id"), "index": status.get("index"), "key_id": status.get("key_id"),
        "validator": status.get("validator"),  # its index in the current set; None: it follows
        "height": status.get("height"), "log_size": status.get("log_size"),
        "links": DOCS,
    }
