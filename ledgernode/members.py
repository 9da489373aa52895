"""Who may sign, at the committed head: keys, departments and validators (docs/protocol.md
section 13).

The genesis registers the first keys and departments. Governance (families/gov.py) adds
keys and departments and revokes keys; each change is kept as a fact (`key/<key_id>`,
`dept/<dept>`) beside the state map's entry of the same name. `Members` is the union,
one immutable value per committed state: the store builds it once and replaces it whole
when a block changes a key or a department, so the record path (decode, signer, roles)
reads plain dicts and never the disk.

A record signed by key k at leaf L is valid when k's entry in the parent's state has
`from <= L` and `until` nil or greater (docs/protocol.md section 11.5). A key in the
head's `Members` was added at or before the head's log size, so `from <= L` holds for
every record still to come; a revoked key (`until` set, at most the head's log size)
signs nothing more.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from . import crypto
from .errors import InvalidInput
from .genesis import ID_RE, Genesis, Signer, Validator



class Registry(Protocol):
    """What decoding and judging a record reads: a Genesis, or the Members of a state."""

    @property
    def chain_id(self) -> str: ...

    @property
    def signers(self) -> Mapping[str, Signer]: ...

    @property
    def depts(self) -> Container[str]: ...


class _AnyDept:
    """Every well-formed dept id: the auditors' verifier decodes records of departments
    that joined after the genesis, and checks who signed through the state map instead."""

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and ID_RE.fullmatch(value) is not None


@dataclass(frozen=True)
class AnyDept:
    """The genesis's chain with any well-formed dept: a Registry for offline verification."""

    chain_id: str
    signers: Mapping[str, Signer]
    depts: Container[str] = _AnyDept()

    @classmethod
    def of(cls, genesis: Genesis) -> AnyDept:
        return cls(genesis.chain_id, genesis.signers)


@dataclass(frozen=True)
class Members:
    chain_id: str
    signers: Mapping[str, Signer]  # every key ever registered, by key_id; revoked ones keep `until`
    depts: frozenset[str]
    validators: tuple[Validator, ...]

    @property
    def n(self) -> int:
        return len(self.validators)

    @property
    def quorum(self) -> int:
        return self.n - (self.n - 1) // 3

    def dept_of(self, key_id: str) -> str | None:
        signer = self.signers.get(key_id)
        return None if signer is None else signer.dept


def key_fact(signer: Signer) -> dict[str, Any]:
    """A key's fact: the value of its `key` map entry (docs/protocol.md section 11.5)."""
    return {"pubkey": signer.pubkey.raw, "dept": signer.dept, "roles": list(signer.roles),
            "from": signer.from_leaf, "until": signer.until}


def signer_of_fact(fact: Mapping[str, Any], validator: int | None) -> Signer:
    """The Signer a stored key fact describes; the store's facts are ours, so a fact
    that does not load is a damaged store (the caller says so)."""
    pubkey = crypto.load_public_key(fact["pubkey"])
    return Signer(fact["dept"], tuple(fact["roles"]), pubkey, validator, fact["from"], fact["until"])


def build(genesis: Genesis, key_facts: Iterable[Mapping[str, Any]], dept_facts: Iterable[str]) -> Members:
    """The genesis's keys and departments with governance's changes on top."""
    validators = genesis.validators
    index = {v.pubkey.raw: i for i, v in enumerate(validators)}
    signers: dict[str, Signer] = dict(genesis.signers)
    for fact in key_facts:
        try:
            signer = signer_of_fact(fact, index.get(fact["pubkey"]))
        except (InvalidInput, KeyError, TypeError) as exc:
            raise ValueError(f"a stored key fact does not load: {exc}") from None
        signers[signer.pubkey.key_id] = signer
    return Members(genesis.chain_id, signers, genesis.depts | frozenset(dept_facts), validators)
