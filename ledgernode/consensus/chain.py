"""The block view the runtime gives a `Replica` (consensus/state.py, `BlockView`):
headers and commit certificates as ledgernode.blocks defines them."""

from __future__ import annotations

from collections.abc import Callable

from ..blocks import QC, Header, check_qc, decode_header
from ..genesis import Genesis
from ..members import ValidatorSet
from .messages import BlockData
from .state import Verifier


class ChainBlocks:
    """`BlockView` over ledgernode.blocks for one chain. `verify` checks one signature
    (the simulation shares a cache); by default each is checked with its key.
    `next_set`: the set a block being committed hands the next height to, None if it
    keeps the set (the runtime judged the block; without it, no block changes the set)."""

    def __init__(self, genesis: Genesis, verify: Verifier | None = None,
                 next_set: Callable[[BlockData], ValidatorSet | None] | None = None) -> None:
        self.genesis, self.verify, self.next_set = genesis, verify, next_set

    def header(self, raw: bytes) -> Header:
        return decode_header(raw)

    def check_qc(self, qc: QC, block: BlockData, validators: ValidatorSet) -> None:
        check_qc(qc, decode_header(block.header), self.genesis, self.verify, validators)

    def validators_after(self, block: BlockData, current: ValidatorSet) -> ValidatorSet:
        found = None if self.next_set is None else self.next_set(block)
        return current if found is None else found
