"""MemoryKV and LevelKV behave as the same ordered map (the KV protocol)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgernode.errors import StoreLocked
from ledgernode.storage.kv import MemoryKV
from ledgernode.storage.leveldb import OWNER_FILE, LevelKV
from tests.fixtures import stop_child

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
    with pytest.raises(StoreLocked, match=f"this process already holds .* \\(pid {os.getpid()}\\)"):
        LevelKV(tmp_path / "db")
    assert (tmp_path / "db" / OWNER_FILE).read_text() == f"{os.getpid()}\n"  # the refused open left it
    first.close()
    assert not (tmp_path / "db" / OWNER_FILE).exists()
    first.close()  # idempotent
    again = LevelKV(tmp_path / "db")
    try:
        assert again.get(b"k") == b"v"
    finally:
        again.close()


# -- the lock across processes (LevelDB's lock is per process: a second open in one
# process fails for another reason than one in a second process) ----------------------

HOLDER = """
import sys
from ledgernode.storage.leveldb import LevelKV
kv = LevelKV(sys.argv[1])
print("open", flush=True)
sys.stdin.read()  # hold the store until the parent closes our stdin
kv.close()
print("closed", flush=True)
"""
CHILD_TIMEOUT_S = 120.0  # a bound on waiting for the child, not an expected time


def _line(proc: subprocess.Popen[str], deadline: float) -> str:
    """The child's next stdout line, waiting at most until `deadline` (monotonic)."""
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            return proc.stdout.readline().strip()
    raise AssertionError(f"child {proc.pid} printed nothing within {CHILD_TIMEOUT_S} s")


@pytest.fixture()
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A second process that has opened tmp_path/db; stopped by its PID afterwards."""
    directory = tmp_path / "db"
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert _line(proc, time.monotonic() + CHILD_TIMEOUT_S) == "open"
        yield proc, directory
    finally:
        stop_child(proc, CHILD_TIMEOUT_S)


def test_lock_held_by_another_process_names_its_pid(holder: tuple[subprocess.Popen[str], Path]) -> None:
    proc, directory = holder
    assert (directory / OWNER_FILE).read_text() == f"{proc.pid}\n"
    with pytest.raises(StoreLocked) as err:
        LevelKV(directory)
    assert str(err.value).startswith(f"another node process holds {directory} (pid {proc.pid})")
    assert (directory / OWNER_FILE).read_text() == f"{proc.pid}\n"  # the refused open did not touch it
    assert proc.stdin is not None
    proc.stdin.close()  # the holder closes its store and exits
    assert _line(proc, time.monotonic() + CHILD_TIMEOUT_S) == "closed"
    assert proc.wait(CHILD_TIMEOUT_S) == 0
    assert not (directory / OWNER_FILE).exists()
    again = LevelKV(directory)
    try:
        assert (directory / OWNER_FILE).read_text() == f"{os.getpid()}\n"
    finally:
        again.close()


def test_lock_without_a_pid_file_is_reported_without_a_pid(holder: tuple[subprocess.Popen[str], Path]) -> None:
    _, directory = holder
    (directory / OWNER_FILE).unlink()  # as a holder that never wrote one would leave it
    with pytest.raises(StoreLocked) as err:
        LevelKV(directory)
    assert str(err.value) == f"another node process holds {directory}"


def test_lock_with_a_pid_file_naming_a_dead_process_omits_the_pid(
        holder: tuple[subprocess.Popen[str], Path]) -> None:
    _, directory = holder
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(CHILD_TIMEOUT_S)
    (directory / OWNER_FILE).write_text(f"{dead.pid}\n")
    with pytest.raises(StoreLocked) as err:
        LevelKV(directory)
    assert str(err.value) == f"another node process holds {directory}"


def test_pid_file_left_by_a_killed_holder_is_replaced(holder: tuple[subprocess.Popen[str], Path]) -> None:
    proc, directory = holder
    os.kill(proc.pid, signal.SIGKILL)  # no close: the pid file stays behind
    proc.wait(CHILD_TIMEOUT_S)
    assert (directory / OWNER_FILE).read_text() == f"{proc.pid}\n"
    kv = LevelKV(directory)  # the kernel released the lock with the process
    try:
        assert (directory / OWNER_FILE).read_text() == f"{os.getpid()}\n"
    finally:
        kv.close()
    assert not (directory / OWNER_FILE).exists()


_FILL_UNTIL_REFUSED = """
import resource, signal, sys
from ledgernode.errors import StoreUnwritable
from ledgernode.storage.leveldb import LevelKV
kv = LevelKV(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))
for i in range(10_000):
    try:
        kv.write([(b"k%d" % i, bytes(64 << 10))], [], sync=True)
    except StoreUnwritable as exc:
        print("refused:", exc)
        break
"""


def test_a_write_the_host_refuses_is_unwritable_not_damage(tmp_path: Path) -> None:
    """A full disk (here a file size limit: the same IOError from LevelDB) is a condition of the
    host, told apart from damage: the node stops and the store is never moved aside."""
    run = subprocess.run([sys.executable, "-c", _FILL_UNTIL_REFUSED, str(tmp_path / "db")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("refused: cannot write LevelDB at") and "(is the disk full?)" in run.stdout
