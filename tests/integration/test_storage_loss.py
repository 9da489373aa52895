"""A node whose store is lost or rolled back, on real processes (docs/storage.md, signing
state): it says so, catches up from its peers before it votes, no acknowledged record is
lost once healed, and no node signs two values for one slot (the others keep no
equivocation evidence)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ledgernode.storage import keys
from ledgernode.storage.leveldb import LevelKV

from .procs import Cluster, SteadyClient, wait_until

VICTIM = 3


def heal_and_check(c: Cluster, load: SteadyClient, lost: str) -> None:
    c.start(VICTIM)
    log = (c.root / f"node{VICTIM}" / "node.log").read_text()
    assert lost in log, log[-2000:]
    wait_until("ten more acknowledged records", lambda: (len(load.ids) >= 20, len(load.ids)))
    load.finish()
    ids = list(load.ids)
    head = c.get(0, "/v1/status")["height"]
    wait_until(f"node {VICTIM} to catch up to height {head}", lambda: (
        c.get(VICTIM, "/v1/status")["height"] >= head, c.heights()))
    for rid in ids:
        status, doc = c.request(VICTIM, "GET", f"/v1/records/{rid}")
        assert status == 200 and doc["status"] == "committed", (rid, status, doc)
    for i in range(c.n):
        assert c.get(i, "/v1/equivocations")["equivocations"] == [], i
    # and it votes again: with another node down, nothing commits without it
    c.kill(0)
    status, doc = c.submit(1, c.record("needs-the-victim"), wait=True)
    assert status == 200 and doc["status"] == "committed", (status, doc)
    c.start(0)


def test_a_wiped_ledger_is_caught_up_with_the_signing_state_kept(cluster: Cluster) -> None:
    load = SteadyClient(cluster, "acked")
    wait_until("ten acknowledged records", lambda: (len(load.ids) >= 10, len(load.ids)))
    cluster.kill(VICTIM)
    shutil.rmtree(cluster.root / f"node{VICTIM}" / "data" / "ledger")
    heal_and_check(cluster, load, "behind what this node committed before")


def _signed_by_victim(c: Cluster) -> bool:
    """Does a committed block's QC hold the victim's signature? (A QC holds the first Q
    votes to arrive, so the victim's may be in none of them for a while.)"""
    head = c.get(0, "/v1/status")["height"]
    return any(any(s["validator"] == VICTIM for s in c.get(0, f"/v1/blocks/{h}")["qc"]["signatures"])
               for h in range(max(1, head - 20), head + 1))


def test_a_wiped_data_directory_waits_a_margin_before_voting(cluster: Cluster) -> None:
    load = SteadyClient(cluster, "acked")
    wait_until("ten acknowledged records", lambda: (len(load.ids) >= 10, len(load.ids)))
    # What the node must notice after the wipe is a fetched QC with its own signature in it.
    wait_until("a QC signed by the victim", lambda: (_signed_by_victim(cluster), None))
    cluster.kill(VICTIM)
    shutil.rmtree(cluster.root / f"node{VICTIM}" / "data")
    heal_and_check(cluster, load, "")
    log = (cluster.root / f"node{VICTIM}" / "node.log").read_text()
    assert "its signing state is gone: it votes again from height" in log, log[-2000:]


def _newest_log(c: Cluster) -> Path:
    ledger = c.root / f"node{VICTIM}" / "data" / "ledger"
    logs = sorted(ledger.glob("*.log"), key=lambda p: int(p.stem))
    assert logs, sorted(p.name for p in ledger.iterdir())
    return logs[-1]


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_the_newest_leveldb_log_lost_or_cut_is_said_and_caught_up(cluster: Cluster, damage: str) -> None:
    """SIGKILL leaves the newest blocks in LevelDB's log only; losing it (or its second half)
    rolls the store back. The node says so, or rebuilds what is whole, and catches up."""
    load = SteadyClient(cluster, "acked")
    wait_until("twenty acknowledged records", lambda: (len(load.ids) >= 20, len(load.ids)))
    cluster.kill(VICTIM)
    log = _newest_log(cluster)
    if damage == "deleted":
        log.unlink()
    else:
        with log.open("r+b") as f:
            f.truncate(log.stat().st_size // 2)
    text = _restart_until_healed(cluster, ("behind what this node committed before", "kept aside"))
    cluster.kill(VICTIM, signal.SIGTERM)
    heal_and_check(cluster, load, "")
    assert "Traceback" not in text, text[-2000:]


def _restart_until_healed(c: Cluster, said: tuple[str, ...]) -> str:
    """Start the victim; if it stops on damage it found reading, start it again (as devnet
    does); return its log once it has said one of `said` (what it found, in words)."""
    path = c.root / f"node{VICTIM}" / "node.log"
    for _ in range(3):
        c.start(VICTIM)

        def state() -> tuple[bool, Any]:
            text = path.read_text()
            return any(s in text for s in said) or c.procs[VICTIM].poll() is not None, c.procs[VICTIM].poll()

        wait_until("the damage to be found", state)
        if any(s in path.read_text() for s in said):
            return path.read_text()
        c.procs.pop(VICTIM).wait()
    raise AssertionError(f"node {VICTIM} never healed: {path.read_text()[-3000:]}")


def _heal(c: Cluster, load: SteadyClient, said: tuple[str, ...] = ("kept aside",)) -> None:
    _restart_until_healed(c, said)
    c.kill(VICTIM, signal.SIGTERM)
    heal_and_check(c, load, "")


def _stop_victim_under_load(c: Cluster, reopen: bool) -> SteadyClient:
    """Twenty records acknowledged under a steady client, then the victim stopped (and, with
    `reopen`, started and stopped once more: reopening turns its log into a table file)."""
    load = SteadyClient(c, "acked")
    wait_until("twenty acknowledged records", lambda: (len(load.ids) >= 20, len(load.ids)))
    c.kill(VICTIM, signal.SIGTERM)
    if reopen:
        c.start(VICTIM)
        c.kill(VICTIM, signal.SIGTERM)
    return load


def test_flipped_bytes_in_a_table_heal_block_by_block(cluster: Cluster) -> None:
    load = _stop_victim_under_load(cluster, reopen=True)
    ledger = cluster.root / f"node{VICTIM}" / "data" / "ledger"
    tables = sorted(ledger.glob("*.ldb"), key=lambda p: p.stat().st_size)
    assert tables, sorted(p.name for p in ledger.iterdir())
    data = bytearray(tables[-1].read_bytes())
    for k in range(64):
        data[(len(data) // 3 + k * 97) % len(data)] ^= 0xFF
    tables[-1].write_bytes(bytes(data))
    _heal(cluster, load)


def test_a_missing_current_file_is_found_and_healed(cluster: Cluster) -> None:
    load = _stop_victim_under_load(cluster, reopen=True)
    (cluster.root / f"node{VICTIM}" / "data" / "ledger" / "CURRENT").unlink()
    # LevelDB would start afresh and delete its tables: the node refuses that, rebuilds
    # its manifest from the tables, keeps every whole block and catches up the rest
    text = _restart_until_healed(cluster, ("kept aside",))
    assert "CURRENT file is missing" in text, text[-2000:]
    cluster.kill(VICTIM, signal.SIGTERM)
    heal_and_check(cluster, load, "")


def test_repair_fetches_a_damaged_block_from_a_peer(cluster: Cluster) -> None:
    load = _stop_victim_under_load(cluster, reopen=False)
    ledger = cluster.root / f"node{VICTIM}" / "data" / "ledger"
    kv = LevelKV(ledger)
    head = keys.decode_head(kv.get(keys.HEAD_KEY))
    kv.write([(keys.block_key(2), b"\x00damaged")], [], sync=True)
    kv.close()
    config = str(cluster.root / f"node{VICTIM}" / "node.toml")
    run = [sys.executable, "-m", "ledgernode"]
    checked = subprocess.run(run + ["check", "-c", config], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 1 and "block 2" in checked.stdout, checked
    repaired = subprocess.run(run + ["repair", "-c", config, "--from", cluster.api(0)],
                              capture_output=True, text=True, timeout=120)
    assert repaired.returncode == 0, repaired
    assert f"rebuilt to height {head:,}" in repaired.stdout and "1 fetched from peers (heights 2)" in repaired.stdout
    checked = subprocess.run(run + ["check", "-c", config], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked
    heal_and_check(cluster, load, "")
