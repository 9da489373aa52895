"""The record types (docs/protocol.md section 5), one module per family, and the one
registry every other module reads them from.

    dataset   dataset.publish, share.grant, share.revoke, share.access
    cert      cert.issue, cert.revoke, cert.suspend, cert.resume
    evidence  evidence.notarize
    trace     trace.event
    gov       gov.propose, gov.approve (validators only, docs/protocol.md section 13)

A family module declares each of its types as a `schema.RecordType` (typed body
fields, ledger rule, stateless check across fields) and its derived views. Here:
`records.py` checks bodies through `TYPES`, `state.py` dispatches rules through it,
and the client, the CLI, devnet and the API read type names, fields and kinds from
it. Adding a type is one entry in its family's `FAMILY`; adding a family is its
module and its place in `FAMILIES`. The order of `FAMILIES` and of each family's
types is the order the CLI lists and error messages name.
"""

from __future__ import annotations

from . import cert, dataset, evidence, gov, trace
from ..genesis import GOVERNANCE_PREFIX
from .schema import BASE_KINDS, Family, Kind, RecordType

FAMILIES: tuple[Family, ...] = (dataset.FAMILY, cert.FAMILY, evidence.FAMILY, trace.FAMILY, gov.FAMILY)


def _types(families: tuple[Family, ...]) -> dict[str, RecordType]:
    types: dict[str, RecordType] = {}
    for family in families:
        for rtype in family.types:
            if rtype.name in types:
                raise ValueError(f"record type {rtype.name} is declared twice")
            types[rtype.name] = rtype
    return types


TYPES: dict[str, RecordType] = _types(FAMILIES)
# the base kinds, then any a family declares for itself (dataset's classification)
KINDS: tuple[Kind, ...] = tuple(dict.fromkeys(
    [*BASE_KINDS, *(f.kind for rtype in TYPES.values() for f in rtype.fields)]))
# "dataset.*", "share.*", ...: the genesis roles that each allow one prefix's types (no
# "gov.*": only validators sign governance records, whatever a client's roles say)
WILDCARD_ROLES: tuple[str, ...] = tuple(dict.fromkeys(
    rtype.wildcard_role for rtype in TYPES.values() if not rtype.name.startswith(GOVERNANCE_PREFIX)))
FOR_EVERY_DEPT: tuple[str, ...] = tuple(name for name, rtype in TYPES.items() if rtype.for_every_dept)

__all__ = ["FAMILIES", "FOR_EVERY_DEPT", "KINDS", "TYPES", "WILDCARD_ROLES", "Family", "Kind", "RecordType"]
