"""The signing state: what this validator signed, kept apart from LevelDB.

Theory of operation. Before any vote leaves the node, the consensus state the
replica persists (every (kind, round) it signed at its height, and its prepared
block: docs/consensus.md) is written to one small file beside the ledger
directory, `signing-state`, together with the highest height this node has
committed (its high-water mark). A write goes to a temporary file that is
fsynced, renamed over the old one and the directory fsynced, so a crash leaves
the old or the new state, never a torn one; a SHA-256 over the contents
catches damage. Losing or rolling back the LevelDB store therefore loses
neither what was signed nor how far the ledger had come (docs/storage.md).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import codec, crypto
from ..errors import InvalidInput, StoreCorrupt, StoreUnwritable

from . import validators_in

if TYPE_CHECKING:
    from ..genesis import ValidatorSet
    from . import Store

FILE_NAME = "signing-state"
FORMAT_VERSION = 1
FILE_MAX_BYTES = 64 << 20  # a prepared block rides along: at most a block's worth
_LIMITS = codec.Limits(input_max_bytes=FILE_MAX_BYTES, bin_max_bytes=FILE_MAX_BYTES, map_max_len=8, depth_max=2)


@dataclass(frozen=True)
class SigningState:
    state: bytes  # consensus.PersistedState.encode()
    committed: int  # the highest height this node has committed (its high-water mark)


class SigningFile:
    """The signing state of the node of key `pubkey`. A file of before names its node by
    `index`, its position in the genesis: it is taken for the key at `genesis_index`."""

    def __init__(self, directory: Path, chain: str, pubkey: bytes, genesis_index: int | None) -> None:
        self.path = directory / FILE_NAME
        self.chain, self.pubkey, self.genesis_index = chain, pubkey, genesis_index

    def save(self, value: SigningState) -> None:
        """Synced, atomic replacement of the file (call it before sending what was signed);
        StoreUnwritable when the host refuses the write (a full disk)."""
        # `index` too where the key has one: a node of before, started on this data directory
        # after a downgrade, still knows the file is its own and does not sign twice
        legacy = {} if self.genesis_index is None else {"index": self.genesis_index}
        body = codec.encode({"v": FORMAT_VERSION, "chain": self.chain, "key": self.pubkey, **legacy,
                             "state": value.state, "committed": value.committed})
        data = hashlib.sha256(body).digest() + body
        assert len(data) <= FILE_MAX_BYTES
        tmp = self.path.with_name(FILE_NAME + ".tmp")
        try:
            crypto.write_private_file(tmp, data, overwrite=True)
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the rename itself survives a crash
            finally:
                os.close(dir_fd)
        except OSError as exc:  # the file as it was is still whole: nothing signed is forgotten
            raise StoreUnwritable(f"cannot write {self.path}: {exc.strerror or exc} (is the disk full?)") from None
        assert self.load() == value

    def load(self) -> SigningState | None:
        """The saved state, None if there is no file; StoreCorrupt if it is damaged or
        belongs to another chain or validator."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if len(data) > FILE_MAX_BYTES + 32 or hashlib.sha256(data[32:]).digest() != data[:32]:
            raise StoreCorrupt(f"{self.path} is damaged (checksum): {_RECOVERY}")
        try:
            doc = codec.decode(data[32:], _LIMITS)
        except InvalidInput as exc:
            raise StoreCorrupt(f"{self.path} does not decode ({exc.message}): {_RECOVERY}") from None
        if not isinstance(doc, dict) or doc.get("v") != FORMAT_VERSION or not isinstance(doc.get("state"), bytes) \
                or type(doc.get("committed")) is not int:
            raise StoreCorrupt(f"{self.path} is not a signing-state file of version {FORMAT_VERSION}: {_RECOVERY}")
        whose = f"key {crypto.key_id(doc['key'])}" if isinstance(doc.get("key"), bytes) \
            else f"validator {doc.get('index')}"
        mine = doc.get("key") == self.pubkey if "key" in doc \
            else self.genesis_index is not None and doc.get("index") == self.genesis_index
        if doc.get("chain") != self.chain or not mine:
            raise StoreCorrupt(f"{self.path} is the signing state of {whose} of chain {doc.get('chain')!r}, not of "
                               f"key {crypto.key_id(self.pubkey)} of {self.chain!r}: this data directory is "
                               "another node's")
        return SigningState(doc["state"], doc["committed"])


_RECOVERY = ("move it aside and restart: the node then waits a safety margin of heights before it votes "
             "(docs/storage.md, signing state)")


DOUBLE_SIGN_CHECK_HEIGHTS = 10  # recent blocks whose QCs are searched for our signature
VOTE_MARGIN_HEIGHTS = 2  # heights past the last one we signed before we sign again


@dataclass(frozen=True)
class Resumed:
    """How a node takes up signing at start (docs/storage.md, signing state)."""

    state: bytes | None  # the PersistedState to resume, if any survived
    vote_from: int  # sign nothing below this height
    lost: bool  # no signing state at all: watch fetched QCs for our key
    high_water: int  # the highest height this node is known to have committed
    notes: tuple[str, ...]  # what the operator is told


def resume(file: SigningFile, store: Store, legacy_state: bytes | None, first: ValidatorSet) -> Resumed:
    """Read the signing state and compare it with the store: a store behind it lost blocks
    (the replica follows without voting up to the signed height); no state at all while
    the store's recent QCs carry our signature means we signed and forgot: wait a margin.
    `first`: the genesis's validator set."""
    saved = file.load()
    notes: list[str] = []
    if saved is not None and store.height < saved.committed:
        notes.append(f"the store (height {store.height}) is behind what this node committed before (height "
                     f"{saved.committed}): it catches up from its peers and votes only from there on")
    if saved is not None:
        return Resumed(saved.state, 0, False, max(saved.committed, store.height), tuple(notes))
    if legacy_state is not None:  # a store from before the signing-state file
        return Resumed(legacy_state, 0, False, store.height, ())
    signed_at = last_signed_height(store, file.pubkey, first)
    if signed_at is None:
        return Resumed(None, 0, True, store.height, ())
    vote_from = signed_at + 1 + VOTE_MARGIN_HEIGHTS
    notes.append(f"no signing state ({file.path} is missing) but this validator's key signed block {signed_at}: "
                 f"it votes again from height {vote_from}")
    return Resumed(None, vote_from, True, store.height, tuple(notes))


def last_signed_height(store: Store, pubkey: bytes, first: ValidatorSet) -> int | None:
    """The newest of the last DOUBLE_SIGN_CHECK_HEIGHTS committed blocks whose QC holds the
    signature of `pubkey` (named by its index in the set of each height; `first` is height 1's)."""
    for height in range(store.height, max(0, store.height - DOUBLE_SIGN_CHECK_HEIGHTS), -1):
        if height == 1:
            vset = first
        else:
            parent = store.load_header(height - 1)
            vset = validators_in(store.map_at(parent.state), parent)
        me = vset.index_of(pubkey)
        if me is not None and any(signer == me for signer, _ in store.load_qc(height).signatures):
            return height
    return None
