"""What a record family declares (docs/protocol.md section 5): field kinds, typed body
schemas, the ledger rule of each record type, and the family that groups types.

A family module (dataset.py, cert.py, evidence.py, trace.py) builds its types from
these pieces; `families/__init__.py` collects them into the one registry. Everything
a record's judgement needs per type is computed here once, at import: the decode and
rule paths run for every record a node sees.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import InvalidInput
from ..genesis import Signer
from ..times import TIME_MAX_MS

if TYPE_CHECKING:
    # Only for annotations: records.py imports this package to check bodies.
    from ..members import Members
    from ..records import Envelope
    from .gov import Change

TEXT_MAX_CHARS = 1_024
ID_BYTES = 32

Check = Callable[[Any, Container[str]], str | None]  # (value, known depts) -> what it must be, or None
Update = tuple[str, str, dict[str, Any]]  # (fact kind, fact key, new value)
BodyCheck = Callable[[dict[str, Any]], str | None]


def invalid_record(message: str) -> InvalidInput:
    """A record that fails its stateless checks (docs/protocol.md section 4)."""
    return InvalidInput("invalid_record", message)


def violation(rule: str, message: str) -> InvalidInput:
    """A broken ledger rule: code `rule_violation`, `rule` names which (docs/protocol.md section 5)."""
    return InvalidInput("rule_violation", message, 409, rule=rule)


# -- field kinds ------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A field kind: `check` says what a value must be (None when it is one), `help`
    describes the kind after its name in `ledgernode submit --help`."""

    name: str
    check: Check
    help: str


def _text(value: Any, depts: Container[str]) -> str | None:
    if not isinstance(value, str) or len(value) > TEXT_MAX_CHARS:
        return f"must be a str of at most {TEXT_MAX_CHARS} chars"
    return None


def _hash(value: Any, depts: Container[str]) -> str | None:
    if not isinstance(value, bytes) or len(value) != ID_BYTES:
        return f"must be {ID_BYTES} bytes"
    return None


def _time(value: Any, depts: Container[str]) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= TIME_MAX_MS:
        return "must be a non-negative int"
    return None


def _dept(value: Any, depts: Container[str]) -> str | None:
    if not isinstance(value, str) or value not in depts:
        return "must be a department of the network"
    return None


def one_of(name: str, values: tuple[str, ...]) -> Kind:
    """A kind whose values are exactly `values` (a tuple: `in` then compares with ==, so
    an unhashable value is refused rather than raising)."""
    problem = f"must be one of {', '.join(values)}"

    def check(value: Any, depts: Container[str]) -> str | None:
        return problem if value not in values else None

    return Kind(name, check, "|".join(values))


TEXT = Kind("text", _text, f"up to {TEXT_MAX_CHARS} chars")
HASH = Kind("hash", _hash, "64 hex")
# evidence.notarize's `size` (bytes) is of this kind too, hence the help's aside
TIME = Kind("time", _time, "int ms since 1970 (size: bytes)")
DEPT = Kind("dept", _dept, "a department of the network")
BASE_KINDS = (TEXT, HASH, TIME, DEPT)


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    required: bool = True


# -- ledger rules -----------------------------------------------------------------------


class Ledger(Protocol):
    """What a rule may ask of the ledger part-way through a block (state.BlockState)."""

    block_time: int

    @property
    def members(self) -> Members:
        """Who could sign in the parent's state: its keys, depts and validator set."""

    def fact(self, kind: str, key: str) -> dict[str, Any] | None: ...

    def key(self, key_id: str) -> Signer | None:
        """A key as the rule sees it: the parent's, changed by what this block approved so far."""

    @property
    def set_changed(self) -> bool:
        """Did this block already approve a change of the validator set?"""

    def approve(self, change: Change) -> None:
        """A governance change reached its quorum: apply it at the end of the block."""

    def since(self, record_hex: str) -> str:
        """" at height N" for a committed record, " (not yet committed)" for one ahead."""
        ...


Rule = Callable[[Ledger, "Envelope", Signer], list[Update]]


def no_rule(ledger: Ledger, env: Envelope, signer: Signer) -> list[Update]:
    """Section 4 is all there is to check: no rule of the type's own, no fact."""
    return []


# -- record types and families --------------------------------------------------------------

_ABSENT = object()  # a present value may be nil (None), so absence has its own marker


@dataclass(frozen=True)
class RecordType:
    """One record type: its body schema, its ledger rule and, for the stateless check,
    an optional check across fields that runs once every field has passed its kind.
    `for_every_dept`: every department's client needs it whatever its own work (devnet).
    `nested`: its body holds maps or lists, which only the checked decoding path takes."""

    name: str
    fields: tuple[Field, ...]
    rule: Rule = no_rule
    body_check: BodyCheck | None = None
    for_every_dept: bool = False
    nested: bool = False
    field_names: frozenset[str] = field(init=False, repr=False, compare=False)
    _checks: tuple[tuple[str, Check, bool], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = frozenset(f.name for f in self.fields)
        if len(names) != len(self.fields):
            raise ValueError(f"{self.name} names a body field twice")
        # frozen: the derived tables are set once here, never after
        object.__setattr__(self, "field_names", names)
        object.__setattr__(self, "_checks", tuple((f.name, f.kind.check, f.required) for f in self.fields))

    @property
    def wildcard_role(self) -> str:
        """The genesis role that allows this type and the others of its prefix ("cert.*")."""
        return self.name.partition(".")[0] + ".*"

    def fields_of(self, kind: Kind) -> frozenset[str]:
        return frozenset(f.name for f in self.fields if f.kind == kind)

    def check_body(self, body: Any, depts: Container[str]) -> None:
        """Raise `invalid_record` unless `body` holds exactly this schema (docs/protocol.md
        section 5). The first problem found is named: an unexpected field (in body
        order), then each field in schema order, then `body_check`."""
        if not isinstance(body, dict):
            raise invalid_record("body must be a map")
        if not self.field_names.issuperset(body):  # one C-level test; the loop only names the culprit
            for name in body:
                if name not in self.field_names:
                    raise invalid_record(f"{self.name} body has unexpected field {name!r}")
        for name, check, required in self._checks:
            value = body.get(name, _ABSENT)
            if value is _ABSENT:
                if required:
                    raise invalid_record(f"{self.name} body is missing {name!r}")
                continue
            problem = check(value, depts)
            if problem:
                raise invalid_record(f"{self.name} body.{name} {problem}")
        if self.body_check is not None:
            problem = self.body_check(body)
            if problem:
                raise invalid_record(f"{self.name} {problem}")


@dataclass(frozen=True)
class Family:
    """Record types judged and viewed together (a family module's `FAMILY`)."""

    name: str
    types: tuple[RecordType, ...]
    names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", frozenset(t.name for t in self.types))

    def __contains__(self, record_type: object) -> bool:
        return record_type in self.names
