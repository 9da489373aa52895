"""ledgernode/threadcpu.py: CPU time by kind of thread, read from /proc (Linux)."""

from __future__ import annotations

import threading
from pathlib import Path
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgernode import threadcpu
from ledgernode.threadcpu import cpu_by_kind, kind_of

# The node runs on Linux, and these read its /proc: every test here needs it, none skips.

def test_kinds_of_thread_names() -> None:
    assert kind_of("MainThread") == "main"
    assert kind_of("disk_0") == "disk"
    assert kind_of("api-read_12") == "api-read"
    assert kind_of("verify") == "verify"
    assert kind_of("Thread-3 (run)") == "python"  # not a label: named apart from ours
    assert kind_of('x"} 1\nevil_0') == "python"
    assert kind_of("a" * (threadcpu.KIND_MAX_CHARS + 1)) == "python"


@given(st.text(max_size=40))
def test_every_kind_is_a_safe_label(name: str) -> None:
    kind = kind_of(name)
    assert threadcpu._LABEL.fullmatch(kind) and len(kind) <= threadcpu.KIND_MAX_CHARS


def _spin(seconds: float) -> float:
    """Burn this thread's CPU for `seconds` of its own CPU time."""
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        sum(range(1000))
    return time.thread_time() - start


def test_a_pool_thread_s_cpu_is_counted_under_its_prefix() -> None:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spinner") as pool:
        before = cpu_by_kind().get("spinner", 0.0)
        burnt = pool.submit(_spin, 0.3).result()
        after = cpu_by_kind()
    assert burnt >= 0.3
    # /proc counts in clock ticks (1/100 s): allow two
    assert after["spinner"] - before >= burnt - 0.02
    assert "main" in after


def test_a_thread_python_does_not_know_is_native(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread absent from threading.enumerate() (as LevelDB's are) is `native`."""
    done = threading.Event()
    worker = threading.Thread(target=lambda: (_spin(0.1), done.wait(30)), name="hidden_0")
    worker.start()  # returns once the thread runs, its native_id set
    try:
        hidden, listed = worker.native_id, threading.enumerate
        monkeypatch.setattr(threading, "enumerate", lambda: [t for t in listed() if t.native_id != hidden])
        kinds = cpu_by_kind()
        assert "native" in kinds and "hidden" not in kinds
    finally:
        done.set()
        worker.join()


def test_kinds_beyond_the_cap_count_as_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threadcpu, "KINDS_MAX", 1)
    assert set(cpu_by_kind()) <= {"main", "other", "native"}
    assert len(cpu_by_kind()) <= 2


def test_no_proc_gives_no_kinds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Where /proc/self/task is not there (not Linux), there is nothing to export, not an error."""
    monkeypatch.setattr(threadcpu, "TASKS", tmp_path / "absent")
    assert cpu_by_kind() == {}
