"""The evidence family (families/evidence.py): evidence.notarize's body, and that it has
no ledger rule of its own (docs/protocol.md section 5)."""

from __future__ import annotations

from typing import Any

from ledgernode.families import evidence
from ledgernode.families.schema import TIME
from ledgernode.records import TEXT_MAX_CHARS, decode_envelope
from tests.fixtures import content
from tests.unit.test_state import G, JUSTICE, MARKET, NET, admit, new_state, notarize

# A valid body of each type (tests/unit/test_families_registry.py collects them for the
# tests every type meets).
EXAMPLES: dict[str, dict[str, Any]] = {
    "evidence.notarize": {
        "content_hash": content("pdf"), "media_type": "application/pdf", "size": 12_345,
        "title": "Contract",
    },
}


def test_text_boundaries_accepted() -> None:
    for title in ("", "t" * TEXT_MAX_CHARS, "证" * TEXT_MAX_CHARS, "\U0001d11e" * TEXT_MAX_CHARS):
        body = {**EXAMPLES["evidence.notarize"], "title": title}
        assert decode_envelope(NET.record(0, "evidence.notarize", "EV-2", body), G).record.body["title"] == title


def test_size_is_a_non_negative_int_like_a_time() -> None:
    assert evidence.NOTARIZE.fields_of(TIME) == {"size"}
    for size in (0, 2**63 - 1):
        body = {**EXAMPLES["evidence.notarize"], "size": size}
        assert decode_envelope(NET.record(0, "evidence.notarize", "EV-3", body), G).record.body["size"] == size


def test_notarize_writes_no_fact_and_any_dept_may_repeat_a_subject() -> None:
    state = new_state()
    admit(state, notarize(JUSTICE))
    admit(state, notarize(MARKET))  # same subject, other dept: fine
    assert state.facts == {} and len(state.record_ids) == 2
    assert evidence.FAMILY.names == set(EXAMPLES)
