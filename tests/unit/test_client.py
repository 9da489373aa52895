"""Client SDK and the `submit` / `evidence` CLI against a fake node (stdlib http.server).

The fake records every request and answers from fixed routes (the genesis, an
evidence bundle) or else from a queue of scripted replies, so these tests pin the
request shapes the SDK sends and how it reads answers, errors and 503s.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ledgernode import client as sdk
from ledgernode import codec, crypto
from ledgernode.auditing.bundle import build_bundle
from ledgernode.cli import main
from ledgernode.records import check_signer, decode_envelope
from ledgernode.storage import Store
from tests.fixtures import Net, commit_records, content

Reply = tuple[int, dict[str, str], bytes]


def json_reply(status: int, doc: Any, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(doc).encode()


def error_reply(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return json_reply(status, {"error": {"code": code, "message": message}}, headers)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeNode:
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    queue: list[Reply] = field(default_factory=list)
    routes: dict[str, Reply] = field(default_factory=dict)

    def answer(self, method: str, path: str) -> Reply:
        if path in self.routes:
            return self.routes[path]
        if self.queue:
            return self.queue.pop(0)
        return error_reply(404, "not_found", f"no route for {method} {path}")


def _handler(node: FakeNode) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            node.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            status, headers, data = node.answer(self.command, self.path)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _any

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture()
def fake() -> Iterator[FakeNode]:
    node = FakeNode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(node))
    node.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield node
    server.shutdown()
    server.server_close()


@pytest.fixture()
def net() -> Net:
    return Net()


@pytest.fixture()
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record retry sleeps instead of sleeping (both front ends)."""
    slept: list[float] = []

    async def fake_asleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(sdk, "_sleep", slept.append)
    monkeypatch.setattr(sdk, "_asleep", fake_asleep)
    return slept


def _envelope(net: Net, n: int = 0) -> bytes:
    return net.record(1, "evidence.notarize", f"case-{n}",
                      {"content_hash": content(str(n)), "media_type": "text/plain", "size": n, "title": "t"})


PENDING = {"id": "ab" * 32, "status": "pending"}


# -- request shapes -------------------------------------------------------------------


def test_submit_posts_the_msgpack_envelope(fake: FakeNode, net: Net) -> None:
    env = _envelope(net)
    fake.queue.append(json_reply(202, PENDING))
    assert sdk.Client(fake.url).submit(env) == PENDING
    (req,) = fake.seen
    assert (req.method, req.path) == ("POST", "/v1/records")
    assert req.headers["content-type"] == "application/msgpack"
    assert req.body == env


def test_wait_and_timeout_go_in_the_query(fake: FakeNode, net: Net) -> None:
    c = sdk.Client(fake.url + "/")  # a trailing slash is fine
    fake.queue += [json_reply(200, PENDING), json_reply(200, PENDING)]
    c.submit(_envelope(net), wait=True)
    c.submit(_envelope(net), wait=True, timeout_ms=2500)
    assert [r.path for r in fake.seen] == ["/v1/records?wait=1", "/v1/records?wait=1&timeout_ms=2500"]


def test_batch_is_a_msgpack_array_of_envelopes(fake: FakeNode, net: Net) -> None:
    envs = [_envelope(net, i) for i in range(3)]
    fake.queue.append(json_reply(200, {"results": []}))
    sdk.Client(fake.url).submit_batch(envs, wait=True)
    (req,) = fake.seen
    assert req.path == "/v1/records/batch?wait=1"
    assert req.headers["content-type"] == "application/msgpack"
    assert codec.decode(req.body) == envs


def test_gets_use_hex_ids(fake: FakeNode) -> None:
    rid = bytes(range(32))
    fake.queue += [json_reply(200, {"id": rid.hex()}), json_reply(200, {"format": "x"}), json_reply(200, {"height": 3})]
    c = sdk.Client(fake.url)
    assert c.get_record(rid) == {"id": rid.hex()}
    assert c.evidence(rid.hex().upper()) == {"format": "x"}
    assert c.status() == {"height": 3}
    assert [r.path for r in fake.seen] == [
        f"/v1/records/{rid.hex()}", f"/v1/records/{rid.hex()}/evidence", "/v1/status"]
    with pytest.raises(ValueError):
        c.get_record("../status")
    assert len(fake.seen) == 3  # a bad id never reaches the wire


