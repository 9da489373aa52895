"""MemoryKV and LevelKV behave as the same ordered map (the KV protocol)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgernode.errors import StoreLocked
from ledgernode.storage.kv import MemoryKV
from ledgernode.storage.leveldb import LevelKV

keys = st.binary(min_size=1, max_size=4).map(lambda b: b"k" + b)
values = st.binary(max_size=8)
writes = st.lists(
    st.tuples(st.lists(st.tuples(keys, values), max_size=6), st.lists(keys, max_size=3)),
    min_size=1, max_size=8,
)
ranges = st.lists(st.tuples(st.binary(max_size=5), st.binary(max_size=5)), min_size=1, max_size=5)


def apply(model: dict[bytes, bytes], puts: list[tuple[bytes, bytes]], deletes: list[bytes]) -> None:
    for k, v in puts:
        model[k] = v
    for k in deletes:
        model.pop(k, None)


@settings(max_examples=60, deadline=None)
@given(writes, ranges)
def test_memory_and_leveldb_agree_with_a_dict(ops: list, scans: list) -> None:
    with tempfile.TemporaryDirectory() as d:
        level = LevelKV(Path(d) / "db")
        mem = MemoryKV()
        model: dict[bytes, bytes] = {}
        try:
            for puts, deletes in ops:
                for kv in (mem, level):
                    kv.write(list(puts), list(deletes), sync=False)
                apply(model, puts, deletes)
                for k in {k for k, _ in puts} | set(deletes):
                    assert mem.get(k) == level.get(k) == model.get(k)
            for start, stop in scans + [(b"", b"\xff")]:
                want = sorted((k, v) for k, v in model.items() if start <= k < stop)
                assert list(mem.scan(start, stop)) == want
                assert list(level.scan(start, stop)) == want
        finally:
            level.close()


@pytest.mark.parametrize("kind", ["memory", "leveldb"])
def test_scan_bounds_and_partial_iteration(kind: str, tmp_path: Path) -> None:
    kv = MemoryKV() if kind == "memory" else LevelKV(tmp_path / "db")
    try:
        kv.write([(b"a", b"1"), (b"b", b"2"), (b"b\x00", b"3"), (b"c", b"4")], [], sync=True)
        assert [k for k, _ in kv.scan(b"b", b"c")] == [b"b", b"b\x00"]  # stop excluded
        assert list(kv.scan(b"c", b"b")) == []
        it = kv.scan(b"a", b"z")
        assert next(it) == (b"a", b"1")
        del it  # abandoning an iterator part-way is fine
        kv.write([(b"d", b"5")], [b"a", b"missing"], sync=True)
        assert kv.get(b"a") is None and kv.get(b"d") == b"5"
        assert [k for k, _ in kv.scan(b"", b"\xff")] == [b"b", b"b\x00", b"c", b"d"]
    finally:
        kv.close()


def test_leveldb_lock_and_reopen(tmp_path: Path) -> None:
    first = LevelKV(tmp_path / "db")
    first.write([(b"k", b"v")], [], sync=True)
    with pytest.raises(StoreLocked):
        LevelKV(tmp_path / "db")
    first.close()
    first.close()  # idempotent
    again = LevelKV(tmp_path / "db")
    try:
        assert again.get(b"k") == b"v"
    finally:
        again.close()
