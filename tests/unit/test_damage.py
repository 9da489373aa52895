"""A damaged store heals (ledgernode.storage.damage): rebuilt from its whole blocks, the
damaged copy kept aside (bounded copies), the rest left for catch-up; without peers the
node refuses with the way out."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledgernode.errors import StoreCorrupt, StoreOutdated
from ledgernode.storage import Store, keys
from ledgernode.storage.damage import ASIDE_PREFIX, DAMAGED_KEPT_MAX, mark_damaged, open_ledger
from tests.fixtures import Net, commit_records, content

NET = Net()


def fill(data_dir: Path, blocks: int = 3) -> None:
    store = Store.open(data_dir / "ledger")
    for h in range(blocks):
        commit_records(NET, store, [NET.record(0, "evidence.notarize", f"EV-{h}", {
            "content_hash": content(str(h)), "media_type": "text/plain", "size": 1, "title": "t"})])
    store.close()


def test_a_whole_store_opens_as_it_is(tmp_path: Path) -> None:
    fill(tmp_path)
    store, note = open_ledger(tmp_path, NET.genesis, can_resync=True)
    assert note is None and store.height == 3
    store.close()


def test_a_hole_below_the_head_is_found_at_open_and_the_store_replaced(tmp_path: Path) -> None:
    fill(tmp_path)
    store = Store.open(tmp_path / "ledger")
    store.kv.write([], [keys.block_key(1)], sync=True)  # as LevelDB that lost its older tables
    store.close()
    with pytest.raises(StoreCorrupt, match="not whole: block 1 is missing"):
        Store.open(tmp_path / "ledger")
    store, note = open_ledger(tmp_path, NET.genesis, can_resync=True)
    assert store.height == 0 and note is not None and "block 1 is missing" in note
    assert "fetches the blocks above 0 from its peers" in note
    store.close()
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith(ASIDE_PREFIX)]
    assert (aside / "CURRENT").exists()  # kept for inspection


def test_a_store_of_an_earlier_layout_is_rebuilt_from_its_own_blocks(tmp_path: Path) -> None:
    fill(tmp_path)
    store = Store.open(tmp_path / "ledger")
    head = store.head()
    store.kv.write([(b"s/" + bytes(32) + bytes(8), b"")], [], sync=True)  # the subject index of before
    store.close()
    with pytest.raises(StoreOutdated, match="earlier layout"):
        Store.open(tmp_path / "ledger")
    store, note = open_ledger(tmp_path, NET.genesis, can_resync=True)
    assert note is not None and note.startswith("the ledger store was of an earlier layout, rebuilt in the current "
                                                 "one (the store was written in an earlier layout")
    assert store.height == 3 and store.head() == head  # every block kept, the same state root
    assert not list(store.kv.scan(b"s/", b"s0"))
    store.close()


def test_a_store_whose_map_keeps_one_inner_node_a_key_is_rebuilt_in_tiles(tmp_path: Path) -> None:
    fill(tmp_path)
    store = Store.open(tmp_path / "ledger")
    head = store.head()
    assert head is not None
    key = keys.map_node_key(head.state)
    assert (store.kv.get(key) or b"")[:1] == b"\x03"
    store.kv.write([(key, b"\x01" + bytes(64))], [], sync=True)  # the layout before tiles, at the root
    store.close()
    with pytest.raises(StoreOutdated, match="earlier layout"):
        Store.open(tmp_path / "ledger")
    store, note = open_ledger(tmp_path, NET.genesis, can_resync=True)
    assert note is not None and "of an earlier layout, rebuilt in the current one" in note
    assert store.head() == head and (store.kv.get(key) or b"")[:1] == b"\x03"
    store.close()


def test_a_store_marked_damaged_while_running_is_replaced_and_copies_are_bounded(tmp_path: Path) -> None:
    for round_ in range(DAMAGED_KEPT_MAX + 2):
        fill(tmp_path, 1)
        mark_damaged(tmp_path, f"checksum mismatch {round_}")
        store, note = open_ledger(tmp_path, NET.genesis, can_resync=True)
        # nothing was really damaged: every block is checked and kept
        assert store.height == round_ + 1 and f"checksum mismatch {round_}" in (note or "")
        store.close()
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(ASIDE_PREFIX)]) == DAMAGED_KEPT_MAX


def test_without_peers_the_node_refuses_with_the_way_out(tmp_path: Path) -> None:
    fill(tmp_path)
    mark_damaged(tmp_path, "checksum mismatch")
    with pytest.raises(StoreCorrupt, match="no other validator to re-sync from: restore"):
        open_ledger(tmp_path, NET.genesis, can_resync=False)
    assert (tmp_path / "ledger" / "CURRENT").exists()  # left as it was
