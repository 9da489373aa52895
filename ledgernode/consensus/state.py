"""The consensus core's configuration, state and outputs (see core.py).

`PersistedState` is what a replica must find on disk after a restart; `Height`
is everything it knows about the height it is deciding; `Ready` is what one
input asks the runtime to do, in the order its fields are listed. `BlockView`
is all the core knows of the block format: the runtime supplies it
(`ChainBlocks`, consensus/chain.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Protocol

from .. import codec, crypto
# The commit certificate is a plain value (height, round, hash, signatures) that the
# runtime stores as it is. The block format itself (decoding headers, checking QCs)
# reaches the core only through `BlockView`, so this is the core's one use of blocks.
from ..blocks import QC
from ..genesis import Genesis
from ..members import ValidatorSet
from .messages import NO_ROUND, BlockData, Commit, Message, Prepare, Proposal, RoundChange, Signed

Verifier = Callable[[crypto.PublicKey, bytes, bytes], bool]

__all__ = [
    "QC", "BlockView", "Config", "Equivocation", "HeaderView", "Height", "PersistedState", "Ready",
    "ReadyBuilder", "Verifier",
]


@dataclass(frozen=True)
class Config:
    genesis: Genesis
    index: int | None  # this node's genesis index, if any (the replica finds its own per height)
    round_timeout_ticks: int = 20
    # Effectively uncapped: with a cap, replicas whose rounds drifted apart after a
    # partition keep the same gap forever once all are past the cap (f + 1 never
    # gather above a lone replica that is ahead). Unbounded backoff closes it.
    round_timeout_doublings_max: int = 30
    resend_ticks: int = 10
    fetch_timeout_ticks: int = 30


class HeaderView(Protocol):
    """The fields of a block header the core reads (`blocks.Header` has them)."""

    @property
    def height(self) -> int: ...

    @property
    def prev(self) -> bytes: ...

    @property
    def block_hash(self) -> bytes: ...

    @property
    def proposer(self) -> int: ...


class BlockView(Protocol):
    """What the core needs of the block format (docs/protocol.md sections 4 and 7)."""

    def header(self, raw: bytes) -> HeaderView:
        """Decode a block's header bytes; raise InvalidInput if they are no header."""
        ...

    def check_qc(self, qc: QC, block: BlockData, validators: ValidatorSet) -> None:
        """Raise InvalidInput unless `qc` certifies `block` under `validators`, its height's set."""
        ...

    def validators_after(self, block: BlockData, current: ValidatorSet) -> ValidatorSet:
        """The set that certifies the height after `block`, whose own set is `current`:
        a block that approves a change of the set hands the next height to the new one
        (docs/governance.md section 6)."""
        ...


@dataclass(frozen=True)
class Equivocation:
    sender: int
    kind: str
    height: int
    round: int
    first: Signed
    second: Signed


@dataclass
class PersistedState:
    """What must survive a restart: the signed slots and the prepared block."""

    height: int
    round: int = 0
    signed: dict[tuple[str, int], bytes] = field(default_factory=dict)
    prepared_round: int = NO_ROUND
    prepared_hash: bytes = b""
    prepared_cert: tuple[Prepare, ...] = ()
    prepared_block: BlockData | None = None

    def copy(self) -> PersistedState:
        """A copy that shares nothing mutable with this state (every other field is immutable)."""
        return replace(self, signed=dict(self.signed))

    def encode(self) -> bytes:
        from .messages import encode_message

        return codec.encode({
            "height": self.height, "round": self.round,
            "signed": [[k, r, v] for (k, r), v in sorted(self.signed.items())],
            "prepared_round": self.prepared_round, "prepared_hash": self.prepared_hash,
            "prepared_cert": [encode_message(p) for p in self.prepared_cert],
            "prepared_block": None if self.prepared_block is None else
            [self.prepared_block.header, list(self.prepared_block.payload)],
        })

    @classmethod
    def decode(cls, raw: bytes) -> PersistedState:
        from .messages import MESSAGE_LIMITS, decode_message

        m = codec.decode(raw, replace(MESSAGE_LIMITS, map_max_len=16))
        block = m["prepared_block"]
        cert = tuple(decode_message(p) for p in m["prepared_cert"])
        prepares = tuple(p for p in cert if isinstance(p, Prepare))
        assert len(prepares) == len(cert), "a prepared certificate holds only prepares"
        return cls(
            m["height"], m["round"], {(k, r): v for k, r, v in m["signed"]},
            m["prepared_round"], m["prepared_hash"], prepares,
            None if block is None else BlockData(block[0], tuple(block[1])),
        )


