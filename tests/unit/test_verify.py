"""The offline verifier (docs/protocol.md sections 9 and 12): verdict shape, the claim it
states, rendering, each check's failure reason in plain words (the v2 checks `epochs`,
`checkpoint` and `key` included), the command line (certificate pages, answers given without
--kind, a version 1 bundle, a closed pipe), the unusable-input paths (exit 2), and what the
auditing package may import."""

from __future__ import annotations

import ast
import base64
import copy
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ledgernode import codec, crypto, merkle, statemap
from ledgernode.auditing import answers, certificate
from ledgernode.auditing.bundle import build_bundle
from ledgernode.auditing.checks import CheckFailed, run_checks
from ledgernode.auditing.lists import entry_doc
from ledgernode.blocks import QC, Header, decode_header, vote_bytes
from ledgernode.cli import main
from ledgernode.errors import InvalidInput
from ledgernode.genesis import build, parse
from ledgernode.ledgermap import key_value
from ledgernode.records import decode_envelope, record_id_of, sign_record
from ledgernode.maptree import StateMap
from ledgernode.storage import Store
from ledgernode.verify import (
    CHECKS, Unusable, Verdict, load_genesis, load_json, render, verify_bundle,
)
from tests.fixtures import DEPTS, Net, T0, commit_records, content, seeded_key

NAMES = [name for name, _, _ in CHECKS]
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


def _flip_hex(text: str) -> str:
    """A 64-hex hash with its first digit changed: still well formed, another hash."""
    return ("1" if text[0] == "0" else "0") + text[1:]


def _certify(net: Net, header: Header) -> dict[str, Any]:
    """`header` as a checkpoint {"header", "qc"} signed by a quorum of the genesis validators."""
    h = decode_header(header.encode())
    msg = vote_bytes(net.chain_id, h.height, 0, h.block_hash)
    qc = QC(h.height, 0, h.block_hash, tuple((i, net.validators[i].sign(msg)) for i in range(net.genesis.quorum)))
    return {"header": _b64(h.raw), "qc": qc.to_json()}


def _certified_bundle(net: Net, raws: list[bytes], index: int, keys: dict[str, bytes]) -> dict[str, Any]:
    """The bundle of raws[index] in a block at height 1 whose state map holds exactly the key
    entries `keys` (key_id -> value bytes), certified by a quorum of the genesis validators (who
    sign what they are given). It states key entries and records no honest ledger would hold,
    so each rule of the `key` check can be tried with every check before it passing."""
    tree = merkle.MemoryTree()
    for raw in raws:
        tree.append(merkle.leaf_hash(raw))
    state = StateMap()
    state.apply([(statemap.path("key", key_id), value) for key_id, value in keys.items()])
    block = _certify(net, Header(net.chain_id, 1, T0, bytes(32), 0, 0, len(raws), tree.frontier.root(),
                                 net.genesis.valset_hash, state.root))
    env = decode_envelope(raws[index], net.genesis)
    return {
        "format": "ledgernode-evidence/2", "chain_id": net.chain_id, "genesis_hash": net.genesis.genesis_hash,
        "record_id": env.record_id.hex(), "envelope": _b64(raws[index]), "leaf_index": index, "block": block,
        "inclusion": [h.hex() for h in merkle.inclusion_proof(tree, index, len(raws))], "epochs": [],
        "state": {"checkpoint": block, "consistency": [], "key": entry_doc(state, "key", env.record.key)},
    }


def _key(key: crypto.PrivateKey, dept: str = DEPTS[1], roles: tuple[str, ...] = ("evidence.*",),
         from_leaf: int = 0, until: int | None = None) -> bytes:
    return key_value(key.public.raw, dept, roles, from_leaf, until)


# -- Verdict JSON and render() ------------------------------------------------------


