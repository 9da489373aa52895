"""The offline verifier (DESIGN section 6): verdict shape, rendering, each check's
failure reason, and the unusable-input paths (exit 2)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from ledgernode import codec, crypto
from ledgernode.blocks import decode_header
from ledgernode.evidence import build_bundle
from ledgernode.genesis import build, parse
from ledgernode.records import decode_envelope, sign_record
from ledgernode.storage import Store
from ledgernode.verify import (
    CHECKS, Unusable, Verdict, load_genesis, load_json, render, verify_bundle,
)
from tests.fixtures import DEPTS, Net, T0, commit_records, content, seeded_key

NAMES = [name for name, _, _ in CHECKS if name != "later"]
LABELS = {name: (zh, en) for name, zh, en in CHECKS}
ORIGINAL = b"scanned contract, page 1 of 1\n"


class Ledger:
    def __init__(self) -> None:
        self.net = Net()
        self.store = Store.memory()
        net = self.net
        self.notarize = net.record(1, "evidence.notarize", "EV-1", {
            "content_hash": hashlib.sha256(ORIGINAL).digest(), "media_type": "text/plain",
            "size": len(ORIGINAL), "title": "合同 contract"})
        self.publish = net.record(2, "dataset.publish", "ds-1", {
            "title": "d", "content_hash": content("d"), "schema_hash": content("s"), "classification": "public"})
        commit_records(net, self.store, [self.notarize, self.publish])
        self.trace = net.record(0, "trace.event", "batch-1", {"activity": "packed"}, ts=T0 + 1,
                                refs=(self.rid(self.notarize),))
        commit_records(net, self.store, [self.trace], time_ms=T0 + 1)

    def rid(self, raw: bytes) -> bytes:
        return decode_envelope(raw, self.net.genesis).record_id

    def bundle(self, raw: bytes) -> dict[str, Any]:
        return build_bundle(self.store, self.net.genesis, self.rid(raw))


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return Ledger()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _with_envelope(bundle: dict[str, Any], env: bytes, genesis: Any) -> dict[str, Any]:
    """`bundle` carrying another envelope (and that envelope's own record_id, if it decodes)."""
    out = copy.deepcopy(bundle)
    out["envelope"] = _b64(env)
    try:
        out["record_id"] = decode_envelope(env, genesis).record_id.hex()
    except Exception:
        pass
    return out


def _failed(verdict: Verdict) -> dict[str, Any]:
    assert not verdict.valid
    assert [c["ok"] for c in verdict.checks] == [True] * (len(verdict.checks) - 1) + [False]
    return verdict.checks[-1]


# -- Verdict JSON and render() ------------------------------------------------------


def test_verdict_json_shape(ledger: Ledger, tmp_path: Path) -> None:
    original = tmp_path / "contract.txt"
    original.write_bytes(ORIGINAL)
    verdict = verify_bundle(ledger.bundle(ledger.notarize), ledger.net.genesis, original)
    doc = verdict.to_json()
    assert json.loads(json.dumps(doc, ensure_ascii=False)) == doc
    assert set(doc) == {"valid", "checks", "facts"} and doc["valid"] is True
    assert [c["check"] for c in doc["checks"]] == NAMES
    for c, (name, zh, en) in zip(doc["checks"], CHECKS):
        assert c == {"check": name, "zh": zh, "en": en, "ok": True}
    facts = doc["facts"]
    assert set(facts) == {"record", "block", "certified_by", "leaf_index"}
    rec = facts["record"]
    assert set(rec) == {"id", "type", "subject", "body", "refs", "claimed_time", "signer"}
    assert rec["id"] == ledger.rid(ledger.notarize).hex()
    assert (rec["type"], rec["subject"]) == ("evidence.notarize", "EV-1")
    assert rec["body"]["content_hash"] == hashlib.sha256(ORIGINAL).hexdigest()  # bytes shown as hex
    assert rec["body"]["size"] == len(ORIGINAL) and rec["refs"] == []
    assert rec["claimed_time"] == "2026-01-01T00:00:00.000Z"
    key = ledger.net.clients[1].public
    assert rec["signer"] == {"key_id": key.key_id, "dept": DEPTS[1]}
    block = facts["block"]
    assert set(block) == {"height", "time", "hash", "log_size", "log_root"}
    assert block["height"] == 1 and block["time"] == "2026-01-01T00:00:00.000Z" and block["log_size"] == 2
    assert facts["certified_by"] == [
        {"validator": i, "dept": DEPTS[i], "name": f"Dept {DEPTS[i]}"} for i in range(3)
    ]
    assert facts["leaf_index"] == 0

    trace = verify_bundle(ledger.bundle(ledger.trace), ledger.net.genesis).to_json()
    assert trace["facts"]["record"]["refs"] == [ledger.rid(ledger.notarize).hex()]
    assert trace["facts"]["record"]["claimed_time"] == "2026-01-01T00:00:00.001Z"
    assert [c["check"] for c in trace["checks"]] == NAMES[:5]  # no file check without --file


def test_render_valid_is_bilingual(ledger: Ledger) -> None:
    text = render(verify_bundle(ledger.bundle(ledger.notarize), ledger.net.genesis))
    assert text.splitlines()[0] == "结论 / Verdict: 有效 VALID"
    for expected in (
        f"记录 Record      {ledger.rid(ledger.notarize).hex()}",
        "类型 type      evidence.notarize",
        "主体 subject   EV-1",
        f"签名者 signer  key {ledger.net.clients[1].public.key_id} of department {DEPTS[1]}",
        "声明时间 claimed time  2026-01-01T00:00:00.000Z",
        "title: 合同 contract",
        "区块 Block       height 1, time 2026-01-01T00:00:00.000Z",
        "认证节点 certified by validator 0 (justice, Dept justice)",
    ):
        assert expected in text
    for name in NAMES[:5]:
        zh, en = LABELS[name]
        assert f"[通过 PASS] {zh} / {en}" in text
    assert "FAIL" not in text and "INVALID" not in text


def test_render_names_the_failed_check_and_reason(ledger: Ledger) -> None:
    bundle = ledger.bundle(ledger.notarize)
    bundle["record_id"] = "00" * 32
    verdict = verify_bundle(bundle, ledger.net.genesis)
    failed = _failed(verdict)
    assert failed["check"] == "record" and failed["error"] == "record_id does not match the hash of the record"
    text = render(verdict)
    assert text.splitlines()[0] == "结论 / Verdict: 无效 INVALID"
    zh, en = LABELS["record"]
    lines = text.splitlines()
    i = lines.index(f"[失败 FAIL] {zh} / {en}")
    assert lines[i + 1] == "        原因 reason: record_id does not match the hash of the record"
    for name in ("genesis", "header", "qc"):
        assert f"[通过 PASS] {LABELS[name][0]} / {LABELS[name][1]}" in text
    assert LABELS["inclusion"][1] not in text  # checks stop at the first failure
    # What the failed record claims is not shown as fact.
    assert "类型 type" not in text


def test_render_failure_at_check_1_shows_no_facts(ledger: Ledger) -> None:
    bundle = ledger.bundle(ledger.notarize)
    bundle["chain_id"] = "gov-other"
    verdict = verify_bundle(bundle, ledger.net.genesis)
    assert _failed(verdict)["check"] == "genesis" and len(verdict.checks) == 1
    assert verdict.facts == {}
    text = render(verdict)
    assert "'gov-other'" in text and "区块 Block" not in text and "记录 Record" not in text


# -- each check's failures ----------------------------------------------------------


def test_file_check(ledger: Ledger, tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_bytes(ORIGINAL)
    bad.write_bytes(ORIGINAL + b" ")
    genesis = ledger.net.genesis
    assert verify_bundle(ledger.bundle(ledger.notarize), genesis, good).valid
    failed = _failed(verify_bundle(ledger.bundle(ledger.notarize), genesis, bad))
    assert failed["check"] == "file"
    assert hashlib.sha256(bad.read_bytes()).hexdigest() in failed["error"]
    assert hashlib.sha256(ORIGINAL).hexdigest() in failed["error"]
    # A trace.event without content_hash has nothing to compare a file with.
    failed = _failed(verify_bundle(ledger.bundle(ledger.trace), genesis, good))
    assert failed["check"] == "file" and "no content_hash" in failed["error"]
    # An unreadable original is unusable input, not an invalid bundle.
    with pytest.raises(Unusable):
        verify_bundle(ledger.bundle(ledger.notarize), genesis, tmp_path)
    with pytest.raises(Unusable):
        verify_bundle(ledger.bundle(ledger.notarize), genesis, tmp_path / "missing")


def test_record_check_reasons(ledger: Ledger) -> None:
    net, genesis = ledger.net, ledger.net.genesis
    base = ledger.bundle(ledger.notarize)
    body = {"content_hash": content("x"), "media_type": "text/plain", "size": 1, "title": "t"}

    def reason(env: bytes) -> str:
        failed = _failed(verify_bundle(_with_envelope(base, env, genesis), genesis))
        assert failed["check"] == "record"
        return failed["error"]

    stranger = crypto.private_key_from_seed(b"\x09" * 32)
    assert "not registered" in reason(sign_record(stranger, net.chain_id, "evidence.notarize", "s", body, T0,
                                                  bytes(16)))
    assert "does not verify" in reason(sign_record(net.clients[1], net.chain_id, "evidence.notarize", "s", body,
                                                   T0, bytes(16))[:-1] + b"\x00")
    assert "chain" in reason(sign_record(net.clients[1], "gov-other", "evidence.notarize", "s", body, T0, bytes(16)))
    assert "body" in reason(sign_record(net.clients[1], net.chain_id, "evidence.notarize", "s", {**body, "x": 1},
                                        T0, bytes(16)))
    assert "canonical" in reason(codec.encode([b"\x82\xa1b\x01\xa1a\x01", bytes(64)]))
    # A validly signed record that is not in the block fails at inclusion, not before.
    other = sign_record(net.clients[1], net.chain_id, "evidence.notarize", "s", body, T0, bytes(16))
    failed = _failed(verify_bundle(_with_envelope(base, other, genesis), genesis))
    assert failed["check"] == "inclusion"


def test_record_with_unhashable_dept_is_rejected_not_a_crash(ledger: Ledger) -> None:
    """Regression: a share.grant whose to_dept is a list made records._dept raise TypeError."""
    net, genesis = ledger.net, ledger.net.genesis
    for to_dept in (["justice"], {"a": 1}, 7, None):
        env = sign_record(net.clients[0], net.chain_id, "share.grant", "ds-1", {
            "to_dept": to_dept, "purpose": "p", "legal_basis": "l", "expires": T0 + 10}, T0, bytes(16))
        bundle = ledger.bundle(ledger.notarize)
        bundle["envelope"] = _b64(env)
        failed = _failed(verify_bundle(bundle, genesis))
        assert failed["check"] == "record" and "to_dept" in failed["error"]


def test_role_denied(tmp_path: Path) -> None:
    net = Net()
    limited = seeded_key("limited")
    validators = [{"dept": DEPTS[i], "name": DEPTS[i], "pubkey": k.public.raw.hex()}
                  for i, k in enumerate(net.validators)]
    net.genesis = parse(build(net.chain_id, validators,
                              [{"dept": "market", "pubkey": limited.public.raw.hex(), "roles": ["evidence.*"]}]))
    store = Store.memory()
    body = {"content_hash": content("x"), "media_type": "text/plain", "size": 1, "title": "t"}
    ok = net.record(0, "evidence.notarize", "EV", body, key=limited)
    commit_records(net, store, [ok])
    bundle = build_bundle(store, net.genesis, decode_envelope(ok, net.genesis).record_id)
    assert verify_bundle(bundle, net.genesis).valid
    denied = net.record(0, "cert.issue", "C-1", {
        "cert_type": "x", "holder": content("h"), "content_hash": content("c"),
        "valid_from": T0, "valid_until": T0 + 1}, key=limited)
    failed = _failed(verify_bundle(_with_envelope(bundle, denied, net.genesis), net.genesis))
    assert failed["check"] == "record" and "may not submit cert.issue" in failed["error"]


def test_header_v_true_is_not_version_1(ledger: Ledger) -> None:
    """Regression: decode_header accepted v=true (msgpack 0xc3) as version 1."""
    bundle = ledger.bundle(ledger.notarize)
    raw = base64.b64decode(bundle["block"]["header"])
    m = codec.decode(raw)
    m["v"] = True
    bundle["block"]["header"] = _b64(codec.encode(m))
    failed = _failed(verify_bundle(bundle, ledger.net.genesis))
    assert failed["check"] == "header" and "v must be 1" in failed["error"]


def test_header_check_reasons(ledger: Ledger) -> None:
    genesis = ledger.net.genesis
    base = ledger.bundle(ledger.notarize)
    header = decode_header(base64.b64decode(base["block"]["header"]))
    m = codec.decode(header.raw)

    def reason(raw: bytes) -> str:
        bundle = copy.deepcopy(base)
        bundle["block"]["header"] = _b64(raw)
        failed = _failed(verify_bundle(bundle, genesis))
        assert failed["check"] == "header"
        return failed["error"]

    assert "genesis" in reason(codec.encode({**m, "chain": "gov-other"}))
    assert "genesis" in reason(codec.encode({**m, "valset": bytes(32)}))
    assert "keys" in reason(codec.encode({**m, "round": 0}))
    assert "canonical" in reason(header.raw[:1] + header.raw[1:].replace(b"\xa5chain", b"\xd9\x05chain"))
    assert "not decodable" in reason(b"")
    assert "not decodable" in reason(header.raw[:-1])
    assert "bytes follow" in reason(header.raw + b"\x00")
    bundle = copy.deepcopy(base)
    bundle["block"]["header"] = "not base64!"
    assert "base64" in _failed(verify_bundle(bundle, genesis))["error"]


def test_inclusion_path_must_be_exact_lowercase_hex(ledger: Ledger) -> None:
    """Regression: the path regex used `$`, which also matched before a trailing newline."""
    genesis = ledger.net.genesis
    base = ledger.bundle(ledger.notarize)
    assert len(base["inclusion"]) == 1
    for element in (base["inclusion"][0] + "\n", base["inclusion"][0].upper(), " " + base["inclusion"][0],
                    base["inclusion"][0][:-2], 7):
        bundle = copy.deepcopy(base)
        bundle["inclusion"] = [element]
        failed = _failed(verify_bundle(bundle, genesis))
        assert failed["check"] == "inclusion" and "hex" in failed["error"]
    for index in (True, 1.0, "0", None):
        bundle = copy.deepcopy(base)
        bundle["leaf_index"] = index
        failed = _failed(verify_bundle(bundle, genesis))
        assert failed["check"] == "inclusion" and "integer" in failed["error"]
    bundle = copy.deepcopy(base)
    bundle["leaf_index"] = 2  # the block holds leaves [0, 2)
    assert "outside" in _failed(verify_bundle(bundle, genesis))["error"]


# -- unusable input -------------------------------------------------------------------


def test_wrong_format_is_unusable(ledger: Ledger) -> None:
    for fmt in ("ledgernode-evidence/2", None, 1):
        bundle = ledger.bundle(ledger.notarize)
        bundle["format"] = fmt
        with pytest.raises(Unusable, match="format"):
            verify_bundle(bundle, ledger.net.genesis)
    bundle = ledger.bundle(ledger.notarize)
    del bundle["format"]
    with pytest.raises(Unusable):
        verify_bundle(bundle, ledger.net.genesis)


def test_load_json_unusable(tmp_path: Path) -> None:
    cases = {
        "missing": None,
        "binary": b"\xff\xfe\x00garbage",
        "text": b"hello",
        "array": b"[1, 2, 3]",
        "deep": b"[" * 100_000,  # RecursionError inside json: must still be Unusable
        "big": b'{"a": "' + b"x" * 200 + b'"}',
    }
    for name, data in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(Unusable):
            load_json(path, "bundle", max_bytes=100)
    good = tmp_path / "good"
    good.write_text('{"format": "x"}')
    assert load_json(good, "bundle") == {"format": "x"}


def test_load_genesis_unusable(ledger: Ledger, tmp_path: Path) -> None:
    good = tmp_path / "genesis.json"
    good.write_bytes(ledger.net.genesis.raw)
    assert load_genesis(good).genesis_hash == ledger.net.genesis.genesis_hash
    cases = {
        "missing": None,
        "not-json": b"\x00\x01",
        "deep": b"[" * 100_000,
        "wrong-format": json.dumps({"format": "ledgernode-evidence/1"}).encode(),
        "small-order-key": ledger.net.genesis.raw.replace(
            ledger.net.validators[0].public.raw.hex().encode(), ("01" + "00" * 31).encode()),
    }
    for name, data in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(Unusable):
            load_genesis(path)
    with pytest.raises(Unusable):
        load_genesis(tmp_path)  # a directory
