"""Real node processes on 127.0.0.1 for integration tests: start, stop, kill by PID."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, TypeVar

from ledgernode import config, crypto, genesis
from ledgernode.records import sign_record

DEPTS = ["justice", "market", "health", "customs", "tax", "police", "court"]
# Deadlines are generous: they bound a wait on a condition, never stand for "done by now".
# A loaded 2-core machine (other test runs beside this one) is many times slower than an idle one.
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 60.0
WAIT_TIMEOUT_S = 120.0
POLL_EVERY_S = 0.2

T = TypeVar("T")


def wait_until(what: str, probe: Callable[[], tuple[bool, T]], timeout: float = WAIT_TIMEOUT_S,
               every: float = POLL_EVERY_S) -> T:
    """Poll `probe` (returning (done, state)) until done; return that state.

    Fails after `timeout` s with what was awaited and the last state seen. An OSError
    from the probe (a node mid-restart) counts as "not yet" and is shown as the state.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            done, last = probe()
        except OSError as exc:
            done, last = False, repr(exc)
        if done:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last state: {last}")
        time.sleep(every)


def free_ports(count: int) -> list[int]:
    socks, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Cluster:
    """n validators in `root`, each a `python -m ledgernode run` process, and `spare` more
    nodes (n, n + 1, ...) whose keys the genesis does not hold; every node's [peers] names
    every other node."""

    def __init__(self, root: Path, n: int = 4, limits: dict[str, int] | None = None, spare: int = 0,
                 reads: str = "open", tls: bool = False, clients: list[tuple[str, list[str]]] | None = None) -> None:
        """`reads`: the nodes' [api] reads; `tls`: a CA in root/tls and a certificate per node,
        both ports over TLS; `clients`: more genesis clients (dept, roles), keys in `clients`."""
        self.root, self.n, self.nodes = root, n, n + spare
        ports = free_ports(2 * self.nodes)
        self.api_ports, self.peer_ports = ports[:self.nodes], ports[self.nodes:]
        self.keys = [crypto.generate_private_key() for _ in range(self.nodes)]
        self.client = crypto.generate_private_key()
        self.clients = [(dept, roles, crypto.generate_private_key()) for dept, roles in clients or []]
        raw = genesis.build(
            "gov-itest",
            [{"dept": DEPTS[i], "name": DEPTS[i], "pubkey": k.public.raw.hex()} for i, k in enumerate(self.keys[:n])],
            [{"dept": DEPTS[0], "pubkey": self.client.public.raw.hex(), "roles": ["*"]}]
            + [{"dept": dept, "pubkey": k.public.raw.hex(), "roles": roles} for dept, roles, k in self.clients],
        )
        (root / "genesis.json").write_bytes(raw)
        self.genesis = genesis.parse(raw)
        self.ca_file: Path | None = None
        self.ssl_context: ssl.SSLContext | None = None
        if tls:
            self.ca_file = make_pki(root / "tls", self.nodes)
            self.ssl_context = ssl.create_default_context(cafile=str(self.ca_file))
        for i, key in enumerate(self.keys):
            d = root / f"node{i}"
            d.mkdir()
            crypto.save_private_key(d / "validator.pem", key)
            peers = {k.public.raw.hex(): f"127.0.0.1:{self.peer_ports[j]}" for j, k in enumerate(self.keys) if j != i}
            text = config.render("data", "validator.pem", "../genesis.json",
                                 f"127.0.0.1:{self.api_ports[i]}", f"127.0.0.1:{self.peer_ports[i]}",
                                 peers, {"round_timeout_ms": 1000, "block_interval_ms": 20, **(limits or {})},
                                 debug=True, reads=reads,
                                 tls={"cert_file": f"../tls/node{i}.crt", "key_file": f"../tls/node{i}.key",
                                      "ca_file": "../tls/ca.crt", "client_ca": "../tls/ca.crt"} if tls else None)
            (d / "node.toml").write_text(text)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.nonce = 0

    def api(self, i: int) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.api_ports[i]}"

    def start(self, i: int) -> None:
        log = open(self.root / f"node{i}" / "node.log", "ab")
        self.procs[i] = subprocess.Popen(
            [sys.executable, "-m", "ledgernode", "run", "-c", str(self.root / f"node{i}" / "node.toml")],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        last: Any = "no answer yet"
        while time.monotonic() < deadline:
            if self.procs[i].poll() is not None:
                raise RuntimeError(f"node {i} exited: {(self.root / f'node{i}' / 'node.log').read_text()[-2000:]}")
            try:
                status, last = self.request(i, "GET", "/healthz", timeout=5.0)
                if status == 200 and last.get("ok"):
                    return
            except (OSError, ValueError) as exc:  # not listening yet, or a partial answer
                last = repr(exc)
            time.sleep(0.1)
        raise RuntimeError(f"node {i} did not answer /healthz in {START_TIMEOUT_S} s; last answer: {last}")

    def start_all(self) -> None:
        for i in range(self.nodes):
            self.start(i)

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Signal node i's process by PID and wait for it; SIGKILL if SIGTERM is not enough."""
        proc = self.procs.pop(i)
        if proc.poll() is not None:
            raise AssertionError(f"node {i} had already exited with code {proc.returncode}: "
                                 f"{(self.root / f'node{i}' / 'node.log').read_text()[-2000:]}")
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"node {i} ignored signal {sig} for {STOP_TIMEOUT_S} s")

    def stop_all(self) -> None:
        errors = []
        for i in list(self.procs):
            try:
                self.kill(i, signal.SIGTERM)
            except AssertionError as exc:
                errors.append(str(exc))
        assert not errors, errors

    # -- HTTP ----------------------------------------------------------------

    def request(self, i: int, method: str, path: str, body: bytes | None = None,
                ctype: str = "application/json", timeout: float = REQUEST_TIMEOUT_S) -> tuple[int, Any]:
        req = urllib.request.Request(self.api(i) + path, data=body, method=method,
                                     headers={"Content-Type": ctype})
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.ssl_context) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def get(self, i: int, path: str) -> Any:
        status, doc = self.request(i, "GET", path)
        assert status == 200, (status, doc)
        return doc

    def record(self, subject: str = "ev") -> bytes:
        self.nonce += 1
        body = {"content_hash": crypto.sha256(subject.encode()), "media_type": "text/plain",
                "size": 1, "title": subject}
        return sign_record(self.client, "gov-itest", "evidence.notarize", subject, body,
                           int(time.time() * 1000), os.urandom(16))

    def submit(self, i: int, env: bytes, wait: bool = False) -> tuple[int, Any]:
        return self.request(i, "POST", "/v1/records" + ("?wait=1" if wait else ""), env,
                            "application/msgpack")

    def heights(self) -> dict[int, int]:
        return {i: self.get(i, "/v1/status")["height"] for i in self.procs}

    def block_hashes(self, i: int, upto: int) -> list[str]:
        return [self.get(i, f"/v1/blocks/{h}")["qc"]["block_hash"] for h in range(1, upto + 1)]