def test_verdict_json_shape(ledger: Ledger, tmp_path: Path) -> None:
    original = tmp_path / "contract.txt"
    original.write_bytes(ORIGINAL)
    verdict = verify_bundle(ledger.bundle(ledger.notarize), ledger.net.genesis, original)
    doc = verdict.to_json()
    assert json.loads(json.dumps(doc, ensure_ascii=False)) == doc
    assert set(doc) == {"valid", "checks", "facts"} and doc["valid"] is True
    # section 12's checks, in its order
    assert NAMES == ["format", "genesis", "epochs", "header", "qc", "record", "inclusion", "checkpoint", "key",
                     "file"]
    assert [c["check"] for c in doc["checks"]] == NAMES
    for c, (name, zh, en) in zip(doc["checks"], CHECKS):
        assert c == {"check": name, "zh": zh, "en": en, "ok": True}
    facts = doc["facts"]
    assert set(facts) == {"record", "block", "certified_by", "leaf_index", "claim", "checkpoint", "epoch"}
    rec = facts["record"]
    assert set(rec) == {"id", "type", "subject", "body", "refs", "claimed_time", "signer"}
    assert rec["id"] == ledger.rid(ledger.notarize).hex()
    assert (rec["type"], rec["subject"]) == ("evidence.notarize", "EV-1")
    assert rec["body"]["content_hash"] == hashlib.sha256(ORIGINAL).hexdigest()  # bytes shown as hex
    assert rec["body"]["size"] == len(ORIGINAL) and rec["refs"] == []
    assert rec["claimed_time"] == "2026-01-01T00:00:00.000Z"
    key = ledger.net.clients[1].public
    # the signer as its key entry in the checkpoint's state says (genesis client: from 0, never revoked)
    assert rec["signer"] == {"key_id": key.key_id, "dept": DEPTS[1], "from": 0, "until": None,
                             "roles": ["dataset.*", "share.*", "cert.*", "evidence.*", "trace.*"]}
    block = facts["block"]
    assert set(block) == {"height", "time", "hash", "log_size", "log_root", "epoch", "validators"}
    assert (block["epoch"], block["validators"]) == (0, 4)
    assert block["height"] == 1 and block["time"] == "2026-01-01T00:00:00.000Z" and block["log_size"] == 2
    assert facts["certified_by"] == [
        {"validator": i, "dept": DEPTS[i], "name": f"Dept {DEPTS[i]}"} for i in range(3)
    ]
    assert facts["leaf_index"] == 0
    # the checkpoint is the head (height 2, 3 leaves) when the bundle was built; epoch 0 is the genesis set
    assert facts["checkpoint"] == {"height": 2, "time": "2026-01-01T00:00:00.001Z", "log_size": 3}
    assert facts["epoch"] == 0

    trace = verify_bundle(ledger.bundle(ledger.trace), ledger.net.genesis).to_json()
    assert trace["facts"]["record"]["refs"] == [ledger.rid(ledger.notarize).hex()]
    assert trace["facts"]["record"]["claimed_time"] == "2026-01-01T00:00:00.001Z"
    assert trace["facts"]["record"]["signer"]["roles"] == ["*"]
    assert trace["facts"]["checkpoint"]["height"] == 2  # the record's own block is the head
    assert [c["check"] for c in trace["checks"]] == NAMES[:-1]  # no file check without --file


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
    for name in NAMES[:-1]:
        zh, en = LABELS[name]
        assert f"[通过 PASS] {zh} / {en}" in text
    assert LABELS["file"][1] not in text  # no --file, no file check
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
    for name in ("format", "genesis", "epochs", "header", "qc"):
        assert f"[通过 PASS] {LABELS[name][0]} / {LABELS[name][1]}" in text
    assert LABELS["inclusion"][1] not in text  # checks stop at the first failure
    # What the failed record claims is not shown as fact.
    assert "类型 type" not in text


def test_render_failure_at_genesis_shows_no_facts(ledger: Ledger) -> None:
    bundle = ledger.bundle(ledger.notarize)
    bundle["chain_id"] = "gov-other"
    verdict = verify_bundle(bundle, ledger.net.genesis)
    assert [c["check"] for c in verdict.checks] == ["format", "genesis"] and _failed(verdict)["check"] == "genesis"
    assert verdict.facts == {}
    text = render(verdict)
    assert "'gov-other'" in text and "区块 Block" not in text and "记录 Record" not in text


@pytest.mark.parametrize("name", ["no state", "state not an object", "state without key", "state with more",
                                  "epochs not a list", "block missing"])
def test_format_check_needs_every_v2_field(ledger: Ledger, name: str) -> None:
    bundle = ledger.bundle(ledger.notarize)
    if name == "no state":
        del bundle["state"]
    elif name == "state not an object":
        bundle["state"] = []
    elif name == "state without key":
        del bundle["state"]["key"]
    elif name == "state with more":
        bundle["state"]["later"] = {}
    elif name == "epochs not a list":
        bundle["epochs"] = {}
    else:
        del bundle["block"]
    verdict = verify_bundle(bundle, ledger.net.genesis)
    failed = _failed(verdict)
    assert (failed["check"], failed["part"], len(verdict.checks)) == ("format", "format", 1), failed
    assert verdict.facts == {}


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

    assert "chain" in reason(sign_record(net.clients[1], "gov-other", "evidence.notarize", "s", body, T0, bytes(16)))
    assert "body" in reason(sign_record(net.clients[1], net.chain_id, "evidence.notarize", "s", {**body, "x": 1},
                                        T0, bytes(16)))
    assert "canonical" in reason(codec.encode([b"\x82\xa1b\x01\xa1a\x01", bytes(64)]))
    # The record check no longer judges the signer (the `key` check does, from the checkpoint's
    # state): a record of an unknown key, with a bad signature, or simply not in the block passes
    # it and fails at inclusion, the first check that tells it is not the committed record.
    stranger = crypto.private_key_from_seed(b"\x09" * 32)
    for env in (sign_record(stranger, net.chain_id, "evidence.notarize", "s", body, T0, bytes(16)),
                sign_record(net.clients[1], net.chain_id, "evidence.notarize", "s", body, T0, bytes(16))[:-1] + b"\x00",
                sign_record(net.clients[1], net.chain_id, "evidence.notarize", "s", body, T0, bytes(16))):
        verdict = verify_bundle(_with_envelope(base, env, genesis), genesis)
        assert _failed(verdict)["check"] == "inclusion"
        assert next(c for c in verdict.checks if c["check"] == "record")["ok"]


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
    verdict = verify_bundle(bundle, net.genesis)
    assert verdict.valid and verdict.facts["record"]["signer"]["roles"] == ["evidence.*"]
    # A cert.issue by that key, in a block a quorum certified, with the key's genesis entry in the
    # certified state: the key entry's roles do not allow the type, so the `key` check fails.
    denied = net.record(0, "cert.issue", "C-1", {
        "cert_type": "x", "holder": content("h"), "content_hash": content("c"),
        "valid_from": T0, "valid_until": T0 + 1}, key=limited)
    forged = _certified_bundle(net, [ok, denied], 1, {limited.public.key_id: _key(limited, "market")})
    failed = _failed(verify_bundle(forged, net.genesis))
    assert (failed["check"], failed["part"]) == ("key", "key")
    assert "not allowed to sign this type of record" in failed["error"]
    assert "roles ['evidence.*'] do not allow cert.issue" in failed["error"]
    # the same block, its other record: the roles allow it
    assert verify_bundle(_certified_bundle(net, [ok, denied], 0, {limited.public.key_id: _key(limited, "market")}),
                         net.genesis).valid