def test_genesis_is_returned_as_exact_bytes(fake: FakeNode, net: Net) -> None:
    fake.routes["/v1/genesis"] = (200, {"Content-Type": "application/json"}, net.genesis.raw)
    assert sdk.Client(fake.url).genesis() == net.genesis.raw


# -- errors and retries ---------------------------------------------------------------


def test_error_body_becomes_api_error(fake: FakeNode, net: Net) -> None:
    fake.queue.append(error_reply(403, "role_denied", "key abc may not submit cert.issue"))
    with pytest.raises(sdk.ApiError) as info:
        sdk.Client(fake.url).submit(_envelope(net))
    err = info.value
    assert (err.status, err.code, err.message) == (403, "role_denied", "key abc may not submit cert.issue")
    assert err.body == {"error": {"code": "role_denied", "message": "key abc may not submit cert.issue"}}


def test_non_json_error_still_raises_api_error(fake: FakeNode) -> None:
    fake.queue.append((502, {"Content-Type": "text/plain"}, b"bad gateway"))
    with pytest.raises(sdk.ApiError) as info:
        sdk.Client(fake.url).status()
    assert (info.value.status, info.value.code, info.value.message) == (502, "http_502", "bad gateway")


def test_503_is_retried_after_retry_after(fake: FakeNode, net: Net, sleeps: list[float]) -> None:
    env = _envelope(net)
    fake.queue += [error_reply(503, "backpressure", "mempool full", {"Retry-After": "2"}),
                   error_reply(503, "backpressure", "mempool full"),  # no header: default
                   json_reply(202, PENDING)]
    assert sdk.Client(fake.url).submit(env) == PENDING
    assert sleeps == [2.0, sdk.RETRY_AFTER_DEFAULT_S]
    assert [r.body for r in fake.seen] == [env] * 3


def test_503_retries_are_bounded(fake: FakeNode, net: Net, sleeps: list[float]) -> None:
    fake.queue += [error_reply(503, "backpressure", "full", {"Retry-After": "99999"})] * 10
    with pytest.raises(sdk.ApiError) as info:
        sdk.Client(fake.url).submit(_envelope(net))
    assert info.value.status == 503 and info.value.code == "backpressure"
    assert len(fake.seen) == sdk.RETRIES_503_MAX + 1
    assert sleeps == [sdk.RETRY_AFTER_MAX_S] * sdk.RETRIES_503_MAX


def test_other_errors_are_not_retried(fake: FakeNode, net: Net, sleeps: list[float]) -> None:
    fake.queue += [error_reply(500, "internal", "boom"), json_reply(202, PENDING)]
    with pytest.raises(sdk.ApiError):
        sdk.Client(fake.url).submit(_envelope(net))
    assert len(fake.seen) == 1 and sleeps == []


def test_answer_size_is_bounded(fake: FakeNode, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sdk, "RESPONSE_MAX_BYTES", 100)
    fake.queue.append(json_reply(200, {"pad": "x" * 200}))
    with pytest.raises(sdk.TransportError, match="larger than 100"):
        sdk.Client(fake.url).status()


def test_unreachable_node_is_a_transport_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the call
    with pytest.raises(sdk.TransportError):
        sdk.Client(f"http://127.0.0.1:{port}", timeout_s=2).status()
    assert sdk.Client(f"http://127.0.0.1:{port}", timeout_s=2).healthy() is False


def test_bad_api_url_is_refused() -> None:
    with pytest.raises(ValueError):
        sdk.Client("127.0.0.1:7100")


# -- signing --------------------------------------------------------------------------


