"""A local development network: N validator processes on 127.0.0.1 sharing one genesis.

`python -m ledgernode devnet --nodes N --dir D --base-port P` lays out, on first use:

    D/genesis.json              chain "gov-devnet", one validator per department
    D/node{i}/validator.pem     validator i's key (PEM PKCS#8, mode 0600)
    D/node{i}/node.toml         API on 127.0.0.1:P+i, peer link on 127.0.0.1:P+100+i
    D/node{i}/data/             the node's LevelDB
    D/node{i}/node.log          the node's stdout and stderr
    D/clients/admin.pem         a client of department 0 allowed every type (roles ["*"])
    D/clients/<dept>.pem        one client per department, roles for that department's work
    D/devnet.json               what is running: APIs, pids, configs, client keys

Later runs reuse every file: keys and the genesis are never regenerated (a
different --nodes is refused), and node configs are kept as they are.

devnet.json appears once every node answers /healthz and is removed when the
devnet stops. A node process that exits on its own is started again after a
backoff (1 s, doubling), at most RESTARTS_MAX times within RESTART_WINDOW_MS;
each exit is reported on stderr with the node, its exit code and the last lines
of its log. devnet.json follows: each node has the pid of its process as it
runs now and a "state" of "running", "restarting" (pid null while the backoff
runs) or "stopped" (given up: pid null, "reason" says why). The process runs
until SIGTERM or Ctrl-C, or until every node has been given up, and then stops
every node it started by its pid.
"""

from __future__ import annotations

import ctypes
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config, crypto, genesis as genesis_mod, logs
from .client import Client
from .errors import InvalidInput
from .families import FOR_EVERY_DEPT, WILDCARD_ROLES

CHAIN_ID = "gov-devnet"
DEFAULT_NODES = 4
DEFAULT_DIR = "devnet"
DEFAULT_BASE_PORT = 7100
PEER_PORT_OFFSET = 100  # node i: API on base+i, peer link on base+100+i
NODES_MAX = PEER_PORT_OFFSET - 1  # keeps the API and peer port ranges apart
HOST = "127.0.0.1"
GENESIS_FILE = "genesis.json"
MANIFEST_FILE = "devnet.json"
CLIENTS_DIR = "clients"
ADMIN_CLIENT = "admin"
HEALTH_TIMEOUT_S = 120.0  # a bound on waiting for every node to answer /healthz (a loaded machine is slow)
HEALTH_PROBE_TIMEOUT_S = 1.0
PROGRESS_EVERY_S = 3.0
POLL_S = 1.0
STOP_TIMEOUT_S = 30.0  # nodes stop within a couple of seconds; past this bound they are killed
LOG_TAIL_LINES = 8
LOG_TAIL_BYTES = 4096
RESTARTS_MAX = 5  # restarts of one node within RESTART_WINDOW_MS before devnet gives up on it
RESTART_WINDOW_MS = 600_000  # 10 min: a node that crashes less often than this is restarted forever
RESTART_BACKOFF_MS = 1_000  # before the first restart in the window; doubles with each further one
RESTART_BACKOFF_MAX_MS = 30_000
DEFAULT_LOG_LEVEL = "info"  # the node's own defaults: only other values are passed to `run`
DEFAULT_LOG_FORMAT = "text"
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)

# dept id, display name, record families its own client submits (roles of families/)
DEPARTMENTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("justice", "Ministry of Justice", ("evidence.*",)),
    ("market", "State Administration for Market Regulation", ("cert.*", "trace.*")),
    ("health", "National Health Commission", ("dataset.*", "share.*", "cert.*")),
    ("customs", "General Administration of Customs", ("trace.*", "cert.*")),
    ("tax", "State Taxation Administration", ("dataset.*", "share.*")),
    ("police", "Ministry of Public Security", ("evidence.*", "cert.*")),
    ("court", "Supreme People's Court", ("evidence.*",)),
    ("transport", "Ministry of Transport", ("cert.*", "trace.*")),
    ("agriculture", "Ministry of Agriculture and Rural Affairs", ("trace.*", "dataset.*", "share.*")),
    ("ecology", "Ministry of Ecology and Environment", ("dataset.*", "share.*", "evidence.*")),
)
ALL_FAMILIES = WILDCARD_ROLES  # a generic department does every kind of work


