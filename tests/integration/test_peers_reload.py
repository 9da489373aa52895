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
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.procs import Cluster, wait_until

pytestmark = pytest.mark.slow


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    assert "validator 3: 127.0.0.1:" in log and f"-> 127.0.0.1:{c.peer_ports[3]}" in log

    # A file that does not load changes nothing; the node keeps going.
    config.write_text(good.replace(right, f'"{key3}" = "nowhere"'))
    os.kill(pid, signal.SIGHUP)
    wait_until("the refused reload counted", lambda: (_metric(c, 0, "peers_reload_refused") == 1, None))
    assert "peers not reloaded" in (c.root / "node0" / "node.log").read_text()
    assert c.submit(0, c.record("r1"), wait=True)[0] == 200
    assert c.get(0, "/v1/status")["peers"]["3"]["out"] == "up"