def test_record_signs_an_envelope_the_ledger_accepts(fake: FakeNode, net: Net) -> None:
    fake.routes["/v1/genesis"] = (200, {}, net.genesis.raw)
    c = sdk.Client(fake.url, net.clients[1])  # chain id from GET /v1/genesis
    ref = content("earlier")
    before = int(time.time() * 1000)
    raw = c.record("evidence.notarize", "case-7", sdk.json_body("evidence.notarize", {
        "content_hash": content("doc").hex(), "media_type": "application/pdf", "size": 12, "title": "contract"}),
        refs=[ref.hex()])
    after = int(time.time() * 1000)
    assert c.chain_id == net.chain_id and [r.path for r in fake.seen] == ["/v1/genesis"]
    env = decode_envelope(raw, net.genesis)
    signer = check_signer(env, net.genesis)
    assert signer.pubkey == net.clients[1].public
    rec = env.record
    assert (rec.type, rec.subject, rec.refs, rec.key) == (
        "evidence.notarize", "case-7", (ref,), net.clients[1].public.key_id)
    assert rec.body["content_hash"] == content("doc") and rec.body["size"] == 12
    assert before <= rec.ts <= after and len(rec.nonce) == 16
    again = decode_envelope(c.record("evidence.notarize", "case-7", rec.body, refs=[ref], ts=rec.ts), net.genesis)
    assert again.record.nonce != rec.nonce and again.record_id != env.record_id
    assert len(fake.seen) == 1  # the chain id is fetched once


def test_record_needs_a_key(net: Net) -> None:
    with pytest.raises(ValueError, match="no key"):
        sdk.Client("http://127.0.0.1:1", chain_id=net.chain_id).record("trace.event", "p", {"activity": "x"})


def test_verify_evidence_in_process(fake: FakeNode, net: Net) -> None:
    now = int(time.time() * 1000)
    c = sdk.Client(fake.url, net.clients[1], net.chain_id)
    raw = c.record("trace.event", "batch-1", {"activity": "harvest"})
    store = Store.memory()
    commit_records(net, store, [raw], time_ms=now)
    rid = decode_envelope(raw, net.genesis).record_id
    bundle = build_bundle(store, net.genesis, rid)
    fake.routes[f"/v1/records/{rid.hex()}/evidence"] = json_reply(200, bundle)
    fetched = c.evidence(rid)
    assert fetched == bundle
    assert c.verify_evidence(fetched, net.genesis.raw).valid
    fetched["leaf_index"] += 1
    assert not c.verify_evidence(fetched, net.genesis.raw).valid


# -- bodies from JSON -----------------------------------------------------------------


def test_json_body_turns_hex_hash_fields_into_bytes() -> None:
    h = content("x").hex()
    body = sdk.json_body("cert.issue", {"cert_type": "license", "holder": h, "content_hash": h,
                                        "valid_from": 1, "valid_until": 2})
    assert body["holder"] == body["content_hash"] == bytes.fromhex(h)
    assert body["cert_type"] == "license" and body["valid_until"] == 2
    assert sdk.hash_fields("share.access") == {"grant", "content_hash"}
    assert sdk.hash_fields("trace.event") == {"content_hash"}
    # a text field that happens to be 64 hex stays text
    assert sdk.json_body("trace.event", {"activity": h})["activity"] == h
    with pytest.raises(ValueError, match="float"):
        sdk.json_body("evidence.notarize", {"size": 1.5})
    with pytest.raises(ValueError, match="64 hex"):
        sdk.json_body("evidence.notarize", {"content_hash": "abcd"})
    with pytest.raises(ValueError, match="unknown record type"):
        sdk.json_body("nope", {})