class DevnetError(Exception):
    """The devnet directory or the arguments cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class NodeFiles:
    index: int
    dept: str
    config: str  # relative to the devnet directory
    api: str  # http://127.0.0.1:port
    api_listen: tuple[str, int]
    peer_listen: tuple[str, int]
    log: str  # relative to the devnet directory


@dataclass(frozen=True)
class ClientFiles:
    dept: str
    key_file: str  # relative to the devnet directory
    key_id: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Devnet:
    root: Path
    chain_id: str
    nodes: tuple[NodeFiles, ...]
    clients: tuple[ClientFiles, ...]


# -- files ---------------------------------------------------------------------------


def department(i: int) -> tuple[str, str, tuple[str, ...]]:
    """Validator i's department: the known ones first, then generic ones."""
    if i < len(DEPARTMENTS):
        return DEPARTMENTS[i]
    return f"dept{i}", f"Department {i}", ALL_FAMILIES


def client_roles(families: tuple[str, ...]) -> list[str]:
    """`families`, and the types every department needs whatever its work (share.access:
    every department may read data shared with it) where those do not cover them."""
    roles = list(families)
    roles += [t for t in FOR_EVERY_DEPT if not any(genesis_mod.role_allows(role, t) for role in families)]
    return roles


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _key(path: Path) -> crypto.PrivateKey:
    """The key at `path`, created (mode 0600) if the file does not exist yet."""
    if path.exists():
        return crypto.load_private_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = crypto.generate_private_key()
    crypto.save_private_key(path, key)
    return key


def _node_config_text(i: int, n: int, base_port: int) -> str:
    peers = {j: f"{HOST}:{base_port + PEER_PORT_OFFSET + j}" for j in range(n) if j != i}
    return config.render(
        data_dir="data", key_file="validator.pem", genesis=f"../{GENESIS_FILE}", index=i,
        api=f"{HOST}:{base_port + i}", peer=f"{HOST}:{base_port + PEER_PORT_OFFSET + i}", peers=peers,
    )


def _check_args(nodes: int, base_port: int) -> None:
    if not 1 <= nodes <= NODES_MAX:
        raise DevnetError(f"--nodes must be 1 to {NODES_MAX}, got {nodes}")
    if not 1024 <= base_port or base_port + PEER_PORT_OFFSET + nodes - 1 > 65535:
        raise DevnetError(f"--base-port {base_port}: ports {base_port}..{base_port + PEER_PORT_OFFSET + nodes - 1} "
                          "must lie within 1024..65535")


def create(root: Path, nodes: int, base_port: int) -> None:
    """Write keys, genesis and node configs for a new devnet (keys already present are kept)."""
    _check_args(nodes, base_port)
    root.mkdir(parents=True, exist_ok=True)
    validators, clients = [], []
    for i in range(nodes):
        dept, name, _ = department(i)
        key = _key(root / f"node{i}" / "validator.pem")
        validators.append({"dept": dept, "name": name, "pubkey": key.public.raw.hex()})
    admin = _key(root / CLIENTS_DIR / f"{ADMIN_CLIENT}.pem")
    clients.append({"dept": department(0)[0], "pubkey": admin.public.raw.hex(), "roles": ["*"]})
    for i in range(nodes):
        dept, _, families = department(i)
        key = _key(root / CLIENTS_DIR / f"{dept}.pem")
        clients.append({"dept": dept, "pubkey": key.public.raw.hex(), "roles": client_roles(families)})
    os.chmod(root / CLIENTS_DIR, 0o700)
    raw = genesis_mod.build(CHAIN_ID, validators, clients)
    write_atomic(root / GENESIS_FILE, raw)
    for i in range(nodes):
        write_atomic(root / f"node{i}" / "node.toml", _node_config_text(i, nodes, base_port).encode())


