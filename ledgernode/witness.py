"""Equivocation cases a node keeps (docs/security.md section 5): one per slot, on disk.

When the replica reports two signed values from one validator for one (kind, height,
round), the node logs it once and keeps the pair under `x/<seq>` (storage/keys.py),
at most EVIDENCE_MAX cases; `GET /v1/equivocations` pages them as proofs anyone can
check offline (equivocation.py). A restart reads the kept slots back, so a validator
that keeps equivocating about one slot is kept once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from . import codec, equivocation
from .auditing.epochs import epochs_doc
from .consensus.core import Equivocation
from .consensus.messages import Commit, Prepare, Proposal, RoundChange, decode_message
from .genesis import Genesis
from .storage import EVIDENCE_MAX, Store

log = logging.getLogger("ledgernode.node")

Slot = tuple[int, str, int, int]  # (validator, kind, height, round)


class Witness:
    def __init__(self, store: Store, genesis: Genesis, on_disk: Callable[..., Awaitable[None]],
                 count: Callable[[str], None]) -> None:
        self.store, self.genesis, self.on_disk, self.count = store, genesis, on_disk, count
        self.slots: dict[Slot, int] = {}  # -> seq on disk
        for seq, raw in store.load_evidence():
            first = decode_message(codec.decode(raw)[0])
            assert isinstance(first, (Proposal, Prepare, Commit, RoundChange)), "only signed messages are kept"
            self.slots[(first.sender, first.kind, first.height, first.round)] = seq

    async def keep(self, ev: Equivocation) -> None:
        """Log it and keep the proof on disk, once per slot and at most EVIDENCE_MAX cases."""
        slot = (ev.sender, ev.kind, ev.height, ev.round)
        if slot in self.slots:
            return
        log.warning("equivocation by validator %d: two %ss at height %d round %d",
                    ev.sender, ev.kind, ev.height, ev.round)
        self.count("equivocations")
        if len(self.slots) >= EVIDENCE_MAX:
            return
        self.slots[slot] = len(self.slots)
        await self.on_disk(self.store.save_evidence, self.slots[slot], equivocation.encode_pair(ev.first, ev.second))

    def page(self, after: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        return [(seq, equivocation.to_json(raw, self.genesis, lambda h: epochs_doc(self.store, h)))
                for seq, raw in self.store.load_evidence(after, limit)]
