"""The browser's verifier (ledgernode/console/static/verify/) holds copies of tables that live
in Python: the check names and labels, the type names of a claim, the body schemas, and the
limits. These tests fail if the two drift apart; tests/browser/test_verify_js.py runs it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ledgernode.auditing import bundle, parse
from ledgernode.families import dataset, gov
from ledgernode.genesis import GENESIS_MAX_BYTES
from ledgernode.records import BODY_SCHEMAS

STATIC = Path(__file__).resolve().parents[2] / "ledgernode" / "console" / "static" / "verify"


def _table(file: str, name: str) -> Any:
    """The JSON literal `export const NAME = ...;` in one of the JS modules."""
    text = (STATIC / file).read_text(encoding="utf-8")
    m = re.search(rf"^export const {name} = (.*?);$", text, re.S | re.M)
    assert m, f"{name} not found in {file}"
    return json.loads(m.group(1))


def test_check_names_and_labels_are_the_python_verifiers() -> None:
    assert [tuple(c) for c in _table("verifier.js", "CHECKS")] == bundle.CHECKS


def test_type_names_of_a_claim_are_the_python_verifiers() -> None:
    assert {k: tuple(v) for k, v in _table("verifier.js", "TYPE_NAMES").items()} == bundle.TYPE_NAMES


def test_body_schemas_are_the_families() -> None:
    js = _table("ledger.js", "BODY_SCHEMAS")
    assert js == {t: [[f, kind.name, required] for f, (kind, required) in fields.items()]
                  for t, fields in BODY_SCHEMAS.items()}
    assert _table("ledger.js", "ONE_OF") == {"classification": list(dataset.CLASSIFICATIONS),
                                              "action": list(gov.ACTIONS)}
    assert _table("ledger.js", "ACTION_ARGS") == {k: list(v) for k, v in gov.ACTION_ARGS.items()}


def test_limits_are_the_python_verifiers() -> None:
    verifier = (STATIC / "verifier.js").read_text(encoding="utf-8")
    ledger = (STATIC / "ledger.js").read_text(encoding="utf-8")
    assert parse.PAGE_MAX_BYTES == 16 << 20 and "PAGE_MAX_BYTES = 16 << 20;" in verifier
    assert parse.ANSWER_MAX_BYTES == 16 << 20 and "ANSWER_MAX_BYTES = 16 << 20;" in verifier
    assert GENESIS_MAX_BYTES == 1 << 20 and "GENESIS_MAX_BYTES = 1 << 20;" in ledger
    assert parse.FORMAT in verifier


def test_modules_load_nothing_from_elsewhere() -> None:
    for path in STATIC.glob("*.js"):
        for spec in re.findall(r'from\s+"([^"]+)"', path.read_text(encoding="utf-8")):
            assert spec.startswith("./") and (STATIC / spec[2:]).is_file(), (path.name, spec)
