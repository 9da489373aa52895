"""The block view the runtime gives a `Replica` (consensus/state.py, `BlockView`):
headers and commit certificates as ledgernode.blocks defines them."""

from __future__ import annotations

from ..blocks import QC, Header, check_qc, decode_header
from ..genesis import Genesis
from .messages import BlockData
from .state import Verifier


class ChainBlocks:
    """`BlockView` over ledgernode.blocks for one chain. `verify` checks one signature
    (the simulation shares a cache); by default each is checked with its key."""

    def __init__(self, genesis: Genesis, verify: Verifier | None = None) -> None:
        self.genesis, self.verify = genesis, verify

    def header(self, raw: bytes) -> Header:
        return decode_header(raw)

    def check_qc(self, qc: QC, block: BlockData) -> None:
        check_qc(qc, decode_header(block.header), self.genesis, self.verify)