def test_header_v_true_is_not_version_1(ledger: Ledger) -> None:
    """Regression: decode_header accepted v=true (msgpack 0xc3) as version 1; true is no version."""
    bundle = ledger.bundle(ledger.notarize)
    raw = base64.b64decode(bundle["block"]["header"])
    m = codec.decode(raw)
    m["v"] = True
    bundle["block"]["header"] = _b64(codec.encode(m))
    failed = _failed(verify_bundle(bundle, ledger.net.genesis))
    assert failed["check"] == "header" and "v must be 2" in failed["error"]


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
    for index in (True, 1.0, "0", None):  # the format check wants an int leaf_index
        bundle = copy.deepcopy(base)
        bundle["leaf_index"] = index
        failed = _failed(verify_bundle(bundle, genesis))
        assert failed["check"] == "format" and "leaf_index" in failed["error"]
    bundle = copy.deepcopy(base)
    bundle["leaf_index"] = 2  # the block holds leaves [0, 2)
    assert "outside" in _failed(verify_bundle(bundle, genesis))["error"]


# -- unusable input -------------------------------------------------------------------


def test_wrong_format_is_unusable(ledger: Ledger) -> None:
    for fmt in ("ledgernode-evidence/1", "ledgernode-evidence/3", "ledgernode-answer/2", None, 1, [], {}):
        bundle = ledger.bundle(ledger.notarize)
        bundle["format"] = fmt
        with pytest.raises(Unusable, match="format"):
            verify_bundle(bundle, ledger.net.genesis)
    bundle = ledger.bundle(ledger.notarize)
    bundle["format"] = "ledgernode-evidence/1"
    with pytest.raises(Unusable, match="version 1"):
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
              "区块高度 1；原始文件与记录中的哈希一致；检查点高度 2（2026-01-01T00:00:00.001Z，第 0 届验证节点）",
        "en": f"record {rid[:16]}… (evidence.notarize) about EV-1, signed by market, leaf 0, block height 1; "
              "the original file matches it; checkpoint height 2 (2026-01-01T00:00:00.001Z, validator epoch 0)",
        "record_id": rid, "type": "evidence.notarize", "subject": "EV-1", "dept": "market",
        "leaf_index": 0, "height": 1, "file_matches": True, "checkpoint_height": 2,
    }
    lines = render(verdict).splitlines()
    first_check = next(i for i, line in enumerate(lines) if line.startswith("[通过 PASS]"))
    assert lines[2] == f"已核实 verified: {claim['zh']} / {claim['en']}" and 2 < first_check
    trace = verify_bundle(ledger.bundle(ledger.trace), ledger.net.genesis).facts["claim"]
    assert "file_matches" not in trace and (trace["leaf_index"], trace["height"]) == (2, 2)
    assert "key_revoked_at" not in trace and "revoked" not in trace["en"]
    assert trace["en"].endswith("signed by justice, leaf 2, block height 2; "
                                "checkpoint height 2 (2026-01-01T00:00:00.001Z, validator epoch 0)")


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
    # still a well-formed record: no signature is checked before `key`, so it is told by its id
    "byte in the record's title": (
        lambda b: b.update(envelope=_b64_edit(b["envelope"], lambda d: _flip_in(d, "合同".encode()))),
        "record", "record_id", "the record's id does not match its bytes"),
    # the id covers the record, not its signature; the leaf covers both
    "byte in the record's signature": (
        lambda b: b.update(envelope=_b64_edit(b["envelope"], lambda d: d[:-1] + bytes([d[-1] ^ 1]))),
        "inclusion", "inclusion", "the record's inclusion proof does not lead to the log root of this block"),
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
    "state section without its key entry": (lambda b: b["state"].pop("key"), "format", "format",
                                            "the bundle's state section has the wrong fields"),
    "a validator set change listed": (lambda b: b["epochs"].append({}), "epochs", "epochs",
                                      "a change of the validator set is invalid"),
    "checkpoint one signature short of a quorum": (
        lambda b: b["state"]["checkpoint"]["qc"]["signatures"].pop(), "checkpoint", "qc",
        "too few validators signed the checkpoint (a quorum is needed)"),
    "checkpoint header of another validator set": (
        lambda b: b["state"]["checkpoint"].update(header=_b64(codec.encode({
            **codec.decode(base64.b64decode(b["state"]["checkpoint"]["header"])), "valset": bytes(32)}))),
        "checkpoint", "genesis", "the checkpoint belongs to another ledger or validator set"),
    "consistency proof": (lambda b: b["state"]["consistency"].__setitem__(0, _flip_hex(b["state"]["consistency"][0])),
                          "checkpoint", "checkpoint", "the checkpoint does not extend the record's block"),
    "consistency not hex": (lambda b: b["state"]["consistency"].__setitem__(0, "xyz"), "checkpoint", "checkpoint",
                            "the consistency proof is damaged"),
    "sibling in the key proof": (
        lambda b: (siblings := b["state"]["key"]["proof"]["siblings"]).__setitem__(0, _flip_hex(siblings[0])),
        "key", "key", "the signing key's entry does not match the checkpoint's state root"),
    "key entry said absent": (lambda b: b["state"]["key"].update(value=None), "key", "key",
                              "the signing key's entry does not match the checkpoint's state root"),
    "key entry not base64": (lambda b: b["state"]["key"].update(value="%%"), "key", "key",
                             "the signing key's entry is damaged"),
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