def test_body_with_file(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(b"%PDF-1.7 hello")
    body = sdk.body_with_file("evidence.notarize", {"title": "contract"}, path)
    assert body == {"title": "contract", "content_hash": hashlib.sha256(b"%PDF-1.7 hello").digest(),
                    "size": 14, "media_type": "application/pdf"}
    assert sdk.body_with_file("evidence.notarize", {}, path)["title"] == "scan.pdf"
    with pytest.raises(ValueError, match="differs"):
        sdk.body_with_file("evidence.notarize", {"content_hash": bytes(32)}, path)
    with pytest.raises(ValueError, match="no content_hash"):
        sdk.body_with_file("cert.revoke", {}, path)


# -- async front end ------------------------------------------------------------------


async def test_async_client_shapes_errors_and_retry(fake: FakeNode, net: Net, sleeps: list[float]) -> None:
    fake.routes["/v1/genesis"] = (200, {}, net.genesis.raw)
    fake.routes["/healthz"] = json_reply(200, {"ok": True})
    async with sdk.AsyncClient(fake.url, net.clients[1]) as c:
        raw = await c.record("trace.event", "lot-9", {"activity": "pack"})
        check_signer(decode_envelope(raw, net.genesis), net.genesis)
        fake.queue += [error_reply(503, "backpressure", "full", {"Retry-After": "1"}), json_reply(202, PENDING)]
        assert await c.submit(raw, wait=True, timeout_ms=100) == PENDING
        fake.queue.append(json_reply(200, {"results": []}))
        await c.submit_batch([raw])
        fake.queue.append(error_reply(400, "invalid_record", "subject must be 1 to 256 chars"))
        with pytest.raises(sdk.ApiError) as info:
            await c.submit(raw)
        assert await c.genesis() == net.genesis.raw
        assert await c.healthy()
    assert (info.value.status, info.value.code) == (400, "invalid_record")
    assert sleeps == [1.0]
    paths = [r.path for r in fake.seen]
    assert paths == ["/v1/genesis", "/v1/records?wait=1&timeout_ms=100", "/v1/records?wait=1&timeout_ms=100",
                     "/v1/records/batch", "/v1/records", "/v1/genesis", "/healthz"]
    assert fake.seen[1].headers["content-type"] == "application/msgpack" and fake.seen[1].body == raw
    assert codec.decode(fake.seen[3].body) == [raw]


async def test_async_answer_size_is_bounded(fake: FakeNode, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sdk, "RESPONSE_MAX_BYTES", 100)
    fake.queue.append(json_reply(200, {"pad": "x" * 200}))
    async with sdk.AsyncClient(fake.url) as c:
        with pytest.raises(sdk.TransportError, match="larger than 100"):
            await c.status()


# -- the CLI ---------------------------------------------------------------------------


def _key_file(tmp_path: Path, key: crypto.PrivateKey) -> Path:
    path = tmp_path / "client.pem"
    crypto.save_private_key(path, key)
    return path


def test_cli_submit(fake: FakeNode, net: Net, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake.routes["/v1/genesis"] = (200, {}, net.genesis.raw)
    committed = {"id": "cd" * 32, "status": "committed", "height": 3, "leaf_index": 9, "block_hash": "ef" * 32}
    fake.queue.append(json_reply(200, committed))
    doc = tmp_path / "photo.png"
    doc.write_bytes(b"\x89PNG....")
    ref = content("input").hex()
    rc = main(["submit", "--api", fake.url, "--key", str(_key_file(tmp_path, net.clients[1])),
               "--type", "evidence.notarize", "--subject", "case-1", "--body", '{"title": "scene"}',
               "--file", str(doc), "--ref", ref, "--wait"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert json.loads(out) == committed
    post = fake.seen[-1]
    assert post.path == "/v1/records?wait=1" and post.headers["content-type"] == "application/msgpack"
    env = decode_envelope(post.body, net.genesis)
    check_signer(env, net.genesis)
    assert env.record.body == {"title": "scene", "content_hash": hashlib.sha256(doc.read_bytes()).digest(),
                               "size": 8, "media_type": "image/png"}
    assert env.record.refs == (bytes.fromhex(ref),)


def test_cli_submit_error_exit_1(fake: FakeNode, net: Net, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    fake.queue.append(error_reply(403, "role_denied", "no"))
    rc = main(["submit", "--api", fake.url, "--key", str(_key_file(tmp_path, net.clients[1])),
               "--chain-id", net.chain_id, "--type", "trace.event", "--subject", "x",
               "--body", '{"activity": "pack"}'])
    out, err = capsys.readouterr()
    assert rc == 1 and out == ""
    assert json.loads(err) == {"error": {"code": "role_denied", "message": "no"}}
    assert [r.path for r in fake.seen] == ["/v1/records"]  # --chain-id: no genesis fetch


def test_cli_submit_bad_input_exit_2(fake: FakeNode, net: Net, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    key = str(_key_file(tmp_path, net.clients[1]))
    base = ["submit", "--api", fake.url, "--key", key, "--chain-id", net.chain_id, "--subject", "x"]
    assert main(base + ["--type", "trace.event", "--body", "{not json"]) == 2
    assert main(base + ["--type", "evidence.notarize", "--body", '{"size": 1.5}']) == 2
    assert main(base + ["--type", "no.such", "--body", "{}"]) == 2
    assert main(["submit", "--key", key, "--type", "trace.event", "--subject", "x"]) == 2  # no --api
    assert fake.seen == []
    capsys.readouterr()


def test_cli_evidence(fake: FakeNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rid = "12" * 32
    bundle = {"format": "ledgernode-evidence/2", "record_id": rid, "leaf_index": 4}
    fake.routes[f"/v1/records/{rid}/evidence"] = json_reply(200, bundle)
    out_file = tmp_path / "bundle.json"
    assert main(["evidence", "--api", fake.url, "--id", rid, "--out", str(out_file)]) == 0
    assert json.loads(out_file.read_text()) == bundle
    assert json.loads(capsys.readouterr().out)["record_id"] == rid
    assert main(["evidence", "--api", fake.url, "--id", "34" * 32, "--out", str(tmp_path / "x.json")]) == 1
    assert json.loads(capsys.readouterr().err)["error"]["code"] == "not_found"
    assert not (tmp_path / "x.json").exists()


def test_cli_submit_with_devnet_shortcut(fake: FakeNode, net: Net, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "devnet"
    (d / "clients").mkdir(parents=True)
    crypto.save_private_key(d / "clients" / "admin.pem", net.clients[0])
    (d / "devnet.json").write_text(json.dumps({
        "chain_id": net.chain_id, "genesis": "genesis.json",
        "nodes": [{"index": 0, "dept": "justice", "api": fake.url, "pid": os.getpid(), "config": "node0/node.toml"}],
        "clients": [{"dept": "justice", "key_file": "clients/admin.pem",
                     "key_id": net.clients[0].public.key_id, "roles": ["*"]}],
    }))
    fake.queue.append(json_reply(202, PENDING))
    rc = main(["submit", "--devnet", str(d), "--type", "trace.event", "--subject", "lot", "--body",
               '{"activity": "ship"}'])
    assert rc == 0, capsys.readouterr().err
    env = decode_envelope(fake.seen[-1].body, net.genesis)
    assert env.record.key == net.clients[0].public.key_id
    assert [r.path for r in fake.seen] == ["/v1/records"]  # chain id came from devnet.json


# -- submission outcomes ----------------------------------------------------------------

REJECTED = {"id": "cd" * 32, "status": "rejected", "height": 7,
            "error": {"code": "rule_violation", "message": "certificate LIC-1 was issued before"}}


def test_rejected_when_a_block_was_built_raises_record_rejected(fake: FakeNode, net: Net) -> None:
    fake.queue.append(json_reply(409, REJECTED))
    with pytest.raises(sdk.RecordRejected) as info:
        sdk.Client(fake.url).submit(_envelope(net), wait=True)
    err = info.value
    assert isinstance(err, sdk.ApiError)
    assert (err.status, err.record_id, err.height, err.code, err.message) == (
        409, "cd" * 32, 7, "rule_violation", "certificate LIC-1 was issued before")
    assert err.body == REJECTED
    assert "cd" * 32 in str(err) and "height 7" in str(err)


def test_admission_refusal_keeps_its_rule(fake: FakeNode, net: Net) -> None:
    refusal = {"error": {"code": "rule_violation", "rule": "cert.number_unused", "message": "issued before"}}
    fake.queue.append(json_reply(409, refusal))
    with pytest.raises(sdk.ApiError) as info:
        sdk.Client(fake.url).submit(_envelope(net))
    assert not isinstance(info.value, sdk.RecordRejected)
    assert (info.value.code, info.value.rule) == ("rule_violation", "cert.number_unused")
    assert info.value.details == refusal["error"]
    fake.queue.append(error_reply(403, "role_denied", "no"))
    with pytest.raises(sdk.ApiError) as info:
        sdk.Client(fake.url).submit(_envelope(net))
    assert info.value.rule is None


def test_batch_items_and_record_reads_leave_rejections_as_answers(fake: FakeNode, net: Net) -> None:
    committed = {"id": "ab" * 32, "status": "committed", "height": 7, "leaf_index": 3, "block_hash": "ef" * 32}
    fake.queue += [json_reply(200, {"results": [committed, REJECTED, PENDING]}), json_reply(200, REJECTED)]
    c = sdk.Client(fake.url)
    results = c.submit_batch([_envelope(net, 1), _envelope(net, 2), _envelope(net, 3)], wait=True)["results"]
    assert [sdk.rejection(item) is None for item in results] == [True, False, True]
    found = sdk.rejection(results[1])
    assert found is not None and (found.record_id, found.height, found.code) == ("cd" * 32, 7, "rule_violation")
    assert c.get_record("cd" * 32) == REJECTED  # a read of a rejected record is an answer, not an error


async def test_async_submit_raises_record_rejected(fake: FakeNode, net: Net) -> None:
    fake.queue.append(json_reply(409, REJECTED))
    async with sdk.AsyncClient(fake.url) as c:
        with pytest.raises(sdk.RecordRejected) as info:
            await c.submit(_envelope(net), wait=True)
    assert (info.value.record_id, info.value.height) == ("cd" * 32, 7)


# -- auditors' reads ----------------------------------------------------------------------


def test_read_methods_request_shapes(fake: FakeNode) -> None:
    rid = bytes(range(32))
    c = sdk.Client(fake.url)
    fake.queue += [json_reply(200, {"n": i}) for i in range(10)]
    c.checkpoint()
    c.checkpoint(3)
    c.consistency(2, 5)
    c.history("ds/a b", start=4, limit=2)
    c.history("EV-1", 0)
    c.cert_status("LIC/1")
    c.cert_status("LIC-1", at_ms=1767225600000)
    c.shares("ds/health")
    c.provenance(rid, depth=2)
    c.provenance(rid, 3, "forward")
    assert [r.path for r in fake.seen] == [
        "/v1/checkpoint", "/v1/checkpoints/3", "/v1/proofs/consistency?from=2&to=5",
        "/v1/subjects/ds%2Fa%20b?from=4&limit=2", "/v1/subjects/EV-1?from=0",
        "/v1/certificates/LIC%2F1/status", "/v1/certificates/LIC-1/status?at=1767225600000",
        "/v1/datasets/ds%2Fhealth/shares", f"/v1/provenance/{rid.hex()}?depth=2&direction=back",
        f"/v1/provenance/{rid.hex()}?depth=3&direction=forward"]
    for bad in (lambda: c.checkpoint(0), lambda: c.checkpoint(True), lambda: c.consistency(-1, 2),
                lambda: c.history(""), lambda: c.history("x" * 257), lambda: c.history("x", limit=0),
                lambda: c.history("x", start=-1), lambda: c.history("x", start=True),
                lambda: c.cert_status("x", at_ms=-5), lambda: c.provenance("../status"),
                lambda: c.provenance(rid, 2, "sideways")):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(TypeError):
        c.history("x", after=4)  # type: ignore[call-arg]  # paging by leaf is gone: by list position
    assert len(fake.seen) == 10  # nothing bad reached the wire


async def test_async_read_methods(fake: FakeNode) -> None:
    fake.queue += [json_reply(200, {"n": i}) for i in range(8)]
    async with sdk.AsyncClient(fake.url) as c:
        answers = [await c.checkpoint(2), await c.consistency(1, 1), await c.history("s", limit=5),
                   await c.history("s", 7, 5), await c.cert_status("n", 9), await c.shares("d"),
                   await c.provenance("ab" * 32), await c.provenance("ab" * 32, 1, "forward")]
        with pytest.raises(ValueError):
            await c.provenance("ab" * 32, 1, "up")
    assert answers == [{"n": i} for i in range(8)]
    assert [r.path for r in fake.seen] == [
        "/v1/checkpoints/2", "/v1/proofs/consistency?from=1&to=1", "/v1/subjects/s?limit=5",
        "/v1/subjects/s?from=7&limit=5", "/v1/certificates/n/status?at=9", "/v1/datasets/d/shares",
        f"/v1/provenance/{'ab' * 32}?direction=back", f"/v1/provenance/{'ab' * 32}?depth=1&direction=forward"]


# -- `submit --wait` and `record` exit codes ---------------------------------------------------


def _submit_argv(fake: FakeNode, net: Net, tmp_path: Path, *extra: str) -> list[str]:
    key = tmp_path / "client.pem"
    if not key.exists():
        _key_file(tmp_path, net.clients[1])
    return ["submit", "--api", fake.url, "--key", str(key),
            "--chain-id", net.chain_id, "--type", "trace.event", "--subject", "lot", "--body",
            '{"activity": "pack"}', *extra]


def test_cli_submit_wait_rejected_exit_1(fake: FakeNode, net: Net, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    fake.queue.append(json_reply(409, REJECTED))
    rc = main(_submit_argv(fake, net, tmp_path, "--wait"))
    out, err = capsys.readouterr()
    assert rc == 1 and out == ""
    assert json.loads(err) == REJECTED


def test_cli_submit_wait_still_pending_exit_3(fake: FakeNode, net: Net, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    fake.queue.append(json_reply(202, PENDING))
    rc = main(_submit_argv(fake, net, tmp_path, "--wait", "--timeout-ms", "250"))
    out, err = capsys.readouterr()
    assert rc == 3
    assert json.loads(out) == PENDING
    assert err.strip() == (f"still pending after 250 ms; check with: "
                           f"python -m ledgernode record --api {fake.url} {PENDING['id']}")
    fake.queue.append(json_reply(202, PENDING))  # without --timeout-ms: the node's default wait
    assert main(_submit_argv(fake, net, tmp_path, "--wait")) == 3
    assert "still pending after the node's default wait" in capsys.readouterr().err
    fake.queue.append(json_reply(202, PENDING))  # without --wait, pending is the expected answer
    assert main(_submit_argv(fake, net, tmp_path)) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == PENDING and err == ""


def test_cli_record_exit_code_by_status(fake: FakeNode, capsys: pytest.CaptureFixture[str]) -> None:
    committed = {"id": "ab" * 32, "status": "committed", "height": 2, "leaf_index": 0}
    fake.queue += [json_reply(200, committed), json_reply(200, REJECTED), json_reply(200, PENDING),
                   error_reply(404, "not_found", "neither committed nor pending")]
    assert main(["record", "--api", fake.url, "ab" * 32]) == 0
    assert json.loads(capsys.readouterr().out) == committed
    assert main(["record", "--api", fake.url, "cd" * 32]) == 1
    out, err = capsys.readouterr()
    assert out == "" and json.loads(err) == REJECTED
    assert main(["record", "--api", fake.url, "ab" * 32]) == 3
    out, err = capsys.readouterr()
    assert json.loads(out) == PENDING and "still pending" in err
    assert main(["record", "--api", fake.url, "ef" * 32]) == 1
    assert json.loads(capsys.readouterr().err)["error"]["code"] == "not_found"
    assert main(["record", "--api", fake.url, "nope"]) == 2
    assert [r.path for r in fake.seen] == [f"/v1/records/{h * 32}" for h in ("ab", "cd", "ab", "ef")]
