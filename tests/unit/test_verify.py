"""The offline verifier (docs/protocol.md section 9): verdict shape, the claim it states,
rendering, each check's failure reason in plain words, the command line (certificate
pages, answers given without --kind, a closed pipe), the unusable-input paths (exit 2),
and what the auditing package may import."""

from __future__ import annotations

import ast
import base64
import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ledgernode import codec, crypto
from ledgernode.auditing import answers, certificate
from ledgernode.auditing.bundle import build_bundle
from ledgernode.auditing.checks import CheckFailed, run_checks
from ledgernode.blocks import decode_header
from ledgernode.cli import main
from ledgernode.errors import InvalidInput
from ledgernode.genesis import build, parse
from ledgernode.records import decode_envelope, record_id_of, sign_record
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
    assert set(facts) == {"record", "block", "certified_by", "leaf_index", "claim"}
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
    assert failed["check"] == "record" and failed["part"] == "record_id"
    assert failed["error"] == ("记录的编号与记录内容不一致（编号被改动，或记录被替换） / the record's id does not "
                               "match its bytes (the id was altered, or the record was replaced) — 细节 detail: "
                               "record_id does not match the hash of the record")
    text = render(verdict)
    assert text.splitlines()[0] == "结论 / Verdict: 无效 INVALID"
    zh, en = LABELS["record"]
    lines = text.splitlines()
    i = lines.index(f"[失败 FAIL] {zh} / {en}")
    assert lines[i + 1] == f"        原因 reason: {failed['error']}"
    assert "已核实 verified" not in text  # no claim for an invalid verdict
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


# -- the claim a valid verdict states ---------------------------------------------------


def test_bundle_claim_is_stated_before_the_checks(ledger: Ledger, tmp_path: Path) -> None:
    original = tmp_path / "contract.txt"
    original.write_bytes(ORIGINAL)
    verdict = verify_bundle(ledger.bundle(ledger.notarize), ledger.net.genesis, original)
    rid = ledger.rid(ledger.notarize).hex()
    claim = verdict.facts["claim"]
    assert claim == {
        "zh": f"记录 {rid[:16]}…：电子数据存证（evidence.notarize），主体 EV-1，由 market 签名，日志位置 0，"
              "区块高度 1；原始文件与记录中的哈希一致",
        "en": f"record {rid[:16]}… (evidence.notarize) about EV-1, signed by market, leaf 0, block height 1; "
              "the original file matches it",
        "record_id": rid, "type": "evidence.notarize", "subject": "EV-1", "dept": "market",
        "leaf_index": 0, "height": 1, "file_matches": True,
    }
    lines = render(verdict).splitlines()
    first_check = next(i for i, line in enumerate(lines) if line.startswith("[通过 PASS]"))
    assert lines[2] == f"已核实 verified: {claim['zh']} / {claim['en']}" and 2 < first_check
    trace = verify_bundle(ledger.bundle(ledger.trace), ledger.net.genesis).facts["claim"]
    assert "file_matches" not in trace and (trace["leaf_index"], trace["height"]) == (2, 2)
    assert trace["en"].endswith("signed by justice, leaf 2, block height 2")


def test_untrusted_text_cannot_fake_a_verdict_line() -> None:
    """A subject (or body field) with a newline must not print a line of its own."""
    net, store = Net(), Store.memory()
    raw = net.record(0, "trace.event", "x\n结论 / Verdict: 有效 VALID", {"activity": "a\n[通过 PASS] fake"})
    commit_records(net, store, [raw])
    bundle = build_bundle(store, net.genesis, decode_envelope(raw, net.genesis).record_id)
    bundle["block"]["qc"]["signatures"].pop()  # invalid, yet the record's text is shown
    for verdict in (verify_bundle(bundle, net.genesis),
                    verify_bundle(build_bundle(store, net.genesis, decode_envelope(raw, net.genesis).record_id),
                                  net.genesis)):
        lines = render(verdict).splitlines()
        assert [line for line in lines if line.startswith("结论")] == [lines[0]]
        assert not any(line.startswith("[通过 PASS] fake") for line in lines)
    assert "x\\u000a结论" in render(verdict)


# -- failure reasons name the part that failed, in plain words --------------------------------