def make_pki(directory: Path, nodes: int) -> Path:
    """A CA and a certificate for 127.0.0.1 per node in `directory`; the CA's file."""
    directory.mkdir()
    ca = crypto.make_tls_ca("gov-itest CA")
    (directory / "ca.crt").write_bytes(ca.cert_pem)
    for i in range(nodes):
        ident = crypto.make_tls_cert(ca, f"node{i}", ["127.0.0.1", "localhost"])
        (directory / f"node{i}.crt").write_bytes(ident.cert_pem)
        (directory / f"node{i}.key").write_bytes(ident.key_pem)
    (directory / "ca.key").write_bytes(ca.key_pem)
    return directory / "ca.crt"


@contextmanager
def running(root: Path, n: int = 4, limits: dict[str, int] | None = None, spare: int = 0,
            start: bool = True, **options: Any) -> Iterator[Cluster]:
    """A Cluster, started unless `start` is false, stopped by PID when the block ends (the
    tests' usual fixture). `options`: Cluster's reads, tls and clients."""
    c = Cluster(root, n, limits, spare, **options)
    try:
        if start:
            c.start_all()
        yield c
    finally:
        c.stop_all()


class SteadyClient:
    """One thread submitting one record at a time with ?wait=1 to nodes 0-2 (in
    turn), keeping the ids acknowledged as committed, each submission's latency, and
    what failed (an HTTP answer other than committed, or a connection error)."""

    def __init__(self, c: Cluster, tag: str = "steady", nodes: tuple[int, ...] = (0, 1, 2),
                 wait_ms: int | None = None) -> None:
        self.c, self.tag, self.nodes = c, tag, nodes
        self.path = "/v1/records?wait=1" + (f"&timeout_ms={wait_ms}" if wait_ms is not None else "")
        self.ids: list[str] = []
        self.latencies: list[float] = []
        self.failures: list[Any] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            start = time.monotonic()
            try:
                status, doc = self.c.request(self.nodes[n % len(self.nodes)], "POST", self.path,
                                             self.c.record(f"{self.tag}-{n}"), "application/msgpack")
            except OSError as exc:  # a node being restarted
                self.failures.append(repr(exc))
                continue
            if status == 200 and doc.get("status") == "committed":
                self.ids.append(doc["id"])
            else:
                self.failures.append((status, doc))
            self.latencies.append(time.monotonic() - start)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=REQUEST_TIMEOUT_S * 2)
        assert not self.thread.is_alive(), "the steady client's last request never returned"

    def summary(self) -> dict[str, Any]:
        return {"committed": len(self.ids), "max_latency_s": round(max(self.latencies, default=0), 2),
                "failures": self.failures[-3:]}
