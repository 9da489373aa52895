"""CPU time by kind of thread, for `/metrics` (docs/operations.md, "Metrics").

A node's CPU goes to its event loop (admission, consensus, the state map's change), its
disk thread (each block's synced commit), its verification pool (signatures), its API
readers, and threads Python does not know: LevelDB's own, which compact what the disk
thread wrote. The process's total says how busy a node is, not where; this says where,
so an operator can tell a node short of signature checks from one whose disk work keeps
LevelDB's compaction busy.

Linux only: each thread's user and system time comes from /proc/self/task/<tid>/stat.
A thread is named by its Python thread's name without the pool's `_<n>` suffix
(`MainThread` is `main`, the disk pool's `disk_0` is `disk`); a thread no Python thread
owns is `native`. The sums are counters while threads live; a pool thread that exits
takes its time with it (Prometheus reads the drop as a reset).
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

TASKS = Path("/proc/self/task")
THREADS_READ_MAX = 512  # a node runs a few dozen; beyond this the rest are not read
KINDS_MAX = 16  # distinct labels exported; threads of further kinds count as "other"
KIND_MAX_CHARS = 24
_POOL_SUFFIX = re.compile(r"_\d+$")
_LABEL = re.compile(r"[a-z][a-z0-9-]*")


def kind_of(name: str) -> str:
    """The label of a Python thread's name: `main`, a pool's prefix, or `python` for a
    name that is not one (a library's "Thread-3 (run)", say)."""
    if name == "MainThread":
        return "main"
    kind = _POOL_SUFFIX.sub("", name).lower()
    return kind if len(kind) <= KIND_MAX_CHARS and _LABEL.fullmatch(kind) else "python"


def stat_cpu_s(stat: Path) -> float:
    """utime + stime, in seconds, of a process's or thread's /proc stat file (OSError if it
    is gone); the command name in it, in parentheses, may hold spaces."""
    fields = stat.read_text(encoding="ascii", errors="replace").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_kind() -> dict[str, float]:
    """CPU seconds of this process's live threads, summed by kind (see the module's
    docstring); empty where /proc is not there."""
    kinds = {t.native_id: kind_of(t.name) for t in threading.enumerate() if t.native_id is not None}
    out: dict[str, float] = {}
    try:
        tids = [entry.name for _, entry in zip(range(THREADS_READ_MAX), os.scandir(TASKS))]
    except OSError:
        return out
    for tid in tids:
        try:
            cpu = stat_cpu_s(TASKS / tid / "stat")
        except (OSError, IndexError, ValueError):
            continue  # the thread ended between the listing and the read
        kind = kinds.get(int(tid), "native")
        if kind not in out and len(out) >= KINDS_MAX:
            kind = "other"
        out[kind] = out.get(kind, 0.0) + cpu
    return out
