"""ledgernode/witness.py: equivocation cases kept once per slot, bounded, across restarts."""

from __future__ import annotations

from typing import Any

import pytest

from ledgernode.consensus.messages import Prepare
from ledgernode.consensus.state import Equivocation
from ledgernode.equivocation import verify_equivocations
from ledgernode.storage import Store
from ledgernode.witness import Witness
from tests.sim.cluster import keys_and_genesis, signed_copy

KEYS, G = keys_and_genesis(4)


def _case(height: int, sender: int = 2) -> Equivocation:
    a, b = (signed_copy(KEYS[sender], Prepare(G.chain_id, height, 0, bytes([x]) * 32, sender)) for x in (1, 2))
    return Equivocation(sender, "prepare", height, 0, a, b)


async def _write_now(fn: Any, *args: Any) -> None:
    fn(*args)


def _witness(store: Store, counted: list[str]) -> Witness:
    return Witness(store, G, _write_now, counted.append)


async def test_each_slot_is_kept_once_and_survives_a_restart() -> None:
    store, counted = Store.memory(), []
    w = _witness(store, counted)
    await w.keep(_case(5))
    await w.keep(_case(5))  # re-sent: the same slot
    await w.keep(_case(6))
    assert list(w.slots) == [(2, "prepare", 5, 0), (2, "prepare", 6, 0)] and counted == ["equivocations"] * 2
    again = _witness(store, counted)  # a restart reads the slots back
    assert again.slots == w.slots
    await again.keep(_case(5))
    assert len(store.load_evidence()) == 2


async def test_kept_cases_are_proofs_anyone_can_check() -> None:
    store = Store.memory()
    w = _witness(store, [])
    await w.keep(_case(9))
    [(seq, proof)] = w.page(-1, 10)
    assert seq == 0 and proof["height"] == 9 and verify_equivocations(proof, G).valid


async def test_cases_past_the_bound_are_counted_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    import ledgernode.witness as witness_mod

    monkeypatch.setattr(witness_mod, "EVIDENCE_MAX", 2)
    store, counted = Store.memory(), []
    w = _witness(store, counted)
    for h in (1, 2, 3):
        await w.keep(_case(h))
    assert len(store.load_evidence()) == 2 and counted == ["equivocations"] * 3
