"""The devnet's node processes (ledgernode/devnet/__init__.py): the checks made before
any starts, starting one (`start_node`), waiting for /healthz, reporting how one ended,
and stopping them all by pid (`stop_nodes`). Restarting them is devnet/supervisor.py's.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .. import logs
from ..client import Client
from . import netns
from .layout import Devnet, DevnetError, NodeFiles

HEALTH_PROBE_TIMEOUT_S = 1.0
PROGRESS_EVERY_S = 3.0
POLL_S = 1.0
STOP_TIMEOUT_S = 30.0  # nodes stop within a couple of seconds; past this bound they are killed
LOG_TAIL_LINES = 8
LOG_TAIL_BYTES = 4096
DEFAULT_LOG_LEVEL = "info"  # the node's own defaults: only other values are passed to `run`
DEFAULT_LOG_FORMAT = "text"
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


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
    package_root = str(Path(__file__).resolve().parents[2])  # holds ledgernode/ (this is ledgernode/devnet/nodes.py)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    cmd = node_command(net, node, log_level, log_format)
    if net.netns:
        cmd = netns.wrap(node.index, cmd)
    with (net.root / node.log).open("ab") as log:
        log.write(f"\n--- devnet starting node {node.index} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        log.flush()
        # Own session: Ctrl-C reaches only the devnet, which then stops the nodes in order.
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=net.root, env=env, start_new_session=True,
                                preexec_fn=_die_with_parent if sys.platform == "linux" else None)


def log_tail(path: Path) -> str:
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
              f"running. Last lines of {net.root / node.log}:\n{log_tail(net.root / node.log)}",
              file=sys.stderr, flush=True)


def wait_expected_healthy(net: Devnet, refresh: Callable[[], dict[int, int | None]], stop: threading.Event,
                  timeout_s: float) -> bool:
    """Poll /healthz until every node `refresh` expects answers from its current process, the
    deadline passes or stop is asked. A restarted node (a new pid) must answer again."""
    clients = {n.index: Client(n.api, timeout_s=HEALTH_PROBE_TIMEOUT_S, ca_file=net.ca_file) for n in net.nodes}
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

    return wait_expected_healthy(net, refresh, stop, timeout_s)


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
