"""The tracing family (families/trace.py): trace.event's body with its optional fields,
and that it has no ledger rule of its own (docs/protocol.md section 5)."""

from __future__ import annotations

from typing import Any

import pytest

from ledgernode.errors import InvalidInput
from ledgernode.families import trace as trace_family
from ledgernode.records import decode_envelope
from tests.fixtures import content
from tests.unit.test_state import CUSTOMS, HEALTH, G, NET, admit, new_state, trace

# A valid body of each type (tests/unit/test_families_registry.py collects them for the
# tests every type meets), and one with every optional field too.
EXAMPLES: dict[str, dict[str, Any]] = {"trace.event": {"activity": "harvest"}}
TRACE_FULL = {"activity": "ship", "content_hash": content("manifest"), "location": "Port of Tianjin"}
FULL: dict[str, dict[str, Any]] = {"trace.event": TRACE_FULL}


def test_trace_event_optional_fields() -> None:
    for body in (EXAMPLES["trace.event"], TRACE_FULL,
                 {"activity": "pack", "location": "Bay 4"}, {"activity": "pack", "content_hash": content("x")}):
        env = decode_envelope(NET.record(0, "trace.event", "LOT-9", body, refs=(content("in"),)), G)
        assert env.record.body == body
    with pytest.raises(InvalidInput):
        decode_envelope(NET.record(0, "trace.event", "LOT-9", {"location": "Bay 4"}), G)


def test_optional_fields_are_declared_so() -> None:
    assert {f.name: f.required for f in trace_family.EVENT.fields} == {
        "activity": True, "content_hash": False, "location": False}


def test_trace_writes_no_fact_and_refs_earlier_events() -> None:
    state = new_state()
    a = admit(state, trace(CUSTOMS, "LOT-1"))
    admit(state, trace(HEALTH, "LOT-2", refs=(a.record_id,)))
    assert state.facts == {} and len(state.record_ids) == 2
    assert trace_family.FAMILY.names == set(EXAMPLES)
