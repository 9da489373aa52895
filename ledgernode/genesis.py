"""The network's genesis file (docs/protocol.md section 3): parse, check, write.

Auditors pin `genesis_hash` = SHA-256 of the exact file bytes, so the parsed
`Genesis` keeps the bytes it came from and nothing here ever re-serialises a
loaded file. Every public key is screened on load (crypto.load_public_key).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from collections.abc import Iterable
from typing import Any

from . import codec, crypto
from .errors import InvalidInput

FORMAT = "ledgernode-genesis/2"
GENESIS_MAX_BYTES = 1 << 20
VALIDATORS_MAX = 256
VALIDATOR_NAME_MAX_CHARS = 256  # a validator's display name, in the genesis and in validator.add
CLIENTS_MAX = 10_000
ROLES_MAX = 32  # roles of one key (docs/protocol.md section 13 caps gov args' roles the same)
ROLE_VERDICTS_CACHED_MAX = 4_096
GOVERNANCE_PREFIX = "gov."  # record types only validators sign (docs/protocol.md section 13)
DEFAULT_PARAMS = {"record_ts_window_ms": 600_000, "block_max_records": 5_000}
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ROLE_RE = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.[a-z0-9_]+)*(\.\*)?)$")


@dataclass(frozen=True)
class Signer:
    """A key allowed to sign records: its department and the types it may submit."""

    dept: str
    roles: tuple[str, ...]
    pubkey: crypto.PublicKey
    validator: int | None = None  # validator index, when the key is a validator's
    from_leaf: int = 0  # the first leaf it may sign (docs/protocol.md section 11.5)
    until: int | None = None  # the leaf its revocation took effect at, if it was revoked

    def allows(self, record_type: str) -> bool:
        if record_type.startswith(GOVERNANCE_PREFIX):
            # only a validator's key, whatever a client's roles say (docs/protocol.md section 13)
            return self.validator is not None
        return _roles_allow(self.roles, record_type)


@lru_cache(maxsize=ROLE_VERDICTS_CACHED_MAX)
def _roles_allow(roles: tuple[str, ...], record_type: str) -> bool:
    # Asked once per record on the verify path; the answers are few (keys' role
    # sets x record types), so memoise them.
    return any(role_allows(role, record_type) for role in roles)


def role_allows(role: str, record_type: str) -> bool:
    if role.endswith("*"):
        return record_type.startswith(role[:-1])
    return role == record_type


@dataclass(frozen=True)
class Validator:
    dept: str
    name: str
    pubkey: crypto.PublicKey


@dataclass(frozen=True)
class Genesis:
    raw: bytes
    genesis_hash: str
    chain_id: str
    validators: tuple[Validator, ...]
    signers: dict[str, Signer]  # by key_id
    record_ts_window_ms: int
    block_max_records: int
    valset_hash: bytes

    @cached_property
    def validator_set(self) -> ValidatorSet:
        """The genesis set: it certifies heights from 1 until governance changes it."""
        return ValidatorSet.of(self.validators)

    @property
    def n(self) -> int:
        return self.validator_set.n

    @property
    def f(self) -> int:
        return self.validator_set.f

    @property
    def quorum(self) -> int:
        return self.validator_set.quorum

    @cached_property
    def depts(self) -> frozenset[str]:
        return frozenset(v.dept for v in self.validators)

    @cached_property
    def key_depts(self) -> dict[str, str]:
        """key_id -> dept of every genesis key (the families' views take this map)."""
        return {key_id: signer.dept for key_id, signer in self.signers.items()}

    @cached_property
    def validator_keys(self) -> frozenset[bytes]:
        """The raw pubkeys of the validators: the keys that may sign `gov.*` records."""
        return frozenset(v.pubkey.raw for v in self.validators)


def faults_tolerated(n: int) -> int:
    """f of n validators: the most that may fail or lie (docs/consensus.md)."""
    return (n - 1) // 3


def quorum_of(n: int) -> int:
    """Q = n - f: any two quorums share an honest validator (docs/consensus.md)."""
    return n - faults_tolerated(n)


@dataclass(frozen=True)
class ValidatorSet:
    """The validators that certify one height (docs/protocol.md section 12): their keys in
    order, an index being a position here; n, f and Q follow from the size."""

    keys: tuple[crypto.PublicKey, ...]

    def __post_init__(self) -> None:
        assert 1 <= len(self.keys) and len({k.raw for k in self.keys}) == len(self.keys), \
            "a validator set is non-empty and lists a key once"

    @classmethod
    def of(cls, validators: Iterable[Validator]) -> ValidatorSet:
        """The set of these validators' keys, in their order."""
        return cls(tuple(v.pubkey for v in validators))

    @property
    def n(self) -> int:
        return len(self.keys)

    @property
    def f(self) -> int:
        return faults_tolerated(self.n)

    @property
    def quorum(self) -> int:
        return quorum_of(self.n)

    @property
    def valset_hash(self) -> bytes:
        return crypto.H("valset", codec.encode([k.raw for k in self.keys]))

    def index_of(self, pubkey: bytes) -> int | None:
        return next((i for i, k in enumerate(self.keys) if k.raw == pubkey), None)


def _bad(message: str) -> InvalidInput:
    return InvalidInput("bad_genesis", message)


def _field(obj: dict[str, Any], name: str, kind: type, where: str) -> Any:
    if name not in obj:
        raise _bad(f"{where}: missing field {name!r}")
    value = obj[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise _bad(f"{where}: field {name!r} must be {kind.__name__}")
    return value


def _pubkey(obj: dict[str, Any], where: str) -> crypto.PublicKey:
    text = _field(obj, "pubkey", str, where)
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise _bad(f"{where}: pubkey must be 64 lowercase hex characters")
    try:
        return crypto.load_public_key(bytes.fromhex(text))
    except InvalidInput as exc:
        raise _bad(f"{where}: {exc.message}") from None


def _params(doc: dict[str, Any]) -> dict[str, int]:
    params = doc.get("params", {})
    if not isinstance(params, dict):
        raise _bad("params must be an object")
    out = dict(DEFAULT_PARAMS)
    for key, value in params.items():
        if key not in DEFAULT_PARAMS:
            raise _bad(f"params: unknown parameter {key!r}")
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise _bad(f"params: {key} must be a positive integer")
        out[key] = value
    return out


def _validators(doc: dict[str, Any]) -> tuple[Validator, ...]:
    entries = _field(doc, "validators", list, "genesis")
    if not 1 <= len(entries) <= VALIDATORS_MAX:
        raise _bad(f"validators: need 1 to {VALIDATORS_MAX} entries")
    out = []
    for i, entry in enumerate(entries):
        where = f"validators[{i}]"
        if not isinstance(entry, dict):
            raise _bad(f"{where} must be an object")
        dept = _field(entry, "dept", str, where)
        if not ID_RE.fullmatch(dept):
            raise _bad(f"{where}: dept {dept!r} must match {ID_RE.pattern}")
        name = entry.get("name", dept)
        if not isinstance(name, str) or len(name) > VALIDATOR_NAME_MAX_CHARS:
            raise _bad(f"{where}: name must be a str of at most {VALIDATOR_NAME_MAX_CHARS} chars")
        out.append(Validator(dept, name, _pubkey(entry, where)))
    return tuple(out)


def _client(i: int, entry: Any, depts: frozenset[str]) -> Signer:
    where = f"clients[{i}]"
    if not isinstance(entry, dict):
        raise _bad(f"{where} must be an object")
    dept = _field(entry, "dept", str, where)
    if dept not in depts:
        raise _bad(f"{where}: dept {dept!r} is not a validator's department")
    roles = _field(entry, "roles", list, where)
    if not 1 <= len(roles) <= ROLES_MAX or not all(isinstance(r, str) and ROLE_RE.fullmatch(r) for r in roles):
        raise _bad(f"{where}: roles must be a non-empty list like 'cert.*' or 'cert.issue'")
    return Signer(dept, tuple(roles), _pubkey(entry, where))


def strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object hook: a key given twice is an error, not "last one wins".

    Parsers in other languages disagree on duplicate keys, so a file that means
    different things to different readers is refused outright."""
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise ValueError("an object lists the same key twice")
    return doc


def parse(raw: bytes) -> Genesis:
    """Parse and check genesis bytes; raise InvalidInput("bad_genesis") naming the field."""
    if len(raw) > GENESIS_MAX_BYTES:
        raise _bad(f"file is larger than {GENESIS_MAX_BYTES} bytes")
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=strict_object)
    except (ValueError, RecursionError) as exc:  # incl. UnicodeDecodeError, JSONDecodeError
        raise _bad(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _bad("top level must be an object")
    if doc.get("format") != FORMAT:
        raise _bad(f"format must be {FORMAT!r}")
    chain_id = _field(doc, "chain_id", str, "genesis")
    if not ID_RE.fullmatch(chain_id):
        raise _bad(f"chain_id must match {ID_RE.pattern}")
    validators = _validators(doc)
    signers: dict[str, Signer] = {}
    for index, v in enumerate(validators):
        if v.pubkey.key_id in signers:
            raise _bad(f"validators[{index}]: pubkey listed twice")
        signers[v.pubkey.key_id] = Signer(v.dept, ("*",), v.pubkey, index)
    clients = doc.get("clients", [])
    if not isinstance(clients, list) or len(clients) > CLIENTS_MAX:
        raise _bad(f"clients must be a list of at most {CLIENTS_MAX} entries")
    depts = frozenset(v.dept for v in validators)
    for i, entry in enumerate(clients):
        signer = _client(i, entry, depts)
        if signer.pubkey.key_id in signers:
            raise _bad(f"clients[{i}]: pubkey already registered")
        signers[signer.pubkey.key_id] = signer
    params = _params(doc)
    valset = ValidatorSet.of(validators).valset_hash
    return Genesis(
        raw=raw,
        genesis_hash=crypto.sha256(raw).hex(),
        chain_id=chain_id,
        validators=validators,
        signers=signers,
        record_ts_window_ms=params["record_ts_window_ms"],
        block_max_records=params["block_max_records"],
        valset_hash=valset,
    )


def build(
    chain_id: str,
    validators: list[dict[str, str]],
    clients: list[dict[str, Any]],
    params: dict[str, int] | None = None,
) -> bytes:
    """Genesis file bytes from department entries; checked by `parse` before return."""
    doc = {
        "format": FORMAT,
        "chain_id": chain_id,
        "validators": validators,
        "clients": clients,
        "params": {**DEFAULT_PARAMS, **(params or {})},
    }
    raw = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    parse(raw)
    return raw
