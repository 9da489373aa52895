"""`devnet --netns` with real namespaces (ledgernode/devnet/netns.py): each node in its own
network namespace at 10.77.0.(10+i), so no two nodes share a 127.0.0.1. A record submitted
with `submit --devnet` from the root namespace commits on every node, every node's peer
links run between 10.77.0.x addresses, and the namespaces and bridge are gone once the
devnet stops (and those a killed run left are cleared at the next start).

Skipped, with the reason, where namespaces cannot be made (not root, no `ip`, or a
container that forbids them): the probe creates and deletes one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledgernode.client import Client, ClientError
from ledgernode.devnet import netns
from tests.integration.procs import START_TIMEOUT_S, STOP_TIMEOUT_S, WAIT_TIMEOUT_S, wait_until

PEER_PORTS = range(7200, 7204)  # devnet's defaults: node i's peer link on 7100 + 100 + i


def _probe() -> str | None:
    """Why namespaces cannot be made here, or None if they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"ln-testprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"network namespaces are not permitted here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


REASON = _probe()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(REASON is not None, reason=REASON or "")]


def ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=WAIT_TIMEOUT_S)
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout


def leftovers() -> list[str]:
    names = [line.split()[0] for line in ip("netns", "list").splitlines() if line.startswith("ln-node")]
    links = ip("-o", "link", "show")
    return names + [n for n in (netns.BRIDGE, "lnveth0") if f": {n}:" in links or f": {n}@" in links]


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("devnet ignored SIGTERM")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    # What a devnet killed by SIGKILL leaves (its nodes die with it): namespaces, no process in them.
    ip("netns", "add", "ln-node0")
    ip("link", "add", netns.BRIDGE, "type", "bridge")
    root = tmp_path / "d"
    with (tmp_path / "devnet.out").open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ledgernode", "devnet", "--netns", "--dir", str(root)],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until("devnet.json (every node answers /healthz)",
                   lambda: ((root / "devnet.json").exists() or proc.poll() is not None, proc.poll()),
                   timeout=START_TIMEOUT_S)
        assert proc.poll() is None, (tmp_path / "devnet.out").read_text()[-3000:]
        yield root, proc
    finally:
        stop(proc)
        if leftovers():  # the test failed before devnet could clean up: do it for the next run
            netns.teardown()


def test_nodes_in_their_own_namespaces_commit_and_link_over_their_addresses(
        running: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path) -> None:
    root, proc = running
    doc = json.loads((root / "devnet.json").read_text())
    apis = [n["api"] for n in doc["nodes"]]
    assert apis == [f"http://10.77.0.{10 + i}:{7100 + i}" for i in range(4)]
    assert [n["netns"] for n in doc["nodes"]] == [f"ln-node{i}" for i in range(4)]
    assert [ip("netns", "pids", f"ln-node{i}").split() for i in range(4)] == [[str(n["pid"])] for n in doc["nodes"]]

    done = subprocess.run([sys.executable, "-m", "ledgernode", "submit", "--devnet", str(root),
                           "--type", "evidence.notarize", "--subject", "netns-1", "--file", str(root / "genesis.json"),
                           "--body", '{"title": "genesis"}', "--wait", "--timeout-ms", "30000"],
                          capture_output=True, text=True, timeout=WAIT_TIMEOUT_S)
    assert done.returncode == 0, (done.stdout, done.stderr)
    record_id = json.loads(done.stdout)["id"]

    def committed_everywhere() -> tuple[bool, list[str]]:
        states = []
        for api in apis:
            try:
                states.append(str(Client(api).get_record(record_id).get("status")))
            except ClientError as exc:
                states.append(repr(exc))
        return all(s == "committed" for s in states), states

    wait_until("the record committed on every node", committed_everywhere)

    for i in range(4):
        mine, others = f"10.77.0.{10 + i}", {f"10.77.0.{10 + j}" for j in range(4) if j != i}

        def links() -> tuple[bool, list[tuple[str, str]]]:
            lines = ip("netns", "exec", f"ln-node{i}", "ss", "-tnH", "state", "established").splitlines()
            pairs = [(line.split()[-2], line.split()[-1]) for line in lines]  # (local, peer) "host:port"
            peer_links = [(a, b) for a, b in pairs
                          if int(a.rpartition(":")[2]) in PEER_PORTS or int(b.rpartition(":")[2]) in PEER_PORTS]
            dialled = {b.rpartition(":")[0] for a, b in peer_links if int(b.rpartition(":")[2]) in PEER_PORTS}
            return dialled == others, peer_links

        peer_links = wait_until(f"node {i}'s links to the three others", links)
        for local, peer in peer_links:
            assert local.rpartition(":")[0] == mine and peer.rpartition(":")[0] in others, (i, local, peer)

    assert stop(proc) == 0
    assert leftovers() == []
    out = (tmp_path / "devnet.out").read_text()
    assert "network namespaces ln-node* and bridge lnbr0 removed" in out


def test_a_namespace_with_a_process_in_it_is_refused(tmp_path: Path) -> None:
    ip("netns", "add", "ln-node0")
    holder = subprocess.Popen(["ip", "netns", "exec", "ln-node0", sys.executable, "-c",
                               "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        wait_until("a process in ln-node0", lambda: (bool(ip("netns", "pids", "ln-node0").split()), None))
        done = subprocess.run([sys.executable, "-m", "ledgernode", "devnet", "--netns", "--dir", str(tmp_path / "d")],
                              capture_output=True, text=True, timeout=WAIT_TIMEOUT_S)
        assert done.returncode == 2
        assert f"another devnet --netns is running (ln-node0: pid {holder.pid})" in done.stderr
        assert ip("netns", "pids", "ln-node0").split() == [str(holder.pid)]  # left alone
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=STOP_TIMEOUT_S)
        ip("netns", "delete", "ln-node0")
