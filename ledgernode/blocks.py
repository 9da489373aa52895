"""Block headers, commit certificates and block validity (docs/protocol.md sections 6 and 7).

`check_block` is the one judge of a proposed block, used by the proposer's
`build_block`, by every replica before it votes, and by catch-up: it replays
the block's records through a `BlockState` and a copy of the log `Frontier`
and demands the header's `log_size` and `log_root` match what it computed.
`check_qc` is the one judge of a certificate, used by catch-up and the
offline verifier alike.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field, replace
from collections.abc import Mapping
from typing import Any, Callable

from . import codec, crypto, ledgermap, merkle, statemap
from .errors import InvalidInput
from .families import gov
from .genesis import Genesis, Signer
from .ledgermap import MapChange
from .members import Members, ValidatorSet
from .records import Envelope, check_registered, check_signer
from .state import BlockState, StateView

HEADER_VERSION = 2
HEADER_KEYS = frozenset(
    ["v", "chain", "height", "time", "prev", "proposer", "log_start", "log_size", "log_root", "valset", "state"]
)
HEADER_LIMITS = codec.Limits(
    input_max_bytes=1024, str_max_bytes=256, bin_max_bytes=64,
    array_max_len=0, map_max_len=16, depth_max=1,
)
QC_SIGNATURES_MAX = 256
ZERO_HASH = bytes(32)
COMMIT_VOTE_PREFIX = b"ledgernode:commit\n"
BLOCK_TIME_DRIFT_MS = 10_000


@dataclass(frozen=True)
class Header:
    chain: str
    height: int
    time: int
    prev: bytes
    proposer: int
    log_start: int
    log_size: int
    log_root: bytes
    valset: bytes
    state: bytes  # the state map's root after the block (docs/protocol.md section 12)
    raw: bytes = field(default=b"", compare=False, repr=False)

    def encode(self) -> bytes:
        return codec.encode({
            "v": HEADER_VERSION, "chain": self.chain, "height": self.height,
            "time": self.time, "prev": self.prev, "proposer": self.proposer,
            "log_start": self.log_start, "log_size": self.log_size,
            "log_root": self.log_root, "valset": self.valset, "state": self.state,
        })

    @property
    def block_hash(self) -> bytes:
        return crypto.H("header", self.raw or self.encode())


def _nonneg_int(m: dict[str, Any], name: str) -> int:
    value = m[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput("invalid_header", f"header {name} must be a non-negative int")
    return value


def decode_header(raw: bytes) -> Header:
    m = codec.decode(raw, HEADER_LIMITS)
    if not isinstance(m, dict) or set(m) != HEADER_KEYS:
        raise InvalidInput("invalid_header", f"header must have exactly the keys {sorted(HEADER_KEYS)}")
    if isinstance(m["v"], bool) or m["v"] != HEADER_VERSION or not isinstance(m["chain"], str):
        raise InvalidInput("invalid_header", f"header v must be {HEADER_VERSION} and chain a str")
    for name in ("prev", "log_root", "valset", "state"):
        if not isinstance(m[name], bytes) or len(m[name]) != 32:
            raise InvalidInput("invalid_header", f"header {name} must be 32 bytes")
    ints = {n: _nonneg_int(m, n) for n in ("height", "time", "proposer", "log_start", "log_size")}
    if ints["height"] < 1 or ints["log_start"] > ints["log_size"]:
        raise InvalidInput("invalid_header", "header height must be >= 1 and log_start <= log_size")
    return Header(
        m["chain"], ints["height"], ints["time"], m["prev"], ints["proposer"],
        ints["log_start"], ints["log_size"], m["log_root"], m["valset"], m["state"], bytes(raw),
    )


def vote_bytes(chain: str, height: int, round_: int, block_hash: bytes) -> bytes:
    return COMMIT_VOTE_PREFIX + codec.encode([chain, height, round_, block_hash])


@dataclass(frozen=True)
class QC:
    """Commit certificate: Q validators' commit votes for one block hash."""

    height: int
    round: int
    block_hash: bytes
    signatures: tuple[tuple[int, bytes], ...]

    def to_wire(self) -> dict[str, Any]:
        return {
            "height": self.height, "round": self.round, "block_hash": self.block_hash,
            "signatures": [[i, s] for i, s in self.signatures],
        }

    def encode(self) -> bytes:
        return codec.encode(self.to_wire())

    def to_json(self) -> dict[str, Any]:
        return {
            "height": self.height, "round": self.round, "block_hash": self.block_hash.hex(),
            "signatures": [
                {"validator": i, "sig": codec.b64(s)}
                for i, s in self.signatures
            ],
        }


def _qc_bad(message: str) -> InvalidInput:
    return InvalidInput("invalid_qc", message)


