"""Checks of what a signature does not cover: the prepared certificate and block a
round change carries, and the round changes that justify a proposal for round r > 0
(docs/consensus.md, "Why it is safe"). Pure functions of their arguments; each
raises InvalidInput naming what is wrong.
"""

from __future__ import annotations

from typing import Callable

from ..errors import InvalidInput
from .messages import NO_ROUND, BlockData, Proposal, RoundChange, Signed
from .state import BlockView

SignatureCheck = Callable[[Signed], bool]  # does a message carry its sender's valid signature?


def choose(rcs: tuple[RoundChange, ...]) -> tuple[int, bytes, BlockData | None]:
    """The highest prepared (round, hash, block) among round changes."""
    best = max(rcs, key=lambda rc: rc.prepared_round)
    return best.prepared_round, best.prepared_hash, best.prepared_block


def check_round_change(rc: RoundChange, q: int, last_hash: bytes, blocks: BlockView,
                       valid_sig: SignatureCheck) -> None:
    """A prepared round below the round, with Q distinct valid prepares for exactly that
    round and hash, and a block (if carried) with that hash on our chain head."""
    bad = lambda why: InvalidInput("bad_round_change", why)  # noqa: E731
    if rc.round < 1:
        raise bad("round change to round 0")
    if rc.prepared_round == NO_ROUND:
        if rc.prepared_hash or rc.prepared_cert or rc.prepared_block:
            raise bad("prepared data without a prepared round")
        return
    if not 0 <= rc.prepared_round < rc.round:
        raise bad("prepared round must be below the round")
    if rc.prepared_block is not None:
        header = blocks.header(rc.prepared_block.header)
        if header.block_hash != rc.prepared_hash or header.prev != last_hash:
            raise bad("prepared block does not match the prepared hash or our chain")
    senders = set()
    for p in rc.prepared_cert:
        if (p.chain, p.height, p.round, p.block_hash) != (
                rc.chain, rc.height, rc.prepared_round, rc.prepared_hash):
            raise bad("prepared certificate names another block or round")
        if p.sender in senders or not valid_sig(p):
            raise bad("prepared certificate has a duplicate or bad signature")
        senders.add(p.sender)
    if len(senders) < q:
        raise bad(f"prepared certificate has {len(senders)} prepares, needs {q}")


def check_justification(p: Proposal, q: int, last_hash: bytes, blocks: BlockView,
                        valid_sig: SignatureCheck) -> None:
    """Q distinct, validly signed, valid round changes for exactly (h, r); if any holds a
    prepared certificate, the proposal must carry the block of the highest prepared round."""
    bad = lambda why: InvalidInput("bad_justification", why)  # noqa: E731
    senders = set()
    for rc in p.justification:
        if (rc.chain, rc.height, rc.round) != (p.chain, p.height, p.round):
            raise bad("justification holds a round change for another round")
        if rc.sender in senders or not valid_sig(rc):
            raise bad("justification has a duplicate or badly signed round change")
        check_round_change(rc, q, last_hash, blocks, valid_sig)
        senders.add(rc.sender)
    if len(senders) < q:
        raise bad(f"justification has {len(senders)} round changes, needs {q}")
    prepared_round, prepared_hash, _ = choose(p.justification)
    if prepared_round != NO_ROUND and prepared_hash != p.block_hash:
        raise bad("proposal must re-propose the block prepared in the highest round")
