"""`ledgernode init` end to end (docs/operations.md section 2): keys by `keygen`, a genesis by
the CLI's `genesis`, one peers file and one `init` per node, then four
`python -m ledgernode run --config ...` processes (stopped by PID) that commit a record
submitted with `ledgernode submit`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledgernode.client import Client, ClientError
from tests.integration.procs import START_TIMEOUT_S, STOP_TIMEOUT_S, WAIT_TIMEOUT_S, free_ports, wait_until

pytestmark = pytest.mark.slow
DEPTS = ("justice", "market", "health", "customs")


def ledgernode(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledgernode", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=WAIT_TIMEOUT_S)


def make_network(root: Path) -> tuple[list[Path], list[int]]:
    """Each department's directory with its config written by `init`; (configs, API ports)."""
    pubkeys = []
    for dept in (*DEPTS, "app"):
        done = ledgernode("keygen", "--out", f"keys/{dept}.pem", cwd=root)
        assert done.returncode == 0, done.stderr
        pubkeys.append(json.loads(done.stdout)["pubkey"])
    argv = ["genesis", "--chain-id", "gov-init-net", "--out", "genesis.json", "--client", "justice:keys/app.pem:*"]
    argv += [a for dept in DEPTS for a in ("--validator", f"{dept}:keys/{dept}.pem")]
    assert ledgernode(*argv, cwd=root).returncode == 0
    ports = free_ports(2 * len(DEPTS))
    api, peer = ports[:len(DEPTS)], ports[len(DEPTS):]
    configs = []
    for i, dept in enumerate(DEPTS):
        d = root / dept
        d.mkdir()
        (d / "peers.toml").write_text("".join(f'"{pubkeys[j]}" = "127.0.0.1:{peer[j]}"  # {DEPTS[j]}\n'
                                              for j in range(len(DEPTS)) if j != i))
        done = ledgernode("init", "--genesis", "genesis.json", "--key", f"keys/{dept}.pem",
                          "--peers", f"{dept}/peers.toml", "--data-dir", f"{dept}/data",
                          "--api", f"127.0.0.1:{api[i]}", "--peer-listen", f"127.0.0.1:{peer[i]}",
                          "--out", f"{dept}/node.toml", cwd=root)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"config": f"{dept}/node.toml", "validator": i, "dept": dept, "peers": 3}
        configs.append(d / "node.toml")
    return configs, api


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[Path, list[int]]]:
    configs, api = make_network(tmp_path)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for cfg in configs:
            with (cfg.parent / "node.log").open("ab") as log:
                # From another working directory: the config's relative paths are its own directory's.
                procs.append(subprocess.Popen([sys.executable, "-m", "ledgernode", "run", "--config", str(cfg)],
                                              stdout=log, stderr=subprocess.STDOUT, cwd="/"))
        for port, proc in zip(api, procs):
            wait_until(f"node on port {port} to answer /healthz",
                       lambda: (proc.poll() is not None or Client(f"http://127.0.0.1:{port}").healthy(), proc.poll()),
                       timeout=START_TIMEOUT_S)
            assert proc.poll() is None, (proc.returncode, [(c.parent / "node.log").read_text()[-2000:]
                                                           for c in configs])
        yield tmp_path, api
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_nodes_configured_by_init_commit_a_record(nodes: tuple[Path, list[int]]) -> None:
    root, api = nodes
    done = ledgernode("submit", "--api", f"http://127.0.0.1:{api[0]}", "--key", "keys/app.pem",
                      "--type", "evidence.notarize", "--subject", "init-1", "--file", "genesis.json",
                      "--body", '{"title": "genesis"}', "--wait", "--timeout-ms", "30000", cwd=root)
    assert done.returncode == 0, (done.stdout, done.stderr)
    answer = json.loads(done.stdout)
    assert answer["status"] == "committed"

    def committed_everywhere() -> tuple[bool, list[str]]:
        states = []
        for port in api:
            try:
                states.append(Client(f"http://127.0.0.1:{port}").get_record(answer["id"]).get("status", "?"))
            except ClientError as exc:
                states.append(repr(exc))
        return all(s == "committed" for s in states), states

    wait_until("the record committed on every node", committed_everywhere)
