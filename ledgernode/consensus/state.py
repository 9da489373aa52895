"""The consensus core's configuration, durable state and outputs (see core.py).

`PersistedState` is what a replica must find on disk after a restart; `Ready`
is what one input asks the runtime to do, in the order its fields are listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .. import codec
from ..blocks import QC
from ..genesis import Genesis
from .messages import NO_ROUND, BlockData, Message, Prepare, Signed


@dataclass(frozen=True)
class Config:
    genesis: Genesis
    index: int
    round_timeout_ticks: int = 20
    # Effectively uncapped: with a cap, replicas whose rounds drifted apart after a
    # partition keep the same gap forever once all are past the cap (f + 1 never
    # gather above a lone replica that is ahead). Unbounded backoff closes it.
    round_timeout_doublings_max: int = 30
    resend_ticks: int = 10
    fetch_timeout_ticks: int = 30


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
        state = cls(
            m["height"], m["round"], {(k, r): v for k, r, v in m["signed"]},
            m["prepared_round"], m["prepared_hash"],
            tuple(decode_message(p) for p in m["prepared_cert"]),  # type: ignore[misc]
            None if block is None else BlockData(block[0], tuple(block[1])),
        )
        assert all(isinstance(p, Prepare) for p in state.prepared_cert)
        return state


@dataclass
class Ready:
    """Everything one input asks the runtime to do, in this order."""

    commits: list[tuple[BlockData, QC]] = field(default_factory=list)
    persist: PersistedState | None = None
    messages: list[tuple[int | None, Message]] = field(default_factory=list)  # None: all peers
    validate: list[tuple[int, int, BlockData]] = field(default_factory=list)
    build: tuple[int, int] | None = None
    fetch: tuple[int, int] | None = None  # (peer, from_height)
    evidence: list[Equivocation] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # InvalidInput codes, for metrics
