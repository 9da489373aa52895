"""Which validators certify a header: the genesis set and its certified changes
(docs/protocol.md section 12.2).

Epoch 0 is the genesis set, certifying heights from 1. A bundle or answer carries
`epochs`, one element per change, oldest first: the header of the block that changed
the set, its QC, and the `validators` entry of that header's state, whose `since` is
the header's height + 1. Each element is checked against the set before it, so a
verifier that trusts only the genesis file follows any number of changes. A node
builds the list from its `epoch` facts (families/gov.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .. import codec, statemap
from ..blocks import Header, check_qc, decode_header, qc_from_json
from ..codec import b64
from ..errors import InvalidInput
from ..families import gov
from ..genesis import Genesis, Validator
from ..members import ValidatorSet, validators_of_fact
from .checks import CheckFailed, Where
from .lists import check_entry, entry_doc
from .parse import unb64
from .reader import LedgerReader

EPOCH_KEYS = frozenset(["header", "qc", "validators"])
VALIDATORS_KEYS = frozenset(["validators", "since"])
MEMBER_KEYS = frozenset(["dept", "name", "pubkey"])
# changes a document may list: a ledger makes a few in its life, and each costs the
# verifier a QC of up to 256 signature checks
EPOCHS_MAX = 1_000


@dataclass(frozen=True)
class Epoch:
    since: int  # the first height it certifies
    validators: tuple[Validator, ...]

    @cached_property
    def keys(self) -> ValidatorSet:
        return ValidatorSet.of(self.validators)


@dataclass(frozen=True)
class Epochs:
    """The genesis set and its changes: `at(height)` is the epoch certifying a height."""

    chain: tuple[Epoch, ...]

    def at(self, height: int) -> tuple[int, Epoch]:
        number = max(i for i, e in enumerate(self.chain) if e.since <= height or i == 0)
        return number, self.chain[number]

    def keys_up_to(self, height: int) -> frozenset[bytes]:
        """The pubkeys of every validator of an epoch up to the one of `height`."""
        number, _ = self.at(height)
        return frozenset(v.pubkey.raw for e in self.chain[: number + 1] for v in e.validators)


def genesis_epochs(genesis: Genesis) -> Epochs:
    return Epochs((Epoch(1, genesis.validators),))


# -- built by a node ----------------------------------------------------------------------


def epochs_doc(store: LedgerReader, upto_height: int) -> list[dict[str, Any]]:
    """The changes of the set that certify heights up to `upto_height`, oldest first."""
    out = []
    for _, fact in store.facts_of(gov.EPOCH, "", EPOCHS_MAX):
        changed_at = fact["since"] - 1
        if changed_at >= upto_height:
            break
        header = store.load_header(changed_at)
        out.append({"header": b64(header.raw), "qc": store.load_qc(changed_at).to_json(),
                    "validators": entry_doc(store.map_at(header.state), gov.VALIDATORS, "")})
    return out


# -- checked offline ------------------------------------------------------------------------


def _bad(detail: str) -> CheckFailed:
    return CheckFailed("epochs", "验证节点集合的变更记录无效（被改动，或不是由当时的验证节点认证的）",
                       "a change of the validator set is invalid (altered, or not certified by the validators "
                       "of its time)", detail)


def _new_set(value: bytes, header: Header) -> tuple[Validator, ...]:
    m = codec.decode(value, statemap.VALUE_LIMITS)
    if not isinstance(m, dict) or m.keys() != VALIDATORS_KEYS or not isinstance(m["validators"], list):
        raise _bad(f"a validators entry has exactly the keys {sorted(VALIDATORS_KEYS)}")
    if type(m["since"]) is not int or m["since"] != header.height + 1:
        raise _bad(f"the new set must start at height {header.height + 1}, the one after its block")
    if not all(isinstance(v, dict) and v.keys() == MEMBER_KEYS and isinstance(v["dept"], str)
               and isinstance(v["name"], str) and isinstance(v["pubkey"], bytes) for v in m["validators"]):
        raise _bad(f"each validator has exactly the keys {sorted(MEMBER_KEYS)}")
    try:
        return validators_of_fact(m)  # screened keys, non-empty, each once
    except (InvalidInput, ValueError) as exc:
        raise _bad(f"the new set is not valid: {exc}") from None


def check_epochs(doc: Any, genesis: Genesis) -> Epochs:
    """Follow the changes listed in `doc` from the genesis set (docs/protocol.md section 12.2)."""
    if not isinstance(doc, list) or len(doc) > EPOCHS_MAX:
        raise CheckFailed("epochs", "验证节点集合的变更记录已损坏", "the list of validator set changes is damaged",
                          f"epochs must be a list of at most {EPOCHS_MAX}")
    chain = [Epoch(1, genesis.validators)]
    for k, element in enumerate(doc):
        where = Where(f"第 {k + 1} 次验证节点变更", f"validator set change {k + 1}")
        if not isinstance(element, dict) or element.keys() != EPOCH_KEYS:
            raise _bad(f"epochs[{k}] must have exactly the keys {sorted(EPOCH_KEYS)}")
        try:
            header = decode_header(unb64(element["header"], "epochs", where, Where("区块头", "header")))
            qc = qc_from_json(element["qc"])
        except InvalidInput as exc:
            raise _bad(f"epochs[{k}]: {exc.message}") from None
        current = chain[-1]
        if header.chain != genesis.chain_id or header.height < current.since:
            raise _bad(f"epochs[{k}] is of another chain, or not after the change before it")
        if header.valset != current.keys.valset_hash:
            raise _bad(f"epochs[{k}]'s header is not certified by epoch {k}'s set (valset)")
        try:
            check_qc(qc, header, genesis, validators=current.keys)
        except InvalidInput as exc:
            raise _bad(f"epochs[{k}]'s QC under epoch {k}'s set: {exc.message}") from None
        value = check_entry(element["validators"], header.state, gov.VALIDATORS, "", "epochs",
                            f"{where.zh}的验证节点条目", f"{where.en}'s validators entry")
        if value is None:
            raise _bad(f"epochs[{k}] proves no validators entry")
        chain.append(Epoch(header.height + 1, _new_set(value, header)))
    return Epochs(tuple(chain))


def signer_names(epoch: Epoch, signers: Sequence[int]) -> list[dict[str, Any]]:
    """Who signed a QC, for people: index, dept and name in the epoch's set."""
    return [{"validator": i, "dept": epoch.validators[i].dept, "name": epoch.validators[i].name}
            for i in signers if 0 <= i < len(epoch.validators)]
