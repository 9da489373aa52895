"""Records and envelopes (docs/protocol.md sections 4 and 5): types, encoding, stateless checks.

A record is judged in two steps. `decode_envelope` and `check_signer` need only
the bytes and the genesis: shape, canonical encoding, body schema, registered
key, role and signature. They run once, when a record reaches a node. The rules
that depend on the ledger (duplicates, refs, ts window in `state.py`; ownership,
certificate state and the other rules of each type in its family, `families/`)
run when a block is built or checked. The body schemas are the families' too:
`check_body` looks the type up in `families.TYPES`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Container
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

from . import codec, crypto, merkle
from .errors import InvalidInput
from .families import TYPES
from .families.schema import ID_BYTES, TEXT_MAX_CHARS, TIME, TIME_MAX_MS, Kind
from .families.schema import invalid_record as _bad
from .genesis import Signer
from .members import Registry

RECORD_VERSION = 1
ENVELOPE_MAX_BYTES = 16_384
SUBJECT_MAX_CHARS = 256
REFS_MAX = 64
SUBJECT_PAGE_MAX = 1_000  # records one page of a subject's history lists (docs/protocol.md section 9)
NONCE_BYTES = 16
RECORD_SIGN_PREFIX = b"ledgernode:record\n"
RECORD_KEYS = frozenset(
    ["v", "chain", "type", "subject", "body", "refs", "ts", "nonce", "key"]
)
ENVELOPE_LIMITS = codec.Limits(
    input_max_bytes=ENVELOPE_MAX_BYTES,
    str_max_bytes=4 * TEXT_MAX_CHARS,
    bin_max_bytes=ENVELOPE_MAX_BYTES,
    array_max_len=REFS_MAX,
    map_max_len=16,
    depth_max=4,  # record, body, a gov.propose's args, its roles
)
RECORD_KEY_ORDER = tuple(sorted(RECORD_KEYS))  # canonical order: ASCII names, so code point order
_KEY_ID_RE = re.compile(r"^[0-9a-f]{16}$")
_NO_DEPTS: frozenset[str] = frozenset()
# Bound once: the lookup every decoded record makes.
_BODY_CHECKS = {name: rtype.check_body for name, rtype in TYPES.items()}
_FLAT_BODY_CHECKS = {name: check for name, check in _BODY_CHECKS.items() if not TYPES[name].nested}
RECORD_TYPES = tuple(TYPES)
# The registry's schemas as plain pairs, type -> {field: (kind, required)}, for
# readers that only list them; families/ stays the one table.
BODY_SCHEMAS: dict[str, dict[str, tuple[Kind, bool]]] = {
    name: {f.name: (f.kind, f.required) for f in rtype.fields} for name, rtype in TYPES.items()}


@dataclass(frozen=True)
class Record:
    v: int
    chain: str
    type: str
    subject: str
    body: dict[str, Any]
    refs: tuple[bytes, ...]
    ts: int
    nonce: bytes
    key: str

    def to_map(self) -> dict[str, Any]:
        return {
            "v": self.v, "chain": self.chain, "type": self.type, "subject": self.subject,
            "body": self.body, "refs": list(self.refs), "ts": self.ts,
            "nonce": self.nonce, "key": self.key,
        }


@dataclass(frozen=True)
class Envelope:
    """A signed record exactly as committed: `raw` is the Merkle leaf."""

    record: Record
    record_bytes: bytes
    sig: bytes
    raw: bytes
    record_id: bytes

    @cached_property
    def leaf_hash(self) -> bytes:
        """Computed once: a block's commit needs it twice (the log's frontier, its h/ keys).
        Kept in the instance dict beside the fields, which eq and repr do not read."""
        return merkle.leaf_hash(self.raw)


_T = TypeVar("_T")
_FIELD_NAMES: dict[type, frozenset[str]] = {
    cls: frozenset(f.name for f in dataclasses.fields(cls)) for cls in (Record, Envelope)}


def _frozen(cls: type[_T], fields: dict[str, Any]) -> _T:
    """An instance of the frozen dataclass `cls` holding exactly `fields`.

    A frozen dataclass's __init__ sets each field through object.__setattr__;
    for the records every node decodes that was a tenth of its decode time.
    Installing the checked field map as the instance dict gives the same
    object (fields, eq, repr, immutability) for one call."""
    assert fields.keys() == _FIELD_NAMES[cls], f"{cls.__name__} fields"
    obj = object.__new__(cls)
    object.__setattr__(obj, "__dict__", fields)
    return obj


def record_id_of(record_bytes: bytes) -> bytes:
    return crypto.H("record", record_bytes)


def check_body(record_type: str, body: Any, depts: Container[str]) -> None:
    """Raise `invalid_record` unless `body` is a valid body of `record_type` (docs/protocol.md section 5)."""
    check = _BODY_CHECKS.get(record_type)
    if check is None:
        raise _bad(f"unknown record type {record_type!r}")
    check(body, depts)


def _record_from_map(m: Any) -> Record:
    if not isinstance(m, dict) or set(m) != RECORD_KEYS:
        raise _bad(f"record must be a map with exactly the keys {sorted(RECORD_KEYS)}")
    if m["v"] != RECORD_VERSION or isinstance(m["v"], bool):
        raise _bad(f"v must be {RECORD_VERSION}")
    for name in ("chain", "type", "subject", "key"):
        if not isinstance(m[name], str):
            raise _bad(f"{name} must be a str")
    if not 1 <= len(m["subject"]) <= SUBJECT_MAX_CHARS:
        raise _bad(f"subject must be 1 to {SUBJECT_MAX_CHARS} chars")
    if not _KEY_ID_RE.fullmatch(m["key"]):
        raise _bad("key must be a key_id of 16 lowercase hex chars")
    if TIME.check(m["ts"], _NO_DEPTS):
        raise _bad("ts must be a non-negative int (ms since the Unix epoch)")
    if not isinstance(m["nonce"], bytes) or len(m["nonce"]) != NONCE_BYTES:
        raise _bad(f"nonce must be {NONCE_BYTES} bytes")
    refs = m["refs"]
    if not isinstance(refs, list) or len(refs) > REFS_MAX:
        raise _bad(f"refs must be an array of at most {REFS_MAX} record ids")
    if any(not isinstance(r, bytes) or len(r) != ID_BYTES for r in refs):
        raise _bad(f"every ref must be a {ID_BYTES}-byte record id")
    if len(set(refs)) != len(refs):
        raise _bad("refs lists a record id twice")
    fields = dict(m)
    fields["refs"] = tuple(refs)
    return _frozen(Record, fields)


def _record_fast(record_bytes: bytes, registry: Registry) -> Record | None:
    """The record, when `record_bytes` is plainly a valid canonical record; None on
    any doubt, and the checked path (`codec.decode`, `_record_from_map`) then
    names the problem. Every node decodes every record, so this is hot.

    It accepts only what the checked path accepts: the round trip in
    `decode_unwalked` proves the encoding shortest; the exact key tuple proves
    the record map's keys str, complete and sorted; every field below is typed
    exactly (no floats, no nesting) and checked as `_record_from_map` checks it
    (a key registered in the genesis is a well-formed key id); the type's
    `check_body` (families/) types the body's fields, whose keys are then
    compared with their sorted order. tests/unit/test_records.py checks the two paths agree."""
    m = codec.decode_unwalked(record_bytes, ENVELOPE_LIMITS)
    if type(m) is not dict or tuple(m) != RECORD_KEY_ORDER:
        return None
    body, chain, key, nonce, refs, subject, ts, rtype, v = m.values()  # canonical key order
    if (
        type(v) is not int or v != RECORD_VERSION or chain != registry.chain_id
        or type(key) is not str or key not in registry.signers
        or type(subject) is not str or not 1 <= len(subject) <= SUBJECT_MAX_CHARS
        or type(ts) is not int or not 0 <= ts <= TIME_MAX_MS
        or type(nonce) is not bytes or len(nonce) != NONCE_BYTES
        or type(rtype) is not str or type(body) is not dict or type(refs) is not list
    ):
        return None
    if refs and (
        len(refs) > REFS_MAX
        or any(type(r) is not bytes or len(r) != ID_BYTES for r in refs)
        or len(set(refs)) != len(refs)
    ):
        return None
    check = _FLAT_BODY_CHECKS.get(rtype)
    if check is None:
        return None
    try:
        check(body, registry.depts)
    except InvalidInput:
        return None
    keys = list(body)
    if keys != sorted(keys):
        return None
    m["refs"] = tuple(refs)
    return _frozen(Record, m)


def decode_envelope(raw: bytes, registry: Registry) -> Envelope:
    """Decode and check an envelope's shape and body; no signature check yet."""
    pair = codec.split_bin_pair(raw, ENVELOPE_LIMITS)
    if pair is None:
        outer = codec.decode(raw, ENVELOPE_LIMITS)
        if (
            not isinstance(outer, list)
            or len(outer) != 2
            or not all(isinstance(x, bytes) for x in outer)
        ):
            raise _bad("envelope must be an array [record_bytes, sig] of two bin values")
        pair = outer[0], outer[1]
    record_bytes, sig = pair
    record = _record_fast(record_bytes, registry)
    if record is None:
        record = _record_from_map(codec.decode(record_bytes, ENVELOPE_LIMITS))
        if record.chain != registry.chain_id:
            raise InvalidInput("wrong_chain", f"record is for chain {record.chain!r}")
        check_body(record.type, record.body, registry.depts)
    return _frozen(Envelope, {"record": record, "record_bytes": record_bytes, "sig": sig,
                              "raw": bytes(raw), "record_id": record_id_of(record_bytes)})