def qc_from_wire(m: Any) -> QC:
    if not isinstance(m, dict) or set(m) != {"height", "round", "block_hash", "signatures"}:
        raise _qc_bad("qc must have keys height, round, block_hash, signatures")
    for name in ("height", "round"):
        if isinstance(m[name], bool) or not isinstance(m[name], int) or m[name] < 0:
            raise _qc_bad(f"qc {name} must be a non-negative int")
    if not isinstance(m["block_hash"], bytes) or len(m["block_hash"]) != 32:
        raise _qc_bad("qc block_hash must be 32 bytes")
    sigs = m["signatures"]
    if not isinstance(sigs, list) or len(sigs) > QC_SIGNATURES_MAX:
        raise _qc_bad(f"qc signatures must be a list of at most {QC_SIGNATURES_MAX}")
    out = []
    for entry in sigs:
        if (
            not isinstance(entry, list) or len(entry) != 2
            or isinstance(entry[0], bool) or not isinstance(entry[0], int)
            or not isinstance(entry[1], bytes)
        ):
            raise _qc_bad("each qc signature must be [validator index, sig bytes]")
        out.append((entry[0], entry[1]))
    return QC(m["height"], m["round"], m["block_hash"], tuple(out))


def decode_qc(raw: bytes) -> QC:
    limits = codec.Limits(input_max_bytes=32_768, array_max_len=QC_SIGNATURES_MAX, depth_max=3)
    return qc_from_wire(codec.decode(raw, limits))


def qc_from_json(m: Any) -> QC:
    if not isinstance(m, dict) or not isinstance(m.get("signatures"), list):
        raise _qc_bad("qc must be an object with a signatures list")
    try:
        wire = {
            "height": m.get("height"), "round": m.get("round"),
            "block_hash": bytes.fromhex(m["block_hash"]),
            "signatures": [
                [s["validator"], base64.b64decode(s["sig"], validate=True)]
                for s in m["signatures"][: QC_SIGNATURES_MAX + 1]
            ],
        }
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise _qc_bad(f"qc is not well formed: {exc}") from None
    return qc_from_wire(wire)


def check_qc(
    qc: QC,
    header: Header,
    genesis: Genesis,
    verify: Callable[[crypto.PublicKey, bytes, bytes], bool] | None = None,
    validators: ValidatorSet | None = None,
) -> None:
    """Raise InvalidInput unless `qc` certifies `header` under `validators`, the set of
    its height (default: the genesis's).

    `verify` lets the consensus simulation share one signature cache; by default
    each signature is checked with its key."""
    vset = validators or genesis.validator_set
    if qc.block_hash != header.block_hash or qc.height != header.height:
        raise _qc_bad("qc names a different block than the header")
    seen: set[int] = set()
    message = vote_bytes(genesis.chain_id, qc.height, qc.round, qc.block_hash)
    for index, sig in qc.signatures:
        if not 0 <= index < vset.n:
            raise _qc_bad(f"qc signature from unknown validator {index}")
        if index in seen:
            raise _qc_bad(f"qc lists validator {index} twice")
        seen.add(index)
        key = vset.keys[index]
        if not (verify(key, sig, message) if verify else key.verify(sig, message)):
            raise _qc_bad(f"qc signature of validator {index} does not verify")
    if len(seen) < vset.quorum:
        raise _qc_bad(f"qc has {len(seen)} signatures, needs {vset.quorum}")


@dataclass(frozen=True)
class Block:
    header: Header
    envelopes: tuple[Envelope, ...]


@dataclass(frozen=True)
class CheckedBlock:
    """A valid block and everything committing it changes."""

    block: Block
    nodes: list[tuple[int, int, bytes]]  # new Merkle nodes (level, index, hash)
    facts: dict[tuple[str, str], dict[str, Any]]
    frontier: merkle.Frontier
    map_change: MapChange  # the state map after the block, written in its commit batch


def map_change(envs: tuple[Envelope, ...], log_start: int, parent: Header | None, view: StateView,
               genesis: Genesis, facts: Mapping[tuple[str, str], Mapping[str, Any]] | None = None) -> MapChange:
    """The state map after `envs` on top of the parent's, then the membership changes
    they approved (docs/protocol.md section 12): a key or dept fact is its map entry."""
    extra = None
    if parent is None:
        root, extra = ledgermap.initial_map(genesis)
    else:
        root = parent.state
    appends = [a for offset, env in enumerate(envs)
               for a in ledgermap.record_appends(log_start + offset, env.record.subject, env.record.refs)]
    entries = {statemap.path(kind, key): codec.encode(value) for (kind, key), value in (facts or {}).items()
               if kind in gov.MAP_KINDS}
    return ledgermap.block_change(view.map_at(root), appends, extra, entries)