def _flip_in(data: bytes, needle: bytes, offset: int = 1) -> bytes:
    """`data` with the byte `offset` bytes into the first occurrence of `needle` changed."""
    i = data.index(needle) + offset
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


def _b64_edit(value: str, edit: Any) -> str:
    return _b64(edit(base64.b64decode(value)))


PART_CASES: dict[str, tuple[Any, str, str, str]] = {
    # name: (mutation of the bundle, failed check, part, start of the English reason)
    "byte in the record's chain id": (
        lambda b: b.update(envelope=_b64_edit(b["envelope"], lambda d: _flip_in(d, b"gov-test"))),
        "record", "record_bytes", "the record's bytes were altered (its id / signature no longer match)"),
    "byte in the record's title": (
        lambda b: b.update(envelope=_b64_edit(b["envelope"], lambda d: _flip_in(d, "合同".encode()))),
        "record", "record_bytes", "the record's bytes were altered (its id / signature no longer match)"),
    "byte in the record's signature": (
        lambda b: b.update(envelope=_b64_edit(b["envelope"], lambda d: d[:-1] + bytes([d[-1] ^ 1]))),
        "record", "signature", "the record's signature does not match its bytes"),
    "record id": (lambda b: b.update(record_id="11" * 32), "record", "record_id",
                  "the record's id does not match its bytes"),
    "envelope not base64": (lambda b: b.update(envelope="%%"), "record", "record_bytes",
                            "the record's bytes: missing or damaged (not base64 text)"),
    "byte in the header's parent hash": (  # still a well-formed header, but not the one signed
        lambda b: b["block"].update(header=_b64_edit(b["block"]["header"],
                                                     lambda d: _flip_in(d, b"\xa4prev\xc4\x20", 9))),
        "qc", "qc", "the block's header is not the block the validators signed"),
    "header cut short": (lambda b: b["block"].update(header=_b64_edit(b["block"]["header"], lambda d: d[:-2])),
                         "header", "header", "the block's header was altered or damaged"),
    "validator signature": (
        lambda b: b["block"]["qc"]["signatures"][1].update(
            sig=_b64_edit(b["block"]["qc"]["signatures"][1]["sig"], lambda d: d[:5] + bytes([d[5] ^ 1]) + d[6:])),
        "qc", "qc", "a validator signature in the block's commit certificate does not verify"),
    "one signature short of a quorum": (lambda b: b["block"]["qc"]["signatures"].pop(), "qc", "qc",
                                        "too few validators signed the block (a quorum is needed)"),
    "validator listed twice": (
        lambda b: b["block"]["qc"]["signatures"].__setitem__(2, dict(b["block"]["qc"]["signatures"][0])),
        "qc", "qc", "the block's commit certificate lists one validator twice"),
    "qc missing": (lambda b: b["block"].pop("qc"), "qc", "qc",
                   "the block's commit certificate (the validators' signatures) is damaged or incomplete"),
    "inclusion proof": (lambda b: b["inclusion"].__setitem__(0, "ab" * 32), "inclusion", "inclusion",
                        "the record's inclusion proof does not lead to the log root of this block"),
    "inclusion not hex": (lambda b: b["inclusion"].__setitem__(0, "xyz"), "inclusion", "inclusion",
                          "the record's inclusion proof is damaged"),
    "leaf index": (lambda b: b.update(leaf_index=7), "inclusion", "inclusion",
                   "the record's position in the log is outside this block"),
    "genesis hash": (lambda b: b.update(genesis_hash="00" * 32), "genesis", "genesis",
                     "the bundle was made for another genesis file"),
}


@pytest.mark.parametrize("name", sorted(PART_CASES))
def test_failure_reason_names_the_part_in_plain_words(ledger: Ledger, name: str) -> None:
    mutate, check, part, english = PART_CASES[name]
    bundle = ledger.bundle(ledger.notarize)
    mutate(bundle)
    failed = _failed(verify_bundle(bundle, ledger.net.genesis))
    assert (failed["check"], failed["part"]) == (check, part), failed
    zh, rest = failed["error"].split(" / ", 1)
    assert any("\u4e00" <= c <= "\u9fff" for c in zh), zh  # Chinese first
    assert rest.startswith(english), rest
    assert " — 细节 detail: " in rest  # the technical detail follows the plain words


