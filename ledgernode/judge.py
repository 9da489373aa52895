"""What a node thinks of the blocks of the height it is at (docs/consensus.md, docs/protocol.md section 12).

Theory of operation. A block reaches the node three ways: as a proposal, judged by
every rule and by the node's clock; fetched with its commit certificate, judged by
the rules without the clock (it was committed when its time was checked); or built
here. Each judged block is kept by its header hash until its height commits, so a
block is judged once however often it is named (its proposal, then the replica's
commit of it), and the block stored is the one voted for: its state-map change and
facts were computed when it was judged, never again at commit. Records a node never
admitted itself are verified ahead, on the worker threads, for the one proposal per
round the replica will look at, so that the consensus step stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable

from .blocks import Block, CheckedBlock, check_block, decode_header, payload_matches
from .consensus import BlockData, Message, Proposal, Replica
from .consensus.core import ROUND_WINDOW
from .errors import InvalidInput, NodeFailed
from .families.gov import VALIDATORS
from .genesis import Genesis
from .members import ValidatorSet, set_of_fact
from .state import StateView
from .storage import Store
from .times import now_ms
from .verification import Verification

PREVERIFIED_ROUNDS_MAX = 64  # proposals whose records were verified ahead, per height


class Judge:
    """The checked blocks of the current height, and the proposals verified ahead."""

    def __init__(self, genesis: Genesis, store: Store, view: StateView, verification: Verification,
                 reject: Callable[[str], None]) -> None:
        self.genesis, self.store, self.view, self.verification = genesis, store, view, verification
        self.reject = reject  # counts an input dropped by the node
        self.checked: dict[bytes, CheckedBlock] = {}  # judged blocks of this height, by header hash
        self.preverified: set[tuple[int, int]] = set()  # (height, round) proposals verified ahead

    async def preverify(self, msg: Message, replica: Replica) -> None:
        """Verify the records of a proposal we are about to judge that we never admitted."""
        if not isinstance(msg, Proposal) or msg.block is None:
            return
        # Only a proposal the replica would look at: right height, from that round's
        # primary, validly signed, the first for its round (a primary repeating or
        # varying its proposal gets its records checked once); anything else costs
        # us nothing beyond one verify.
        r, slot = replica, (msg.height, msg.round)
        if (msg.height != r.height or not r.round <= msg.round <= r.round + ROUND_WINDOW
                or msg.sender != r.primary(msg.round) or slot in self.preverified
                or len(self.preverified) >= PREVERIFIED_ROUNDS_MAX
                or len(msg.block.payload) > self.genesis.block_max_records or not r.valid_signature(msg)):
            return
        self.preverified.add(slot)
        try:
            header = decode_header(msg.block.header)
        except InvalidInput:
            return
        if not payload_matches(header, self.store.frontier, msg.block.payload):
            return  # not the records the header names: the replica refuses it, no signature spent
        await self.verification.verify_ahead(msg.block.payload)

    def validate(self, block: BlockData, certified: bool = False) -> bool:
        """Judge a block by our rules; a `certified` one (its QC checked) without record
        signatures or our clock (it was committed when its time was checked)."""
        try:
            header = decode_header(block.header)
            cached = self.checked.get(header.block_hash)
            if cached is not None:  # same header hash; the records must be the same too
                return block.payload == tuple(env.raw for env in cached.block.envelopes)
            full = Block(header, self.verification.envelopes(block.payload, certified))
            checked = check_block(full, self.store.head(), self.view, self.store.frontier,
                                  self.genesis, now_ms=None if certified else now_ms(), sigs_checked=True)
        except InvalidInput as exc:
            self.reject(f"block_{exc.code}")
            return False
        self.checked[header.block_hash] = checked
        return True

    def certified(self, block: BlockData) -> CheckedBlock:
        """The checked block the replica decided to commit: judged already, or now (a
        block prepared before a restart)."""
        header = decode_header(block.header)
        checked = self.checked.get(header.block_hash)
        if checked is None:
            # Q validators certified it, so it must pass our rules too. If it does not,
            # the rules are not deterministic: stop before the next height's state is
            # persisted, so a restart still knows what we signed at this height.
            try:
                full = Block(header, self.verification.envelopes(block.payload))  # each one verified
                checked = check_block(full, self.store.head(), self.view, self.store.frontier, self.genesis,
                                      sigs_checked=True)
            except InvalidInput as exc:
                raise NodeFailed(f"certified block {header.height} fails our rules: {exc}") from exc
            self.checked[header.block_hash] = checked
        return checked

    def built(self, checked: CheckedBlock) -> None:
        """A block this node built: judged by building it."""
        self.checked[checked.block.header.block_hash] = checked

    def next_set(self, block: BlockData) -> ValidatorSet | None:
        """The set a block hands the next height to, if it changes it (the replica asks
        when it commits the block, before the store holds it)."""
        fact = self.certified(block).facts.get((VALIDATORS, ""))
        return None if fact is None else set_of_fact(fact)

    def committed(self) -> None:
        """The height committed: what was judged for it is of no further use."""
        self.checked.clear()
        self.preverified.clear()