def test_reasons_for_another_ledger_and_invalid_records(ledger: Ledger) -> None:
    net, genesis = ledger.net, ledger.net.genesis
    base = ledger.bundle(ledger.notarize)
    body = {"content_hash": content("x"), "media_type": "text/plain", "size": 1, "title": "t"}
    cases = [
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


# -- v2: the validator set, the checkpoint and the signer's key entry ------------------------


def _header(doc: dict[str, Any]) -> Header:
    return decode_header(base64.b64decode(doc["header"]))


def test_tampered_key_proof_fails_key(ledger: Ledger) -> None:
    genesis = ledger.net.genesis
    base = ledger.bundle(ledger.notarize)
    assert verify_bundle(base, genesis).valid
    proof = base["state"]["key"]["proof"]
    assert proof["siblings"] and proof["leaf"] is not None
    tampered = []
    for j in range(len(proof["siblings"])):  # each sibling in turn
        bundle = copy.deepcopy(base)
        bundle["state"]["key"]["proof"]["siblings"][j] = _flip_hex(proof["siblings"][j])
        tampered.append(bundle)
    for edit in (lambda p: p["siblings"].pop(),  # a level dropped
                 lambda p: p["siblings"].insert(0, "00" * 32),  # a level added
                 lambda p: p["leaf"].update(value_hash=_flip_hex(p["leaf"]["value_hash"])),
                 lambda p: p["leaf"].update(path=_flip_hex(p["leaf"]["path"]))):
        bundle = copy.deepcopy(base)
        edit(bundle["state"]["key"]["proof"])
        tampered.append(bundle)
    # the value changed to a more powerful key, the proof kept
    value = codec.decode(base64.b64decode(base["state"]["key"]["value"]))
    bundle = copy.deepcopy(base)
    bundle["state"]["key"]["value"] = _b64(codec.encode({**value, "roles": ["*"]}))
    tampered.append(bundle)
    for bundle in tampered:
        failed = _failed(verify_bundle(bundle, genesis))
        assert (failed["check"], failed["part"]) == ("key", "key"), failed
        assert ("does not match the checkpoint's state root" in failed["error"]
                or "the entry of another name" in failed["error"])
    bundle = copy.deepcopy(base)
    bundle["state"]["key"]["proof"]["extra"] = 1  # a proof has exactly its keys
    assert _failed(verify_bundle(bundle, genesis))["check"] == "key"


def test_key_entry_of_another_key_fails_key(ledger: Ledger) -> None:
    net, genesis = ledger.net, ledger.net.genesis
    mine, other = ledger.bundle(ledger.notarize), ledger.bundle(ledger.publish)  # clients 1 and 2
    assert mine["state"]["checkpoint"] == other["state"]["checkpoint"]  # the same checkpoint, the same state
    assert mine["state"]["key"] != other["state"]["key"]
    bundle = copy.deepcopy(mine)
    bundle["state"]["key"] = other["state"]["key"]  # a true entry of the state, for another key_id
    failed = _failed(verify_bundle(bundle, genesis))
    assert (failed["check"], failed["part"]) == ("key", "key"), failed
    assert "another key's entry" in failed["error"]
    # The path is computed from the record's key, so that entry cannot stand in for the signer's.
    # At that path a certified state could only say "another key" by holding another pubkey there:
    client1, client2 = net.clients[1], net.clients[2]
    forged = _certified_bundle(net, [ledger.notarize], 0, {client1.public.key_id: _key(client2)})
    failed = _failed(verify_bundle(forged, genesis))
    assert (failed["check"], failed["part"]) == ("key", "key"), failed
    assert "the record's key entry is another key's" in failed["error"]
    assert f"key_id(pubkey) is {client2.public.key_id}, the record names {client1.public.key_id}" in failed["error"]
    assert verify_bundle(_certified_bundle(net, [ledger.notarize], 0, {client1.public.key_id: _key(client1)}),
                         genesis).valid  # the same, with the signer's own pubkey


def test_absent_key_entry_fails_key(ledger: Ledger) -> None:
    net, genesis = ledger.net, ledger.net.genesis
    base = ledger.bundle(ledger.notarize)
    signer = net.clients[1].public.key_id
    # "value": null claims absence; the state holds the key, so no proof can show that
    stranger = crypto.private_key_from_seed(b"\x09" * 32)
    tip = _header(base["state"]["checkpoint"])
    other_proof = entry_doc(ledger.store.map_at(tip.state), "key", stranger.public.key_id)
    assert other_proof["value"] is None  # a true absence proof, of another name
    for proof in (base["state"]["key"]["proof"], other_proof["proof"]):
        bundle = copy.deepcopy(base)
        bundle["state"]["key"] = {"value": None, "proof": proof}
        failed = _failed(verify_bundle(bundle, genesis))
        assert (failed["check"], failed["part"]) == ("key", "key"), failed
    # a certified state that does not hold the signer's key: a true absence proof, still a failure
    forged = _certified_bundle(net, [ledger.notarize], 0, {net.clients[2].public.key_id: _key(net.clients[2])})
    assert forged["state"]["key"]["value"] is None
    failed = _failed(verify_bundle(forged, genesis))
    assert (failed["check"], failed["part"]) == ("key", "key")
    assert "the signing key is not in the checkpoint's state (it was never registered)" in failed["error"]
    assert f"no key entry for {signer}" in failed["error"]
    forged = _certified_bundle(net, [ledger.notarize], 0, {})  # the empty map
    assert "never registered" in _failed(verify_bundle(forged, genesis))["error"]


def test_key_entry_decides_who_could_sign_and_when(ledger: Ledger) -> None:
    """The signer is judged by its key entry in the certified state, not by the genesis file:
    the leaf range [from, until), the roles and the signature under the entry's pubkey."""
    net, genesis = ledger.net, ledger.net.genesis
    client = net.clients[1]
    kid = client.public.key_id
    raws = [ledger.notarize, ledger.publish]  # leaves 0 and 1

    def check(keys: dict[str, bytes], index: int = 0, block: list[bytes] = raws) -> Verdict:
        return verify_bundle(_certified_bundle(net, block, index, keys), genesis)

    def key_failure(keys: dict[str, bytes], index: int = 0, block: list[bytes] = raws) -> str:
        failed = _failed(check(keys, index, block))
        assert (failed["check"], failed["part"]) == ("key", "key"), failed
        return failed["error"]

    assert check({kid: _key(client)}).valid
    assert "could not sign (not yet added, or revoked)" in key_failure({kid: _key(client, from_leaf=1)})
    assert "leaf 0 is outside the key's [1, None)" in key_failure({kid: _key(client, from_leaf=1)})
    assert "leaf 0 is outside the key's [0, 0)" in key_failure({kid: _key(client, until=0)})
    assert "not allowed to sign this type" in key_failure({kid: _key(client, roles=("cert.*", "trace.*"))})
    # Signed before the key was revoked: valid, and the claim says so.
    verdict = check({kid: _key(client, dept="audit-office", until=1)})
    assert verdict.valid
    claim = verdict.facts["claim"]
    assert claim["key_revoked_at"] == 1 and claim["dept"] == "audit-office"  # the dept of the key entry
    assert "signed by audit-office" in claim["en"]
    assert "; signed before the key was revoked at leaf 1; checkpoint height 1" in claim["en"]
    assert "；签名早于该密钥在日志位置 1 被吊销" in claim["zh"]
    assert verdict.facts["record"]["signer"] == {"key_id": kid, "dept": "audit-office", "roles": ["evidence.*"],
                                                 "from": 0, "until": 1}
    # A record of leaf 1 by a key revoked at leaf 1 is not.
    publisher = net.clients[2]
    revoked = {publisher.public.key_id: _key(publisher, roles=("dataset.*",), until=1)}
    assert "leaf 1 is outside the key's [0, 1)" in key_failure(revoked, index=1)
    # A key the genesis never held, registered in the certified state, signs validly.
    stranger = crypto.private_key_from_seed(b"\x09" * 32)
    body = {"content_hash": content("x"), "media_type": "text/plain", "size": 1, "title": "t"}
    by_stranger = net.record(0, "evidence.notarize", "EV-9", body, key=stranger)
    assert stranger.public.key_id not in genesis.signers
    assert check({stranger.public.key_id: _key(stranger, dept="newdept")}, 0, [by_stranger]).valid
    # A committed record whose signature does not verify under the entry's pubkey.
    bad_sig = by_stranger[:-1] + bytes([by_stranger[-1] ^ 1])
    error = key_failure({stranger.public.key_id: _key(stranger)}, 0, [bad_sig])
    assert "the record's signature does not match its bytes" in error
    # A damaged entry: not a key entry's keys, or a pubkey that is no Ed25519 key.
    assert "the signing key's entry is damaged" in key_failure({kid: codec.encode({"pubkey": client.public.raw})})
    assert "the signing key's entry is damaged" in key_failure({kid: key_value(bytes(31), DEPTS[1], ["*"], 0, None)})


def test_another_checkpoint_with_the_proof_kept(ledger: Ledger) -> None:
    net, genesis = ledger.net, ledger.net.genesis
    base = ledger.bundle(ledger.notarize)  # block 1, checkpoint: the head at height 2
    assert _header(base["state"]["checkpoint"]).height == 2 and base["state"]["consistency"]

    def failure(bundle: dict[str, Any]) -> dict[str, Any]:
        failed = _failed(verify_bundle(bundle, genesis))
        assert failed["check"] in ("checkpoint", "key"), failed
        return failed

    # an older checkpoint: the record's own block (the proof from 2 leaves to 3 does not lead to it)
    bundle = copy.deepcopy(base)
    bundle["state"]["checkpoint"] = copy.deepcopy(base["block"])
    failed = failure(bundle)
    assert failed["check"] == "checkpoint" and "does not extend the record's block" in failed["error"]
    # older than the record's block
    trace = ledger.bundle(ledger.trace)  # block 2
    trace["state"]["checkpoint"] = copy.deepcopy(base["block"])
    failed = failure(trace)
    assert failed["check"] == "checkpoint" and "older than the record's block" in failed["error"]
    assert "checkpoint height 1, block height 2" in failed["error"]
    # at the block's height but another block
    trace = ledger.bundle(ledger.trace)
    tip = _header(trace["state"]["checkpoint"])
    trace["state"]["checkpoint"] = _certify(net, dataclasses.replace(tip, time=tip.time + 5, raw=b""))
    failed = failure(trace)
    assert failed["check"] == "checkpoint" and "at its height but another block" in failed["error"]
    # a newer checkpoint of the grown ledger, the proof to the old one kept
    grown = Ledger()
    old = grown.bundle(grown.notarize)
    commit_records(grown.net, grown.store, [grown.net.record(0, "trace.event", "batch-2", {"activity": "a"})],
                   time_ms=T0 + 2)
    new = grown.bundle(grown.notarize)
    assert verify_bundle(old, grown.net.genesis).valid and verify_bundle(new, grown.net.genesis).valid
    assert verify_bundle(new, grown.net.genesis).facts["checkpoint"]["height"] == 3
    bundle = copy.deepcopy(old)
    bundle["state"]["checkpoint"] = new["state"]["checkpoint"]
    failed = _failed(verify_bundle(bundle, grown.net.genesis))
    assert failed["check"] == "checkpoint" and "does not extend the record's block" in failed["error"]
    # ... with its consistency proof too, but the key entry of the old checkpoint's state
    bundle["state"]["consistency"] = new["state"]["consistency"]
    failed = _failed(verify_bundle(bundle, grown.net.genesis))
    assert failed["check"] == "key" and "does not match the checkpoint's state root" in failed["error"]
    # a certified checkpoint with the same log as the head, another state: consistent, the key proof is not
    head, block = _header(base["state"]["checkpoint"]), _header(base["block"])
    other = dataclasses.replace(head, height=head.height + 1, time=head.time + 1, prev=head.block_hash,
                                log_start=head.log_size, state=block.state, raw=b"")
    bundle = copy.deepcopy(base)
    bundle["state"]["checkpoint"] = _certify(net, other)
    failed = failure(bundle)
    assert failed["check"] == "key" and "does not match the checkpoint's state root" in failed["error"]
    # the entry of that checkpoint's state: valid, so what failed was the proof of another checkpoint
    bundle["state"]["key"] = entry_doc(ledger.store.map_at(block.state), "key", net.clients[1].public.key_id)
    verdict = verify_bundle(bundle, genesis)
    assert verdict.valid and verdict.facts["checkpoint"]["height"] == 3
    # a checkpoint of another ledger
    stranger_net, store = Net(chain_id="gov-other"), Store.memory()
    commit_records(stranger_net, store, [stranger_net.record(0, "trace.event", "x", {"activity": "a"})])
    bundle = copy.deepcopy(base)
    bundle["state"]["checkpoint"] = {"header": _b64(store.load_header(1).raw), "qc": store.load_qc(1).to_json()}
    failed = failure(bundle)
    assert (failed["check"], failed["part"]) == ("checkpoint", "genesis")


def test_tampered_consistency_fails_checkpoint(ledger: Ledger) -> None:
    genesis = ledger.net.genesis
    base = ledger.bundle(ledger.notarize)
    proof = base["state"]["consistency"]
    assert proof
    bundles = []
    for j in range(len(proof)):
        bundle = copy.deepcopy(base)
        bundle["state"]["consistency"][j] = _flip_hex(proof[j])
        bundles.append(bundle)
    for edit in (lambda c: c.pop(), lambda c: c.append("00" * 32), lambda c: c.clear(), lambda c: c.reverse()
                 if len(c) > 1 else c.insert(0, "ab" * 32)):
        bundle = copy.deepcopy(base)
        edit(bundle["state"]["consistency"])
        bundles.append(bundle)
    trace = ledger.bundle(ledger.trace)  # the block is the checkpoint: the proof must be empty
    assert trace["state"]["consistency"] == []
    trace["state"]["consistency"].append("ab" * 32)
    bundles.append(trace)
    for bundle in bundles:
        failed = _failed(verify_bundle(bundle, genesis))
        assert (failed["check"], failed["part"]) == ("checkpoint", "checkpoint"), failed
        assert "the checkpoint does not extend the record's block" in failed["error"]
    for damaged in ("nope", [proof[0].upper()], [7], None):
        bundle = copy.deepcopy(base)
        bundle["state"]["consistency"] = damaged
        failed = _failed(verify_bundle(bundle, genesis))
        assert failed["check"] == "checkpoint" and "the consistency proof is damaged" in failed["error"]


def test_an_epoch_the_genesis_set_did_not_make_fails(ledger: Ledger) -> None:
    genesis = ledger.net.genesis
    base = ledger.bundle(ledger.notarize)
    assert base["epochs"] == [] and verify_bundle(base, genesis).facts["epoch"] == 0
    # an epoch as section 12 shapes it: the header and QC of the head, the validators entry;
    # but the head did not change the set (its entry's `since` is 1)
    tip = _header(base["state"]["checkpoint"])
    epoch = {**base["state"]["checkpoint"], "validators": entry_doc(ledger.store.map_at(tip.state), "validators", "")}
    cases: list[tuple[list[dict[str, Any]], str]] = [
        ([epoch], f"must start at height {tip.height + 1}"), ([{}], "exactly the keys"),
        ([epoch, epoch], f"must start at height {tip.height + 1}")]
    for epochs, detail in cases:
        bundle = copy.deepcopy(base)
        bundle["epochs"] = epochs
        verdict = verify_bundle(bundle, genesis)
        failed = _failed(verdict)
        assert (failed["check"], failed["part"]) == ("epochs", "epochs"), failed
        assert [c["check"] for c in verdict.checks] == ["format", "genesis", "epochs"]
        assert detail in failed["error"], failed["error"]


class Removed:
    """A chain whose validator 3 is removed at height 2: records of epochs 0 and 1."""

    def __init__(self) -> None:
        net, store = Net(), Store.memory()
        self.net, self.store = net, store
        self.before = net.record(1, "evidence.notarize", "EV-0", {"content_hash": content("0"),
                                 "media_type": "t", "size": 1, "title": "t"})
        body = {"action": "validator.remove", "args": {"pubkey": net.validators[3].public.raw},
                "expires": T0 + 10**6}
        p = net.record(0, "gov.propose", "V-1", body, key=net.validators[0])
        pid = decode_envelope(p, net.genesis).record_id
        approvals = [net.record(0, "gov.approve", "V-1", {"proposal": pid}, key=net.validators[v]) for v in (1, 2)]
        commit_records(net, store, [self.before])
        commit_records(net, store, [p, *approvals])
        self.changed_at = store.height
        self.after = net.record(2, "evidence.notarize", "EV-1", {"content_hash": content("1"),
                                "media_type": "t", "size": 1, "title": "t"})
        commit_records(net, store, [self.after])

    def bundle(self, raw: bytes) -> dict[str, Any]:
        return build_bundle(self.store, self.net.genesis, decode_envelope(raw, self.net.genesis).record_id)


def test_bundles_of_both_epochs_verify_from_the_genesis_alone() -> None:
    chain = Removed()
    g = chain.net.genesis
    for raw, epoch in ((chain.before, 0), (chain.after, 1)):
        bundle = chain.bundle(raw)
        assert len(bundle["epochs"]) == 1
        verdict = verify_bundle(bundle, g)
        assert verdict.valid, _failed(verdict)
        assert verdict.facts["block"]["epoch"] == epoch and verdict.facts["epoch"] == 1
        assert verdict.facts["block"]["validators"] == (4, 3)[epoch]
        assert "validator epoch 1" in verdict.facts["claim"]["en"]
    bundle = chain.bundle(chain.after)
    assert [s["name"] for s in verify_bundle(bundle, g).facts["certified_by"]] == [
        v.name for v in g.validators[:3]]
    # without the epoch, the block names a set the genesis never had
    bare = {**copy.deepcopy(bundle), "epochs": []}
    assert _failed(verify_bundle(bare, g))["part"] == "genesis"
    # an epoch whose QC or entry was altered proves no change
    forged = copy.deepcopy(bundle)
    forged["epochs"][0]["qc"]["signatures"].pop()
    assert _failed(verify_bundle(forged, g))["part"] == "epochs"
    forged = copy.deepcopy(bundle)
    forged["epochs"][0]["validators"]["value"] = bundle["state"]["key"]["value"]
    assert _failed(verify_bundle(forged, g))["part"] == "epochs"


def test_a_checkpoint_after_a_change_carries_its_epochs() -> None:
    from ledgernode.auditing.checkpoints import checkpoint, verify_consistency_files

    chain = Removed()
    old, new = checkpoint(chain.store, 1), checkpoint(chain.store)
    assert old["epochs"] == [] and len(new["epochs"]) == 1
    proof = {"from": old["log_size"], "to": new["log_size"],
             "proof": [h.hex() for h in chain.store.consistency_proof(old["log_size"], new["log_size"])]}
    assert verify_consistency_files(old, new, proof, chain.net.genesis).valid
    assert not verify_consistency_files(old, {**new, "epochs": []}, proof, chain.net.genesis).valid


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
    out = capsys.readouterr().out
    assert "[失败 FAIL]" in out and "the record's id does not match its bytes" in out
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


def test_cli_version_1_bundle_is_unusable(ledger: Ledger, tmp_path: Path) -> None:
    """`python -m ledgernode verify` on a ledgernode-evidence/1 bundle: exit 2, saying what it is."""
    v1 = ledger.bundle(ledger.notarize)
    v1["format"] = "ledgernode-evidence/1"
    del v1["epochs"], v1["state"]
    path, genesis = _files(ledger, tmp_path, v1, "v1.json")
    for extra in ([], ["--json"]):
        proc = subprocess.run([sys.executable, "-m", "ledgernode", "verify", path, "--genesis", genesis, *extra],
                              capture_output=True, text=True, cwd=REPO, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.returncode == 2, proc.stdout + proc.stderr
        said = json.loads(proc.stdout)["unusable"] if extra else proc.stderr
        assert "an evidence bundle of version 1" in said and "ledgernode-evidence/2" in said, said
    # the same bundle as version 2 verifies: the format alone made it unusable
    path, genesis = _files(ledger, tmp_path, ledger.bundle(ledger.notarize), "v2.json")
    assert main(["verify", path, "--genesis", genesis]) == 0


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


def test_a_bundle_built_while_a_block_commits_names_a_head_that_holds_the_record() -> None:
    """Regression: build_bundle read the head before locating the record, so a block that
    committed in between gave a record above that head (an assertion, HTTP 500)."""
    net, store = Net(), Store.memory()
    commit_records(net, store, [net.record(0, "trace.event", "batch-1", {"activity": "a"})], T0)
    late = net.record(0, "trace.event", "batch-2", {"activity": "b"})

    class CommitsDuringLocate:
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def locate(self, record_id: bytes) -> tuple[int, int] | None:
            if store.height == 1:
                commit_records(net, store, [late], T0 + 1)  # the disk thread commits meanwhile
            return store.locate(record_id)

    bundle = build_bundle(CommitsDuringLocate(), net.genesis, decode_envelope(late, net.genesis).record_id)
    assert verify_bundle(bundle, net.genesis).valid


def test_a_governance_record_verifies_only_as_a_validators() -> None:
    """docs/protocol.md section 13: a `gov.*` record's key must be a validator's of the set
    certifying its block (this version: the genesis set), whatever its roles."""
    from ledgernode.auditing import lists

    net, store = Net(), Store.memory()
    body = {"action": "key.revoke", "args": {"key_id": net.clients[1].public.key_id, "reason": "lost"},
            "expires": T0 + 10**6}
    raw = net.record(0, "gov.propose", "R-1", body, key=net.validators[2])
    commit_records(net, store, [raw])
    env = decode_envelope(raw, net.genesis)
    assert verify_bundle(build_bundle(store, net.genesis, env.record_id), net.genesis).valid
    key = lists.KeyEntry(net.validators[2].public, "health", ("*",), 0, None)
    lists.check_signed(env, 0, key, net.genesis.validator_keys, "该记录", "the record")
    with pytest.raises(CheckFailed) as info:  # the same key, were it not a validator's
        lists.check_signed(env, 0, key, frozenset(), "该记录", "the record")
    assert info.value.part == "key" and "not signed by a validator" in info.value.en


def test_answers_after_a_change_verify_with_their_epochs() -> None:
    chain = Removed()
    g = chain.net.genesis
    for subject in ("V-1", "EV-1"):
        doc = json.loads(json.dumps(answers.subject_history(chain.store, g, subject)))
        verdict = answers.verify_answer(doc, "subject", g)
        assert verdict.valid and verdict.facts["claim"]["epoch"] == 1, _failed(verdict)
        assert len(doc["epochs"]) == 1
