"""A damaged ledger store heals block by block (docs/storage.md, "A damaged store heals").

`open_ledger` opens `DATA_DIR/ledger`; if it fails with `StoreCorrupt`, or the
node marked it damaged while running (`mark_damaged`), `repair_ledger` rebuilds
it: every block of the damaged store that reads back whole and passes the
catch-up checks is copied into a fresh store (storage/repair.py), blocks it
cannot read come from `fetch` when one is given (`ledgernode repair --from`),
and the node fetches whatever is left from its peers. The damaged directory is
kept beside it for inspection (at most `DAMAGED_KEPT_MAX` copies). The signing
state lives outside this directory, so nothing signed is forgotten.
"""

from __future__ import annotations

import datetime
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from ..errors import NotFound, StoreCorrupt, StoreLocked, StoreOutdated
from ..genesis import Genesis
from . import Store
from .leveldb import LevelKV, locked_message, owner_pid
from .repair import Fetch, Rebuilt, rebuild

LEDGER_DIR = "ledger"
MARK_FILE = "ledger.damaged"
ASIDE_PREFIX = "ledger.damaged-"
REBUILD_DIR = "ledger.rebuild"  # the store being rebuilt; swapped in when done
DAMAGED_KEPT_MAX = 2  # moved-aside copies kept; older ones are removed
MARK_MAX_BYTES = 4096


def mark_damaged(data_dir: Path, reason: str) -> None:
    """Note that the store is damaged, so the next start re-syncs instead of reading it."""
    (data_dir / MARK_FILE).write_text(reason[:MARK_MAX_BYTES] + "\n", encoding="utf-8")


def open_ledger(data_dir: Path, genesis: Genesis, can_resync: bool,
                progress: Callable[[str], None] | None = None) -> tuple[Store, str | None]:
    """The node's store, and a sentence for the operator if it had to be rebuilt."""
    ledger, mark = data_dir / LEDGER_DIR, data_dir / MARK_FILE
    reason = mark.read_text(encoding="utf-8", errors="replace").strip() if mark.exists() else None
    outdated = False
    if reason is None:
        try:
            return Store.open(ledger), None
        except StoreCorrupt as exc:
            reason, outdated = str(exc), isinstance(exc, StoreOutdated)
    if not can_resync:
        raise StoreCorrupt(f"{reason}. This network has no other validator to re-sync from: restore "
                           f"{ledger} from a backup, or keep its whole blocks with python -m ledgernode "
                           "repair -c CONFIG (python -m ledgernode check -c CONFIG shows the damage)")
    rebuilt, aside = repair_ledger(data_dir, genesis, None, progress)
    what = "of an earlier layout, rebuilt in the current one" if outdated else "damaged"
    note = (f"the ledger store was {what} ({reason}): kept aside as {aside}; {rebuilt.summary()}; "
            "this node keeps its signing state")
    return Store.open(ledger), note


def repair_ledger(data_dir: Path, genesis: Genesis, fetch: Fetch | None,
                  progress: Callable[[str], None] | None = None) -> tuple[Rebuilt, Path | None]:
    """Rebuild DATA_DIR/ledger block by block (storage/repair.py) and swap it in; the old
    directory is kept as ledger.damaged-<time> (returned). Raises NotFound when there is
    no store, StoreLocked when a running node holds it."""
    ledger, tmp = data_dir / LEDGER_DIR, data_dir / REBUILD_DIR
    if not ledger.is_dir():
        raise NotFound(f"no store at {ledger}: is data_dir in the config this node's?")
    if owner_pid(ledger) not in (None, os.getpid()):
        raise StoreLocked(locked_message(ledger))
    try:
        old: LevelKV | None = LevelKV(ledger)
    except StoreCorrupt:  # LevelDB refuses it (a damaged log or manifest, no CURRENT)
        try:
            old = LevelKV(ledger, salvage=True)
        except StoreCorrupt:  # StoreLocked goes up: never rebuild under a running node
            old = None  # nothing local can be read: blocks come from `fetch` or catch-up
    shutil.rmtree(tmp, ignore_errors=True)  # left by an interrupted rebuild
    try:
        new = Store.open(tmp)
        try:
            rebuilt = rebuild(old, new, genesis, fetch, progress)
        finally:
            new.close()
    finally:
        if old is not None:
            old.close()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    aside = data_dir / f"{ASIDE_PREFIX}{stamp}"
    os.replace(ledger, aside)
    os.replace(tmp, ledger)
    (data_dir / MARK_FILE).unlink(missing_ok=True)
    _prune(data_dir)
    return rebuilt, aside


def _prune(data_dir: Path) -> None:
    copies = sorted(p for p in data_dir.iterdir() if p.name.startswith(ASIDE_PREFIX))
    for old in copies[:-DAMAGED_KEPT_MAX]:
        shutil.rmtree(old, ignore_errors=True)
