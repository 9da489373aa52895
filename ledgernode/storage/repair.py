"""Rebuild a damaged ledger store block by block (docs/storage.md, "Repair").

Theory of operation. `rebuild` writes a fresh `Store` from height 1 up. Each
height comes from the damaged store if it reads back with every checksum
verified and passes the same checks as a block fetched in catch-up: the header
follows the rebuilt head (height, `prev`, `log_start`), its QC certifies it under
the genesis validators, its records decode, are signed by registered keys and
obey the ledger rules, and they make the header's log root. A height that fails
any of that is asked of `fetch` (a peer's API, for `ledgernode repair --from`)
and checked the same way. The rebuild stops at the damaged store's head, or at the
first height no source gives: the node fetches the rest from its peers when it
starts (catch-up). The old store is only read; nothing in it is trusted unchecked.

Writes go unsynced, one batch per block, and one synced write ends the rebuild:
LevelDB's log keeps the batches in order, so a crash leaves a prefix of whole
blocks, and the old store is still there until the caller swaps them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..blocks import QC, Block, Header, check_block, check_qc, decode_header, decode_qc
from ..errors import InvalidInput, StorageError
from ..genesis import Genesis
from ..records import check_registered, decode_envelope
from . import Store, keys
from .kv import KV

PROGRESS_INTERVAL_S = 1.0  # at most one progress line this often
FETCHED_LISTED_MAX = 20  # fetched heights named in the report; more are counted

# A block as a source gives it: header bytes, QC, envelope bytes.
RawBlock = tuple[bytes, QC, tuple[bytes, ...]]
Fetch = Callable[[int], RawBlock | None]


@dataclass
class Rebuilt:
    """What a rebuild did."""

    old_head: int | None  # the damaged store's head height (None: unreadable)
    height: int = 0  # the rebuilt store's head
    copied: int = 0  # blocks taken from the damaged store
    fetched: list[int] = field(default_factory=list)  # heights taken from `fetch`
    damaged: list[str] = field(default_factory=list)  # why local heights were not used (first ones)
    stopped: str = ""  # why the rebuild ended below the old head ("" if it did not)

    @property
    def complete(self) -> bool:
        return not self.stopped and self.old_head is not None and self.height >= self.old_head

    def summary(self) -> str:
        fetched = ", ".join(str(h) for h in self.fetched[:FETCHED_LISTED_MAX])
        if len(self.fetched) > FETCHED_LISTED_MAX:
            fetched += f" and {len(self.fetched) - FETCHED_LISTED_MAX:,} more"
        lines = [f"rebuilt to height {self.height:,} (the damaged store's head: "
                 f"{'unreadable' if self.old_head is None else f'{self.old_head:,}'}); "
                 f"{self.copied:,} blocks copied and checked, {len(self.fetched):,} fetched from peers"
                 + (f" (heights {fetched})" if self.fetched else "")]
        lines += [f"  damaged: {d}" for d in self.damaged]
        if self.stopped:
            lines.append(f"stopped: {self.stopped}; the node fetches the blocks above {self.height:,} "
                         "from its peers when it starts")
        return "\n".join(lines)


def read_block(kv: KV, height: int) -> RawBlock:
    """Block `height` of a (possibly damaged) store, every checksum verified; raises
    StorageError or InvalidInput (docs/storage.md, "Key layout")."""
    raw = kv.get(keys.block_key(height), verify=True)
    qc_raw = kv.get(keys.qc_key(height), verify=True)
    if raw is None or qc_raw is None:
        raise InvalidInput("missing", f"block {height}: its {'header' if raw is None else 'QC'} is missing")
    header = decode_header(raw)
    payload = tuple(v for _, v in kv.scan(*keys.leaf_range(header.log_start, header.log_size), verify=True))
    return raw, decode_qc(qc_raw), payload


def old_head(kv: KV) -> int | None:
    """The height the damaged store's m/head names; None when it is unreadable, absent or not a height."""
    try:
        raw = kv.get(keys.HEAD_KEY, verify=True)
        return None if raw is None else keys.decode_head(raw)
    except StorageError:  # StoreCorrupt too: LevelDB's checksum, or bytes that are not a u64
        return None


def append_checked(store: Store, genesis: Genesis, block: RawBlock, sync: bool) -> Header:
    """Check a block as catch-up does (certified: its QC, then its records without their
    signatures, docs/consensus.md) and commit it on top of `store`; raises InvalidInput."""
    raw, qc, payload = block
    header = decode_header(raw)
    if header.height != store.height + 1:
        raise InvalidInput("not_next", f"block {header.height} is not the next height {store.height + 1}")
    members = store.members(genesis)
    check_qc(qc, header, genesis, validators=members.validator_set)
    envs = []
    for item in payload:
        env = decode_envelope(item, members)
        check_registered(env, members)
        envs.append(env)
    tip = store.tip  # the parent header and its frontier, of one block
    checked = check_block(Block(header, tuple(envs)), tip.header, store, tip.frontier, genesis,
                          sigs_checked=True)
    store.commit(checked, qc, sync=sync)
    return header


def rebuild(old: KV | None, new: Store, genesis: Genesis, fetch: Fetch | None = None,
            progress: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic,
            damaged_listed_max: int = 10) -> Rebuilt:
    """Fill the empty store `new` from `old` (None: unreadable) and `fetch`; see the module doc."""
    assert new.height == 0, "rebuild starts from an empty store"
    result = Rebuilt(old_head(old) if old is not None else None)
    last = clock()
    target = result.old_head
    while target is None or new.height < target:
        height = new.height + 1
        if target is None and old is not None and _absent(old, height):
            break  # no head to aim at: the local chain simply ends here
        why = _take_local(old, new, genesis, height)
        if why is None:
            result.copied += 1
        elif fetch is not None and _take_fetched(fetch, new, genesis, height):
            result.fetched.append(height)
        else:
            result.stopped = f"block {height}: {why}" + ("" if fetch is None else "; no peer gave it")
            break
        if why is not None and len(result.damaged) < damaged_listed_max:
            result.damaged.append(f"block {height}: {why}")
        if progress is not None and clock() - last >= PROGRESS_INTERVAL_S:
            last = clock()
            progress(f"repair: height {new.height:,} of {target if target is not None else '?'}, "
                     f"{new.log_size:,} records")
    new.kv.write([], [], sync=True)  # everything above is durable from here
    result.height = new.height
    return result


def _absent(old: KV, height: int) -> bool:
    try:
        return old.get(keys.block_key(height)) is None
    except StorageError:
        return False


def _take_local(old: KV | None, new: Store, genesis: Genesis, height: int) -> str | None:
    """None if block `height` came from the damaged store, else why not."""
    if old is None:
        return "the damaged store cannot be read"
    try:
        append_checked(new, genesis, read_block(old, height), sync=False)
    except (StorageError, InvalidInput) as exc:
        return str(exc) if isinstance(exc, StorageError) else exc.message
    return None


def _take_fetched(fetch: Fetch, new: Store, genesis: Genesis, height: int) -> bool:
    try:
        block = fetch(height)
        if block is None:
            return False
        append_checked(new, genesis, block, sync=False)
    except InvalidInput:
        return False
    return True
