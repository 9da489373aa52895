"""ledgernode/storage/repair.py and damage.repair_ledger: a damaged store is rebuilt block by
block; what it cannot read comes from a peer, checked as catch-up checks it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ledgernode.blocks import QC
from ledgernode.errors import NotFound, StoreCorrupt
from ledgernode.storage import Store, keys
from ledgernode.storage.damage import ASIDE_PREFIX, repair_ledger
from ledgernode.storage.leveldb import LevelKV
from ledgernode.storage.repair import read_block, rebuild
from ledgernode.storage.scrub import check_path
from tests.fixtures import Net, commit_records, content

NET = Net()
BLOCKS = 5


def fill(ledger: Path, blocks: int = BLOCKS) -> None:
    store = Store.open(ledger)
    for h in range(blocks):
        commit_records(NET, store, [NET.record(0, "evidence.notarize", f"EV-{h}-{k}", {
            "content_hash": content(f"{h}-{k}"), "media_type": "text/plain", "size": 1, "title": "t"})
            for k in range(3)])
    store.close()


@pytest.fixture()
def good(tmp_path: Path) -> Path:
    """A whole store (the peer's copy); tests damage a copy of it in data/ledger."""
    path = tmp_path / "peer"
    fill(path)
    shutil.copytree(path, tmp_path / "data" / "ledger")
    return path


def _damage(ledger: Path, puts: list[tuple[bytes, bytes]] = [], deletes: list[bytes] = []) -> None:
    kv = LevelKV(ledger)
    kv.write(list(puts), list(deletes), sync=True)
    kv.close()


def _peer(path: Path):  # type: ignore[no-untyped-def]
    kv = LevelKV(path)
    return kv, lambda h: read_block(kv, h)


def test_a_whole_store_is_copied_block_by_block(good: Path, tmp_path: Path) -> None:
    rebuilt, aside = repair_ledger(tmp_path / "data", NET.genesis, None)
    assert rebuilt.complete and (rebuilt.copied, rebuilt.height, rebuilt.fetched) == (BLOCKS, BLOCKS, [])
    assert aside is not None and aside.name.startswith(ASIDE_PREFIX) and (aside / "CURRENT").exists()
    assert check_path(tmp_path / "data" / "ledger", NET.genesis).whole


def test_a_damaged_block_stops_the_copy_without_a_peer(good: Path, tmp_path: Path) -> None:
    _damage(tmp_path / "data" / "ledger", puts=[(keys.block_key(3), b"\x00garbage")])
    rebuilt, _ = repair_ledger(tmp_path / "data", NET.genesis, None)
    assert rebuilt.height == 2 and not rebuilt.complete
    assert "block 3" in rebuilt.stopped and "fetches the blocks above 2 from its peers" in rebuilt.summary()
    store = Store.open(tmp_path / "data" / "ledger")
    assert store.height == 2
    store.close()


@pytest.mark.parametrize("damage", ["header", "qc", "a record missing", "a record altered"])
def test_a_damaged_block_is_fetched_from_a_peer_and_the_rest_copied(good: Path, tmp_path: Path, damage: str) -> None:
    ledger = tmp_path / "data" / "ledger"
    peer = Store.open(good)
    leaf = peer.load_header(3).log_start + 1
    peer.close()
    _damage(ledger, **{
        "header": {"puts": [(keys.block_key(3), b"\x00garbage")]},
        "qc": {"puts": [(keys.qc_key(3), QC(3, 0, bytes(32), ()).encode())]},
        "a record missing": {"deletes": [keys.leaf_key(leaf)]},
        "a record altered": {"puts": [(keys.leaf_key(leaf), NET.record(0, "evidence.notarize", "X", {
            "content_hash": content("x"), "media_type": "text/plain", "size": 1, "title": "t"}))]},
    }[damage])
    kv, fetch = _peer(good)
    try:
        rebuilt, _ = repair_ledger(tmp_path / "data", NET.genesis, fetch)
    finally:
        kv.close()
    assert rebuilt.complete and rebuilt.fetched == [3] and rebuilt.copied == BLOCKS - 1
    assert rebuilt.damaged and rebuilt.damaged[0].startswith("block 3:")
    assert check_path(ledger, NET.genesis).whole


def test_a_peer_block_that_fails_its_checks_is_not_taken(good: Path, tmp_path: Path) -> None:
    _damage(tmp_path / "data" / "ledger", puts=[(keys.block_key(3), b"\x00garbage")])
    kv, fetch = _peer(good)
    try:
        def forged(h: int):  # type: ignore[no-untyped-def]
            raw, qc, payload = fetch(h)
            return raw, QC(qc.height, qc.round, qc.block_hash, qc.signatures[:1]), payload
        rebuilt, _ = repair_ledger(tmp_path / "data", NET.genesis, forged)
    finally:
        kv.close()
    assert rebuilt.height == 2 and rebuilt.fetched == [] and "no peer gave it" in rebuilt.stopped


def test_without_a_head_the_copy_goes_as_far_as_the_blocks_go(good: Path, tmp_path: Path) -> None:
    _damage(tmp_path / "data" / "ledger", deletes=[keys.HEAD_KEY])
    rebuilt, _ = repair_ledger(tmp_path / "data", NET.genesis, None)
    assert rebuilt.old_head is None and rebuilt.height == BLOCKS and not rebuilt.stopped


def test_a_lost_current_file_is_refused_then_salvaged_with_every_table(good: Path, tmp_path: Path) -> None:
    ledger = tmp_path / "data" / "ledger"
    (ledger / "CURRENT").unlink()
    with pytest.raises(StoreCorrupt, match="CURRENT file is missing"):
        LevelKV(ledger)  # LevelDB itself would start afresh and delete the tables
    rebuilt, _ = repair_ledger(tmp_path / "data", NET.genesis, None)
    assert rebuilt.height == BLOCKS and rebuilt.copied == BLOCKS


def test_flipped_bytes_in_a_table_file(good: Path, tmp_path: Path) -> None:
    ledger = tmp_path / "data" / "ledger"
    Store.open(ledger).close()  # reopening writes the log into a table file
    table = max(ledger.glob("*.ldb"), key=lambda p: p.stat().st_size)
    data = bytearray(table.read_bytes())
    for k in range(64):
        data[(len(data) // 3 + k * 97) % len(data)] ^= 0xFF
    table.write_bytes(bytes(data))
    kv, fetch = _peer(good)
    try:
        rebuilt, _ = repair_ledger(tmp_path / "data", NET.genesis, fetch)
    finally:
        kv.close()
    assert rebuilt.height == BLOCKS and rebuilt.copied + len(rebuilt.fetched) == BLOCKS
    assert check_path(ledger, NET.genesis).whole


def test_no_store_to_repair(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no store at"):
        repair_ledger(tmp_path, NET.genesis, None)


def test_rebuild_refuses_a_store_that_is_not_empty(good: Path) -> None:
    store = Store.open(good)
    try:
        with pytest.raises(AssertionError):
            rebuild(None, store, NET.genesis)
    finally:
        store.close()


def test_the_repair_command_exits_by_what_it_rebuilt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ledgernode.cli import main
    from tests.unit.test_scrub import _node_config

    cfg = _node_config(tmp_path, NET)
    ledger = tmp_path / "data" / "ledger"
    assert main(["repair", "-c", str(cfg)]) == 2  # no store yet
    assert "no store at" in capsys.readouterr().err
    fill(ledger)
    _damage(ledger, puts=[(keys.block_key(4), b"\x00garbage")])
    assert main(["repair", "-c", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert "rebuilt to height 3 (the damaged store's head: 5)" in out and "block 4" in out
    assert main(["repair", "-c", str(cfg), "--from", "not a url"]) == 2
    held = Store.open(ledger)  # as a running node holds it
    try:
        assert main(["repair", "-c", str(cfg)]) == 2
        assert "holds" in capsys.readouterr().err
    finally:
        held.close()
