"""Real node processes on 127.0.0.1 for integration tests: start, stop, kill by PID."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ledgernode import config, crypto, genesis
from ledgernode.records import sign_record

DEPTS = ["justice", "market", "health", "customs", "tax", "police", "court"]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


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
    """n validators in `root`, each a `python -m ledgernode run` process."""

    def __init__(self, root: Path, n: int = 4, limits: dict[str, int] | None = None) -> None:
        self.root, self.n = root, n
        ports = free_ports(2 * n)
        self.api_ports, self.peer_ports = ports[:n], ports[n:]
        self.keys = [crypto.generate_private_key() for _ in range(n)]
        self.client = crypto.generate_private_key()
        raw = genesis.build(
            "gov-itest",
            [{"dept": DEPTS[i], "name": DEPTS[i], "pubkey": k.public.raw.hex()} for i, k in enumerate(self.keys)],
            [{"dept": DEPTS[0], "pubkey": self.client.public.raw.hex(), "roles": ["*"]}],
        )
        (root / "genesis.json").write_bytes(raw)
        self.genesis = genesis.parse(raw)
        for i, key in enumerate(self.keys):
            d = root / f"node{i}"
            d.mkdir()
            crypto.save_private_key(d / "validator.pem", key)
            peers = {j: f"127.0.0.1:{self.peer_ports[j]}" for j in range(n) if j != i}
            text = config.render("data", "validator.pem", "../genesis.json", i,
                                 f"127.0.0.1:{self.api_ports[i]}", f"127.0.0.1:{self.peer_ports[i]}",
                                 peers, {"round_timeout_ms": 1000, "block_interval_ms": 20, **(limits or {})},
                                 debug=True)
            (d / "node.toml").write_text(text)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.nonce = 0

    def api(self, i: int) -> str:
        return f"http://127.0.0.1:{self.api_ports[i]}"

    def start(self, i: int) -> None:
        log = open(self.root / f"node{i}" / "node.log", "ab")
        self.procs[i] = subprocess.Popen(
            [sys.executable, "-m", "ledgernode", "run", "-c", str(self.root / f"node{i}" / "node.toml")],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline:
            if self.procs[i].poll() is not None:
                raise RuntimeError(f"node {i} exited: {(self.root / f'node{i}' / 'node.log').read_text()[-2000:]}")
            try:
                if self.get(i, "/healthz").get("ok"):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"node {i} did not answer /healthz in {START_TIMEOUT_S} s")

    def start_all(self) -> None:
        for i in range(self.n):
            self.start(i)

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Signal node i's process by PID and wait for it; SIGKILL if SIGTERM is not enough."""
        proc = self.procs.pop(i)
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
                ctype: str = "application/json", timeout: float = 30.0) -> tuple[int, Any]:
        req = urllib.request.Request(self.api(i) + path, data=body, method=method,
                                     headers={"Content-Type": ctype})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
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