def check_registered(env: Envelope, registry: Registry) -> Signer:
    """Registered key whose role allows the type (403 otherwise); the signature unchecked."""
    signer = registry.signers.get(env.record.key)
    if signer is None:
        raise InvalidInput("unknown_key", f"key {env.record.key} is not registered", 403)
    if signer.until is not None:
        # revoked by governance: what it signed before stays valid (docs/protocol.md section 13)
        raise InvalidInput("key_revoked", f"key {env.record.key} was revoked at leaf {signer.until}; "
                           "it may sign no more records", 409)
    if not signer.allows(env.record.type):
        raise InvalidInput(
            "role_denied", f"key {env.record.key} may not submit {env.record.type}", 403
        )
    return signer


def check_signer(env: Envelope, registry: Registry) -> Signer:
    """Registered key, role allows the type, signature verifies. 403 for roles."""
    signer = check_registered(env, registry)
    if not signer.pubkey.verify(env.sig, RECORD_SIGN_PREFIX + env.record_bytes):
        raise InvalidInput("bad_signature", "record signature does not verify")
    return signer


def sign_record(
    key: crypto.PrivateKey,
    chain: str,
    record_type: str,
    subject: str,
    body: dict[str, Any],
    ts: int,
    nonce: bytes,
    refs: tuple[bytes, ...] = (),
) -> bytes:
    """Envelope bytes of a record signed by `key` (used by clients and tests)."""
    record = Record(
        RECORD_VERSION, chain, record_type, subject, body, tuple(refs), ts, nonce,
        key.public.key_id,
    )
    record_bytes = codec.encode(record.to_map())
    sig = key.sign(RECORD_SIGN_PREFIX + record_bytes)
    return codec.encode([record_bytes, sig])