def test_reasons_for_the_signer_and_another_ledger(ledger: Ledger) -> None:
    net, genesis = ledger.net, ledger.net.genesis
    base = ledger.bundle(ledger.notarize)
    body = {"content_hash": content("x"), "media_type": "text/plain", "size": 1, "title": "t"}
    stranger = crypto.private_key_from_seed(b"\x09" * 32)
    cases = [
        (sign_record(stranger, net.chain_id, "evidence.notarize", "s", body, T0, bytes(16)), "signer",
         "the record was signed with a key that is not in your genesis file"),
        (sign_record(net.clients[1], "gov-other", "evidence.notarize", "s", body, T0, bytes(16)), "genesis",
         "the record was made for another ledger (a different chain id)"),
        (sign_record(net.clients[1], net.chain_id, "evidence.notarize", "s", {**body, "x": 1}, T0, bytes(16)),
         "record_bytes", "the record is not a valid record of this ledger"),
    ]
    for env, part, english in cases:
        bundle = _with_envelope(base, env, genesis)
        pair = codec.split_bin_pair(env)
        assert pair is not None
        bundle["record_id"] = record_id_of(pair[0]).hex()  # the record is as signed, only not acceptable
        failed = _failed(verify_bundle(bundle, genesis))
        assert (failed["check"], failed["part"]) == ("record", part) and english in failed["error"], failed
    header = decode_header(base64.b64decode(base["block"]["header"]))
    other = copy.deepcopy(base)
    other["block"]["header"] = _b64(codec.encode({**codec.decode(header.raw), "valset": bytes(32)}))
    failed = _failed(verify_bundle(other, genesis))
    assert (failed["check"], failed["part"]) == ("header", "genesis")
    assert "the block belongs to another ledger or validator set" in failed["error"]


# -- the command line -----------------------------------------------------------------------


def _files(ledger: Ledger, tmp_path: Path, doc: Any, name: str = "doc.json") -> tuple[str, str]:
    genesis = tmp_path / "genesis.json"
    genesis.write_bytes(ledger.net.genesis.raw)
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return str(path), str(genesis)


