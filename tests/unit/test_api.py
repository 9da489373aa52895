"""HTTP API (ledgernode.api) over a fake NodeService backed by a real memory Store.

The fake admits envelopes the way a node does at the door (decode, signer,
ledger rules against the store), keeps a mempool, and commits it on demand
with tests.fixtures.commit_records, so every answer below comes from real
records, blocks, QCs and proofs.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ledgernode import aio, codec
from ledgernode.api import DEBUG_ROUTES, REJECTED, ROUTES, render_rejected
from ledgernode.blocks import decode_header, qc_from_json
from ledgernode.reads import Reads
from ledgernode.records import decode_envelope
from ledgernode.service import Rejection
from ledgernode.config import Limits
from ledgernode.verify import verify_bundle
from tests.fixtures import T0, Net, content, until

from tests.unit.api_fake import (
    LIMITED, LIMITS, MSGPACK, REPO, STRANGER, FakeNode, b64, error_of, notarize, rid, serve,
)

WAIT_S = 60.0  # a bound on waiting for something to happen, not an expected time


@pytest.fixture
async def patient(node: FakeNode) -> AsyncIterator[aio.TestClient]:
    """A client whose ?wait outlasts any test step (LIMITS caps it at 3 s): a test that
    commits while a request waits must not race that request's timeout."""
    wait_ms = int(WAIT_S * 1000)
    async with serve(node, dataclasses.replace(LIMITS, wait_default_ms=wait_ms, wait_max_ms=wait_ms)) as c:
        yield c