def _node_files(root: Path, gen: genesis_mod.Genesis, i: int, base_port: int | None) -> NodeFiles:
    rel = f"node{i}/node.toml"
    path = root / rel
    if not path.exists():
        write_atomic(path, _node_config_text(i, gen.n, base_port or DEFAULT_BASE_PORT).encode())
    try:
        cfg = config.load(path)
    except config.ConfigError as exc:
        raise DevnetError(f"{path}: {exc}") from None
    if cfg.index != i:
        raise DevnetError(f"{path}: index is {cfg.index}, expected {i}")
    if base_port is not None and cfg.api_listen[1] != base_port + i:
        raise DevnetError(f"{path} puts node {i}'s API on port {cfg.api_listen[1]}, not {base_port + i}: "
                          f"this devnet was made with another --base-port; run without --base-port "
                          f"to use its ports, or use another --dir")
    try:
        key = crypto.load_private_key(cfg.key_file)
    except crypto.KeyFileError as exc:
        raise DevnetError(str(exc)) from None
    if key.public.raw != gen.validators[i].pubkey.raw:
        raise DevnetError(f"{cfg.key_file} is not validator {i}'s key in {root / GENESIS_FILE}")
    host, port = cfg.api_listen
    return NodeFiles(i, gen.validators[i].dept, rel, f"http://{host}:{port}", cfg.api_listen,
                     cfg.peer_listen, f"node{i}/node.log")


def _client_files(root: Path, gen: genesis_mod.Genesis) -> tuple[ClientFiles, ...]:
    """Genesis clients (in genesis order) whose key file is in D/clients."""
    by_id: dict[str, str] = {}
    for path in sorted((root / CLIENTS_DIR).glob("*.pem")):
        try:
            by_id[crypto.load_private_key(path).public.key_id] = f"{CLIENTS_DIR}/{path.name}"
        except crypto.KeyFileError as exc:
            print(f"devnet: skipping {path}: {exc}", file=sys.stderr)
    out = []
    for key_id, signer in gen.signers.items():
        if signer.validator is None and key_id in by_id:
            out.append(ClientFiles(signer.dept, by_id[key_id], key_id, signer.roles))
    return tuple(out)


def load(root: Path, nodes: int | None = None, base_port: int | None = None) -> Devnet:
    """Describe an existing devnet directory, checking it is usable as it stands."""
    try:
        gen = genesis_mod.parse((root / GENESIS_FILE).read_bytes())
    except OSError as exc:
        raise DevnetError(f"cannot read {root / GENESIS_FILE}: {exc.strerror}") from None
    except InvalidInput as exc:
        raise DevnetError(f"{root / GENESIS_FILE}: {exc.message}") from None
    if nodes is not None and nodes != gen.n:
        raise DevnetError(f"{root} holds a {gen.n}-node devnet (its genesis is never regenerated); "
                          f"run with --nodes {gen.n}, or use another --dir for {nodes} nodes")
    node_files = tuple(_node_files(root, gen, i, base_port) for i in range(gen.n))
    clients = _client_files(root, gen)
    if not clients:
        raise DevnetError(f"no key in {root / CLIENTS_DIR} belongs to a client of {root / GENESIS_FILE}")
    return Devnet(root, gen.chain_id, node_files, clients)


def prepare(root: Path, nodes: int = DEFAULT_NODES, base_port: int | None = None) -> Devnet:
    """Create the devnet's files on first use; on later uses check and reuse them."""
    if not (root / GENESIS_FILE).exists():
        create(root, nodes, DEFAULT_BASE_PORT if base_port is None else base_port)
    return load(root, nodes, base_port)


RUNNING = "running"  # the process runs now (it may still be starting up)
RESTARTING = "restarting"  # it exited; devnet starts it again once the backoff has passed
STOPPED = "stopped"  # devnet gave up on it (or never started it)


@dataclass(frozen=True)
class NodeState:
    """One node as devnet.json shows it: the pid of its process as it runs now."""

    pid: int | None
    state: str = RUNNING
    reason: str | None = None  # why it is not running, when it is not


