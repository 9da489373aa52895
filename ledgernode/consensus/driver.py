"""The driver: the one place that applies a `Ready` in its contractual order
(docs/consensus.md, "The driver").

Sans-I/O. The runtime turns what happens into an `Event`; `Driver.handle(event)`
gives it to the replica and returns a generator of `Effect`s. The runtime carries
out each effect and hands the effect's answer back with `generator.send(answer)`
(`next_effect` does both halves of that step); effects without an answer take
None, and so does the first step. The driver feeds the answers that are replica
inputs (mempool size, validation verdicts, built blocks) to the replica at once
and queues the `Ready` it returns, so one event's whole cascade runs in one
ordered work list:

  for each Ready, first to last:
    StoreCommit per commit, then MempoolSize once if anything committed;
    Persist; Send per message; Validate per block; Build; Fetch;
    Evidence per case; Dropped per code.

Persist comes after the commits and before any Send: nothing signed leaves
before the signature is on disk. A runtime that awaits each effect (the node:
its disk writes run on a thread) and one that answers at once (tests/sim) run
the same generator, so the simulation exercises this order exactly as the node
applies it. Nothing here performs I/O or knows about asyncio.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from dataclasses import dataclass
from typing import TypeAlias, TypeVar, assert_never

from .core import Replica
from .messages import BlockData, Message
from .state import QC, Equivocation, PersistedState, Ready

__all__ = [
    "Answer", "BlockBuilt", "BlockFetched", "Build", "Driver", "Dropped", "Effect", "Effects", "Event",
    "Evidence", "Fetch", "MempoolSize", "NothingToBuild", "PeerMessage", "Persist", "RecordsChanged", "Send",
    "StoreCommit", "Tick", "Validate", "next_effect",
]

# -- events: what the runtime tells the replica ---------------------------------


@dataclass(frozen=True)
class Tick:
    """One tick of time passed."""


@dataclass(frozen=True)
class RecordsChanged:
    """The mempool now holds `count` records."""

    count: int


@dataclass(frozen=True)
class PeerMessage:
    """A consensus message from validator `peer`."""

    peer: int
    msg: Message


@dataclass(frozen=True)
class BlockBuilt:
    """The late answer to `Build`: the runtime built `block` for (height, round)."""

    height: int
    round: int
    block: BlockData


@dataclass(frozen=True)
class NothingToBuild:
    """The late answer to `Build`: no record fit a block for (height, round)."""

    height: int
    round: int


@dataclass(frozen=True)
class BlockFetched:
    """Catch-up: a committed block whose contents the runtime has checked."""

    block: BlockData
    qc: QC


Event: TypeAlias = Tick | RecordsChanged | PeerMessage | BlockBuilt | NothingToBuild | BlockFetched

# -- effects: what the replica asks of the runtime, one at a time -------------------


@dataclass(frozen=True)
class StoreCommit:
    """Store the block with its commit certificate (one atomic synced write)."""

    block: BlockData
    qc: QC


@dataclass(frozen=True)
class MempoolSize:
    """Answer: how many records the mempool holds now (the commits took theirs out)."""


@dataclass(frozen=True)
class Persist:
    """Save the consensus state (synced) before anything after it is sent."""

    state: PersistedState


@dataclass(frozen=True)
class Send:
    """Send `msg` to validator `to`, or to every peer when `to` is None."""

    to: int | None
    msg: Message


@dataclass(frozen=True)
class Validate:
    """Answer: does the proposed `block` for (height, round) pass our rules?"""

    height: int
    round: int
    block: BlockData


@dataclass(frozen=True)
class Build:
    """Answer: a block for our proposal at (height, round) now, or None to answer
    later with a `BlockBuilt` or `NothingToBuild` event."""

    height: int
    round: int


@dataclass(frozen=True)
class Fetch:
    """Ask `peer` for committed blocks from `height` on (catch-up)."""

    peer: int
    height: int


@dataclass(frozen=True)
class Evidence:
    """A validator signed two values for one slot: keep the proof."""

    ev: Equivocation


@dataclass(frozen=True)
class Dropped:
    """The replica refused an input (an InvalidInput code, for metrics)."""

    code: str


Effect: TypeAlias = (
    StoreCommit | MempoolSize | Persist | Send | Validate | Build | Fetch | Evidence | Dropped
)
Answer: TypeAlias = int | bool | BlockData | None  # MempoolSize: int, Validate: bool, Build: BlockData | None
Effects: TypeAlias = Generator[Effect, Answer, None]
T = TypeVar("T")


def next_effect(effects: Effects, answer: Answer = None) -> Effect | None:
    """Hand `answer` (that of the effect before; None at the start) to `effects` and
    take the next effect, or None once the event is fully applied."""
    try:
        return effects.send(answer)
    except StopIteration:
        return None


def _expect(answer: Answer, kind: type[T], effect: Effect) -> T:
    """A runtime answering the wrong thing is a bug in it: fail where it happens."""
    if not isinstance(answer, kind):
        raise TypeError(f"{type(effect).__name__} takes a {kind.__name__} answer, not {answer!r}")
    return answer


class Driver:
    """Turns events into the replica's inputs and each `Ready` into ordered effects.

    The per-Ready steps are methods named after the `Ready` fields they apply, so
    a deliberately broken driver (tests/sim/mutants.py) can reorder them."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica

    def handle(self, event: Event) -> Effects:
        """Give `event` to the replica now (an InvalidInput it raises comes from here);
        nothing is applied until the runtime takes the effects from the generator."""
        return self.apply(self.dispatch(event))

    def dispatch(self, event: Event) -> Ready:
        r = self.replica
        match event:
            case Tick():
                return r.on_tick()
            case RecordsChanged(count):
                return r.on_records_available(count)
            case PeerMessage(_, msg):
                return r.on_message(msg)
            case BlockBuilt(height, round_, block):
                return r.on_block_built(height, round_, block)
            case NothingToBuild(height, round_):
                return r.on_nothing_to_build(height, round_)
            case BlockFetched(block, qc):
                return r.on_block_fetched(block, qc)
            case _:
                assert_never(event)

    def apply(self, ready: Ready) -> Effects:
        """The effects of `ready`, then of each Ready the replica answered with, first
        come first: a Ready starts only when every effect of the one before is done."""
        work = deque([ready])
        while work:
            yield from self.steps(work.popleft(), work)

    def steps(self, r: Ready, work: deque[Ready]) -> Effects:
        """One Ready, in the contract's order (consensus/core.py, docs/consensus.md)."""
        yield from self.commits(r, work)
        yield from self.persist(r)
        yield from self.messages(r)
        yield from self.tasks(r, work)

    def commits(self, r: Ready, work: deque[Ready]) -> Effects:
        for block, qc in r.commits:
            yield StoreCommit(block, qc)
        if r.commits:
            # The committed records left the mempool: the replica must hear what is
            # left, or it would ask for a block of records already committed.
            effect = MempoolSize()
            size = _expect((yield effect), int, effect)
            work.append(self.replica.on_records_available(size))

    def persist(self, r: Ready) -> Effects:
        if r.persist is not None:
            yield Persist(r.persist)

    def messages(self, r: Ready) -> Effects:
        for to, msg in r.messages:
            yield Send(to, msg)

    def tasks(self, r: Ready, work: deque[Ready]) -> Effects:
        """What follows the sends: validate, build, fetch; then what is only reported."""
        for height, round_, block in r.validate:
            effect = Validate(height, round_, block)
            ok = _expect((yield effect), bool, effect)
            block_hash = self.replica.blocks.header(block.header).block_hash
            work.append(self.replica.on_block_validated(height, round_, block_hash, ok))
        if r.build is not None:
            build = Build(*r.build)
            built = yield build
            if built is not None:  # None: the runtime answers later, with an event
                block = _expect(built, BlockData, build)
                work.append(self.replica.on_block_built(build.height, build.round, block))
        if r.fetch is not None:
            yield Fetch(*r.fetch)
        for ev in r.evidence:
            yield Evidence(ev)
        for code in r.dropped:
            yield Dropped(code)
