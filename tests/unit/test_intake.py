"""ledgernode/intake.py: envelopes into the mempool, each judged once, with the answer a client needs."""

from __future__ import annotations

from typing import Any

import pytest

from ledgernode.admission import Admission
from ledgernode.errors import InvalidInput
from ledgernode.intake import Intake
from ledgernode.mempool import Mempool
from ledgernode.outcomes import Outcomes
from ledgernode.records import decode_envelope
from ledgernode.service import Backpressure, CatchingUp, Submitted
from ledgernode.storage import Store
from ledgernode.times import now_ms
from ledgernode.verification import Verification
from tests.fixtures import Net, commit_records, content

NET = Net()


class Room:
    """An intake over a memory store, recording what it reports."""

    def __init__(self, mempool_max: int = 100, behind: int | None = None) -> None:
        self.store, self.mempool = Store.memory(), Mempool(mempool_max)
        self.rejected: list[str] = []
        self.admitted: list[tuple[list[bytes], bool]] = []
        self.behind = behind
        verification = Verification(lambda: self.store.members(NET.genesis), self.mempool, 1,
                                    lambda name, n=1: None)
        self.intake = Intake(NET.genesis, self.store, self.mempool, Admission(NET.genesis, self.store, self.mempool),
                             verification, Outcomes(60_000, 100), self.rejected.append, lambda: self.behind,
                             lambda raws, gossip: self.admitted.append((raws, gossip)))


def _evidence(subject: str, ts: int | None = None) -> bytes:
    return NET.record(0, "evidence.notarize", subject, {"content_hash": content(subject), "media_type": "text/plain",
                                                       "size": 1, "title": "t"}, ts=now_ms() if ts is None else ts)


def _issue(number: str) -> bytes:
    t = now_ms()
    return NET.record(1, "cert.issue", number, {"cert_type": "licence", "holder": content("h"),
                                               "content_hash": content("c"), "valid_from": t,
                                               "valid_until": t + 1000}, ts=t)


async def test_new_records_are_admitted_once_and_handed_on() -> None:
    room = Room()
    a, b = _evidence("a"), _evidence("b")
    first = await room.intake.admit([a, b], gossip=True)
    assert [type(r) for r in first] == [Submitted, Submitted] and len(room.mempool) == 2
    assert room.admitted == [([a, b], True)]
    again = await room.intake.admit([a], gossip=False)  # already waiting: answered, not handed on again
    assert isinstance(again[0], Submitted) and again[0].location is None and room.admitted == [([a, b], True)]


async def test_a_committed_record_answers_with_its_place() -> None:
    room = Room()
    raw = _evidence("c")
    commit_records(NET, room.store, [raw], time_ms=now_ms())
    [answer] = await room.intake.admit([raw], gossip=True)
    assert isinstance(answer, Submitted) and answer.location is not None and room.admitted == []


async def test_bad_records_get_their_error_and_are_counted() -> None:
    room = Room()
    stale = _evidence("old", ts=now_ms() - NET.genesis.record_ts_window_ms - 60_000)
    answers = await room.intake.admit([b"\x00not an envelope", stale, _evidence("ok")], gossip=False)
    assert isinstance(answers[0], InvalidInput) and isinstance(answers[1], InvalidInput)
    assert answers[1].code == "ts_window" and isinstance(answers[2], Submitted)
    assert room.rejected == [answers[0].code, "ts_window"]


async def test_a_full_mempool_answers_backpressure_for_all() -> None:
    room = Room(mempool_max=1)
    await room.intake.admit([_evidence("one")], gossip=False)
    answers = await room.intake.admit([_evidence("two"), _evidence("three")], gossip=False)
    assert all(isinstance(a, Backpressure) for a in answers) and room.rejected == ["mempool_full"]


@pytest.mark.parametrize("behind", [None, 42])
async def test_a_dependency_rule_is_no_verdict_while_catching_up(behind: int | None) -> None:
    """A suspension of a certificate this node has not seen issued: 409 when in step, 503 when behind."""
    room = Room(behind=behind)
    t = now_ms()
    suspend = NET.record(1, "cert.suspend", "LIC-404", {"reason": "r", "effective": t}, ts=t)
    [answer] = await room.intake.admit([suspend], gossip=False)
    if behind is None:
        assert isinstance(answer, InvalidInput) and answer.rule == "cert.issued"
    else:
        assert isinstance(answer, CatchingUp) and "height 0 of 42" in str(answer)


async def test_records_dropped_later_are_remembered_with_why() -> None:
    room = Room()
    raw = _issue("LIC-9")
    env = decode_envelope(raw, NET.genesis)
    room.intake.rejected([(env, InvalidInput("rule_violation", "lost to a rival", 409, rule="cert.number_unused"))], 7)
    kept: Any = room.intake.outcomes.rejection(env.record_id, now_ms())
    assert (kept.code, kept.rule, kept.height) == ("rule_violation", "cert.number_unused", 7)
    assert room.rejected == ["dropped_rule_violation"]