def manifest(net: Devnet, states: Mapping[int, NodeState]) -> dict[str, Any]:
    """The devnet.json document; paths are relative to the devnet directory. A node missing
    from `states` has not been started."""
    nodes = []
    for n in net.nodes:
        st = states.get(n.index, NodeState(None, STOPPED, "not started"))
        nodes.append({"index": n.index, "dept": n.dept, "api": n.api, "pid": st.pid, "state": st.state,
                      "reason": st.reason, "config": n.config})
    return {
        "chain_id": net.chain_id,
        "genesis": GENESIS_FILE,
        "nodes": nodes,
        "clients": [{"dept": c.dept, "key_file": c.key_file, "key_id": c.key_id, "roles": list(c.roles)}
                    for c in net.clients],
    }


def write_manifest(net: Devnet, states: Mapping[int, NodeState]) -> Path:
    path = net.root / MANIFEST_FILE
    write_atomic(path, (json.dumps(manifest(net, states), indent=2) + "\n").encode())
    return path


def read_target(root: Path) -> tuple[str, Path, str]:
    """(API of node 0, first client's key file, chain id) from a running devnet's devnet.json."""
    path = root / MANIFEST_FILE
    try:
        doc = json.loads(path.read_bytes())
        return doc["nodes"][0]["api"], root / doc["clients"][0]["key_file"], doc["chain_id"]
    except OSError as exc:
        raise DevnetError(f"cannot read {path}: {exc.strerror} (is the devnet running?)") from None
    except (ValueError, KeyError, IndexError, TypeError):
        raise DevnetError(f"{path} is not a devnet.json written by `ledgernode devnet`") from None


# -- processes -----------------------------------------------------------------------


def _port_free(address: tuple[str, int]) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the node's listeners do
        try:
            s.bind(address)
        except OSError:
            return False
    return True


def check_ports(net: Devnet) -> None:
    busy = [f"{h}:{p}" for n in net.nodes for h, p in (n.api_listen, n.peer_listen) if not _port_free((h, p))]
    if busy:
        raise DevnetError(f"port(s) already in use: {', '.join(busy)} (is this devnet already running? "
                          "stop it, or pick another --base-port with a new --dir)")


def check_log_options(log_level: str, log_format: str) -> None:
    """Refuse a bad level or format before any node starts: each node would refuse it too,
    and be restarted in vain."""
    if log_level not in logs.LEVELS:
        raise DevnetError(f"log level {log_level!r}: expected one of {', '.join(logs.LEVELS)}")
    if log_format not in logs.FORMATS:
        raise DevnetError(f"log format {log_format!r}: expected one of {', '.join(logs.FORMATS)}")


def node_command(net: Devnet, node: NodeFiles, log_level: str = DEFAULT_LOG_LEVEL,
                 log_format: str = DEFAULT_LOG_FORMAT) -> list[str]:
    """`python -m ledgernode run -c CFG`, plus --log-level/--log-format when they differ from the
    defaults (so a `run` without those flags still starts with the defaults)."""
    cmd = [sys.executable, "-m", "ledgernode", "run", "-c", str((net.root / node.config).resolve())]
    if log_level != DEFAULT_LOG_LEVEL:
        cmd += ["--log-level", log_level]
    if log_format != DEFAULT_LOG_FORMAT:
        cmd += ["--log-format", log_format]
    return cmd


def _die_with_parent() -> None:
    """In the child before exec (Linux): get SIGTERM if the devnet process dies, even by SIGKILL,
    so no node outlives it holding its ports."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_node(net: Devnet, node: NodeFiles, log_level: str = DEFAULT_LOG_LEVEL,
               log_format: str = DEFAULT_LOG_FORMAT) -> subprocess.Popen[bytes]:
    package_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    cmd = node_command(net, node, log_level, log_format)
    with (net.root / node.log).open("ab") as log:
        log.write(f"\n--- devnet starting node {node.index} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        log.flush()
        # Own session: Ctrl-C reaches only the devnet, which then stops the nodes in order.
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=net.root, env=env, start_new_session=True,
                                preexec_fn=_die_with_parent if sys.platform == "linux" else None)


def _log_tail(path: Path) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
            lines = f.read().decode("utf-8", "replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return ""
    return "\n".join("    " + line for line in lines)


def exit_text(code: int) -> str:
    """How a node's process ended, from its Popen return code (negative: killed by a signal)."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name} (exit code {code})"
    return f"exited with code {code}"


