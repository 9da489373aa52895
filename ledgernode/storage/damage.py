"""A damaged ledger store heals by re-syncing (docs/storage.md, "A damaged store heals").

`open_ledger` opens `DATA_DIR/ledger`; if it fails with `StoreCorrupt`, or the
node marked it damaged while running (`mark_damaged`), the directory is moved
aside (kept for inspection, at most `DAMAGED_KEPT_MAX` copies) and a fresh
store is opened, from which the node catches up from its peers. The signing
state lives outside this directory, so nothing signed is forgotten.
"""

from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path

from ..errors import StoreCorrupt
from . import Store

LEDGER_DIR = "ledger"
MARK_FILE = "ledger.damaged"
ASIDE_PREFIX = "ledger.damaged-"
DAMAGED_KEPT_MAX = 2  # moved-aside copies kept; older ones are removed
MARK_MAX_BYTES = 4096


def mark_damaged(data_dir: Path, reason: str) -> None:
    """Note that the store is damaged, so the next start re-syncs instead of reading it."""
    (data_dir / MARK_FILE).write_text(reason[:MARK_MAX_BYTES] + "\n", encoding="utf-8")


def open_ledger(data_dir: Path, can_resync: bool) -> tuple[Store, str | None]:
    """The node's store, and a sentence for the operator if it had to be replaced."""
    ledger, mark = data_dir / LEDGER_DIR, data_dir / MARK_FILE
    reason = mark.read_text(encoding="utf-8", errors="replace").strip() if mark.exists() else None
    if reason is None:
        try:
            return Store.open(ledger), None
        except StoreCorrupt as exc:
            reason = str(exc)
    if not can_resync:
        raise StoreCorrupt(f"{reason}. This network has no other validator to re-sync from: restore "
                           f"{ledger} from a backup (python -m ledgernode check -c CONFIG shows the damage)")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    aside = data_dir / f"{ASIDE_PREFIX}{stamp}"
    if ledger.exists():
        os.replace(ledger, aside)
    mark.unlink(missing_ok=True)
    _prune(data_dir)
    note = (f"the ledger store was damaged ({reason}): moved aside to {aside}; this node re-syncs from "
            "its peers and keeps its signing state")
    return Store.open(ledger), note


def _prune(data_dir: Path) -> None:
    copies = sorted(p for p in data_dir.iterdir() if p.name.startswith(ASIDE_PREFIX))
    for old in copies[:-DAMAGED_KEPT_MAX]:
        shutil.rmtree(old, ignore_errors=True)
