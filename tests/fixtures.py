"""Test network: deterministic keys, a genesis, signed records and certified blocks."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from ledgernode import crypto
from ledgernode.blocks import QC, CheckedBlock, build_block, check_block, vote_bytes
from ledgernode.genesis import Genesis, build, parse
from ledgernode.records import decode_envelope, sign_record

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms
DEPTS = ["justice", "market", "health", "customs", "tax", "police", "court"]


def seeded_key(label: str) -> crypto.PrivateKey:
    return crypto.private_key_from_seed(hashlib.sha256(label.encode()).digest())


def content(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


@dataclass
class Net:
    n: int = 4
    chain_id: str = "gov-test"
    validators: list[crypto.PrivateKey] = field(default_factory=list)
    clients: list[crypto.PrivateKey] = field(default_factory=list)
    genesis: Genesis = None  # type: ignore[assignment]
    nonce_counter: int = 0

    def __post_init__(self) -> None:
        self.validators = [seeded_key(f"validator-{i}") for i in range(self.n)]
        # client i belongs to DEPTS[i % n]; client 0 may submit anything
        self.clients = [seeded_key(f"client-{i}") for i in range(self.n)]
        raw = build(
            self.chain_id,
            [{"dept": DEPTS[i], "name": f"Dept {DEPTS[i]}", "pubkey": k.public.raw.hex()}
             for i, k in enumerate(self.validators)],
            [{"dept": DEPTS[i], "pubkey": k.public.raw.hex(),
              "roles": ["*"] if i == 0 else ["dataset.*", "share.*", "cert.*", "evidence.*", "trace.*"]}
             for i, k in enumerate(self.clients)],
        )
        self.genesis = parse(raw)

    def record(self, client: int, rtype: str, subject: str, body: dict[str, Any],
               ts: int = T0, refs: tuple[bytes, ...] = (), key: crypto.PrivateKey | None = None) -> bytes:
        self.nonce_counter += 1
        nonce = self.nonce_counter.to_bytes(16, "big")
        return sign_record(key or self.clients[client], self.chain_id, rtype, subject, body, ts, nonce, refs)

    def qc(self, checked: CheckedBlock, round_: int = 0, signers: list[int] | None = None) -> QC:
        h = checked.block.header
        signers = list(range(self.genesis.quorum)) if signers is None else signers
        msg = vote_bytes(self.chain_id, h.height, round_, h.block_hash)
        return QC(h.height, round_, h.block_hash, tuple((i, self.validators[i].sign(msg)) for i in signers))


def commit_records(net: Net, store: Any, raws: list[bytes], time_ms: int | None = None) -> CheckedBlock:
    """Build a block of `raws` on the store's head, check it as a replica would, commit it."""
    envs = [decode_envelope(r, net.genesis) for r in raws]
    parent = store.head()
    t = time_ms if time_ms is not None else (parent.time + 1 if parent else T0)
    checked, rejected = build_block(envs, parent, store, store.frontier, net.genesis, t, 0)
    assert not rejected, [e.message for _, e in rejected]
    again = check_block(checked.block, parent, store, store.frontier, net.genesis)
    store.commit(again, net.qc(again))
    return again


WAIT_S = 60.0  # a bound on waiting for something that must happen, not an expected time
POLL_S = 0.01  # how often `until` looks at its condition


async def until(cond: Callable[[], object], what: str = "condition", task: asyncio.Task[Any] | None = None,
                timeout_s: float = WAIT_S) -> None:
    """Wait until `cond()` holds; fail naming `what` after `timeout_s`, or at once if `task`
    (a request in flight) ended first."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if task is not None and task.done():
            raise AssertionError(f"the request ended before {what}: {task.result()!r}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(POLL_S)


def stop_child(proc: subprocess.Popen[str], timeout_s: float) -> None:
    """Stop a test's child process by its PID and close its pipes."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout_s)
    for f in (proc.stdin, proc.stdout):
        if f is not None and not f.closed:
            f.close()


SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str) -> ModuleType:
    """scripts/<name>.py as a module, for tests of the tools the repository ships."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