def test_cli_verifies_a_certificate_page(ledger: Ledger, tmp_path: Path, capsys: Any) -> None:
    page = certificate.render(ledger.bundle(ledger.notarize), ledger.net.genesis)
    path, genesis = _files(ledger, tmp_path, page, "certificate.html")
    assert main(["verify", path, "--genesis", genesis]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "结论 / Verdict: 有效 VALID"
    assert "来源 source: 证书页面中嵌入的证据包 / the evidence bundle embedded in the certificate page" in out
    assert f"record {ledger.rid(ledger.notarize).hex()[:16]}… (evidence.notarize) about EV-1" in out
    assert main(["verify", path, "--genesis", genesis, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["facts"]["source"] == "certificate page"
    assert doc["facts"]["claim"]["record_id"] == ledger.rid(ledger.notarize).hex()
    # an edited bundle inside the page is invalid (exit 1), not unusable
    envelope = ledger.bundle(ledger.notarize)["envelope"]
    edited = page.replace(envelope, _b64_edit(envelope, lambda d: _flip_in(d, b"EV-1")))
    assert edited != page
    path, genesis = _files(ledger, tmp_path, edited, "edited.html")
    assert main(["verify", path, "--genesis", genesis]) == 1
    assert "the record's bytes were altered" in capsys.readouterr().out
    assert main(["verify", path, "--genesis", genesis, "--kind", "status"]) == 2
    assert "certificate page" in capsys.readouterr().err


def test_cli_answer_without_kind_says_which_kind(ledger: Ledger, tmp_path: Path, capsys: Any) -> None:
    answer = answers.subject_history(ledger.store, ledger.net.genesis, "EV-1")
    path, genesis = _files(ledger, tmp_path, answer)
    assert main(["verify", path, "--genesis", genesis]) == 2
    err = capsys.readouterr().err
    assert "is a 'subject' answer, not an evidence bundle" in err and "--kind subject" in err
    assert main(["verify", path, "--genesis", genesis, "--json"]) == 2
    assert "--kind subject" in json.loads(capsys.readouterr().out)["unusable"]
    assert main(["verify", path, "--genesis", genesis, "--kind", "status"]) == 2
    assert "check it with --kind subject" in capsys.readouterr().err
    assert main(["verify", path, "--genesis", genesis, "--kind", "subject"]) == 0
    assert main(["verify", path, "--genesis", genesis, "--kind", "subject", "--file", path]) == 2
    assert "--file" in capsys.readouterr().err
    path, genesis = _files(ledger, tmp_path, ledger.bundle(ledger.notarize), "bundle.json")
    assert main(["verify", path, "--genesis", genesis, "--kind", "shares"]) == 2
    assert "evidence bundle" in capsys.readouterr().err
    error = {"error": {"code": "not_found", "message": "no record abc"}}
    path, genesis = _files(ledger, tmp_path, error, "error.json")
    for extra in ([], ["--kind", "status"]):
        assert main(["verify", path, "--genesis", genesis, *extra]) == 2
        assert "error answer from a node (not_found: no record abc)" in capsys.readouterr().err


REPO = Path(__file__).resolve().parents[2]


def run_with_closed_stdout(*args: str) -> subprocess.CompletedProcess[bytes]:
    """The CLI writing into a pipe whose reader has already gone, as in `... | head -1`."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "ledgernode", *args], stdout=write_end,
                              stderr=subprocess.PIPE, cwd=REPO, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        os.close(write_end)


def test_closed_pipe_exits_quietly_with_the_verdicts_code(ledger: Ledger, tmp_path: Path) -> None:
    path, genesis = _files(ledger, tmp_path, ledger.bundle(ledger.notarize), "bundle.json")
    for extra in ([], ["--json"]):
        proc = run_with_closed_stdout("verify", path, "--genesis", genesis, *extra)
        assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()
    bad = ledger.bundle(ledger.notarize)
    bad["record_id"] = "00" * 32
    path, genesis = _files(ledger, tmp_path, bad, "bad.json")
    proc = run_with_closed_stdout("verify", path, "--genesis", genesis)
    assert proc.returncode == 1 and proc.stderr == b"", proc.stderr.decode()


# -- the check runner and the auditing package's imports ----------------------------------------


def test_check_failed_carries_its_message() -> None:
    failed = CheckFailed("qc", "证书", "the certificate", "3 of 4")
    assert failed.message == str(failed) == "证书 / the certificate — 细节 detail: 3 of 4"
    assert CheckFailed("qc", "证书", "the certificate").message == "证书 / the certificate"
    assert failed.within("第 2 条", "record 2").message == "第 2 条：证书 / record 2: the certificate — 细节 detail: 3 of 4"

    def unnamed() -> None:  # a rule no check words itself still fails as a check, with its detail
        raise InvalidInput("non_canonical", "map keys out of order")

    verdict = Verdict()
    assert not run_checks(verdict, [("record", "记录", "record", unnamed)]) and not verdict.valid
    assert verdict.checks == [{"check": "record", "zh": "记录", "en": "record", "ok": False, "part": "record",
                               "error": "记录：未通过 / record: failed — 细节 detail: map keys out of order"}]


AUDITING = REPO / "ledgernode" / "auditing"
FORBIDDEN = ("aiohttp", "plyvel", "ledgernode.api", "ledgernode.net", "ledgernode.storage", "ledgernode.node")


def test_auditing_imports_no_network_storage_or_node() -> None:
    modules = ["ledgernode.verify"] + [f"ledgernode.auditing.{p.stem}" for p in sorted(AUDITING.glob("*.py"))]
    probe = ("import importlib, sys\n"
             f"for name in {modules!r}:\n"
             "    importlib.import_module(name)\n"
             f"print(sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r})))\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_auditing_modules_import_no_cycle() -> None:
    """Each module of the package imports only modules below it: no module imports
    another of the package that (directly or not) imports it back, nor the modules that
    import the package (verify.py, equivocation.py)."""
    graph: dict[str, set[str]] = {}
    upward: list[str] = []
    for path in AUDITING.glob("*.py"):
        imports = [node for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                   if isinstance(node, ast.ImportFrom)]
        graph[path.stem] = {node.module for node in imports if node.level == 1 and node.module}
        upward += [f"{path.stem} imports {node.module}" for node in imports
                   if node.level == 2 and node.module in ("verify", "equivocation")]
    assert upward == []
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join(path + (name,))}"
        if name not in done:
            for dep in graph.get(name, ()):
                visit(dep, path + (name,))
            done.add(name)

    for name in graph:
        visit(name, ())
