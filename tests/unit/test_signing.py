"""The signing state file (ledgernode.storage.signing): synced and atomic, checked on
read, and how a node resumes signing when its store lost blocks or its state is gone."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ledgernode import codec, crypto
from ledgernode.errors import StoreCorrupt, StoreUnwritable
from ledgernode.storage import Store
from ledgernode.storage.signing import (
    FILE_NAME, VOTE_MARGIN_HEIGHTS, SigningFile, SigningState, last_signed_height, resume,
)
from tests.fixtures import Net, commit_records, content

NET = Net()


def me(index: int) -> tuple[bytes, int]:
    """SigningFile's node: the key of genesis validator `index`, and that index."""
    return NET.genesis.validators[index].pubkey.raw, index


def ledger(blocks: int) -> Store:
    store = Store.memory()
    for h in range(blocks):
        raw = NET.record(0, "evidence.notarize", f"EV-{h}", {
            "content_hash": content(str(h)), "media_type": "text/plain", "size": 1, "title": "t"})
        commit_records(NET, store, [raw])
    return store


def test_round_trip_is_synced_atomic_and_private(tmp_path: Path) -> None:
    f = SigningFile(tmp_path, NET.chain_id, *me(2))
    assert f.load() is None
    f.save(SigningState(b"state-1", 7))
    f.save(SigningState(b"state-2", 8))
    assert f.load() == SigningState(b"state-2", 8)
    assert (tmp_path / FILE_NAME).stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / (FILE_NAME + ".tmp")).exists()


def test_a_write_the_disk_refuses_is_unwritable_and_keeps_the_old_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = SigningFile(tmp_path, NET.chain_id, *me(2))
    f.save(SigningState(b"state-1", 7))

    def full(*args: object, **kw: object) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(crypto, "write_private_file", full)
    with pytest.raises(StoreUnwritable, match="No space left on device .is the disk full"):
        f.save(SigningState(b"state-2", 8))
    assert f.load() == SigningState(b"state-1", 7)


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_a_damaged_file_is_refused_with_the_recovery(tmp_path: Path, damage: str) -> None:
    f = SigningFile(tmp_path, NET.chain_id, *me(2))
    f.save(SigningState(b"state", 3))
    data = bytearray((tmp_path / FILE_NAME).read_bytes())
    if damage == "flip":
        data[-1] ^= 1
    elif damage == "truncate":
        data = data[:-3]
    else:
        data = bytearray()
    (tmp_path / FILE_NAME).write_bytes(bytes(data))
    with pytest.raises(StoreCorrupt, match="damaged.*move it aside"):
        f.load()


def test_another_nodes_file_is_refused(tmp_path: Path) -> None:
    SigningFile(tmp_path, NET.chain_id, *me(1)).save(SigningState(b"state", 3))
    with pytest.raises(StoreCorrupt, match="signing state of key .* of chain"):
        SigningFile(tmp_path, NET.chain_id, *me(2)).load()
    with pytest.raises(StoreCorrupt, match="another node's"):
        SigningFile(tmp_path, "other-chain", *me(1)).load()


def test_a_file_of_before_names_the_node_by_its_genesis_index(tmp_path: Path) -> None:
    body = codec.encode({"v": 1, "chain": NET.chain_id, "index": 2, "state": b"old", "committed": 4})
    (tmp_path / FILE_NAME).write_bytes(hashlib.sha256(body).digest() + body)
    assert SigningFile(tmp_path, NET.chain_id, *me(2)).load() == SigningState(b"old", 4)
    with pytest.raises(StoreCorrupt, match="signing state of validator 2 of chain"):
        SigningFile(tmp_path, NET.chain_id, *me(1)).load()
    joined = crypto.generate_private_key().public.raw  # a key of no genesis validator
    with pytest.raises(StoreCorrupt, match="another node's"):
        SigningFile(tmp_path, NET.chain_id, joined, None).load()
    SigningFile(tmp_path, NET.chain_id, *me(2)).save(SigningState(b"new", 5))  # written by key from now on
    doc = codec.decode((tmp_path / FILE_NAME).read_bytes()[32:])
    assert (doc["key"], doc["index"]) == me(2)  # and by index, for a node of before after a downgrade
    SigningFile(tmp_path, NET.chain_id, joined, None).save(SigningState(b"joined", 1))
    assert "index" not in codec.decode((tmp_path / FILE_NAME).read_bytes()[32:])


def test_resume_a_store_behind_its_high_water_mark(tmp_path: Path) -> None:
    f = SigningFile(tmp_path, NET.chain_id, *me(0))
    f.save(SigningState(b"state-at-13", 12))
    got = resume(f, ledger(3), None, NET.genesis.validator_set)
    assert (got.state, got.vote_from, got.lost, got.high_water) == (b"state-at-13", 0, False, 12)
    assert "behind what this node committed before (height 12)" in got.notes[0]


def test_resume_from_a_store_of_before_the_file(tmp_path: Path) -> None:
    got = resume(SigningFile(tmp_path, NET.chain_id, *me(0)), ledger(2), b"legacy", NET.genesis.validator_set)
    assert (got.state, got.vote_from, got.lost, got.notes) == (b"legacy", 0, False, ())


def test_lost_state_while_our_key_signed_recent_blocks_waits_a_margin(tmp_path: Path) -> None:
    store = ledger(5)  # NET.qc signs with validators 0..Q-1
    assert last_signed_height(store, me(0)[0], NET.genesis.validator_set) == 5
    assert last_signed_height(store, me(NET.n - 1)[0], NET.genesis.validator_set) is None
    got = resume(SigningFile(tmp_path, NET.chain_id, *me(0)), store, None, NET.genesis.validator_set)
    assert got.lost and got.vote_from == 5 + 1 + VOTE_MARGIN_HEIGHTS and "signed block 5" in got.notes[0]
    got = resume(SigningFile(tmp_path, NET.chain_id, *me(NET.n - 1)), store, None, NET.genesis.validator_set)
    assert got.lost and got.vote_from == 0 and got.notes == ()
