"""Consensus messages (docs/consensus.md): frozen types, signing bytes, wire codec.

Every message names chain, height and round and is signed by its sender. The
signed bytes are `b"ledgernode:consensus\\n" + msgpack([kind, chain, h, r, value])`
except COMMIT, whose signature *is* the commit vote of docs/protocol.md section 7, so
Q COMMIT messages are a QC without re-signing. Blocks and certificates ride
along unsigned: a block is bound by its hash in the signed value, a
certificate is a set of signed messages that prove themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar, TypeVar, Union

from .. import codec
from ..blocks import vote_bytes
from ..errors import InvalidInput

SIGN_PREFIX = b"ledgernode:consensus\n"
MESSAGE_MAX_BYTES = 96 << 20
PAYLOAD_MAX_ITEMS = 100_000
CERT_MAX = 256
FETCH_MAX_BLOCKS = 64
NO_ROUND = -1


@dataclass(frozen=True)
class BlockData:
    """A block as consensus carries it: header bytes plus opaque payload items."""

    header: bytes
    payload: tuple[bytes, ...]


@dataclass(frozen=True)
class Vote:
    """PREPARE or COMMIT: a signed vote for one block hash at (height, round)."""

    chain: str
    height: int
    round: int
    block_hash: bytes
    sender: int
    sig: bytes = b""

    kind: ClassVar[str] = ""

    @property
    def value(self) -> Any:
        return self.block_hash


class Prepare(Vote):
    kind = "prepare"


class Commit(Vote):
    kind = "commit"


@dataclass(frozen=True)
class RoundChange:
    """Sender moves to `round`; reports its highest prepared round and block."""

    chain: str
    height: int
    round: int
    prepared_round: int
    prepared_hash: bytes
    sender: int
    sig: bytes = b""
    prepared_cert: tuple[Prepare, ...] = ()
    prepared_block: BlockData | None = None

    kind = "round-change"

    @property
    def value(self) -> Any:
        return [self.prepared_round, self.prepared_hash]


@dataclass(frozen=True)
class Proposal:
    chain: str
    height: int
    round: int
    block_hash: bytes
    sender: int
    sig: bytes = b""
    block: BlockData | None = None
    justification: tuple[RoundChange, ...] = ()

    kind = "proposal"

    @property
    def value(self) -> Any:
        return self.block_hash


@dataclass(frozen=True)
class Status:
    """Unsigned hint: the sender has committed up to `height`. Triggers catch-up."""

    chain: str
    height: int
    sender: int

    kind = "status"


@dataclass(frozen=True)
class FetchBlocks:
    chain: str
    from_height: int
    count: int
    sender: int

    kind = "fetch"


@dataclass(frozen=True)
class Blocks:
    """Committed blocks with their QCs (wire form), answering FetchBlocks."""

    chain: str
    blocks: tuple[tuple[BlockData, bytes], ...]  # (block, encoded QC)
    sender: int

    kind = "blocks"


Signed = Union[Prepare, Commit, RoundChange, Proposal]
Message = Union[Prepare, Commit, RoundChange, Proposal, Status, FetchBlocks, Blocks]
M = TypeVar("M", Prepare, RoundChange)  # what a certificate or justification holds


def signing_bytes(msg: Signed) -> bytes:
    if isinstance(msg, Commit):
        return vote_bytes(msg.chain, msg.height, msg.round, msg.block_hash)
    return SIGN_PREFIX + codec.encode([msg.kind, msg.chain, msg.height, msg.round, msg.value])


def signed_part(msg: Signed) -> Signed:
    """The fields a signature covers, without attached blocks or certificates: what
    equivocation evidence needs, and no more."""
    if isinstance(msg, Proposal):
        return replace(msg, block=None, justification=())
    if isinstance(msg, RoundChange):
        return replace(msg, prepared_block=None, prepared_cert=())
    return msg


# -- wire codec --------------------------------------------------------------

def _block_wire(b: BlockData | None) -> Any:
    return None if b is None else [b.header, list(b.payload)]


def _wire(msg: Message) -> list[Any]:
    if isinstance(msg, (Prepare, Commit)):
        return [msg.kind, msg.chain, msg.height, msg.round, msg.block_hash, msg.sender, msg.sig]
    if isinstance(msg, RoundChange):
        return [msg.kind, msg.chain, msg.height, msg.round, msg.prepared_round, msg.prepared_hash,
                msg.sender, msg.sig, [_wire(p) for p in msg.prepared_cert],
                _block_wire(msg.prepared_block)]
    if isinstance(msg, Proposal):
        return [msg.kind, msg.chain, msg.height, msg.round, msg.block_hash, msg.sender, msg.sig,
                _block_wire(msg.block), [_wire(rc) for rc in msg.justification]]
    if isinstance(msg, Status):
        return [msg.kind, msg.chain, msg.height, msg.sender]
    if isinstance(msg, FetchBlocks):
        return [msg.kind, msg.chain, msg.from_height, msg.count, msg.sender]
    return [msg.kind, msg.chain, [[_block_wire(b), qc] for b, qc in msg.blocks], msg.sender]


def encode_message(msg: Message) -> bytes:
    return codec.encode(_wire(msg))


def _bad(message: str) -> InvalidInput:
    return InvalidInput("bad_message", message)


def _int(v: Any, lo: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise _bad("expected a non-negative int")
    return v


def _bytes(v: Any, n: int | None = None) -> bytes:
    if not isinstance(v, bytes) or (n is not None and len(v) != n):
        raise _bad("expected bytes" + (f" of length {n}" if n else ""))
    return v


def _block(v: Any) -> BlockData | None:
    if v is None:
        return None
    if not isinstance(v, list) or len(v) != 2 or not isinstance(v[1], list):
        raise _bad("block must be [header, [items]]")
    if len(v[1]) > PAYLOAD_MAX_ITEMS:
        raise _bad("block payload too long")
    return BlockData(_bytes(v[0]), tuple(_bytes(x) for x in v[1]))


def _only(cls: type[M], msgs: tuple[Message, ...], why: str) -> tuple[M, ...]:
    """`msgs`, all decoded first, if every one is a `cls`."""
    kept = tuple(m for m in msgs if isinstance(m, cls))
    if len(kept) != len(msgs):
        raise _bad(why)
    return kept


def _from_wire(w: Any, depth: int = 0) -> Message:
    if not isinstance(w, list) or len(w) < 2 or not isinstance(w[0], str) or not isinstance(w[1], str):
        raise _bad("message must be [kind, chain, ...]")
    kind, chain, n = w[0], w[1], len(w)
    if kind in ("prepare", "commit") and n == 7:
        cls = Prepare if kind == "prepare" else Commit
        return cls(chain, _int(w[2]), _int(w[3]), _bytes(w[4], 32), _int(w[5]), _bytes(w[6]))
    if kind == "round-change" and n == 10 and depth <= 1:
        cert = w[8]
        if not isinstance(cert, list) or len(cert) > CERT_MAX:
            raise _bad("prepared_cert must be a list")
        prepares = _only(Prepare, tuple(_from_wire(p, 2) for p in cert), "prepared_cert holds only prepares")
        return RoundChange(chain, _int(w[2]), _int(w[3]), _int(w[4], NO_ROUND), _bytes(w[5]),
                           _int(w[6]), _bytes(w[7]), prepares, _block(w[9]))
    if kind == "proposal" and n == 9 and depth == 0:
        just = w[8]
        if not isinstance(just, list) or len(just) > CERT_MAX:
            raise _bad("justification must be a list")
        rcs = _only(RoundChange, tuple(_from_wire(rc, 1) for rc in just),
                    "justification holds only round changes")
        return Proposal(chain, _int(w[2]), _int(w[3]), _bytes(w[4], 32), _int(w[5]), _bytes(w[6]),
                        _block(w[7]), rcs)
    if kind == "status" and n == 4:
        return Status(chain, _int(w[2]), _int(w[3]))
    if kind == "fetch" and n == 5:
        return FetchBlocks(chain, _int(w[2]), _int(w[3]), _int(w[4]))
    if kind == "blocks" and n == 4 and isinstance(w[2], list) and len(w[2]) <= FETCH_MAX_BLOCKS:
        items = []
        for item in w[2]:
            if not isinstance(item, list) or len(item) != 2:
                raise _bad("blocks items must be [block, qc]")
            block = _block(item[0])
            if block is None:
                raise _bad("blocks item without a block")
            items.append((block, _bytes(item[1])))
        return Blocks(chain, tuple(items), _int(w[3]))
    raise _bad(f"unknown or malformed message kind {kind!r}")


MESSAGE_LIMITS = codec.Limits(
    input_max_bytes=MESSAGE_MAX_BYTES, str_max_bytes=256, bin_max_bytes=16 << 20,
    array_max_len=PAYLOAD_MAX_ITEMS, map_max_len=0, depth_max=8,
)


def decode_message(raw: bytes) -> Message:
    return _from_wire(codec.decode(raw, MESSAGE_LIMITS))