async def raw_http(client: aio.TestClient, request: bytes, *more: bytes,
                   pause_s: float = 0.0) -> tuple[int, dict[str, Any]]:
    """Send bytes on a plain socket (for bodies no HTTP client library would send)."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(request)
        for chunk in more:
            await asyncio.sleep(pause_s)
            writer.write(chunk)
            await writer.drain()
        data = await asyncio.wait_for(reader.read(), WAIT_S)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def test_health_genesis_metrics_status(client: aio.TestClient, net: Net) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"ok": True}
    resp = await client.get("/v1/genesis")
    assert resp.status == 200 and resp.content_type == "application/json"
    assert await resp.read() == net.genesis.raw  # exact bytes: auditors pin their hash
    resp = await client.get("/metrics")
    assert resp.status == 200 and "ledgernode_height 0" in await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    resp = await client.get("/v1/status")
    body = await resp.json()
    assert resp.status == 200 and body["height"] == 0 and body["peers"] == {"1": "up"}
    assert body["head_hash"] == "00" * 32 and body["tag"] == "AQI="  # 32 bytes hex, else b64


async def test_submit_msgpack_then_commit_then_resubmit(
    client: aio.TestClient, node: FakeNode, net: Net
) -> None:
    raw = notarize(net, "a")
    resp = await client.post("/v1/records", data=raw, headers=MSGPACK)
    assert resp.status == 202 and await resp.json() == {"id": rid(raw, net), "status": "pending"}
    await node.commit()
    resp = await client.post("/v1/records", data=raw, headers=MSGPACK)
    body = await resp.json()
    assert resp.status == 200
    assert body == {"id": rid(raw, net), "status": "committed", "height": 1, "leaf_index": 0,
                    "block_hash": node.store.load_header(1).block_hash.hex()}
    assert node.store.height == 1 and not node.mempool  # nothing new to commit


async def test_submit_json_envelope(client: aio.TestClient, net: Net, node: FakeNode) -> None:
    raw = notarize(net, "json")
    resp = await client.post("/v1/records", json={"envelope": b64(raw)})
    assert resp.status == 202 and (await resp.json())["status"] == "pending"
    assert list(node.mempool) == [bytes.fromhex(rid(raw, net))]
    # no Content-Type at all: raw bytes are taken as a msgpack envelope
    assert (await client.post("/v1/records", data=notarize(net, "plain"))).status == 202


async def test_wait_answers_200_when_the_record_commits(
    patient: aio.TestClient, node: FakeNode, net: Net
) -> None:
    raw = notarize(net, "wait")
    task = asyncio.create_task(patient.post("/v1/records?wait=1", data=raw, headers=MSGPACK))
    await until(lambda: node.mempool, "the record in the mempool", task)
    await node.commit()
    resp = await task
    body = await resp.json()
    assert resp.status == 200
    assert body["status"] == "committed" and body["height"] == 1 and body["leaf_index"] == 0
    assert body["block_hash"] == node.store.load_header(1).block_hash.hex()


async def test_rejected_after_admission_is_a_definitive_answer(
    patient: aio.TestClient, node: FakeNode, net: Net
) -> None:
    """?wait answers 409 with the rejection; GET and batch items say the same afterwards."""
    raw, other = notarize(net, "lost"), notarize(net, "kept")
    record_id = decode_envelope(raw, net.genesis).record_id
    why = Rejection(record_id, "rule_violation", "certificate LIC-1 was already issued by market at height 12",
                    13, "cert.number_unused")
    task = asyncio.create_task(patient.post("/v1/records?wait=1", data=raw, headers=MSGPACK))
    await until(lambda: record_id in node.mempool, "the record in the mempool", task)
    await node.reject(why)
    resp = await task
    expected = {"id": record_id.hex(), "status": "rejected", "height": 13, "error": {
        "code": "rule_violation", "rule": "cert.number_unused", "message": why.message}}
    assert resp.status == 409 and await resp.json() == expected
    resp = await patient.get(f"/v1/records/{record_id.hex()}")
    assert resp.status == 200 and await resp.json() == expected
    task = asyncio.create_task(patient.post("/v1/records/batch?wait=1",
                                            json={"envelopes": [b64(other), b64(raw)]}))
    # re-submitted, the record passes the fake's rules again
    await until(lambda: len(node.mempool) >= 2, "both records in the mempool", task)
    await node.reject(Rejection(record_id, "rule_violation", why.message, 14, "cert.number_unused"))
    await node.commit()
    resp = await task
    results = (await resp.json())["results"]
    assert resp.status == 200 and [r["status"] for r in results] == ["committed", "rejected"]
    assert results[1] == {**expected, "height": 14}


async def test_wait_times_out_as_pending(client: aio.TestClient, net: Net) -> None:
    raw = notarize(net, "slow")
    resp = await client.post("/v1/records?wait=true&timeout_ms=50", data=raw, headers=MSGPACK)
    assert resp.status == 202 and await resp.json() == {"id": rid(raw, net), "status": "pending"}
    resp = await client.post("/v1/records/batch?wait=1&timeout_ms=30",
                             json={"envelopes": [b64(notarize(net, "p"))]})
    assert resp.status == 200 and (await resp.json())["results"][0]["status"] == "pending"


async def test_wait_is_capped_by_wait_max_ms(node: FakeNode, net: Net) -> None:
    # What the API asks the node to wait for, recorded: no clock in the assertion.
    asked: list[float] = []
    wait_committed = node.wait_committed

    async def recording(record_ids: list[bytes], timeout_s: float) -> Any:
        asked.append(timeout_s)
        return await wait_committed(record_ids, timeout_s)

    node.wait_committed = recording  # type: ignore[method-assign]
    limits = Limits(wait_default_ms=50, wait_max_ms=100)
    async with serve(node, limits) as client:
        raw = notarize(net, "cap")
        resp = await client.post("/v1/records?wait=1&timeout_ms=999999", data=raw, headers=MSGPACK)
        assert resp.status == 202 and await resp.json() == {"id": rid(raw, net), "status": "pending"}
        resp = await client.post("/v1/records?wait=1", data=notarize(net, "default"), headers=MSGPACK)
        assert resp.status == 202
    assert asked == [0.1, 0.05]  # capped at wait_max_ms; wait_default_ms without timeout_ms


@pytest.mark.parametrize("query", ["wait=maybe", "wait=1&timeout_ms=-5", "wait=1&timeout_ms=1.5",
                                   "timeout_ms=abc"])
async def test_bad_wait_parameters(client: aio.TestClient, net: Net, query: str) -> None:
    resp = await client.post(f"/v1/records?{query}", data=notarize(net, "q"), headers=MSGPACK)
    await error_of(resp, 400, "bad_query")


async def test_invalid_records_get_the_rule_status_and_code(
    client: aio.TestClient, net: Net, node: FakeNode
) -> None:
    good = notarize(net, "good")
    record_bytes, sig = codec.decode(good)
    other_chain = Net(chain_id="other-chain")
    cases: list[tuple[bytes, int, str]] = [
        (b"\xc1garbage", 400, "malformed"),
        (codec.encode([record_bytes, sig])[:-1], 400, "malformed"),
        (b"\x92" + b"\xc5\x00" + bytes([len(record_bytes)]) + record_bytes
         + codec.encode(sig), 400, "non_canonical"),
        (codec.encode([record_bytes, bytes(64)]), 400, "bad_signature"),
        (notarize(other_chain, "x"), 400, "wrong_chain"),
        (notarize(net, "stranger", key=STRANGER), 403, "unknown_key"),
        (net.record(0, "cert.issue", "C-1", {
            "cert_type": "license", "holder": content("h"), "content_hash": content("c"),
            "valid_from": T0, "valid_until": T0 + 1}, key=LIMITED), 403, "role_denied"),
        (net.record(0, "cert.revoke", "C-never", {"reason": "x", "effective": T0}),
         409, "rule_violation"),
        (notarize(net, "refs", refs=(content("no such record"),)), 409, "rule_violation"),
        (notarize(net, "old", ts=T0 - 10**9), 400, "ts_window"),
        (codec.encode([b"\x00" * 20_000, sig]), 413, "too_large"),
    ]
    for raw, status, code in cases:
        resp = await client.post("/v1/records", data=raw, headers=MSGPACK)
        await error_of(resp, status, code)
    assert not node.mempool
    resp = await client.post("/v1/records", data=notarize(net, "ok", key=LIMITED), headers=MSGPACK)
    assert resp.status == 202


async def test_malformed_request_bodies(client: aio.TestClient, net: Net) -> None:
    json_h = {"Content-Type": "application/json"}
    cases: list[tuple[bytes, dict[str, str], int, str]] = [
        (b"", MSGPACK, 400, "empty_body"),
        (b"{not json", json_h, 400, "bad_json"),
        (b"[1, 2]", json_h, 400, "bad_json"),
        (b'{"envelope": "AAAA", "extra": 1}', json_h, 400, "bad_json"),
        (b'{"envelope": "AAAA", "envelope": "AAAA"}', json_h, 400, "bad_json"),
        (b"{}", json_h, 400, "bad_json"),
        (b'{"envelope": "not base64!"}', json_h, 400, "bad_base64"),
        (b'{"envelope": "AAA"}', json_h, 400, "bad_base64"),
        (b'{"envelope": 12}', json_h, 400, "bad_base64"),
        (b"[" * 100 + b"]" * 100, json_h, 400, "bad_json"),
        (notarize(net, "t"), {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ]
    for body, headers, status, code in cases:
        resp = await client.post("/v1/records", data=body, headers=headers)
        await error_of(resp, status, code)


async def test_body_over_the_limit_is_refused_before_reading(client: aio.TestClient) -> None:
    resp = await client.post("/v1/records", data=b"\x00" * (LIMITS.body_max_bytes + 1),
                             headers=MSGPACK)
    await error_of(resp, 413, "body_too_large")
    # A huge declared length with no body sent at all: answered without waiting for it.
    status, body = await raw_http(client, (
        b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
        b"Content-Length: 999999999999\r\n\r\n"))
    assert status == 413 and body["error"]["code"] == "body_too_large"


async def test_chunked_body_over_the_limit_is_cut_off(client: aio.TestClient) -> None:
    chunk = b"\x00" * 16_384
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    status, body = await raw_http(client, (
        b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n") + frame * 5 + b"0\r\n\r\n")
    assert status == 413 and body["error"]["code"] == "body_too_large"


async def test_slow_drip_body_times_out(node: FakeNode) -> None:
    async with serve(node, body_timeout_s=0.2) as client:
        status, body = await raw_http(client, (
            b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
            b"Content-Length: 100\r\n\r\n"), b"\x92", b"\xc4", pause_s=0.15)
        assert status == 408 and body["error"]["code"] == "body_timeout"
        assert (await client.get("/healthz")).status == 200


async def test_backpressure_is_503_with_retry_after(net: Net) -> None:
    node = FakeNode(net, capacity=1)
    async with serve(node) as client:
        resp = await client.post("/v1/records", data=notarize(net, "1"), headers=MSGPACK)
        assert resp.status == 202
        resp = await client.post("/v1/records", data=notarize(net, "2"), headers=MSGPACK)
        await error_of(resp, 503, "backpressure")
        assert resp.headers["Retry-After"] == "2"


async def test_answers_past_the_reads_bound_are_503_with_retry_after(net: Net) -> None:
    node = FakeNode(net)
    node.reads = Reads(lambda name: None, inflight_max=0)  # every heavy read is one too many
    async with serve(node) as client:
        assert (await client.post("/v1/records", data=notarize(net, "1"), headers=MSGPACK)).status == 202
        await node.commit()
        for path in ("/v1/subjects/case-1", "/v1/certificates/LIC-1/status", "/v1/datasets/ds-1/shares",
                     f"/v1/records/{'00' * 32}/evidence", "/v1/blocks/1"):
            resp = await client.get(path)
            body = await error_of(resp, 503, "backpressure")
            assert resp.headers["Retry-After"] == "1" and "answers" in body["error"]["message"], path
        assert (await client.get("/v1/checkpoint")).status == 200  # light reads stay on the loop


async def test_batch_msgpack_per_item_results(
    client: aio.TestClient, net: Net, node: FakeNode
) -> None:
    old = notarize(net, "committed-before")
    await client.post("/v1/records", data=old, headers=MSGPACK)
    await node.commit()
    a, b = notarize(net, "b1"), notarize(net, "b2")
    bad_sig = codec.encode([codec.decode(a)[0], bytes(64)])
    body = codec.encode([a, bad_sig, old, b"\xc1", b])
    resp = await client.post("/v1/records/batch", data=body, headers=MSGPACK)
    results = (await resp.json())["results"]
    assert resp.status == 200 and len(results) == 5
    assert results[0] == {"id": rid(a, net), "status": "pending"}
    assert results[1]["error"]["code"] == "bad_signature"
    assert results[2]["status"] == "committed" and results[2]["height"] == 1
    assert results[3]["error"]["code"] == "malformed"
    assert results[4] == {"id": rid(b, net), "status": "pending"}


async def test_batch_json_with_wait(patient: aio.TestClient, net: Net, node: FakeNode) -> None:
    a, b = notarize(net, "j1"), notarize(net, "j2")
    task = asyncio.create_task(patient.post(
        "/v1/records/batch?wait=1", json={"envelopes": [b64(a), "%%%", b64(b)]}))
    await until(lambda: len(node.mempool) >= 2, "both records in the mempool", task)
    await node.commit()
    resp = await task
    results = (await resp.json())["results"]
    assert resp.status == 200
    assert [r.get("status") for r in results] == ["committed", None, "committed"]
    assert results[1]["error"]["code"] == "bad_base64"
    assert {results[0]["leaf_index"], results[2]["leaf_index"]} == {0, 1}


async def test_batch_shape_errors(client: aio.TestClient, net: Net) -> None:
    too_many = [notarize(net, f"m{i}") for i in range(LIMITS.batch_max_records + 1)]
    cases: list[tuple[str, Any, int, str]] = [
        ("msgpack", codec.encode(too_many), 413, "batch_too_large"),
        ("json", {"envelopes": [b64(r) for r in too_many]}, 413, "batch_too_large"),
        ("msgpack", codec.encode([]), 400, "empty_batch"),
        ("json", {"envelopes": []}, 400, "empty_batch"),
        ("json", {"envelopes": "AAAA"}, 400, "bad_json"),
        ("msgpack", codec.encode({"a": 1}), 400, "bad_batch"),
        ("msgpack", codec.encode([1, 2]), 400, "bad_batch"),
        ("msgpack", b"\xc4\x03abc", 400, "bad_batch"),
    ]
    for kind, body, status, code in cases:
        if kind == "json":
            resp = await client.post("/v1/records/batch", json=body)
        else:
            resp = await client.post("/v1/records/batch", data=body, headers=MSGPACK)
        await error_of(resp, status, code)


async def test_batch_backpressure(net: Net) -> None:
    node = FakeNode(net, capacity=1)
    async with serve(node) as client:
        resp = await client.post("/v1/records/batch", json={
            "envelopes": [b64(notarize(net, "x1")), b64(notarize(net, "x2"))]})
        results = (await resp.json())["results"]
        assert resp.status == 200 and resp.headers["Retry-After"] == "2"
        assert results[0]["status"] == "pending" and results[1]["error"]["code"] == "backpressure"
        resp = await client.post("/v1/records/batch",
                                 json={"envelopes": [b64(notarize(net, "x3"))]})
        await error_of(resp, 503, "backpressure")
        assert resp.headers["Retry-After"] == "2"


async def test_get_record_pending_then_committed(
    client: aio.TestClient, net: Net, node: FakeNode
) -> None:
    raw = net.record(0, "trace.event", "BATCH-7",
                     {"activity": "harvest", "content_hash": content("t")})
    await client.post("/v1/records", data=raw, headers=MSGPACK)
    resp = await client.get(f"/v1/records/{rid(raw, net)}")
    body = await resp.json()
    assert resp.status == 200
    assert body["status"] == "pending" and body["height"] is None and body["leaf_index"] is None
    assert base64.b64decode(body["envelope"]) == raw
    await node.commit()
    child = net.record(0, "trace.event", "BATCH-8", {"activity": "pack"},
                       refs=(bytes.fromhex(rid(raw, net)),))
    await client.post("/v1/records", data=child, headers=MSGPACK)
    await node.commit()
    body = await (await client.get(f"/v1/records/{rid(child, net)}")).json()
    assert set(body) == {"id", "status", "height", "leaf_index", "envelope", "record", "signer_dept"}
    assert body["status"] == "committed" and body["height"] == 2 and body["leaf_index"] == 1
    assert body["signer_dept"] == net.genesis.signers[net.clients[0].public.key_id].dept
    rec = body["record"]
    assert rec["refs"] == [rid(raw, net)] and rec["chain"] == net.chain_id
    assert rec["type"] == "trace.event" and rec["subject"] == "BATCH-8" and rec["v"] == 1
    assert rec["body"] == {"activity": "pack"} and rec["ts"] == T0
    assert base64.b64decode(rec["nonce"]) == decode_envelope(child, net.genesis).record.nonce
    assert rec["key"] == net.clients[0].public.key_id
    first = await (await client.get(f"/v1/records/{rid(raw, net)}")).json()
    assert first["record"]["body"]["content_hash"] == content("t").hex()


async def test_get_record_bad_and_unknown_ids(client: aio.TestClient) -> None:
    for bad_id in ["abc", "AB" * 32, "zz" * 32, "ab" * 33]:
        await error_of(await client.get(f"/v1/records/{bad_id}"), 400, "bad_id")
        await error_of(await client.get(f"/v1/records/{bad_id}/evidence"), 400, "bad_id")
    await error_of(await client.get("/v1/records/" + "ab" * 32), 404, "not_found")


async def test_evidence_404_until_committed_then_verifies(
    client: aio.TestClient, net: Net, node: FakeNode
) -> None:
    raws = [notarize(net, f"e{i}") for i in range(3)]
    for raw in raws:
        await client.post("/v1/records", data=raw, headers=MSGPACK)
    await error_of(await client.get(f"/v1/records/{rid(raws[1], net)}/evidence"), 404, "not_found")
    await node.commit()
    resp = await client.get(f"/v1/records/{rid(raws[1], net)}/evidence")
    bundle = await resp.json()
    assert resp.status == 200 and bundle["record_id"] == rid(raws[1], net)
    assert bundle["format"] == "ledgernode-evidence/2" and bundle["leaf_index"] == 1
    assert set(bundle["state"]) == {"checkpoint", "consistency", "key"} and bundle["epochs"] == []
    verdict = verify_bundle(bundle, net.genesis)
    assert verdict.valid, verdict.checks
    assert verdict.checks[-1]["check"] == "key" and verdict.facts["record"]["signer"]["dept"] == "justice"


async def test_blocks(client: aio.TestClient, net: Net, node: FakeNode) -> None:
    raws = [notarize(net, f"blk{i}") for i in range(2)]
    for raw in raws:
        await client.post("/v1/records", data=raw, headers=MSGPACK)
    await node.commit()
    resp = await client.get("/v1/blocks/1")
    body = await resp.json()
    assert resp.status == 200 and set(body) == {"height", "header", "qc", "envelopes", "block_hash", "time_ms",
                                                "proposer", "log_start", "log_size", "log_root", "records"}
    header = decode_header(base64.b64decode(body["header"]))
    assert body["height"] == header.height == 1
    # the header's fields and the records decoded, for the browser console
    assert (body["block_hash"], body["time_ms"], body["log_size"]) == (header.block_hash.hex(), header.time, 2)
    assert [r["subject"] for r in body["records"]] == ["EV-blk0", "EV-blk1"]
    assert [r["leaf_index"] for r in body["records"]] == [0, 1]
    assert {r["type"] for r in body["records"]} == {"evidence.notarize"}
    assert body["records"][0]["id"] == rid(raws[0], net) and body["records"][0]["signer_dept"] is not None
    assert qc_from_json(body["qc"]).block_hash == header.block_hash
    assert body["qc"]["block_hash"] == header.block_hash.hex()
    assert [base64.b64decode(e) for e in body["envelopes"]] == raws
    assert (await (await client.get("/v1/blocks/001")).json())["height"] == 1
    await error_of(await client.get("/v1/blocks/2"), 404, "not_found")
    await error_of(await client.get("/v1/blocks/" + "9" * 60), 404, "not_found")
    for bad_height in ["abc", "0", "-1", "1.5", "0x1"]:
        await error_of(await client.get(f"/v1/blocks/{bad_height}"), 400, "bad_height")


async def test_checkpoint(client: aio.TestClient, net: Net, node: FakeNode) -> None:
    await error_of(await client.get("/v1/checkpoint"), 404, "not_found")
    for label in ("c1", "c2"):
        await client.post("/v1/records", data=notarize(net, label), headers=MSGPACK)
        await node.commit()
    resp = await client.get("/v1/checkpoint")
    body = await resp.json()
    head = node.store.head()
    assert resp.status == 200 and head is not None
    assert body == {"height": 2, "header": b64(head.raw), "qc": node.store.load_qc(2).to_json(),
                    "log_size": 2, "log_root": head.log_root.hex(), "epochs": []}


async def test_unknown_route_and_wrong_method_are_json(client: aio.TestClient) -> None:
    await error_of(await client.get("/nope"), 404, "not_found")
    resp = await client.delete("/v1/records")
    await error_of(resp, 405, "method_not_allowed")
    assert "POST" in resp.headers["Allow"]
    await error_of(await client.post("/v1/status"), 405, "method_not_allowed")
    await error_of(await client.post("/v1/debug/faults", json={}), 404, "not_found")


async def test_unexpected_exception_is_500_and_the_node_keeps_serving(
    client: aio.TestClient, node: FakeNode
) -> None:
    node.broken = True
    body = await error_of(await client.get("/v1/status"), 500, "internal")
    assert "exploded" not in body["error"]["message"]  # internals stay in the log
    assert (await client.get("/healthz")).status == 200


async def test_debug_faults(node: FakeNode) -> None:
    async with serve(node, debug=True) as client:
        resp = await client.post("/v1/debug/faults", json={"drop": 0.5, "partition": [[0], [1, 2]]})
        assert resp.status == 200 and await resp.json() == {"ok": True}
        assert node.faults == {"drop": 0.5, "partition": [[0], [1, 2]]}
        await error_of(await client.post("/v1/debug/faults", json={"bogus": 1}), 400, "bad_faults")
        resp = await client.post("/v1/debug/faults", data=b"[",
                                 headers={"Content-Type": "application/json"})
        await error_of(resp, 400, "bad_json")
        await error_of(await client.post("/v1/debug/faults", data=b"{}", headers=MSGPACK),
                       400, "bad_json")


async def test_rejections_are_counted_by_code(node: FakeNode, net: Net) -> None:
    shared: Counter[str] = Counter()
    async with serve(node, rejected=shared) as client:
        assert client.app is not None and client.app[REJECTED] is shared
        await client.get("/v1/records/xyz")
        await client.post("/v1/records", data=b"\xc1", headers=MSGPACK)
        await client.post("/v1/records/batch", json={"envelopes": ["%%", b64(notarize(net, "ok"))]})
        await client.get("/missing")
    assert shared == Counter({"bad_id": 1, "malformed": 1, "bad_base64": 1, "not_found": 1})
    text = render_rejected(shared)
    assert 'ledgernode_api_rejected_total{reason="bad_id"} 1' in text
    assert "# TYPE ledgernode_api_rejected_total counter" in text


def app_routes(app: aio.web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        out.add((route.method, info.get("path") or info.get("formatter")))
    return out


def doc_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}


def refs_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["$ref"]] if "$ref" in value else []
        return own + [r for v in value.values() for r in refs_in(v)]
    if isinstance(value, list):
        return [r for v in value for r in refs_in(v)]
    return []


@pytest.mark.parametrize("debug", [False, True])
async def test_openapi_matches_the_routes(node: FakeNode, debug: bool) -> None:
    async with serve(node, debug=debug) as client:
        resp = await client.get("/v1/openapi.json")
        doc = await resp.json()
        assert resp.status == 200 and doc["openapi"].startswith("3.0")
        assert client.app is not None
        assert app_routes(client.app) == doc_routes(doc)
        expected = {(m, p) for m, p, _ in ROUTES + (DEBUG_ROUTES if debug else [])}
        expected |= {("GET", "/ui/"), ("GET", "/ui/{asset}")}  # the browser console (ledgernode/console)
        assert doc_routes(doc) == expected
        for ref in refs_in(doc):
            assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"]
        for path, ops in doc["paths"].items():
            for name in re.findall(r"{(\w+)}", path):
                for op in ops.values():
                    assert any(p["name"] == name and p["in"] == "path" for p in op["parameters"])


def test_only_the_aio_module_imports_aiohttp() -> None:
    pattern = re.compile(r"^\s*(import aiohttp|from aiohttp[ .])", re.M)
    offenders = [
        str(p.relative_to(REPO)) for p in sorted((REPO / "ledgernode").rglob("*.py"))
        if pattern.search(p.read_text(encoding="utf-8")) and p.name != "aio.py"
    ]
    assert offenders == []


async def test_readyz_is_200_when_ready_and_503_with_the_reasons_when_not(client: aio.TestClient,
                                                                             node: FakeNode) -> None:
    resp = await client.get("/readyz")
    assert resp.status == 200 and (await resp.json())["ready"] is True
    node.ready = False
    resp = await client.get("/readyz")
    doc = await resp.json()
    assert resp.status == 503 and doc["ready"] is False and doc["reasons"] == ["catching up: height 0, a peer is at 9"]


async def test_index_names_the_node_and_links_the_openapi_document(client: aio.TestClient) -> None:
    resp = await client.get("/")
    doc = await resp.json()
    assert resp.status == 200 and doc["name"] == "ledgernode" and doc["height"] == 0
    assert doc["links"]["openapi"] == "/v1/openapi.json"
    assert (await client.get(doc["links"]["openapi"])).status == 200
    resp = await client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
                            allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/ui/"  # a browser lands on the console
    assert doc["links"]["console"] == "/ui/"


async def test_equivocations_are_paged(client: aio.TestClient, node: FakeNode) -> None:
    node.proofs = [{"format": "ledgernode-equivocation/1", "n": i} for i in range(150)]
    first = await (await client.get("/v1/equivocations")).json()
    assert [p["n"] for p in first["equivocations"]] == list(range(100)) and first["next_after"] == 99
    rest = await (await client.get(f"/v1/equivocations?after={first['next_after']}")).json()
    assert [p["n"] for p in rest["equivocations"]] == list(range(100, 150)) and rest["next_after"] is None
    for bad in ("limit=0", "limit=101", "after=-2", "after=x"):
        await error_of(await client.get(f"/v1/equivocations?{bad}"), 400, "bad_query")