def _report_dead(net: Devnet, procs: dict[int, subprocess.Popen[bytes]], reported: set[int]) -> None:
    """For callers that do not restart nodes (bench): say once that a node has exited."""
    for i, proc in procs.items():
        code = proc.poll()
        if code is None or i in reported:
            continue
        reported.add(i)
        node = net.nodes[i]
        print(f"devnet: node {i} ({node.dept}) {exit_text(code)}; not restarted, the others keep "
              f"running. Last lines of {net.root / node.log}:\n{_log_tail(net.root / node.log)}",
              file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RestartPolicy:
    """How often a node that exits on its own is started again: at most `restarts_max` times within
    any `window_ms`, each after a backoff that doubles from `backoff_ms` up to `backoff_max_ms`."""

    restarts_max: int = RESTARTS_MAX
    window_ms: int = RESTART_WINDOW_MS
    backoff_ms: int = RESTART_BACKOFF_MS
    backoff_max_ms: int = RESTART_BACKOFF_MAX_MS

    def backoff_s(self, recent_restarts: int) -> float:
        return min(self.backoff_max_ms, self.backoff_ms * 2 ** recent_restarts) / 1000


@dataclass
class _Watch:
    restarts: deque[float] = field(default_factory=deque)  # monotonic seconds, within the window
    due_s: float | None = None  # when the scheduled restart happens; None: none scheduled
    reason: str | None = None  # how the last process ended, while the node is not running
    given_up: bool = False


class Supervisor:
    """Keeps one process per node running: a process that exits is started again under a
    RestartPolicy, and a node that exhausts it is given up (the others keep running).

    `poll` does all the work and never blocks, so one loop both probes health and supervises;
    `spawn` and `clock` are parameters so the policy can be tested without processes or waiting.
    """

    def __init__(self, net: Devnet, spawn: Callable[[NodeFiles], subprocess.Popen[bytes]],
                 policy: RestartPolicy = RestartPolicy(), clock: Callable[[], float] = time.monotonic) -> None:
        self.net, self.spawn, self.policy, self.clock = net, spawn, policy, clock
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.watches = {n.index: _Watch() for n in net.nodes}

    def start_all(self) -> None:
        for node in self.net.nodes:
            # Stored as soon as Popen returns: a stop asked meanwhile still finds every node.
            self.procs[node.index] = self.spawn(node)
            print(f"devnet: started node {node.index} ({node.dept}) pid {self.procs[node.index].pid}", flush=True)

    def poll(self) -> bool:
        """Notice exited nodes and restart those whose backoff has passed; True if any state changed."""
        now = self.clock()
        changed = False
        for i, w in self.watches.items():
            if w.given_up or i not in self.procs:
                continue
            if w.due_s is None:
                code = self.procs[i].poll()
                if code is not None:
                    self._exited(i, code, now)
                    changed = True
            elif now >= w.due_s:
                self._restart(i, now)
                changed = True
        return changed

    def _exited(self, i: int, code: int, now: float) -> None:
        w, node, p = self.watches[i], self.net.nodes[i], self.policy
        while w.restarts and w.restarts[0] <= now - p.window_ms / 1000:
            w.restarts.popleft()
        log = self.net.root / node.log
        how, recent, window = exit_text(code), len(w.restarts), f"{p.window_ms / 1000:g} s"
        if recent >= p.restarts_max:
            w.given_up, w.reason = True, f"{how}; given up after {recent} restarts within {window}"
            action = f"restarted {recent} times within {window} already, so given up (the others keep running)"
        else:
            delay_s = p.backoff_s(recent)
            w.due_s, w.reason = now + delay_s, f"{how}; restarting"
            action = f"restarting it in {delay_s:g} s (restart {recent + 1} of at most {p.restarts_max} in {window})"
        print(f"devnet: node {i} ({node.dept}) {how}; {action}. Last lines of {log}:\n{_log_tail(log)}",
              file=sys.stderr, flush=True)

    def _restart(self, i: int, now: float) -> None:
        w, node = self.watches[i], self.net.nodes[i]
        w.restarts.append(now)
        w.due_s, w.reason = None, None
        self.procs[i] = self.spawn(node)
        print(f"devnet: restarted node {i} ({node.dept}) pid {self.procs[i].pid}", file=sys.stderr, flush=True)

    def expected(self) -> dict[int, int | None]:
        """Nodes not given up, with the pid of their process (None while a restart waits)."""
        return {i: None if w.due_s is not None else self.procs[i].pid
                for i, w in self.watches.items() if not w.given_up and i in self.procs}

    def states(self) -> dict[int, NodeState]:
        out = {}
        for i, w in self.watches.items():
            if i not in self.procs:
                continue
            if w.given_up:
                out[i] = NodeState(None, STOPPED, w.reason)
            elif w.due_s is not None:
                out[i] = NodeState(None, RESTARTING, w.reason)
            else:
                out[i] = NodeState(self.procs[i].pid, RUNNING)
        return out

    def all_given_up(self) -> bool:
        return all(w.given_up for w in self.watches.values())

    def wait_s(self, most_s: float) -> float:
        """How long the caller may sleep before the next poll: at most `most_s`, less when a
        restart falls due sooner."""
        due = [w.due_s for w in self.watches.values() if w.due_s is not None]
        return max(0.0, min([most_s] + [d - self.clock() for d in due]))


def _wait_healthy(net: Devnet, refresh: Callable[[], dict[int, int | None]], stop: threading.Event,
                  timeout_s: float) -> bool:
    """Poll /healthz until every node `refresh` expects answers from its current process, the
    deadline passes or stop is asked. A restarted node (a new pid) must answer again."""
    clients = {n.index: Client(n.api, timeout_s=HEALTH_PROBE_TIMEOUT_S) for n in net.nodes}
    healthy_pids: set[int] = set()
    deadline = time.monotonic() + timeout_s
    next_progress = time.monotonic()
    expected: dict[int, int | None] = {}
    while not stop.is_set():
        expected = refresh()
        for i, pid in expected.items():
            if pid is not None and pid not in healthy_pids and clients[i].healthy():
                healthy_pids.add(pid)
        up = {i for i, pid in expected.items() if pid in healthy_pids}
        if up == set(expected):
            print(f"devnet: {len(up)}/{len(net.nodes)} nodes healthy", flush=True)
            return bool(expected)
        if time.monotonic() >= deadline:
            waiting = ", ".join(f"node{i}" for i in sorted(set(expected) - up))
            print(f"devnet: after {timeout_s:g} s still no /healthz answer from {waiting}; "
                  f"see their node.log. Carrying on with the others.", flush=True)
            return bool(expected)
        if time.monotonic() >= next_progress:
            print(f"devnet: waiting for /healthz: {len(up)}/{len(expected)} nodes up", flush=True)
            next_progress = time.monotonic() + PROGRESS_EVERY_S
        stop.wait(POLL_S / 2)
    return bool(expected)


def wait_healthy(net: Devnet, procs: dict[int, subprocess.Popen[bytes]], stop: threading.Event,
                 reported: set[int], timeout_s: float) -> bool:
    """For callers that start the nodes themselves and never restart them (bench): poll /healthz
    of every live node; an exited node is reported once (added to `reported`) and not waited for."""
    def refresh() -> dict[int, int | None]:
        _report_dead(net, procs, reported)
        return {i: p.pid for i, p in procs.items() if i not in reported}

    return _wait_healthy(net, refresh, stop, timeout_s)


def stop_nodes(procs: dict[int, subprocess.Popen[bytes]], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every node still running, wait, then SIGKILL whatever is left."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for i, proc in procs.items():
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"devnet: node {i} did not stop within {timeout_s:g} s; killing it", flush=True)
            proc.kill()
            proc.wait()


def guide(net: Devnet) -> str:
    """What to print once the devnet is up: where to look and how to submit."""
    d = shlex.quote(str(net.root))
    admin = net.clients[0]
    node0 = net.nodes[0]
    lines = ["", f"devnet {net.chain_id}: {len(net.nodes)} validators", ""]
    lines += [f"  node{n.index} {n.dept:<12} API {n.api}   log {net.root / n.log}" for n in net.nodes]
    lines += [
        "",
        f"  genesis      {net.root / GENESIS_FILE}",
        f"  devnet.json  {net.root / MANIFEST_FILE}   (APIs, pids, client keys and their roles)",
        "",
        "Submit a record and wait for its commit:",
        f"  python -m ledgernode submit --api {node0.api} --key {shlex.quote(str(net.root / admin.key_file))} \\",
        f"      --type evidence.notarize --subject demo-1 --file {shlex.quote(str(net.root / GENESIS_FILE))} \\",
        "      --body '{\"title\": \"devnet genesis\"}' --wait",
        "or, taking node 0's API and the first client key from devnet.json:",
        f"  python -m ledgernode submit --devnet {d} --type evidence.notarize --subject demo-1 \\",
        f"      --file {shlex.quote(str(net.root / GENESIS_FILE))} --body '{{\"title\": \"devnet genesis\"}}' --wait",
        "Then fetch its evidence and verify it offline (ID is the \"id\" printed by submit):",
        f"  python -m ledgernode evidence --devnet {d} --id ID --out bundle.json",
        f"  python -m ledgernode verify bundle.json --genesis {shlex.quote(str(net.root / GENESIS_FILE))}",
        "From Python: ledgernode.client.Client(api, key).submit(envelope, wait=True) (see README).",
        "",
        "Ctrl-C or SIGTERM stops every node.",
    ]
    return "\n".join(lines)


def _supervise(net: Devnet, sup: Supervisor, stop: threading.Event) -> int:
    """Until stop is asked: restart nodes as they exit, keeping devnet.json truthful."""
    while not stop.wait(sup.wait_s(POLL_S)):
        if sup.poll():
            write_manifest(net, sup.states())
        if sup.all_given_up():
            print("devnet: every node has been given up; stopping", file=sys.stderr, flush=True)
            return 1
    return 0


def run(net: Devnet, health_timeout_s: float = HEALTH_TIMEOUT_S, *, log_level: str = DEFAULT_LOG_LEVEL,
        log_format: str = DEFAULT_LOG_FORMAT, policy: RestartPolicy = RestartPolicy()) -> int:
    """Start the nodes, report where they are, restart any that exits (under `policy`) and keep
    them running until SIGTERM/Ctrl-C; then stop every node by its pid."""
    check_log_options(log_level, log_format)
    check_ports(net)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    manifest_path = net.root / MANIFEST_FILE
    manifest_path.unlink(missing_ok=True)  # never leave a stale one from a past run
    sup = Supervisor(net, lambda node: start_node(net, node, log_level, log_format), policy)
    try:
        sup.start_all()

        def refresh() -> dict[int, int | None]:
            sup.poll()
            return sup.expected()

        if not _wait_healthy(net, refresh, stop, health_timeout_s):
            return 0 if stop.is_set() else 1
        if not stop.is_set():
            # Written once the nodes answer: its appearance means "ready to submit".
            write_manifest(net, sup.states())
            print(guide(net), flush=True)
        return _supervise(net, sup, stop)
    finally:
        # Gone before the nodes stop: `submit --devnet` then says the devnet is not running
        # instead of trying ports nobody listens on.
        manifest_path.unlink(missing_ok=True)
        print("devnet: stopping nodes", flush=True)
        stop_nodes(sup.procs)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("devnet: all nodes stopped", flush=True)
