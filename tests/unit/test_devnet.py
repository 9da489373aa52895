"""devnet: the files it lays out (keys, genesis, node configs, devnet.json) and their reuse,
its restart policy, and (marked slow) real devnet processes restarting and stopping nodes.

Most tests start no process: they cover everything the devnet writes before it
starts anything, its refusals, and the Supervisor driven by fake processes and a
fake clock. The slow ones run `devnet.run` in a child process with real nodes
and stop it, and every node it started, by PID.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ledgernode import config, crypto, devnet, tls
from ledgernode.client import Client
from ledgernode.cli import main
from ledgernode.devnet.nodes import _port_free
from ledgernode.genesis import parse

BASE = 7300


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return tmp_path / "devnet"


def test_first_run_writes_keys_genesis_and_configs(root: Path) -> None:
    net = devnet.prepare(root, 4, BASE)
    assert sorted(p.name for p in root.iterdir()) == ["clients", "genesis.json", "node0", "node1", "node2", "node3"]
    keys = [root / f"node{i}" / "validator.pem" for i in range(4)] + sorted((root / "clients").glob("*.pem"))
    assert len(keys) == 4 + 5  # validators; the ["*"] client and one client per department
    for path in keys:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        crypto.load_private_key(path)

    gen = parse((root / "genesis.json").read_bytes())
    assert gen.chain_id == net.chain_id == "gov-devnet"
    assert [v.dept for v in gen.validators] == ["justice", "market", "health", "customs"]
    assert all(v.name and v.name != v.dept for v in gen.validators)
    doc = json.loads((root / "genesis.json").read_bytes())
    assert doc["clients"][0]["roles"] == ["*"]
    assert {c["dept"] for c in doc["clients"][1:]} == set(gen.depts)
    for c in doc["clients"][1:]:
        assert c["roles"] != ["*"] and c["roles"]

    for i in range(4):
        cfg = config.load(root / f"node{i}" / "node.toml")
        assert cfg.index is None  # the key names the node
        assert cfg.api_listen == ("127.0.0.1", BASE + i)
        assert cfg.peer_listen == ("127.0.0.1", BASE + devnet.PEER_PORT_OFFSET + i)
        assert cfg.peers == {gen.validators[j].pubkey.raw.hex(): ("127.0.0.1", BASE + 100 + j)
                             for j in range(4) if j != i}
        assert cfg.data_dir == (root / f"node{i}" / "data").resolve()
        assert cfg.genesis.resolve() == (root / "genesis.json").resolve()
        assert crypto.load_private_key(cfg.key_file).public == gen.validators[i].pubkey


def test_spare_nodes_have_keys_outside_the_genesis_and_every_config_names_every_node(root: Path) -> None:
    net = devnet.prepare(root, 4, BASE, spare=2)
    gen = parse((root / "genesis.json").read_bytes())
    assert gen.n == 4 and [n.spare for n in net.nodes] == [False] * 4 + [True] * 2
    keys = [crypto.load_private_key(root / f"node{i}" / "validator.pem").public for i in range(6)]
    assert all(gen.validator_set.index_of(k.raw) is None for k in keys[4:])
    assert [n.dept for n in net.nodes[4:]] == ["tax", "police"]  # the departments they would join as
    for i in range(6):
        cfg = config.load(root / f"node{i}" / "node.toml")
        assert cfg.peers == {keys[j].raw.hex(): ("127.0.0.1", BASE + 100 + j) for j in range(6) if j != i}
        assert cfg.api_listen == ("127.0.0.1", BASE + i)
    assert [n.index for n in devnet.prepare(root).nodes] == list(range(6))  # kept as made
    with pytest.raises(devnet.DevnetError, match="holds 2 spare node"):
        devnet.prepare(root, 4, None, spare=1)
    doc = devnet.manifest(net, {})
    assert [n["spare"] for n in doc["nodes"]] == [False] * 4 + [True] * 2
    stray = root / "node6" / "validator.pem"  # a key left behind that no config names
    stray.parent.mkdir()
    crypto.save_private_key(stray, crypto.generate_private_key())
    with pytest.raises(devnet.DevnetError, match="key of no node the devnet's configs name"):
        devnet.prepare(root)
    assert "2 spare node(s)" in devnet.guide(net) and "node5 police" in devnet.guide(net)


def test_department_clients_cover_their_record_types(root: Path) -> None:
    net = devnet.prepare(root, 4, BASE)
    gen = parse((root / "genesis.json").read_bytes())
    for c in net.clients[1:]:
        signer = gen.signers[c.key_id]
        assert signer.dept == c.dept and signer.roles == c.roles
        assert signer.allows("share.access")  # data shared with a department can be read by it
    by_dept = {c.dept: gen.signers[c.key_id] for c in net.clients[1:]}
    assert by_dept["justice"].allows("evidence.notarize")
    assert by_dept["market"].allows("cert.issue") and by_dept["market"].allows("trace.event")
    assert by_dept["health"].allows("dataset.publish") and by_dept["health"].allows("share.grant")
    assert not by_dept["justice"].allows("cert.issue")
    assert gen.signers[net.clients[0].key_id].allows("anything.at.all")


def test_manifest_shape(root: Path) -> None:
    net = devnet.prepare(root, 4, BASE)
    states = {0: devnet.NodeState(101), 1: devnet.NodeState(None, devnet.RESTARTING, "exited with code 1; restarting"),
              2: devnet.NodeState(None, devnet.STOPPED, "given up"), 3: devnet.NodeState(104)}
    path = devnet.write_manifest(net, states)
    assert path == root / "devnet.json" and not (root / "devnet.json.tmp").exists()
    doc = json.loads(path.read_text())
    assert doc == devnet.manifest(net, states)
    assert set(doc) == {"chain_id", "genesis", "nodes", "clients"}
    assert doc["chain_id"] == "gov-devnet" and doc["genesis"] == "genesis.json"
    assert doc["nodes"][0] == {"index": 0, "dept": "justice", "api": f"http://127.0.0.1:{BASE}", "pid": 101,
                               "state": "running", "reason": None, "config": "node0/node.toml", "spare": False}
    assert [(n["pid"], n["state"], n["reason"]) for n in doc["nodes"][1:]] == [
        (None, "restarting", "exited with code 1; restarting"), (None, "stopped", "given up"), (104, "running", None)]
    for i, node in enumerate(doc["nodes"]):
        assert set(node) == {"index", "dept", "api", "pid", "state", "reason", "config", "spare"}
        assert node["index"] == i and node["api"] == f"http://127.0.0.1:{BASE + i}"
        assert (root / node["config"]).is_file()
    assert doc["clients"][0]["roles"] == ["*"]
    gen = parse((root / doc["genesis"]).read_bytes())
    for c in doc["clients"]:
        assert set(c) == {"dept", "key_file", "key_id", "roles"}
        assert not Path(c["key_file"]).is_absolute()
        key = crypto.load_private_key(root / c["key_file"])
        assert key.public.key_id == c["key_id"] and tuple(c["roles"]) == gen.signers[c["key_id"]].roles
    assert {c["dept"] for c in doc["clients"]} == set(gen.depts)
    api, key_file, chain = devnet.read_target(root)
    assert (api, key_file, chain) == (f"http://127.0.0.1:{BASE}", root / doc["clients"][0]["key_file"], "gov-devnet")


def test_second_run_reuses_identical_files(root: Path) -> None:
    first = devnet.prepare(root, 4, BASE)
    before = _snapshot(root)
    assert devnet.prepare(root, 4, BASE) == first
    assert devnet.prepare(root, 4) == first  # no --base-port: the configs' own ports
    assert _snapshot(root) == before  # same bytes, not even rewritten


def test_default_ports(root: Path) -> None:
    net = devnet.prepare(root)
    assert [n.api for n in net.nodes] == [f"http://127.0.0.1:{7100 + i}" for i in range(4)]
    assert [n.peer_listen[1] for n in net.nodes] == [7200 + i for i in range(4)]


def test_other_node_count_is_refused(root: Path) -> None:
    devnet.prepare(root, 4, BASE)
    before = _snapshot(root)
    with pytest.raises(devnet.DevnetError, match="4-node devnet.*--nodes 4"):
        devnet.prepare(root, 7, BASE)
    assert _snapshot(root) == before


def test_cli_refuses_other_node_count(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    devnet.prepare(root, 4, BASE)
    assert main(["devnet", "--nodes", "5", "--dir", str(root), "--base-port", str(BASE)]) == 2
    err = capsys.readouterr().err
    assert "4-node devnet" in err and "--nodes 4" in err
    assert not (root / "devnet.json").exists()


def test_other_base_port_is_refused(root: Path) -> None:
    devnet.prepare(root, 4, BASE)
    with pytest.raises(devnet.DevnetError, match="another --base-port"):
        devnet.prepare(root, 4, BASE + 10)


def test_missing_config_is_rewritten_keys_never(root: Path) -> None:
    devnet.prepare(root, 4, BASE)
    text = (root / "node2" / "node.toml").read_text()
    key = (root / "node2" / "validator.pem").read_bytes()
    (root / "node2" / "node.toml").unlink()
    devnet.prepare(root, 4, BASE)
    assert (root / "node2" / "node.toml").read_text() == text
    assert (root / "node2" / "validator.pem").read_bytes() == key


def test_swapped_validator_key_is_refused(root: Path) -> None:
    devnet.prepare(root, 4, BASE)
    (root / "node1" / "validator.pem").unlink()
    crypto.save_private_key(root / "node1" / "validator.pem", crypto.generate_private_key())
    with pytest.raises(devnet.DevnetError, match="not validator 1's key"):
        devnet.prepare(root, 4, BASE)


def test_interrupted_first_run_keeps_keys_it_made(root: Path) -> None:
    (root / "node0").mkdir(parents=True)
    key = crypto.generate_private_key()
    crypto.save_private_key(root / "node0" / "validator.pem", key)
    devnet.prepare(root, 4, BASE)
    assert parse((root / "genesis.json").read_bytes()).validators[0].pubkey == key.public


def test_many_nodes_get_generic_departments(root: Path) -> None:
    n = len(devnet.DEPARTMENTS) + 2
    net = devnet.prepare(root, n, BASE)
    gen = parse((root / "genesis.json").read_bytes())
    assert gen.n == n and len(set(gen.depts)) == n
    assert [v.dept for v in gen.validators][-2:] == [f"dept{n - 2}", f"dept{n - 1}"]
    assert len(net.clients) == n + 1


@pytest.mark.parametrize("nodes, base", [(0, BASE), (devnet.NODES_MAX + 1, BASE), (4, 80), (4, 65500)])
def test_bad_arguments(root: Path, nodes: int, base: int) -> None:
    with pytest.raises(devnet.DevnetError):
        devnet.prepare(root, nodes, base)
    assert not (root / "genesis.json").exists()


def test_busy_port_is_reported_before_starting(root: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        net = devnet.prepare(root, 1, port)
        with pytest.raises(devnet.DevnetError, match=f"127.0.0.1:{port}"):
            devnet.check_ports(net)


def test_read_target_without_a_running_devnet(root: Path) -> None:
    devnet.prepare(root, 4, BASE)
    with pytest.raises(devnet.DevnetError, match="is the devnet running"):
        devnet.read_target(root)


def test_guide_names_apis_logs_and_a_submit_command(root: Path) -> None:
    net = devnet.prepare(root, 4, BASE)
    text = devnet.guide(net)
    for i in range(4):
        assert f"http://127.0.0.1:{BASE + i}" in text and str(root / f"node{i}" / "node.log") in text
    assert str(root / "devnet.json") in text
    assert f"python -m ledgernode submit --api http://127.0.0.1:{BASE} --key {root / net.clients[0].key_file}" in text
    assert f"python -m ledgernode submit --devnet {root}" in text and "--wait" in text
    assert "python -m ledgernode verify bundle.json --genesis" in text


# -- node command ----------------------------------------------------------------------


def test_node_command_passes_log_options_only_when_they_are_not_the_defaults(root: Path) -> None:
    net = devnet.prepare(root, 1, BASE)
    node = net.nodes[0]
    base = [sys.executable, "-m", "ledgernode", "run", "-c", str((root / "node0" / "node.toml").resolve())]
    assert devnet.node_command(net, node) == base
    assert devnet.node_command(net, node, "info", "text") == base
    assert devnet.node_command(net, node, "debug", "text") == base + ["--log-level", "debug"]
    assert devnet.node_command(net, node, "info", "json") == base + ["--log-format", "json"]
    assert devnet.node_command(net, node, "warning", "json") == base + ["--log-level", "warning",
                                                                        "--log-format", "json"]


@pytest.mark.parametrize("options, named", [({"log_level": "loud"}, "log level 'loud'"),
                                            ({"log_format": "xml"}, "log format 'xml'")])
def test_bad_log_options_are_refused_before_any_node_starts(root: Path, options: dict[str, str],
                                                            named: str) -> None:
    net = devnet.prepare(root, 1, BASE)
    with pytest.raises(devnet.DevnetError, match=named):
        devnet.run(net, **options)
    assert not (root / "node0" / "node.log").exists() and not (root / "devnet.json").exists()


# -- restart policy (fake processes, fake clock) -----------------------------------------


class FakeProc:
    """What the Supervisor uses of a Popen: pid and poll()."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.code: int | None = None

    def poll(self) -> int | None:
        return self.code


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Spawner:
    """Starts FakeProcs with fresh pids; each start leaves a line in the node's log."""

    def __init__(self, net: devnet.Devnet) -> None:
        self.net, self.next_pid, self.started = net, 5_000, []

    def __call__(self, node: devnet.NodeFiles) -> FakeProc:
        proc = FakeProc(self.next_pid)
        self.next_pid += 1
        self.started.append((node.index, proc.pid))
        with (self.net.root / node.log).open("a") as f:
            f.write(f"node {node.index} up as pid {proc.pid}\n")
        return proc


