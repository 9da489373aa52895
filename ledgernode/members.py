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
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Protocol

from . import crypto
from .errors import InvalidInput
from .genesis import ID_RE, Genesis, Signer, Validator, ValidatorSet



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
    validators: tuple[Validator, ...]  # the set certifying the next height
    since: int = 1  # the first height that set certifies

    @cached_property
    def validator_set(self) -> ValidatorSet:
        return ValidatorSet.of(self.validators)

    @property
    def n(self) -> int:
        return len(self.validators)

    @property
    def quorum(self) -> int:
        return self.validator_set.quorum

    def dept_of(self, key_id: str) -> str | None:
        signer = self.signers.get(key_id)
        return None if signer is None else signer.dept


def signer_of_fact(fact: Mapping[str, Any], validator: int | None) -> Signer:
    """The Signer a stored key fact describes; the store's facts are ours, so a fact
    that does not load is a damaged store (the caller says so)."""
    pubkey = crypto.load_public_key(fact["pubkey"])
    return Signer(fact["dept"], tuple(fact["roles"]), pubkey, validator, fact["from"], fact["until"])


def validators_of_fact(fact: Mapping[str, Any]) -> tuple[Validator, ...]:
    """The set a `validators` fact (its map entry, docs/protocol.md section 11.5) lists;
    ValueError if it is empty or lists a key twice."""
    out = tuple(Validator(v["dept"], v["name"], crypto.load_public_key(v["pubkey"])) for v in fact["validators"])
    if not out or len({v.pubkey.raw for v in out}) != len(out):
        raise ValueError("a validator set is non-empty and lists a key once")
    return out


def set_of_fact(fact: Mapping[str, Any]) -> ValidatorSet:
    """The ValidatorSet of a `validators` fact this node computed (a checked block's)."""
    return ValidatorSet.of(validators_of_fact(fact))


def build(genesis: Genesis, key_facts: Iterable[Mapping[str, Any]], dept_facts: Iterable[str],
          validators_fact: Mapping[str, Any] | None = None) -> Members:
    """The genesis's keys, departments and validators with governance's changes on top;
    a signer's `validator` is its index in the current set."""
    try:
        validators = genesis.validators if validators_fact is None else validators_of_fact(validators_fact)
        since = 1 if validators_fact is None else validators_fact["since"]
        index = {v.pubkey.raw: i for i, v in enumerate(validators)}
        signers = {k: replace(s, validator=index.get(s.pubkey.raw)) for k, s in genesis.signers.items()}
        for fact in key_facts:
            signer = signer_of_fact(fact, index.get(fact["pubkey"]))
            signers[signer.pubkey.key_id] = signer
    except (InvalidInput, KeyError, TypeError) as exc:
        raise ValueError(f"a stored key or validators fact does not load: {exc}") from None
    return Members(genesis.chain_id, signers, genesis.depts | frozenset(dept_facts), validators, since)
