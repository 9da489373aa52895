"""Peer addresses keyed by validator public key, reloaded on SIGHUP (ledgernode/peers.py),
on real `python -m ledgernode run` processes (tests/integration/procs.py).

Node 0 starts with a wrong address for validator 3, so its link to 3 stays down while
the other links carry consensus. Its config file is then mended and node 0 gets SIGHUP:
it dials the right address without a restart (same PID, same height on). A config that
does not load changes nothing and is counted; the node keeps running."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.procs import Cluster, wait_until

pytestmark = pytest.mark.slow
HANGUP_EVERY_S = 0.02  # SIGHUPs sent while a node starts


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _takes_sighup(pid: int) -> bool:
    """Does the process ignore or catch SIGHUP (signal 1: bit 0 of /proc's masks)?"""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    masks = dict(line.split(":\t", 1) for line in status.splitlines() if line.startswith(("SigIgn", "SigCgt")))
    return any(int(masks.get(name, "0"), 16) & 1 for name in ("SigIgn", "SigCgt"))


def _metric(c: Cluster, i: int, event: str) -> int:
    with urllib.request.urlopen(c.api(i) + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    line = f'ledgernode_events_total{{event="{event}"}} '
    return next((int(row[len(line):]) for row in text.splitlines() if row.startswith(line)), 0)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    c.stop_all()


def test_sighup_dials_the_mended_address_without_a_restart(cluster: Cluster) -> None:
    c = cluster
    config = c.root / "node0" / "node.toml"
    good = config.read_text()
    key3 = c.keys[3].public.raw.hex()
    right = f'"{key3}" = "127.0.0.1:{c.peer_ports[3]}"'
    assert right in good
    config.write_text(good.replace(right, f'"{key3}" = "127.0.0.1:{_dead_port()}"'))
    c.start_all()
    pid = c.procs[0].pid
    record = c.record("r0")
    wait_until("a record committed without node 0's link to validator 3",
               lambda: ((answer := c.submit(0, record, wait=True))[0] == 200, answer))
    status = c.get(0, "/v1/status")
    assert status["peers"]["3"]["out"] != "up" and status["peers"]["1"]["out"] == "up", status["peers"]

    config.write_text(good)
    os.kill(pid, signal.SIGHUP)
    wait_until("node 0's link to validator 3 up after SIGHUP",
               lambda: ((peers := c.get(0, "/v1/status")["peers"])["3"]["out"] == "up", peers))
    assert c.procs[0].pid == pid and c.procs[0].poll() is None  # the same process: no restart
    assert _metric(c, 0, "peers_reloaded") == 1
    log = (c.root / "node0" / "node.log").read_text()
    assert "peer 3: 127.0.0.1:" in log and f"-> 127.0.0.1:{c.peer_ports[3]}" in log

    # A file that does not load changes nothing; the node keeps going.
    config.write_text(good.replace(right, f'"{key3}" = "nowhere"'))
    os.kill(pid, signal.SIGHUP)
    wait_until("the refused reload counted", lambda: (_metric(c, 0, "peers_reload_refused") == 1, None))
    assert "peers not reloaded" in (c.root / "node0" / "node.log").read_text()
    assert c.submit(0, c.record("r1"), wait=True)[0] == 200
    assert c.get(0, "/v1/status")["peers"]["3"]["out"] == "up"


def test_sighup_while_the_node_starts_neither_kills_it_nor_is_lost(cluster: Cluster) -> None:
    """SIGHUP's default action ends a process: until the node's loop takes it, it must not."""
    c = cluster
    started = threading.Event()
    sent: list[int] = []

    def hangups() -> None:
        deadline = time.monotonic() + 30.0
        while not started.is_set() and time.monotonic() < deadline:
            proc = c.procs.get(0)
            # From the moment the process ignores or catches SIGHUP: before, the interpreter
            # is still starting up and no Python code has run (nothing can cover that).
            if proc is not None and proc.poll() is None and _takes_sighup(proc.pid):
                os.kill(proc.pid, signal.SIGHUP)
                sent.append(proc.pid)
            started.wait(HANGUP_EVERY_S)  # the attack's pace (and the stop signal)

    thread = threading.Thread(target=hangups, daemon=True)
    thread.start()
    try:
        c.start(0)  # raises if the node exits
    finally:
        started.set()
        thread.join(timeout=10)
    assert sent and c.procs[0].poll() is None
    wait_until("the SIGHUPs taken as a reload", lambda: (_metric(c, 0, "peers_reloaded") >= 1, None))