def _append_all(frontier: merkle.Frontier, envs: tuple[Envelope, ...]) -> list[tuple[int, int, bytes]]:
    nodes: list[tuple[int, int, bytes]] = []
    for env in envs:
        nodes.extend(frontier.append(env.leaf_hash))
    return nodes


def signer_of(env: Envelope, members: Members, sigs_checked: bool) -> Signer:
    """The record's signer in the parent's state: registered, not revoked, its roles allow
    the type; and its signature verifies unless that was checked already."""
    return check_registered(env, members) if sigs_checked else check_signer(env, members)


def payload_matches(header: Header, frontier: merkle.Frontier, payload: tuple[bytes, ...]) -> bool:
    """Do these envelope bytes make the header's log (size and root) on top of `frontier`?
    Hashing only: a cheap test before anything is spent on the records' signatures."""
    if header.log_start != frontier.size or header.log_size != frontier.size + len(payload):
        return False
    grown = frontier.copy()
    for raw in payload:
        grown.append(merkle.leaf_hash(raw))
    return grown.root() == header.log_root


def check_block(
    block: Block,
    parent: Header | None,
    view: StateView,
    frontier: merkle.Frontier,
    genesis: Genesis,
    now_ms: int | None = None,
    sigs_checked: bool = False,
) -> CheckedBlock:
    """Judge `block` on top of `parent`; raise InvalidInput naming the broken rule."""
    h = block.header
    bad = lambda msg: InvalidInput("invalid_block", msg)  # noqa: E731
    state = BlockState(view, genesis, h.time)
    members = state.members
    if h.chain != genesis.chain_id or h.valset != members.validator_set.valset_hash:
        raise bad("header chain or valset does not match the validators of the parent's state")
    expected = (1, ZERO_HASH, 0, -1) if parent is None else (
        parent.height + 1, parent.block_hash, parent.log_size, parent.time)
    if (h.height, h.prev, h.log_start) != expected[:3]:
        raise bad("header height, prev or log_start does not follow the parent")
    if h.time <= expected[3] or (now_ms is not None and h.time > now_ms + BLOCK_TIME_DRIFT_MS):
        raise bad("block time must be after the parent's and not ahead of our clock")
    if not 0 <= h.proposer < members.n:
        raise bad(f"proposer {h.proposer} is not a validator")
    if len(block.envelopes) > genesis.block_max_records:
        raise bad(f"block holds more than {genesis.block_max_records} records")
    assert frontier.size == h.log_start, "frontier must be at the parent's log size"
    for env in block.envelopes:
        state.admit(env, signer_of(env, members, sigs_checked))
    frontier = frontier.copy()
    nodes = _append_all(frontier, block.envelopes)
    if h.log_size != frontier.size or h.log_root != frontier.root():
        raise bad("header log_size or log_root does not match the block's records")
    state.finish(h.log_size, h.height)
    change = map_change(block.envelopes, h.log_start, parent, view, genesis, state.facts)
    if h.state != change.root:
        raise bad("header state does not match the state map after the block's records")
    return CheckedBlock(block, nodes, state.facts, frontier, change)


def build_block(
    candidates: list[Envelope],
    parent: Header | None,
    view: StateView,
    frontier: merkle.Frontier,
    genesis: Genesis,
    time_ms: int,
    proposer: int,
    sigs_checked: bool = False,
) -> tuple[CheckedBlock, list[tuple[Envelope, InvalidInput]]]:
    """The proposer's block: every candidate that passes, in order; the rest rejected."""
    if parent is not None:
        time_ms = max(time_ms, parent.time + 1)
    state = BlockState(view, genesis, time_ms)
    members = state.members
    chosen: list[Envelope] = []
    rejected: list[tuple[Envelope, InvalidInput]] = []
    for env in candidates[: genesis.block_max_records * 2]:
        if len(chosen) >= genesis.block_max_records:
            break
        try:
            state.admit(env, signer_of(env, members, sigs_checked))
        except InvalidInput as exc:
            rejected.append((env, exc))
            continue
        chosen.append(env)
    grown = frontier.copy()
    nodes = _append_all(grown, tuple(chosen))
    height = 1 if parent is None else parent.height + 1
    state.finish(grown.size, height)
    change = map_change(tuple(chosen), frontier.size, parent, view, genesis, state.facts)
    header = Header(
        genesis.chain_id, height, time_ms, ZERO_HASH if parent is None else parent.block_hash, proposer,
        frontier.size, grown.size, grown.root(), members.validator_set.valset_hash, change.root,
    )
    header = replace(header, raw=header.encode())
    return CheckedBlock(Block(header, tuple(chosen)), nodes, state.facts, grown, change), rejected