@dataclass
class Height:
    """Everything a replica holds about the one height it is deciding. The replica
    replaces it whole, with one constructor call, when a block commits: nothing of a
    decided height can be left behind by a forgotten reset."""

    state: PersistedState  # what must survive a restart; `state.height` is this height
    suspects: frozenset[int]  # primaries whose turns are skipped (turns.py)
    probe: bool  # round 0 is a suspect's real, shortened turn (turns.py)
    resend_in: int  # ticks until we re-send what we signed this round
    ticks: int = 0  # ticks waited in this round
    # The runtime's mempool size. The records just committed left it, so a new height
    # starts at 0 until the runtime reports again: otherwise we would ask for a block
    # built from records that are already committed.
    pending_records: int = 0
    proposals: dict[int, Proposal] = field(default_factory=dict)  # round -> the one we took
    validated: set[tuple[int, bytes]] = field(default_factory=set)  # (round, hash) judged valid
    prepares: dict[tuple[int, bytes], dict[int, Prepare]] = field(default_factory=dict)
    commits: dict[tuple[int, bytes], dict[int, Commit]] = field(default_factory=dict)
    round_changes: dict[int, RoundChange] = field(default_factory=dict)  # sender -> its highest
    seen: dict[tuple[int, str, int], Signed] = field(default_factory=dict)  # (sender, kind, round)
    # Slots whose equivocation was reported, so a re-sent pair is reported once; it is
    # dropped with the height, so it cannot grow without bound.
    evidence_keys: set[tuple[int, str, int]] = field(default_factory=set)
    future: dict[int, list[Signed]] = field(default_factory=dict)  # sender -> next height's, replayed on commit
    building: tuple[int, int] | None = None  # (height, round) the runtime builds a block for
    decided: tuple[int, bytes] | None = None  # (round, hash) with Q commits, block missing


@dataclass(frozen=True)
class Ready:
    """Everything one input asks the runtime to do, in this order. It is frozen and
    `persist` is a copy, so nothing the core does later can change what the runtime
    saves or sends for this input."""

    commits: tuple[tuple[BlockData, QC], ...] = ()
    persist: PersistedState | None = None
    messages: tuple[tuple[int | None, Message], ...] = ()  # None: all peers
    validate: tuple[tuple[int, int, BlockData], ...] = ()
    build: tuple[int, int] | None = None
    fetch: tuple[int, int] | None = None  # (peer, from_height)
    evidence: tuple[Equivocation, ...] = ()
    dropped: tuple[str, ...] = ()  # InvalidInput codes, for metrics


@dataclass
class ReadyBuilder:
    """A `Ready` while the core works on one input; `freeze` makes what leaves the core."""

    commits: list[tuple[BlockData, QC]] = field(default_factory=list)
    persist: PersistedState | None = None  # the live state to save, copied by `freeze`
    messages: list[tuple[int | None, Message]] = field(default_factory=list)
    validate: list[tuple[int, int, BlockData]] = field(default_factory=list)
    build: tuple[int, int] | None = None
    fetch: tuple[int, int] | None = None
    evidence: list[Equivocation] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def freeze(self) -> Ready:
        return Ready(
            tuple(self.commits), None if self.persist is None else self.persist.copy(),
            tuple(self.messages), tuple(self.validate), self.build, self.fetch,
            tuple(self.evidence), tuple(self.dropped),
        )
