"""Auditor read commands (ledgernode/audit.py) against the real API over the fake node.

The application of ledgernode.api runs over tests/unit/api_fake.FakeNode (real
records, blocks, QCs and proofs) on a real 127.0.0.1 port, in an event loop of
its own thread, so the synchronous CLI talks HTTP to it. Every answer a
command saves must pass the real offline verifier (`ledgernode verify` /
`verify-consistency`) run through the same CLI.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from ledgernode.aio import web
from ledgernode.api import make_app
from ledgernode.cli import main
from tests.fixtures import DEPTS, T0, Net, commit_records, content
from tests.unit.api_fake import LIMITS, FakeNode, rid

DAY_MS = 86_400_000
LOOP_CALL_TIMEOUT_S = 120.0  # a bound on one call into the server thread, not an expected time


@dataclass
class Served:
    url: str
    node: FakeNode
    loop: asyncio.AbstractEventLoop

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(LOOP_CALL_TIMEOUT_S)


@pytest.fixture
def served(net: Net) -> Iterator[Served]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    node = FakeNode(net)

    async def start() -> web.AppRunner:
        runner = web.AppRunner(make_app(node, LIMITS))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner

    runner = asyncio.run_coroutine_threadsafe(start(), loop).result(LOOP_CALL_TIMEOUT_S)
    host, port = runner.addresses[0][:2]
    try:
        yield Served(f"http://{host}:{port}", node, loop)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(LOOP_CALL_TIMEOUT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


@dataclass
class Ledger:
    """Two blocks: a certificate issued then suspended, a dataset published then shared,
    and a trace event that derives from an earlier one."""

    net: Net
    genesis: Path
    first_trace: str
    second_trace: str


def rid_bytes(raw: bytes, net: Net) -> bytes:
    return bytes.fromhex(rid(raw, net))


def _block_one(net: Net) -> tuple[list[bytes], bytes]:
    trace = net.record(0, "trace.event", "batch-1", {"activity": "harvested"})
    return [
        net.record(1, "cert.issue", "LIC-1", {
            "cert_type": "business licence", "holder": content("holder-42"), "content_hash": content("pdf"),
            "valid_from": T0, "valid_until": T0 + 365 * DAY_MS}),
        net.record(2, "dataset.publish", "ds/health/vaccinations", {
            "title": "Vaccinations", "content_hash": content("v1"), "schema_hash": content("s"),
            "classification": "internal"}),
        trace,
    ], trace


def _block_two(net: Net, first_trace: bytes) -> tuple[list[bytes], bytes]:
    trace = net.record(0, "trace.event", "batch-1", {"activity": "packed"}, refs=(rid_bytes(first_trace, net),))
    return [
        net.record(1, "cert.suspend", "LIC-1", {"reason": "under audit", "effective": T0 + 10 * DAY_MS}),
        net.record(2, "share.grant", "ds/health/vaccinations", {
            "to_dept": DEPTS[1], "purpose": "statistics", "legal_basis": "regulation 7",
            "expires": T0 + 365 * DAY_MS}),
        trace,
    ], trace


@pytest.fixture
def ledger(served: Served, tmp_path: Path) -> Ledger:
    net = served.node.net
    genesis = tmp_path / "genesis.json"
    genesis.write_bytes(net.genesis.raw)
    raws, first = _block_one(net)
    commit_records(net, served.node.store, raws)
    raws, second = _block_two(net, first)
    commit_records(net, served.node.store, raws)
    return Ledger(net, genesis, rid(first, net), rid(second, net))


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def verify(capsys: pytest.CaptureFixture[str], genesis: Path, path: Path, kind: str) -> None:
    rc, out, err = run(capsys, "verify", path, "--genesis", genesis, "--kind", kind)
    assert rc == 0, out + err


def _ms(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=timezone.utc).timestamp() * 1000)  # type: ignore[misc]


# -- every saved answer verifies --------------------------------------------------------


def test_status_at_iso_times_verifies(served: Served, ledger: Ledger, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "status.json"
    rc, printed, err = run(capsys, "status", "LIC-1", "--api", served.url, "--at", "2026-01-20T08:00+08:00",
                           "--out", out)
    assert rc == 0, err
    doc = json.loads(out.read_text())
    assert (doc["kind"], doc["status"], doc["at"]) == ("status", "suspended", _ms(2026, 1, 20))
    summary = json.loads(printed)
    assert summary["saved"] == [str(out)] and "--kind status" in summary["verify"]
    verify(capsys, ledger.genesis, out, "status")
    # before the suspension took effect, as a date; printed rather than saved
    rc, printed, err = run(capsys, "status", "LIC-1", "--api", served.url, "--at", "2026-01-05")
    assert rc == 0, err
    assert json.loads(printed)["status"] == "valid"


def test_history_shares_provenance_verify(served: Served, ledger: Ledger, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["history", "LIC-1"], "subject", lambda d: len(d["records"]) == 2),  # issued, suspended
        (["shares", "ds/health/vaccinations"], "shares", lambda d: d["grants"][0]["to_dept"] == DEPTS[1]),
        (["provenance", ledger.second_trace, "--depth", "1"], "provenance",
         lambda d: {r["id"] for r in d["records"]} == {ledger.first_trace, ledger.second_trace}),
    ]
    for argv, kind, claim in cases:
        out = tmp_path / f"{argv[0]}.json"
        rc, _, err = run(capsys, *argv, "--api", served.url, "--out", out)
        assert rc == 0, err
        doc = json.loads(out.read_text())
        assert doc["kind"] == kind and claim(doc), doc
        verify(capsys, ledger.genesis, out, kind)


def test_history_pages_and_says_how_to_go_on(served: Served, ledger: Ledger, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    rc, printed, err = run(capsys, "history", "LIC-1", "--api", served.url, "--limit", "1")
    assert rc == 0, err
    first = json.loads(printed)
    # a page of the subject's list: position 0 of 2 (issued, suspended); the next page starts at 1
    assert len(first["records"]) == 1 and (first["total"], first["next_from"]) == (2, 1)
    assert first["list"]["from"] == 0 and first["list"]["positions"] == [0]
    assert "--from 1" in err
    out = tmp_path / "page2.json"
    rc, printed, err = run(capsys, "history", "LIC-1", "--api", served.url, "--from", str(first["next_from"]),
                           "--out", out)
    assert rc == 0 and "more records follow" not in err, err
    rest = json.loads(out.read_text())
    assert rest["list"]["from"] == 1 and rest["list"]["positions"] == [1]
    assert [r["leaf_index"] > first["records"][0]["leaf_index"] for r in rest["records"]] == [True]
    assert rest["next_from"] is None
    verify(capsys, ledger.genesis, out, "subject")  # a page verifies, as the part of the list it is


def _devnet_dir(tmp_path: Path, served: Served, net: Net) -> Path:
    """A devnet.json as `ledgernode devnet` writes it, naming the served API."""
    d = tmp_path / "devnet"
    d.mkdir()
    (d / "devnet.json").write_text(json.dumps({
        "chain_id": net.chain_id, "genesis": "genesis.json",
        "nodes": [{"index": 0, "dept": DEPTS[0], "api": served.url, "pid": os.getpid(), "config": "node0/node.toml"}],
        "clients": [{"dept": DEPTS[0], "key_file": "clients/admin.pem", "key_id": "0" * 16, "roles": ["*"]}],
    }))
    return d


def test_checkpoint_then_consistency_to_the_head(served: Served, ledger: Ledger, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    d = _devnet_dir(tmp_path, served, ledger.net)
    old, new, proof = tmp_path / "old.json", tmp_path / "new.json", tmp_path / "proof.json"
    rc, _, err = run(capsys, "checkpoint", "--devnet", d, "--height", "1", "--out", old)
    assert rc == 0, err
    assert json.loads(old.read_text())["height"] == 1
    more = [ledger.net.record(0, "trace.event", "batch-2", {"activity": "shipped"})]
    commit_records(ledger.net, served.node.store, more)  # the ledger grows after the checkpoint
    rc, printed, err = run(capsys, "consistency", "--devnet", d, "--from", old, "--out", proof, "--to-out", new)
    assert rc == 0, err
    assert json.loads(printed)["saved"] == [str(proof), str(new)]
    assert json.loads(new.read_text())["height"] == 3
    assert json.loads(proof.read_text())["from"] == json.loads(old.read_text())["log_size"]
    rc, out, err = run(capsys, "verify-consistency", old, new, proof, "--genesis", ledger.genesis)
    assert rc == 0, out + err
    # with --to the newer checkpoint is a file already: same proof, printed
    rc, printed, err = run(capsys, "consistency", "--api", served.url, "--from", old, "--to", new)
    assert rc == 0, err
    assert json.loads(printed) == json.loads(proof.read_text())
    rc, printed, _ = run(capsys, "checkpoint", "--api", served.url)
    assert json.loads(printed) == json.loads(new.read_text())


def test_consistency_refuses_unusable_arguments(served: Served, ledger: Ledger, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    assert run(capsys, "checkpoint", "--api", served.url, "--height", "1", "--out", old)[0] == 0
    assert run(capsys, "checkpoint", "--api", served.url, "--out", new)[0] == 0
    rc, _, err = run(capsys, "consistency", "--api", served.url, "--from", old)
    assert rc == 2 and "--to-out" in err
    rc, _, err = run(capsys, "consistency", "--api", served.url, "--from", new, "--to", old)
    assert rc == 2 and "give the older checkpoint as --from" in err
    rc, _, err = run(capsys, "consistency", "--api", served.url, "--from", ledger.genesis, "--to", new)
    assert rc == 2 and "not a checkpoint" in err
    rc, _, err = run(capsys, "consistency", "--api", served.url, "--from", tmp_path / "missing.json", "--to", new)
    assert rc == 2 and "cannot read" in err


# -- errors --------------------------------------------------------------------------------


def test_node_errors_go_to_stderr_exit_1(served: Served, ledger: Ledger, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "answer.json"
    rc, printed, err = run(capsys, "provenance", "ab" * 32, "--api", served.url, "--out", out)
    assert rc == 1 and printed == ""
    assert json.loads(err)["error"]["code"] == "not_found"
    assert not out.exists()
    rc, _, err = run(capsys, "shares", "ds/never-published", "--api", served.url)
    assert rc == 1 and json.loads(err)["error"]["code"] == "not_found"
    rc, _, err = run(capsys, "history", "LIC-1", "--api", served.url, "--limit", "100000")
    assert rc == 1 and json.loads(err)["error"]["code"] == "bad_limit"


def test_empty_ledger_has_no_checkpoint(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "checkpoint", "--api", served.url)
    assert rc == 1 and json.loads(err)["error"]["code"] == "not_found"


def test_bad_input_exit_2(served: Served, ledger: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "status", "LIC-1", "--api", served.url, "--at", "next tuesday")
    assert rc == 2 and "ISO 8601" in err
    rc, _, err = run(capsys, "status", "LIC-1", "--api", served.url, "--at", "2026-12-02T10:00")
    assert rc == 2 and "offset" in err
    rc, _, err = run(capsys, "provenance", "not-an-id", "--api", served.url)
    assert rc == 2 and "64 hex" in err
    rc, _, err = run(capsys, "checkpoint")
    assert rc == 2 and "--api" in err
    rc, _, err = run(capsys, "checkpoint", "--devnet", "/nonexistent/devnet")
    assert rc == 2 and "devnet.json" in err


def test_unreachable_node_exit_2_with_a_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again before the call
    for argv in (["checkpoint"], ["history", "x"], ["status", "x"], ["shares", "x"], ["provenance", "ab" * 32]):
        rc, printed, err = run(capsys, *argv, "--api", url)
        assert rc == 2 and printed == ""
        assert err.startswith(f"{argv[0]}: no usable answer from the node at {url} (is it running?)"), err
