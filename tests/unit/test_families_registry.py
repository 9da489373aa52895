"""The registry of record types (families/__init__.py): every type declared once, by one
family, in the order the CLI lists them; what the other modules read from it. It also
collects each family's example bodies for the tests every type meets
(tests/unit/test_records.py)."""

from __future__ import annotations

from typing import Any

import pytest

from ledgernode import devnet, families, records, state
from ledgernode.errors import InvalidInput
from ledgernode.families import schema
from ledgernode.genesis import role_allows
from tests.unit import test_families_cert as cert_tests
from tests.unit import test_families_dataset as dataset_tests
from tests.unit import test_families_evidence as evidence_tests
from tests.unit import test_families_gov as gov_tests
from tests.unit import test_families_trace as trace_tests

FAMILY_TESTS = {"dataset": dataset_tests, "cert": cert_tests, "evidence": evidence_tests, "trace": trace_tests,
                "gov": gov_tests}
BODIES: dict[str, dict[str, Any]] = {name: body for m in FAMILY_TESTS.values() for name, body in m.EXAMPLES.items()}
# each type's body with every optional field present too
FULL_BODIES: dict[str, dict[str, Any]] = {
    **BODIES, **{name: body for m in FAMILY_TESTS.values() for name, body in getattr(m, "FULL", {}).items()}}
# bad values of the kinds a family declares for itself (the base kinds': test_records.py)
FAMILY_BAD_VALUES: dict[str, list[Any]] = {
    kind: values for m in FAMILY_TESTS.values() for kind, values in getattr(m, "BAD_VALUES", {}).items()}


def test_each_family_has_its_test_file_with_an_example_of_each_type() -> None:
    assert [f.name for f in families.FAMILIES] == list(FAMILY_TESTS)
    for family in families.FAMILIES:
        assert set(FAMILY_TESTS[family.name].EXAMPLES) == family.names, family.name
    assert list(BODIES) == list(families.TYPES)


def test_the_types_and_their_order() -> None:
    # the order is what `ledgernode submit --help` lists and an unknown type's message names
    assert list(families.TYPES) == [
        "dataset.publish", "share.grant", "share.revoke", "share.access", "cert.issue", "cert.revoke",
        "cert.suspend", "cert.resume", "evidence.notarize", "trace.event", "gov.propose", "gov.approve"]
    assert records.RECORD_TYPES == tuple(families.TYPES)
    assert all(families.TYPES[t.name] is t for f in families.FAMILIES for t in f.types)


def test_every_reader_is_built_from_the_registry() -> None:
    assert set(records._BODY_CHECKS) == set(state._RULES) == set(families.TYPES)
    for name, rtype in families.TYPES.items():
        assert state._RULES[name] == rtype.rule
        assert records.BODY_SCHEMAS[name] == {f.name: (f.kind, f.required) for f in rtype.fields}


def test_kinds_roles_and_types_for_every_dept() -> None:
    assert [k.name for k in families.KINDS] == ["text", "hash", "time", "dept", "classification", "action", "args"]
    assert families.WILDCARD_ROLES == ("dataset.*", "share.*", "cert.*", "evidence.*", "trace.*")
    assert families.FOR_EVERY_DEPT == ("share.access",)
    for role in families.WILDCARD_ROLES:
        assert any(role_allows(role, name) for name in families.TYPES)


def test_devnet_roles_name_registered_types() -> None:
    for dept in range(len(devnet.DEPARTMENTS) + 2):
        for role in devnet.client_roles(devnet.department(dept)[2]):
            assert any(role_allows(role, name) for name in families.TYPES), role


def test_a_type_or_a_field_declared_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="cert.issue is declared twice"):
        families._types((families.cert.FAMILY, families.cert.FAMILY))
    with pytest.raises(ValueError, match="names a body field twice"):
        schema.RecordType("x.y", (schema.Field("a", schema.TEXT), schema.Field("a", schema.HASH)))


def test_a_new_family_fits_without_touching_the_others() -> None:
    """What the next family (governance) needs: its own types and kinds, nothing else."""
    level = schema.one_of("level", ("low", "high"))
    gov = schema.Family("gov", (schema.RecordType("gov.example", (
        schema.Field("note", schema.TEXT), schema.Field("level", level))),))
    types = families._types((*families.FAMILIES, gov))
    assert list(types)[-1] == "gov.example" and types["gov.example"].wildcard_role == "gov.*"
    types["gov.example"].check_body({"note": "n", "level": "low"}, frozenset())
    with pytest.raises(InvalidInput) as info:
        types["gov.example"].check_body({"note": "n", "level": "mid"}, frozenset())
    assert info.value.message == "gov.example body.level must be one of low, high"
