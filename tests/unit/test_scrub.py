"""Store scrub (ledgernode/storage/scrub.py) and `ledgernode check`: real stores built with
tests/fixtures.py on LevelDB and in memory, damaged through their KV (docs/storage.md key
layout), and the findings each damage must give; the CLI on a real node config."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledgernode import config, crypto, ledgermap
from ledgernode.cli import main
from ledgernode.errors import StorageError, StoreCorrupt
from ledgernode.storage import Store, keys, scrub
from ledgernode.storage.scrub import Finding, Report
from tests.fixtures import Net, commit_records, content, stop_child

BLOCKS = 12
RECORDS_PER_BLOCK = 3  # 36 leaves: Merkle nodes of levels 4 and 5 are stored (n/4/0, n/4/1, n/5/0)
REPO = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT_S = 120.0  # a bound on waiting for a child process, not an expected time


def _notarize(net: Net, label: str) -> bytes:
    body = {"content_hash": content(label), "media_type": "text/plain", "size": 1, "title": label}
    return net.record(0, "evidence.notarize", label, body)


def _fill(net: Net, store: Store, blocks: int = BLOCKS) -> None:
    for b in range(blocks):
        commit_records(net, store, [_notarize(net, f"case-{b}-{i}") for i in range(RECORDS_PER_BLOCK)])


def _block_of(leaf: int) -> int:
    return leaf // RECORDS_PER_BLOCK + 1


@pytest.fixture(params=["memory", "leveldb"])
def built(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Net, Store]]:
    net = Net()
    store = Store.memory() if request.param == "memory" else Store.open(tmp_path / "ledger")
    _fill(net, store)
    yield net, store
    store.close()


def _delete(store: Store, key: bytes) -> None:
    assert store.kv.get(key) is not None, key
    store.kv.write([], [key], sync=True)


def _put(store: Store, key: bytes, value: bytes) -> None:
    store.kv.write([(key, value)], [], sync=True)


def _texts(report: Report) -> list[str]:
    return [f.text for f in report.findings]


def _record_id(store: Store, net: Net, leaf: int) -> bytes:
    from ledgernode.records import decode_envelope

    return decode_envelope(store.load_envelope(leaf), net.genesis).record_id


# -- a whole store ------------------------------------------------------------------


def test_a_whole_store_reports_whole(built: tuple[Net, Store]) -> None:
    net, store = built
    report = scrub.scrub(store.kv, net.genesis)
    assert report.findings == [] and report.whole and not report.truncated
    assert (report.head, report.records, report.roots_unchecked) == (BLOCKS, BLOCKS * RECORDS_PER_BLOCK, 0)
    entries = BLOCKS * RECORDS_PER_BLOCK + len(ledgermap.initial_entries(net.genesis))  # a subject per record
    assert report.summary("D") == (f"store whole: {BLOCKS} blocks, {BLOCKS * RECORDS_PER_BLOCK} records, "
                                   f"log root OK, state map OK ({entries} entries)")
    assert report.render("D") == report.summary("D")


def test_an_empty_store_is_whole() -> None:
    report = scrub.scrub(Store.memory().kv, Net().genesis)
    assert report.whole and report.summary("D") == "store whole: 0 blocks, 0 records, log root OK"


def test_a_store_of_another_chain_is_unusable_input(built: tuple[Net, Store]) -> None:
    _, store = built
    with pytest.raises(scrub.WrongGenesis, match="'gov-test'.*'gov-other'"):
        scrub.scrub(store.kv, Net(chain_id="gov-other").genesis)


# -- each kind of damage --------------------------------------------------------------


def test_a_missing_header_is_named_and_the_blocks_after_it_still_checked(built: tuple[Net, Store]) -> None:
    net, store = built
    _delete(store, keys.block_key(5))
    _delete(store, keys.record_key(_record_id(store, net, 30)))  # a later block is still checked
    report = scrub.scrub(store.kv, net.genesis)
    assert report.findings == [Finding(5, "block 5: missing (header not stored)"),
                               Finding(11, "leaf 30 (block 11): index entry missing")]
    assert report.summary("/srv/node/ledger").startswith(
        "store damaged: 2 findings (first at height 5); to repair: python -m ledgernode repair -c CONFIG "
        "--from PEER_API_URL rebuilds /srv/node/ledger block by block, or start the node: it rebuilds what "
        "is whole and fetches the rest from its peers, keeping its signing state "
        "(docs/storage.md, \"A damaged store heals block by block\")")


def test_a_missing_head_header_is_found_though_the_store_would_not_open(built: tuple[Net, Store]) -> None:
    net, store = built
    _delete(store, keys.block_key(BLOCKS))
    with pytest.raises(StorageError):
        Store(store.kv)  # what a node does at start
    assert _texts(scrub.scrub(store.kv, net.genesis)) == [f"block {BLOCKS}: missing (header not stored)"]


def test_a_missing_envelope_is_named_and_roots_are_taken_up_again(built: tuple[Net, Store]) -> None:
    net, store = built
    _delete(store, keys.leaf_key(7))
    report = scrub.scrub(store.kv, net.genesis)
    assert report.findings == [Finding(3, "leaf 7 (block 3): missing (envelope not stored)")]
    # Blocks 3 (leaf 7 missing) to 6 (from log size 15) cannot be rehashed: the right edges
    # they grow from need leaf 7; block 7 starts at 18, where n/4/0 stands in for leaves 0-15.
    assert report.roots_unchecked == 4 and report.records == BLOCKS * RECORDS_PER_BLOCK - 1
    assert "note: 4 blocks could not have their log root recomputed" in report.render("D")


def test_a_garbled_envelope_gives_a_decode_finding_and_a_root_mismatch(built: tuple[Net, Store]) -> None:
    net, store = built
    _put(store, keys.leaf_key(7), b"\x92\xc4\x01x\xc4\x01y")  # [b"x", b"y"]: not a record
    texts = _texts(scrub.scrub(store.kv, net.genesis))
    assert len(texts) == 2 and texts[0].startswith("leaf 7 (block 3): record does not decode (")
    assert texts[1] == "block 3: log root does not match its records"


def test_an_envelope_moved_to_another_leaf_breaks_the_root_and_its_index(built: tuple[Net, Store]) -> None:
    net, store = built
    _put(store, keys.leaf_key(7), store.load_envelope(8))
    assert _texts(scrub.scrub(store.kv, net.genesis)) == [
        "leaf 7 (block 3): index entry points at leaf 8 of block 3",
        "block 3: log root does not match its records",
    ]


def test_an_overwritten_qc_is_found(built: tuple[Net, Store]) -> None:
    net, store = built
    _put(store, keys.qc_key(4), store.kv.get(keys.qc_key(5)) or b"")
    _put(store, keys.qc_key(6), b"\x90")  # an empty array
    _delete(store, keys.qc_key(7))
    texts = _texts(scrub.scrub(store.kv, net.genesis))
    assert texts[0] == "block 4: QC does not certify its header (qc names a different block than the header)"
    assert texts[1].startswith("block 6: QC does not certify its header (qc must have keys")
    assert texts[2:] == ["block 7: QC missing (not stored)"]


def test_a_qc_short_of_a_quorum_does_not_certify(built: tuple[Net, Store]) -> None:
    net, store = built
    header, qc = store.load_header(2), store.load_qc(2)
    from dataclasses import replace

    _put(store, keys.qc_key(2), replace(qc, signatures=qc.signatures[:1]).encode())
    assert _texts(scrub.scrub(store.kv, net.genesis)) == [
        f"block 2: QC does not certify its header (qc has 1 signatures, needs {net.genesis.quorum})"]
    assert header.block_hash == qc.block_hash


def test_a_missing_index_entry_is_named(built: tuple[Net, Store]) -> None:
    net, store = built
    _delete(store, keys.record_key(_record_id(store, net, 10)))
    report = scrub.scrub(store.kv, net.genesis)
    assert report.findings == [Finding(4, "leaf 10 (block 4): index entry missing")]


def test_a_header_whose_prev_is_wrong_is_found(built: tuple[Net, Store]) -> None:
    net, store = built
    _put(store, keys.block_key(3), store.kv.get(keys.block_key(4)) or b"")  # block 4's header under 3
    texts = _texts(scrub.scrub(store.kv, net.genesis))
    assert texts[0] == "block 3: header stored under the wrong height (it is of block 4)"
    assert texts[1:] == []  # block 4 cannot be followed from 3; its own checks pass


def test_a_missing_merkle_node_is_found(built: tuple[Net, Store]) -> None:
    net, store = built
    _delete(store, keys.node_key(4, 1))  # leaves 16-31, completed by leaf 31 in block 11
    assert _texts(scrub.scrub(store.kv, net.genesis)) == ["Merkle node 4/1 (block 11): missing (not stored)"]


def test_leaf_hashes_that_do_not_match_the_envelopes_are_found_and_missing_ones_are_not(
        built: tuple[Net, Store]) -> None:
    net, store = built
    h1 = store.kv.get(keys.leaf_hashes_key(1))  # leaves 16-31, completed by leaf 31 in block 11
    assert h1 is not None and len(h1) == 16 * 32
    _put(store, keys.leaf_hashes_key(1), h1[:32] + bytes(32) + h1[64:])
    _delete(store, keys.leaf_hashes_key(0))  # as a store written before h/ existed: proofs read the envelopes
    assert _texts(scrub.scrub(store.kv, net.genesis)) == [
        "leaf hashes of leaves 16 to 31 (block 11): do not match the envelopes"]


def test_anything_stored_above_the_head_is_reported(built: tuple[Net, Store]) -> None:
    net, store = built
    leaves = BLOCKS * RECORDS_PER_BLOCK
    _put(store, keys.block_key(BLOCKS + 1), store.kv.get(keys.block_key(BLOCKS)) or b"")
    _put(store, keys.block_key(BLOCKS + 40), b"x")
    _put(store, keys.qc_key(BLOCKS + 1), b"x")
    _put(store, keys.leaf_key(leaves), b"x")
    assert Store(store.kv).height == BLOCKS  # a node would open it and never look
    report = scrub.scrub(store.kv, net.genesis)
    assert report.findings == [
        Finding(BLOCKS + 1, f"block {BLOCKS + 1}: header stored above the head (block {BLOCKS})"),
        Finding(BLOCKS + 1, f"block {BLOCKS + 40}: header stored above the head (block {BLOCKS})"),
        Finding(BLOCKS + 1, f"block {BLOCKS + 1}: QC stored above the head (block {BLOCKS})"),
        Finding(BLOCKS + 1, f"leaf {leaves}: record stored above the head (block {BLOCKS})"),
    ]


def test_a_malformed_head_key_is_reported() -> None:
    net, store = Net(), Store.memory()
    _fill(net, store, 2)
    _put(store, keys.HEAD_KEY, b"\x01")
    report = scrub.scrub(store.kv, net.genesis)
    assert _texts(report) == ["head: m/head is 1 bytes, not a u64 height"]
    assert "(first at the store as a whole)" in report.summary("D")


# -- bounds ---------------------------------------------------------------------------


def test_findings_are_capped_and_the_pass_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    net, store = Net(), Store.memory()
    _fill(net, store)
    for leaf in range(0, BLOCKS * RECORDS_PER_BLOCK, RECORDS_PER_BLOCK):  # one per block
        _delete(store, keys.record_key(_record_id(store, net, leaf)))
    monkeypatch.setattr(scrub, "FINDINGS_MAX", 4)
    report = scrub.scrub(store.kv, net.genesis)
    assert len(report.findings) == 4 and report.truncated
    assert [f.height for f in report.findings] == [1, 2, 3, 4]
    assert report.summary("D").startswith("store damaged: at least 4 findings (first at height 1)")
    assert "(stopped after the first 4 findings)" in report.render("D")


def test_progress_lines_come_at_most_once_per_interval() -> None:
    net, store = Net(), Store.memory()
    _fill(net, store)
    ticks = iter(i * 0.25 for i in range(1000))  # each block "takes" 0.25 s
    lines: list[str] = []
    report = scrub.scrub(store.kv, net.genesis, progress=lines.append, clock=lambda: next(ticks))
    assert report.whole
    assert len(lines) == 3  # at 1, 2 and 3 s: heights 4, 8 and 12
    assert lines[0] == "check: height 4 of 12, 12 records checked, 12 records/s, ETA 2 s"
    assert lines[-1].startswith("check: height 12 of 12, 36 records checked")


# -- read errors: a damaged LevelDB block -----------------------------------------------


class FailingKV:
    """Fails reads of chosen keys as LevelKV does when a LevelDB block fails its checksum
    (plyvel.CorruptionError, translated by storage/leveldb.py); records which reads verified."""

    def __init__(self, inner: Any, bad: set[bytes]) -> None:
        self.inner, self.bad = inner, bad
        self.unverified = 0

    def get(self, key: bytes, verify: bool = False) -> bytes | None:
        self.unverified += not verify
        if key in self.bad:
            raise StoreCorrupt("LevelDB at D is damaged: Corruption: bad entry in block")
        return self.inner.get(key)

    def scan(self, start: bytes, stop: bytes, verify: bool = False) -> Iterator[tuple[bytes, bytes]]:
        self.unverified += not verify
        for key, value in self.inner.scan(start, stop):
            if key in self.bad:
                raise StoreCorrupt("LevelDB at D is damaged: Corruption: corrupted compressed block contents")
            yield key, value


def test_read_errors_are_damage_named_by_height(built: tuple[Net, Store]) -> None:
    net, store = built
    kv = FailingKV(store.kv, {keys.block_key(6), keys.qc_key(8), keys.leaf_key(30)})
    texts = _texts(scrub.scrub(kv, net.genesis))
    assert texts == [
        "block 6: header unreadable (LevelDB at D is damaged: Corruption: bad entry in block)",
        "block 8: QC unreadable (LevelDB at D is damaged: Corruption: bad entry in block)",
        "block 11: records unreadable (LevelDB at D is damaged: Corruption: corrupted compressed block contents)",
    ]
    assert kv.unverified == 0  # every read asked LevelDB to check its checksums


def _flip_middle_of_tables(directory: Path) -> None:
    tables = sorted(directory.glob("*.ldb"))
    assert tables, sorted(p.name for p in directory.iterdir())
    for table in tables:
        data = bytearray(table.read_bytes())
        for i in range(len(data) // 3, 2 * len(data) // 3):
            data[i] ^= 0xFF
        table.write_bytes(bytes(data))


def test_a_corrupted_leveldb_table_is_reported_not_raised(tmp_path: Path) -> None:
    net, directory = Net(), tmp_path / "ledger"
    store = Store.open(directory)
    _fill(net, store)
    store.close()
    Store.open(directory).close()  # reopening moves the write-ahead log into a table file
    _flip_middle_of_tables(directory)
    report = scrub.check_path(directory, net.genesis)
    assert not report.whole and report.findings, report.render(directory)


# -- ledgernode check ----------------------------------------------------------------------


def _node_config(tmp_path: Path, net: Net) -> Path:
    """A node config as devnet writes it (config.render), genesis and key beside it."""
    (tmp_path / "genesis.json").write_bytes(net.genesis.raw)
    crypto.save_private_key(tmp_path / "validator.pem", net.validators[0])
    text = config.render("data", "validator.pem", "genesis.json", "127.0.0.1:7100",
                         "127.0.0.1:7200", {net.validators[i].public.raw.hex(): f"127.0.0.1:{7200 + i}"
                                            for i in range(1, net.n)})
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


@pytest.fixture
def node_dir(tmp_path: Path) -> tuple[Net, Path, Path]:
    """(net, config file, ledger directory) of a stopped node with BLOCKS committed."""
    net = Net()
    cfg = _node_config(tmp_path, net)
    ledger = config.load(cfg).data_dir / "ledger"
    store = Store.open(ledger)
    _fill(net, store)
    store.close()
    return net, cfg, ledger


def _check(capsys: pytest.CaptureFixture[str], cfg: Path) -> tuple[int, str, str]:
    rc = main(["check", "-c", str(cfg)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_check_of_a_whole_store_exits_0(node_dir: tuple[Net, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    net, cfg, _ = node_dir
    rc, out, err = _check(capsys, cfg)
    entries = BLOCKS * RECORDS_PER_BLOCK + len(ledgermap.initial_entries(net.genesis))
    assert (rc, out, err) == (0, f"store whole: {BLOCKS} blocks, {BLOCKS * RECORDS_PER_BLOCK} records, log root OK, "
                                 f"state map OK ({entries} entries)\n", "")


def test_check_of_a_damaged_store_exits_1(node_dir: tuple[Net, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, cfg, ledger = node_dir
    store = Store.open(ledger)
    _delete(store, keys.block_key(5))
    store.close()
    rc, out, _ = _check(capsys, cfg)
    assert rc == 1
    assert out.splitlines() == [
        "block 5: missing (header not stored)",
        f"store damaged: 1 finding (first at height 5); to repair: python -m ledgernode repair -c CONFIG "
        f"--from PEER_API_URL rebuilds {ledger} block by block, or start the node: it rebuilds what is whole "
        "and fetches the rest from its peers, keeping its signing state "
        "(docs/storage.md, \"A damaged store heals block by block\")",
    ]


def test_check_with_unusable_input_exits_2(node_dir: tuple[Net, Path, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    _, cfg, ledger = node_dir
    rc, out, err = _check(capsys, tmp_path / "nope.toml")
    assert (rc, out) == (2, "") and err.startswith("config error: ")
    other = tmp_path / "other.toml"
    other.write_text(cfg.read_text().replace('data_dir = "data"', 'data_dir = "elsewhere"'))
    rc, out, err = _check(capsys, other)
    assert (rc, out) == (2, "") and "no store at" in err
    assert not (tmp_path / "elsewhere").exists()  # checking creates nothing
    (tmp_path / "genesis.json").write_bytes(Net(chain_id="gov-other").genesis.raw)
    rc, out, err = _check(capsys, cfg)
    assert (rc, out) == (2, "") and "'gov-other'" in err


HOLDER = """
import sys
from ledgernode.storage import Store
store = Store.open(sys.argv[1])
print("open", flush=True)
sys.stdin.read()  # hold the store until the parent closes our stdin
store.close()
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}


def test_check_of_a_store_a_running_node_holds_exits_2_naming_its_pid(node_dir: tuple[Net, Path, Path]) -> None:
    _, cfg, ledger = node_dir
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(ledger)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], CHILD_TIMEOUT_S)
        assert ready and proc.stdout.readline().strip() == "open"
        done = subprocess.run([sys.executable, "-m", "ledgernode", "check", "-c", str(cfg)],
                              capture_output=True, text=True, env=_env(), timeout=CHILD_TIMEOUT_S)
        assert (done.returncode, done.stdout) == (2, "")
        assert done.stderr.startswith(f"check: another node process holds {ledger} (pid {proc.pid})")
    finally:
        stop_child(proc, CHILD_TIMEOUT_S)
    done = subprocess.run([sys.executable, "-m", "ledgernode", "check", "-c", str(cfg)],
                          capture_output=True, text=True, env=_env(), timeout=CHILD_TIMEOUT_S)
    assert done.returncode == 0 and done.stdout.startswith("store whole: ")