def _supervisor(root: Path, policy: devnet.RestartPolicy = devnet.RestartPolicy()
                ) -> tuple[devnet.Supervisor, FakeClock, Spawner]:
    net = devnet.prepare(root, 2, BASE)
    clock, spawn = FakeClock(), Spawner(net)
    sup = devnet.Supervisor(net, spawn, policy, clock)  # type: ignore[arg-type]  # FakeProc for Popen
    sup.start_all()
    return sup, clock, spawn


def test_default_policy_constants() -> None:
    policy = devnet.RestartPolicy()
    assert (policy.restarts_max, policy.window_ms) == (devnet.RESTARTS_MAX, devnet.RESTART_WINDOW_MS) == (5, 600_000)
    assert [policy.backoff_s(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]


def test_an_exited_node_is_restarted_after_its_backoff(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sup, clock, spawn = _supervisor(root)
    assert sup.states() == {0: devnet.NodeState(5000), 1: devnet.NodeState(5001)}
    capsys.readouterr()
    sup.procs[1].code = 3  # type: ignore[attr-defined]
    assert sup.poll()
    err = capsys.readouterr().err
    assert "devnet: node 1 (market) exited with code 3; restarting it in 1 s (restart 1 of at most 5 in 600 s)" in err
    assert f"Last lines of {root / 'node1' / 'node.log'}:\n    node 1 up as pid 5001" in err
    assert sup.states()[1] == devnet.NodeState(None, devnet.RESTARTING, "exited with code 3; restarting")
    assert sup.expected() == {0: 5000, 1: None}
    assert sup.wait_s(5.0) == 1.0 and sup.wait_s(0.5) == 0.5
    clock.now += 0.999
    assert not sup.poll() and spawn.started[-1] == (1, 5001)  # not yet
    clock.now += 0.001
    assert sup.poll()
    assert spawn.started[-1] == (1, 5002) and sup.states()[1] == devnet.NodeState(5002)
    assert "devnet: restarted node 1 (market) pid 5002" in capsys.readouterr().err
    assert sup.states()[0] == devnet.NodeState(5000)  # the other node was left alone


def test_backoff_doubles_and_the_node_is_given_up_after_the_last_restart(
        root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sup, clock, spawn = _supervisor(root)
    delays = []
    for _ in range(devnet.RESTARTS_MAX):
        sup.procs[0].code = -9  # type: ignore[attr-defined]
        assert sup.poll()
        delays.append(sup.wait_s(3600.0))
        clock.now += delays[-1]
        assert sup.poll()
    assert delays == [1, 2, 4, 8, 16]
    assert [pid for i, pid in spawn.started if i == 0] == [5000, 5002, 5003, 5004, 5005, 5006]
    capsys.readouterr()
    sup.procs[0].code = -9  # type: ignore[attr-defined]
    assert sup.poll()
    err = capsys.readouterr().err
    assert "devnet: node 0 (justice) was killed by SIGKILL (exit code -9); restarted 5 times within 600 s" in err
    assert "given up (the others keep running)" in err and "node 0 up as pid 5006" in err
    reason = "was killed by SIGKILL (exit code -9); given up after 5 restarts within 600 s"
    assert sup.states() == {0: devnet.NodeState(None, devnet.STOPPED, reason), 1: devnet.NodeState(5001)}
    assert sup.expected() == {1: 5001} and not sup.all_given_up()
    clock.now += 3600
    assert not sup.poll() and len(spawn.started) == 7  # given up means never started again
    doc = devnet.manifest(sup.net, sup.states())
    assert doc["nodes"][0]["pid"] is None and doc["nodes"][0]["state"] == "stopped"
    assert doc["nodes"][0]["reason"] == reason


def test_restarts_older_than_the_window_no_longer_count(root: Path) -> None:
    sup, clock, _ = _supervisor(root)
    for _ in range(devnet.RESTARTS_MAX):
        sup.procs[1].code = 1  # type: ignore[attr-defined]
        sup.poll()
        clock.now += sup.wait_s(3600.0)
        sup.poll()
    clock.now += devnet.RESTART_WINDOW_MS / 1000  # every restart so far is out of the window
    sup.procs[1].code = 1  # type: ignore[attr-defined]
    assert sup.poll()
    assert sup.states()[1].state == devnet.RESTARTING and sup.wait_s(3600.0) == 1.0  # backoff starts over


def test_every_node_given_up(root: Path) -> None:
    sup, _, spawn = _supervisor(root, devnet.RestartPolicy(restarts_max=0))
    sup.procs[0].code = 0  # type: ignore[attr-defined]  # a clean exit is unexpected too
    sup.poll()
    assert not sup.all_given_up()
    sup.procs[1].code = 2  # type: ignore[attr-defined]
    sup.poll()
    assert sup.all_given_up() and sup.expected() == {} and len(spawn.started) == 2
    assert {s.state for s in sup.states().values()} == {devnet.STOPPED}


# -- real devnet processes -----------------------------------------------------------

RUNNER = """
import sys
from pathlib import Path
from ledgernode import devnet
root, nodes, base, restarts_max, backoff_ms = sys.argv[1], *map(int, sys.argv[2:])
net = devnet.prepare(Path(root), nodes, base)
sys.exit(devnet.run(net, policy=devnet.RestartPolicy(restarts_max=restarts_max, backoff_ms=backoff_ms)))
"""
PROC_TIMEOUT_S = 60.0  # generous: a 2-core machine shared with other test runs


def _free_base(nodes: int) -> int:
    """A base port whose API and peer ports are all free now (outside the ephemeral range)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 30_000)
        if all(_port_free(("127.0.0.1", base + off + i)) for off in (0, devnet.PEER_PORT_OFFSET)
               for i in range(nodes)):
            return base
    raise AssertionError("no free port range")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for(what: str, check: Callable[[], Any], timeout_s: float = PROC_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)  # polling interval, not a wait for something to happen
    raise AssertionError(f"not within {timeout_s:g} s: {what}")


class RunningDevnet:
    """`devnet.run` in a child process; remembers every node pid it saw in devnet.json."""

    def __init__(self, root: Path, nodes: int, restarts_max: int = devnet.RESTARTS_MAX,
                 backoff_ms: int = devnet.RESTART_BACKOFF_MS) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.out, self.err = root.parent / "devnet.out", root.parent / "devnet.err"
        repo = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)}
        args = [str(root), str(nodes), str(_free_base(nodes)), str(restarts_max), str(backoff_ms)]
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", RUNNER, *args], stdout=out, stderr=err, env=env)
        self.node_pids: set[int] = set()

    def manifest(self) -> dict[str, Any] | None:
        try:
            doc = json.loads((self.root / "devnet.json").read_bytes())
        except (OSError, ValueError):  # not written yet (it is replaced atomically, never half)
            return None
        self.node_pids |= {n["pid"] for n in doc["nodes"] if n["pid"] is not None}
        return doc

    def node(self, i: int) -> dict[str, Any] | None:
        doc = self.manifest()
        return doc["nodes"][i] if doc else None

    def stderr(self) -> str:
        return self.err.read_text()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the devnet by PID and wait for it; SIGKILL if it does not stop."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        try:
            return self.proc.wait(PROC_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"devnet ignored signal {sig} for {PROC_TIMEOUT_S:g} s") from None

    def kill_leftovers(self) -> list[int]:
        """SIGKILL, by PID, any node process of this devnet still running; returns their pids."""
        left = []
        for pid in self.node_pids:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if str(self.root.resolve()).encode() in cmdline:  # still ours, not a reused pid
                os.kill(pid, signal.SIGKILL)
                left.append(pid)
        return left


@pytest.fixture()
def running(tmp_path: Path) -> Iterator[Callable[..., RunningDevnet]]:
    started: list[RunningDevnet] = []

    def start(nodes: int, **kwargs: int) -> RunningDevnet:
        started.append(RunningDevnet(tmp_path / "devnet", nodes, **kwargs))
        return started[-1]

    yield start
    for d in started:  # a test that failed half-way still stops everything, by PID
        try:
            if d.proc.poll() is None:
                d.stop(signal.SIGTERM)
        finally:
            for pid in d.kill_leftovers():
                _wait_for(f"node pid {pid} gone after SIGKILL", lambda: not _alive(pid))


def _ready(d: RunningDevnet, nodes: int) -> dict[str, Any]:
    def ok() -> dict[str, Any] | None:
        assert d.proc.poll() is None, d.stderr()
        doc = d.manifest()
        return doc if doc and all(n["state"] == "running" for n in doc["nodes"]) else None

    doc = _wait_for("devnet.json with every node running", ok)
    assert len(doc["nodes"]) == nodes
    return doc


@pytest.mark.slow
def test_devnet_restarts_a_killed_node_and_sigterm_stops_every_node(running: Callable[..., RunningDevnet]) -> None:
    d = running(2)
    doc = _ready(d, 2)
    old, other = doc["nodes"][0]["pid"], doc["nodes"][1]["pid"]
    os.kill(old, signal.SIGKILL)
    node0 = _wait_for("node 0 running again with a new pid",
                      lambda: (n := d.node(0)) and n["state"] == "running" and n["pid"] not in (None, old) and n)
    new = node0["pid"]
    assert _alive(new) and d.node(1)["pid"] == other  # type: ignore[index]
    _wait_for("the restarted node 0 answers /healthz", lambda: Client(node0["api"], timeout_s=1.0).healthy())
    err = d.stderr()
    assert "devnet: node 0 (justice) was killed by SIGKILL (exit code -9); restarting it in 1 s" in err
    tail = err.split(f"Last lines of {d.root / 'node0' / 'node.log'}:\n", 1)[1]
    assert tail.startswith("    \n    --- devnet starting node 0 at ")  # the log's last lines, indented
    assert f"devnet: restarted node 0 (justice) pid {new}" in err

    assert d.stop(signal.SIGTERM) == 0
    assert not any(_alive(pid) for pid in (old, new, other))
    assert not (d.root / "devnet.json").exists()  # the devnet is not running any more
    assert "devnet: all nodes stopped" in d.out.read_text()


@pytest.mark.slow
def test_devnet_gives_up_on_a_node_that_keeps_failing_and_ctrl_c_stops_the_rest(
        running: Callable[..., RunningDevnet]) -> None:
    d = running(2, restarts_max=2, backoff_ms=50)
    doc = _ready(d, 2)
    keep = doc["nodes"][0]["pid"]
    (d.root / "node1" / "node.toml").write_text("index = 'not a number'\n")  # every restart now fails
    os.kill(doc["nodes"][1]["pid"], signal.SIGKILL)
    node1 = _wait_for("node 1 given up", lambda: (n := d.node(1)) and n["state"] == "stopped" and n)
    assert node1["pid"] is None
    assert node1["reason"] == "exited with code 2; given up after 2 restarts within 600 s"
    assert d.node(0) == {**doc["nodes"][0], "pid": keep, "state": "running"}
    err = d.stderr()
    assert err.count("devnet: node 1 (market) exited with code 2; restarting it in") == 1  # the second restart
    assert "restarted 2 times within 600 s already, so given up (the others keep running)" in err
    assert "config error: index" in err  # the node's own words, from the tail of its log

    assert d.stop(signal.SIGINT) == 0  # Ctrl-C
    assert not _alive(keep) and not (d.root / "devnet.json").exists()


@pytest.mark.slow
def test_devnet_exits_when_every_node_is_given_up(running: Callable[..., RunningDevnet]) -> None:
    d = running(1, restarts_max=1, backoff_ms=50)
    pid = _ready(d, 1)["nodes"][0]["pid"]
    (d.root / "node0" / "node.toml").write_text("index = 'not a number'\n")
    os.kill(pid, signal.SIGKILL)
    assert d.proc.wait(PROC_TIMEOUT_S) == 1
    assert "devnet: every node has been given up; stopping" in d.stderr()
    assert not _alive(pid) and not (d.root / "devnet.json").exists()


def test_tls_lays_out_a_ca_and_a_certificate_per_node_and_stays_as_made(root: Path) -> None:
    net = devnet.prepare(root, 4, BASE, tls=True)
    assert net.ca_file == root / "tls" / "ca.crt" and stat.S_IMODE((root / "tls").stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in (root / "tls").glob("*.key")} == {0o600}
    for n in net.nodes:
        assert n.api == f"https://127.0.0.1:{BASE + n.index}"
        cfg = config.load(root / n.config)
        assert cfg.tls is not None and cfg.tls.cert_file.resolve() == (root / "tls" / f"node{n.index}.crt").resolve()
        loaded = tls.load(cfg.tls)  # the certificate and key pair, and the CA, load as the node loads them
        assert loaded.fingerprint
    assert devnet.manifest(net, {})["ca_file"] == "tls/ca.crt"
    assert "ca_file" not in devnet.manifest(devnet.prepare(root.parent / "plain", 4, BASE), {})
    with pytest.raises(devnet.DevnetError, match="made with --tls"):
        devnet.prepare(root, 4, BASE, tls=False)
    assert devnet.prepare(root, 4, BASE) == net  # as it was made
