"""End to end: chain on LevelDB -> evidence bundles (version 2) -> the real offline verifier.

A small chain of several blocks and record types is committed in-process to a
LevelDB store (no network), reopened from disk, and bundles are exported for
records at the first leaf, in the middle of a middle block and at the last
leaf. Each `ledgernode-evidence/2` bundle carries, besides the record, its block
and inclusion proof, a `state` section: the head as a checkpoint, the consistency
proof from the record's block to it and the signer's `key` entry in the
checkpoint's state map (DESIGN.md section 12). The real CLI (`python -m
ledgernode verify`) must accept them; then every byte of every signed or hashed
field (the state section's too) is changed, one at a time, and every change must
be rejected at the check that guards that field (format, genesis, epochs, header,
qc, record, inclusion, checkpoint, key, file). The bulk of the mutations run
through `verify_bundle` in-process; each field class also goes once through the
CLI subprocess.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ledgernode import crypto
from ledgernode.auditing.bundle import build_bundle
from ledgernode.blocks import vote_bytes
from ledgernode.genesis import build, parse
from ledgernode.records import decode_envelope
from ledgernode.storage import Store
from ledgernode.verify import CHECKS, verify_bundle
from tests.fixtures import DEPTS, Net, T0, commit_records, content

REPO = Path(__file__).resolve().parents[2]
LABELS = {name: (zh, en) for name, zh, en in CHECKS}
MASKS = (0x01, 0x80, 0xFF)  # low bit, high bit, every bit: per byte position
DAY_MS = 86_400_000


# -- the chain -----------------------------------------------------------------


class Chain:
    """Everything the tests need: genesis, files on disk, and bundles by position."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.net = Net()
        self.genesis_path = root / "genesis.json"
        self.genesis_path.write_bytes(self.net.genesis.raw)
        self.files = {
            "contract": self._file("contract.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"%%EOF\n"),
            "lab": self._file("lab-report.txt", "检验报告 batch-7: 合格 / passed\n".encode() * 50),
            "photo": self._file("photo.jpg", b"\xff\xd8\xff\xe0" + hashlib.sha256(b"photo").digest() * 300),
            "other": self._file("other.bin", b"not the original\n"),
        }
        self.ids: dict[str, bytes] = {}
        self.expect: dict[str, dict[str, Any]] = {}
        self.bundles: dict[str, dict[str, Any]] = {}
        self.bundle_paths: dict[str, Path] = {}
        self.heights: dict[str, int] = {}
        self._build()

    def _file(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.write_bytes(data)
        return path

    def file_hash(self, name: str) -> bytes:
        return hashlib.sha256(self.files[name].read_bytes()).digest()

    def _rid(self, raw: bytes) -> bytes:
        return decode_envelope(raw, self.net.genesis).record_id

    def _build(self) -> None:
        net = self.net
        store = Store.open(self.root / "db")
        try:
            # Block 1: leaf 0 is the notarized contract (the "first" position).
            first = net.record(1, "evidence.notarize", "EV-2026-0001", {
                "content_hash": self.file_hash("contract"), "media_type": "application/pdf",
                "size": self.files["contract"].stat().st_size, "title": "借款合同扫描件 loan contract scan"})
            publish = net.record(2, "dataset.publish", "ds/health/vaccinations", {
                "title": "Vaccinations 2025", "content_hash": content("vacc-v1"),
                "schema_hash": content("vacc-schema"), "classification": "internal"})
            cert = net.record(3, "cert.issue", "EXP-2026-000123", {
                "cert_type": "export-licence", "holder": content("holder 91310000MA1FL0000X"),
                "content_hash": content("licence pdf"), "valid_from": T0, "valid_until": T0 + 365 * DAY_MS})
            commit_records(net, store, [first, publish, cert])

            # Block 2 (7 records): a provenance chain; the middle record (leaf 6)
            # is a trace.event that refs two earlier records.
            t_harvest = net.record(0, "trace.event", "batch-7", {"activity": "harvested", "location": "Farm 12"},
                                   ts=T0 + 1000)
            t_wash = net.record(0, "trace.event", "batch-7", {"activity": "washed"}, ts=T0 + 1000,
                                refs=(self._rid(t_harvest),))
            other_cert = net.record(1, "cert.issue", "BL-2026-7", {
                "cert_type": "business-licence", "holder": content("holder 2"), "content_hash": content("bl"),
                "valid_from": T0, "valid_until": T0 + DAY_MS}, ts=T0 + 1000)
            middle = net.record(0, "trace.event", "batch-7", {
                "activity": "lab tested", "content_hash": self.file_hash("lab"), "location": "Lab 3"},
                ts=T0 + 1000, refs=(self._rid(t_harvest), self._rid(t_wash)))
            notarize2 = net.record(2, "evidence.notarize", "EV-2026-0002", {
                "content_hash": content("ev2"), "media_type": "text/plain", "size": 3, "title": "note"},
                ts=T0 + 1000)
            republish = net.record(2, "dataset.publish", "ds/health/vaccinations", {
                "title": "Vaccinations 2025 (rev 2)", "content_hash": content("vacc-v2"),
                "schema_hash": content("vacc-schema"), "classification": "internal"}, ts=T0 + 1000)
            t_pack = net.record(0, "trace.event", "batch-7", {"activity": "packed"}, ts=T0 + 1000,
                                refs=(self._rid(middle),))
            commit_records(net, store, [t_harvest, t_wash, other_cert, middle, notarize2, republish, t_pack],
                           time_ms=T0 + 1000)

            # Blocks 3 and 4: refs across blocks; the last leaf is a notarized photo.
            t_ship = net.record(0, "trace.event", "batch-7/crate-1", {"activity": "shipped"}, ts=T0 + 2000,
                                refs=(self._rid(t_pack),))
            ds2 = net.record(3, "dataset.publish", "ds/customs/declarations", {
                "title": "Declarations", "content_hash": content("decl"), "schema_hash": content("decl-s"),
                "classification": "sensitive"}, ts=T0 + 2000)
            commit_records(net, store, [t_ship, ds2], time_ms=T0 + 2000)
            cert3 = net.record(3, "cert.issue", "EXP-2026-000124", {
                "cert_type": "export-licence", "holder": content("holder 3"), "content_hash": content("l3"),
                "valid_from": T0, "valid_until": T0 + 2 * DAY_MS}, ts=T0 + 3000)
            t_recv = net.record(1, "trace.event", "batch-7/crate-1", {"activity": "received"}, ts=T0 + 3000,
                                refs=(self._rid(t_ship),))
            last = net.record(1, "evidence.notarize", "EV-2026-0003", {
                "content_hash": self.file_hash("photo"), "media_type": "image/jpeg",
                "size": self.files["photo"].stat().st_size, "title": "现场照片 site photo"}, ts=T0 + 3000)
            commit_records(net, store, [cert3, t_recv, last], time_ms=T0 + 3000)
            assert (store.height, store.log_size) == (4, 15)
        finally:
            store.close()

        self.ids = {"first": self._rid(first), "middle": self._rid(middle), "last": self._rid(last)}
        self.expect = {
            "first": {"type": "evidence.notarize", "subject": "EV-2026-0001", "file": "contract",
                      "leaf": 0, "height": 1, "dept": DEPTS[1]},
            "middle": {"type": "trace.event", "subject": "batch-7", "file": "lab",
                       "leaf": 6, "height": 2, "dept": DEPTS[0]},
            "last": {"type": "evidence.notarize", "subject": "EV-2026-0003", "file": "photo",
                     "leaf": 14, "height": 4, "dept": DEPTS[1]},
        }
        # Reopen from disk: bundles come from what LevelDB persisted.
        store = Store.open(self.root / "db")
        try:
            assert (store.height, store.log_size) == (4, 15)
            for pos, rid in self.ids.items():
                bundle = build_bundle(store, self.net.genesis, rid)
                self.bundles[pos] = bundle
                path = self.root / f"bundle-{pos}.json"
                path.write_text(json.dumps(bundle, indent=2))
                self.bundle_paths[pos] = path
        finally:
            store.close()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return Chain(tmp_path_factory.mktemp("chain"))


POSITIONS = ["first", "middle", "last"]
HEAD_HEIGHT = 4  # every bundle's checkpoint: the head when the bundles were built
BUNDLE_CHECKS = ["format", "genesis", "epochs", "header", "qc", "record", "inclusion", "checkpoint", "key"]


# -- helpers -------------------------------------------------------------------


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "ledgernode", "verify", *map(str, args)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
    )


def failed_check(verdict: Any) -> str:
    """Name of the one failed check; the verifier stops at the first failure."""
    assert not verdict.valid
    failed = [c for c in verdict.checks if not c["ok"]]
    assert len(failed) == 1 and failed[0] is verdict.checks[-1], verdict.checks
    assert failed[0]["error"], "a failed check must say why"
    return failed[0]["check"]


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def flips(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Every byte position, changed by each mask."""
    for i in range(len(data)):
        for mask in MASKS:
            changed = bytearray(data)
            changed[i] ^= mask
            yield i, mask, bytes(changed)


Mutator = Callable[[dict[str, Any], bytes], None]
SIG_BYTES = 64  # an envelope is msgpack [bin record_bytes, bin sig]: the signature is its last 64 bytes


def _node(doc: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def _setter(path: tuple[str | int, ...], encode: Callable[[bytes], str]) -> Mutator:
    """Write changed bytes, encoded (b64 or hex), at `path` of a bundle."""
    def setter(b: dict[str, Any], v: bytes) -> None:
        _node(b, path[:-1])[path[-1]] = encode(v)
    return setter


def _hex(v: bytes) -> str:
    return v.hex()


def _field(bundle: dict[str, Any], label: str, path: tuple[str | int, ...], encoding: str,
           allowed: set[str]) -> tuple[str, bytes, Mutator, set[str]]:
    text = _node(bundle, path)
    if encoding == "b64":
        return label, unb64(text), _setter(path, b64), allowed
    return label, bytes.fromhex(text), _setter(path, _hex), allowed


def _set_envelope_record(sig: bytes) -> Mutator:
    def setter(b: dict[str, Any], v: bytes) -> None:
        b["envelope"] = b64(v + sig)
    return setter


def _set_envelope_sig(head: bytes) -> Mutator:
    def setter(b: dict[str, Any], v: bytes) -> None:
        b["envelope"] = b64(head + v)
    return setter


def byte_fields(bundle: dict[str, Any]) -> list[tuple[str, bytes, Mutator, set[str]]]:
    """(label, original bytes, setter, checks allowed to catch it) for each byte field."""
    env = unb64(bundle["envelope"])
    head, sig = env[:-SIG_BYTES], env[-SIG_BYTES:]
    fields: list[tuple[str, bytes, Mutator, set[str]]] = [
        # The record's bytes (and the msgpack framing): no longer canonical, or not its id.
        ("envelope", head, _set_envelope_record(sig), {"record"}),
        # The signature is part of the committed leaf: a changed one is no longer the leaf the
        # block holds (the `key` check verifies the signature of the leaf that was committed).
        ("envelope.sig", sig, _set_envelope_sig(head), {"inclusion"}),
        # A changed header either no longer decodes / matches the genesis, or
        # its block hash no longer matches the QC.
        _field(bundle, "header", ("block", "header"), "b64", {"header", "qc"}),
        _field(bundle, "record_id", ("record_id",), "hex", {"record"}),
        _field(bundle, "genesis_hash", ("genesis_hash",), "hex", {"genesis"}),
    ]
    for k in range(len(bundle["block"]["qc"]["signatures"])):
        fields.append(_field(bundle, f"qc.signatures[{k}]", ("block", "qc", "signatures", k, "sig"), "b64", {"qc"}))
    for j in range(len(bundle["inclusion"])):
        fields.append(_field(bundle, f"inclusion[{j}]", ("inclusion", j), "hex", {"inclusion"}))
    # The state section: the checkpoint (its header, its QC, the consistency proof to it)...
    state = bundle["state"]
    fields.append(_field(bundle, "state.checkpoint.header", ("state", "checkpoint", "header"), "b64",
                         {"checkpoint"}))
    for k in range(len(state["checkpoint"]["qc"]["signatures"])):
        fields.append(_field(bundle, f"state.checkpoint.qc.signatures[{k}]",
                             ("state", "checkpoint", "qc", "signatures", k, "sig"), "b64", {"checkpoint"}))
    for j in range(len(state["consistency"])):
        fields.append(_field(bundle, f"state.consistency[{j}]", ("state", "consistency", j), "hex",
                             {"checkpoint"}))
    # ... and the signer's key entry in the checkpoint's state map: its value and its proof.
    fields.append(_field(bundle, "state.key.value", ("state", "key", "value"), "b64", {"key"}))
    leaf = state["key"]["proof"]["leaf"]
    assert leaf is not None, "a signer's key entry is present"
    for name in ("path", "value_hash"):
        fields.append(_field(bundle, f"state.key.proof.leaf.{name}", ("state", "key", "proof", "leaf", name), "hex",
                             {"key"}))
    for j in range(len(state["key"]["proof"]["siblings"])):
        fields.append(_field(bundle, f"state.key.proof.siblings[{j}]", ("state", "key", "proof", "siblings", j),
                             "hex", {"key"}))
    return fields


# -- the valid bundles through the real CLI -------------------------------------


@pytest.mark.parametrize("pos", POSITIONS)
def test_cli_accepts_bundle(chain: Chain, pos: str) -> None:
    exp = chain.expect[pos]
    bundle = chain.bundles[pos]
    assert bundle["leaf_index"] == exp["leaf"]
    proc = run_cli(chain.bundle_paths[pos], "--genesis", chain.genesis_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "有效 VALID" in out and "INVALID" not in out
    assert exp["type"] in out and exp["subject"] in out
    assert chain.ids[pos].hex() in out
    assert f"department {exp['dept']}" in out
    assert f"height {exp['height']}" in out
    for name in BUNDLE_CHECKS:
        zh, en = LABELS[name]
        assert f"[通过 PASS] {zh} / {en}" in out
    assert "失败 FAIL" not in out
    # The claim names the checkpoint (and validator epoch) it relied on.
    assert f"checkpoint height {HEAD_HEIGHT}" in out and "validator epoch 0" in out
    for i in range(chain.net.genesis.quorum):
        assert f"certified by validator {i} ({DEPTS[i]}" in out


@pytest.mark.parametrize("pos", POSITIONS)
def test_cli_json(chain: Chain, pos: str) -> None:
    exp = chain.expect[pos]
    proc = run_cli(chain.bundle_paths[pos], "--genesis", chain.genesis_path, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["valid"] is True
    assert [c["check"] for c in doc["checks"]] == BUNDLE_CHECKS
    assert all(c["ok"] for c in doc["checks"])
    rec = doc["facts"]["record"]
    assert (rec["type"], rec["subject"], rec["id"]) == (exp["type"], exp["subject"], chain.ids[pos].hex())
    # The signer as its key entry in the checkpoint's state shows it: a genesis client
    # key, able to sign from leaf 0 on and never revoked.
    assert rec["signer"]["dept"] == exp["dept"]
    assert (rec["signer"]["from"], rec["signer"]["until"]) == (0, None)
    assert doc["facts"]["checkpoint"]["height"] == HEAD_HEIGHT
    assert doc["facts"]["checkpoint"]["log_size"] == 15
    claim = doc["facts"]["claim"]
    assert (claim["record_id"], claim["leaf_index"], claim["height"]) == (chain.ids[pos].hex(), exp["leaf"],
                                                                          exp["height"])
    assert claim["checkpoint_height"] == HEAD_HEIGHT and "key_revoked_at" not in claim
    assert doc["facts"]["leaf_index"] == exp["leaf"]
    assert doc["facts"]["block"]["height"] == exp["height"]
    assert [v["validator"] for v in doc["facts"]["certified_by"]] == list(range(chain.net.genesis.quorum))


@pytest.mark.parametrize("pos", POSITIONS)
def test_cli_file_matches(chain: Chain, pos: str) -> None:
    original = chain.files[chain.expect[pos]["file"]]
    proc = run_cli(chain.bundle_paths[pos], "--genesis", chain.genesis_path, "--file", original)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    zh, en = LABELS["file"]
    assert f"[通过 PASS] {zh} / {en}" in proc.stdout


def test_cli_other_file_fails(chain: Chain) -> None:
    proc = run_cli(chain.bundle_paths["first"], "--genesis", chain.genesis_path, "--file", chain.files["other"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    zh, en = LABELS["file"]
    assert "无效 INVALID" in proc.stdout
    assert f"[失败 FAIL] {zh} / {en}" in proc.stdout
    assert hashlib.sha256(chain.files["other"].read_bytes()).hexdigest() in proc.stdout
    # The right file of another record is a wrong file for this one.
    proc = run_cli(chain.bundle_paths["first"], "--genesis", chain.genesis_path, "--file", chain.files["photo"])
    assert proc.returncode == 1


def test_every_bundle_verifies_in_process(chain: Chain) -> None:
    for pos in POSITIONS:
        v = verify_bundle(copy.deepcopy(chain.bundles[pos]), chain.net.genesis,
                          chain.files[chain.expect[pos]["file"]])
        assert v.valid, v.checks
        assert [c["check"] for c in v.checks] == [name for name, _, _ in CHECKS]
        assert v.facts["claim"]["file_matches"] is True


def test_the_records_own_block_is_a_checkpoint_too(chain: Chain) -> None:
    """A checkpoint may be the record's block itself (consistency from a log to itself is
    the empty proof); the verdict then names that height as the checkpoint relied on."""
    for pos in POSITIONS:
        bundle = copy.deepcopy(chain.bundles[pos])
        assert _node(bundle, ("state", "checkpoint", "qc", "height")) == HEAD_HEIGHT
        bundle["state"].update(checkpoint=bundle["block"], consistency=[])
        if chain.expect[pos]["height"] < HEAD_HEIGHT:
            # The key entry is proven in the head's state, not in this block's: it no longer holds.
            assert failed_check(verify_bundle(bundle, chain.net.genesis)) == "key", pos
            continue
        v = verify_bundle(bundle, chain.net.genesis)
        assert v.valid, v.checks
        assert v.facts["claim"]["checkpoint_height"] == chain.expect[pos]["height"]


# -- tampering, in process (every byte) -------------------------------------------


@pytest.mark.parametrize("pos", POSITIONS)
def test_every_byte_change_is_rejected(chain: Chain, pos: str) -> None:
    genesis = chain.net.genesis
    original = chain.bundles[pos]
    escaped: list[str] = []
    wrong_check: list[str] = []
    count = 0
    fields = byte_fields(original)
    for label, data, setter, allowed in fields:
        for i, mask, changed in flips(data):
            bundle = copy.deepcopy(original)
            setter(bundle, changed)
            verdict = verify_bundle(bundle, genesis)
            count += 1
            if verdict.valid:
                escaped.append(f"{label}[{i}]^{mask:#x}")
            elif failed_check(verdict) not in allowed:
                wrong_check.append(f"{label}[{i}]^{mask:#x} failed at {verdict.checks[-1]['check']}")
    assert not escaped, f"accepted tampered bundles: {escaped[:20]}"
    assert not wrong_check, wrong_check[:20]
    assert count == len(MASKS) * sum(len(data) for _, data, _, _ in fields)
    state = original["state"]
    assert len(fields) == (5 + chain.net.genesis.quorum + len(original["inclusion"])
                           + 1 + len(state["checkpoint"]["qc"]["signatures"]) + len(state["consistency"])
                           + 3 + len(state["key"]["proof"]["siblings"]))


@pytest.mark.parametrize("pos", POSITIONS)
def test_structural_changes_are_rejected(chain: Chain, pos: str) -> None:
    genesis = chain.net.genesis
    original = chain.bundles[pos]
    env = unb64(original["envelope"])
    header = unb64(original["block"]["header"])
    path = list(original["inclusion"])
    cases: list[tuple[str, Callable[[dict[str, Any]], None], set[str]]] = [
        ("leaf_index+1", lambda b: b.update(leaf_index=b["leaf_index"] + 1), {"inclusion"}),
        ("leaf_index-1", lambda b: b.update(leaf_index=b["leaf_index"] - 1), {"inclusion"}),
        ("leaf_index as str", lambda b: b.update(leaf_index=str(b["leaf_index"])), {"format"}),
        ("leaf_index true", lambda b: b.update(leaf_index=True), {"format"}),
        ("envelope truncated", lambda b: b.update(envelope=b64(env[:-1])), {"record"}),
        ("envelope extended", lambda b: b.update(envelope=b64(env + b"\x00")), {"record"}),
        ("envelope empty", lambda b: b.update(envelope=""), {"record"}),
        ("envelope not base64", lambda b: b.update(envelope="!!" + b["envelope"]), {"record"}),
        ("header truncated", lambda b: b["block"].update(header=b64(header[:-1])), {"header"}),
        ("header extended", lambda b: b["block"].update(header=b64(header + b"\xc0")), {"header"}),
        ("path dropped", lambda b: b.update(inclusion=path[:-1]), {"inclusion"}),
        ("path extra", lambda b: b.update(inclusion=path + [path[-1]]), {"inclusion"}),
        ("path reversed", lambda b: b.update(inclusion=path[::-1]), {"inclusion"}),
        ("path empty", lambda b: b.update(inclusion=[]), {"inclusion"}),
        ("path uppercase", lambda b: b.update(inclusion=[p.upper() for p in path]), {"inclusion"}),
        ("path trailing newline", lambda b: b.update(inclusion=[path[0] + "\n"] + path[1:]), {"inclusion"}),
        ("record_id of another record",
         lambda b: b.update(record_id=chain.ids["first" if pos != "first" else "last"].hex()), {"record"}),
        ("record_id uppercase", lambda b: b.update(record_id=b["record_id"].upper()), {"record"}),
        ("chain_id", lambda b: b.update(chain_id="gov-other"), {"genesis"}),
        ("genesis_hash missing", lambda b: b.pop("genesis_hash"), {"format"}),
        ("qc height+1", lambda b: b["block"]["qc"].update(height=b["block"]["qc"]["height"] + 1), {"qc"}),
        ("qc round+1", lambda b: b["block"]["qc"].update(round=1), {"qc"}),
        ("qc block_hash", lambda b: b["block"]["qc"].update(block_hash="00" * 32), {"qc"}),
        ("qc index unknown", lambda b: b["block"]["qc"]["signatures"][0].update(validator=genesis.n), {"qc"}),
        ("qc index swapped", lambda b: b["block"]["qc"]["signatures"][0].update(validator=genesis.n - 1), {"qc"}),
        ("qc sig short", lambda b: b["block"]["qc"]["signatures"][0].update(
            sig=b64(unb64(b["block"]["qc"]["signatures"][0]["sig"])[:-1])), {"qc"}),
        ("qc missing", lambda b: b["block"].pop("qc"), {"qc"}),
        ("block missing", lambda b: b.pop("block"), {"format"}),
        ("header missing", lambda b: b["block"].pop("header"), {"header"}),
        # The state section: exactly its three keys, a checkpoint at or after the block that
        # extends it, and the signer's own key entry in the checkpoint's state.
        ("state missing", lambda b: b.pop("state"), {"format"}),
        ("state with a v1 later section", lambda b: b["state"].update(later={}), {"format"}),
        ("state without key", lambda b: b["state"].pop("key"), {"format"}),
        ("epochs missing", lambda b: b.pop("epochs"), {"format"}),
        ("epochs listing a change that never happened", lambda b: b.update(epochs=[
            {"header": b["block"]["header"], "qc": b["block"]["qc"], "validators": b["state"]["key"]}]),
         {"epochs"}),
        ("checkpoint header of another height", lambda b: b["state"]["checkpoint"].update(
            header=chain.bundles["first"]["block"]["header"]), {"checkpoint"}),
        ("checkpoint qc short of a quorum", lambda b: b["state"]["checkpoint"]["qc"]["signatures"].pop(),
         {"checkpoint"}),
        ("consistency extra", lambda b: b["state"]["consistency"].append("00" * 32), {"checkpoint"}),
        ("key entry shown absent", lambda b: b["state"]["key"].update(value=None), {"key"}),
        ("key entry with an extra field", lambda b: b["state"]["key"].update(note="x"), {"key"}),
        ("key proof without its leaf", lambda b: b["state"]["key"]["proof"].update(leaf=None), {"key"}),
        ("key proof one sibling short", lambda b: b["state"]["key"]["proof"]["siblings"].pop(), {"key"}),
        ("key value not base64", lambda b: b["state"]["key"].update(value="!" + b["state"]["key"]["value"]),
         {"key"}),
    ]
    if original["state"]["consistency"]:  # empty when the record's block is the checkpoint
        cases.append(("consistency dropped", lambda b: b["state"]["consistency"].pop(), {"checkpoint"}))
    if len(set(original["state"]["consistency"])) > 1:
        cases.append(("consistency reversed", lambda b: b["state"].update(
            consistency=b["state"]["consistency"][::-1]), {"checkpoint"}))
    other = next(p for p in POSITIONS if chain.bundles[p]["state"]["key"] != original["state"]["key"])
    # Another signer's key entry, proven in the same state: it is not this record's signer.
    cases.append(("key entry of another key", lambda b: b["state"].update(key=chain.bundles[other]["state"]["key"]),
                  {"key"}))
    if chain.expect[pos]["height"] > 1:
        # A checkpoint below the record's block (the first block, certified and all).
        cases.append(("checkpoint older than the block", lambda b: b["state"].update(
            checkpoint=chain.bundles["first"]["block"], consistency=[]), {"checkpoint"}))
    if chain.expect[pos]["height"] < HEAD_HEIGHT:
        # The record's own block as the checkpoint, with the proof to the head still attached.
        cases.append(("checkpoint = block, proof to the head", lambda b: b["state"].update(
            checkpoint=b["block"]), {"checkpoint"}))
    if original["leaf_index"] == 0:
        # The empty path of a one-leaf tree must not pass for a bigger tree.
        cases.append(("leaf_index 0 with no path", lambda b: b.update(inclusion=[]), {"inclusion"}))
    for name, mutate, allowed in cases:
        bundle = copy.deepcopy(original)
        mutate(bundle)
        verdict = verify_bundle(bundle, genesis)
        assert not verdict.valid, name
        assert failed_check(verdict) in allowed, (name, verdict.checks[-1])


def _qc_signed_by(chain: Chain, bundle: dict[str, Any], signers: list[int]) -> dict[str, Any]:
    qc = bundle["block"]["qc"]
    msg = vote_bytes(chain.net.chain_id, qc["height"], qc["round"], bytes.fromhex(qc["block_hash"]))
    out = copy.deepcopy(bundle)
    out["block"]["qc"]["signatures"] = [
        {"validator": i, "sig": b64(chain.net.validators[i].sign(msg))} for i in signers
    ]
    return out


def test_qc_quorum_rules(chain: Chain) -> None:
    genesis = chain.net.genesis
    n, q = genesis.n, genesis.quorum
    assert (n, q) == (4, 3)
    bundle = chain.bundles["middle"]
    # Any Q distinct validators, or all n, certify the block.
    for signers in ([0, 1, 2], [1, 2, 3], [3, 0, 2], [0, 1, 2, 3]):
        assert verify_bundle(_qc_signed_by(chain, bundle, signers), genesis).valid, signers
    # Q - 1 signatures fail.
    for signers in ([0, 1], [2, 3], [1]):
        v = verify_bundle(_qc_signed_by(chain, bundle, signers), genesis)
        assert failed_check(v) == "qc" and f"needs {q}" in v.checks[-1]["error"]
    # A duplicated entry does not count twice, and is rejected even beside a quorum.
    for signers in ([0, 1, 1], [0, 1, 2, 2], [3, 3, 3]):
        v = verify_bundle(_qc_signed_by(chain, bundle, signers), genesis)
        assert failed_check(v) == "qc" and "twice" in v.checks[-1]["error"]
    # Every listed signature is verified, even past a quorum of good ones.
    four = _qc_signed_by(chain, bundle, [0, 1, 2, 3])
    four["block"]["qc"]["signatures"][3]["sig"] = b64(bytes(64))
    assert failed_check(verify_bundle(four, genesis)) == "qc"
    # A vote for the block by a key outside the genesis does not count.
    stranger = copy.deepcopy(four)
    qc = stranger["block"]["qc"]
    msg = vote_bytes(chain.net.chain_id, qc["height"], qc["round"], bytes.fromhex(qc["block_hash"]))
    qc["signatures"][3]["sig"] = b64(crypto.private_key_from_seed(b"\x07" * 32).sign(msg))
    assert failed_check(verify_bundle(stranger, genesis)) == "qc"


def test_other_genesis_fails_at_the_genesis_check(chain: Chain, tmp_path: Path) -> None:
    net = chain.net
    same_chain = build(
        net.chain_id,
        [{"dept": DEPTS[i], "name": f"Dept {DEPTS[i]}", "pubkey": k.public.raw.hex()}
         for i, k in enumerate(net.validators)],
        [], {"record_ts_window_ms": 60_000},
    )
    other_net = Net(chain_id="gov-other")
    for raw in (same_chain, other_net.genesis.raw, net.genesis.raw + b"\n"):
        v = verify_bundle(copy.deepcopy(chain.bundles["first"]), parse(raw))
        assert failed_check(v) == "genesis" and [c["check"] for c in v.checks] == ["format", "genesis"]
    path = tmp_path / "other-genesis.json"
    path.write_bytes(same_chain)
    proc = run_cli(chain.bundle_paths["first"], "--genesis", path)
    assert proc.returncode == 1
    zh, en = LABELS["genesis"]
    assert f"[失败 FAIL] {zh} / {en}" in proc.stdout and "genesis_hash" in proc.stdout


# -- tampering through the real CLI: one mutation of each field class ------------


def _flip_b64(text: str, i: int) -> str:
    data = bytearray(unb64(text))
    data[i] ^= 0x01
    return b64(bytes(data))


def _flip_hex(text: str, i: int) -> str:
    data = bytearray(bytes.fromhex(text))
    data[i] ^= 0x01
    return data.hex()


CLI_MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], None], set[str]]] = {
    "envelope": (lambda b: b.update(envelope=_flip_b64(b["envelope"], 100)), {"record"}),
    "envelope-sig": (lambda b: b.update(envelope=_flip_b64(b["envelope"], -5)), {"inclusion"}),
    "header": (lambda b: b["block"].update(header=_flip_b64(b["block"]["header"], -3)), {"header", "qc"}),
    "qc-sig": (lambda b: b["block"]["qc"]["signatures"][1].update(
        sig=_flip_b64(b["block"]["qc"]["signatures"][1]["sig"], 40)), {"qc"}),
    "inclusion": (lambda b: b["inclusion"].__setitem__(0, _flip_hex(b["inclusion"][0], 31)), {"inclusion"}),
    "leaf_index": (lambda b: b.update(leaf_index=b["leaf_index"] + 1), {"inclusion"}),
    "record_id": (lambda b: b.update(record_id=_flip_hex(b["record_id"], 0)), {"record"}),
    "genesis_hash": (lambda b: b.update(genesis_hash=_flip_hex(b["genesis_hash"], 17)), {"genesis"}),
    "qc-q-minus-1": (lambda b: b["block"]["qc"]["signatures"].pop(), {"qc"}),
    "qc-duplicate": (lambda b: b["block"]["qc"]["signatures"].__setitem__(
        2, dict(b["block"]["qc"]["signatures"][0])), {"qc"}),
    "format-v1": (lambda b: b.pop("state"), {"format"}),
    "epochs": (lambda b: b.update(epochs=[b["state"]["checkpoint"]]), {"epochs"}),
    "checkpoint-header": (lambda b: b["state"]["checkpoint"].update(
        header=_flip_b64(b["state"]["checkpoint"]["header"], -3)), {"checkpoint"}),
    "checkpoint-qc-sig": (lambda b: b["state"]["checkpoint"]["qc"]["signatures"][0].update(
        sig=_flip_b64(b["state"]["checkpoint"]["qc"]["signatures"][0]["sig"], 10)), {"checkpoint"}),
    "consistency": (lambda b: b["state"]["consistency"].__setitem__(
        0, _flip_hex(b["state"]["consistency"][0], 5)), {"checkpoint"}),
    "key-proof-sibling": (lambda b: b["state"]["key"]["proof"]["siblings"].__setitem__(
        0, _flip_hex(b["state"]["key"]["proof"]["siblings"][0], 31)), {"key"}),
    "key-value": (lambda b: b["state"]["key"].update(value=_flip_b64(b["state"]["key"]["value"], -2)), {"key"}),
}
def _tampered(chain: Chain, tmp_path: Path, kind: str) -> tuple[Path, dict[str, Any]]:
    """The middle bundle changed by CLI_MUTATIONS[kind], saved; and the JSON verdict of it."""
    mutate, allowed = CLI_MUTATIONS[kind]
    bundle = copy.deepcopy(chain.bundles["middle"])
    mutate(bundle)
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(bundle))
    proc = run_cli(path, "--genesis", chain.genesis_path, "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["valid"] is False
    failed = doc["checks"][-1]
    assert not failed["ok"] and failed["check"] in allowed and failed["error"], failed
    assert all(c["ok"] for c in doc["checks"][:-1])
    return path, failed


@pytest.mark.parametrize("kind", sorted(CLI_MUTATIONS))
def test_cli_rejects_tampering(chain: Chain, tmp_path: Path, kind: str) -> None:
    path, failed = _tampered(chain, tmp_path, kind)
    # The text verdict of the same file (regression: a bundle failing after `record` but before
    # `key` has no signer dept yet, and printing its signer line raised KeyError 'dept').
    proc = run_cli(path, "--genesis", chain.genesis_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "无效 INVALID" in proc.stdout
    zh, en = LABELS[failed["check"]]
    assert f"[失败 FAIL] {zh} / {en}" in proc.stdout
    assert f"原因 reason: {failed['error']}" in proc.stdout


# -- unusable input: exit 2 ---------------------------------------------------------


def test_unusable_inputs_exit_2(chain: Chain, tmp_path: Path) -> None:
    bundle, genesis = chain.bundle_paths["first"], chain.genesis_path
    not_json = tmp_path / "not.json"
    not_json.write_bytes(b"\x89PNG\r\n not json")
    array = tmp_path / "array.json"
    array.write_text("[1, 2]")
    wrong_format = tmp_path / "wrong-format.json"
    wrong_format.write_text(json.dumps({**chain.bundles["first"], "format": "ledgernode-evidence/3"}))
    version_1 = tmp_path / "version-1.json"  # a v1 bundle: no epochs or state, a `later` section
    v1 = {k: v for k, v in chain.bundles["first"].items() if k not in ("epochs", "state")}
    version_1.write_text(json.dumps({**v1, "format": "ledgernode-evidence/1", "later": None}))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    bad_genesis = tmp_path / "bad-genesis.json"
    bad_genesis.write_text(json.dumps({"format": "ledgernode-genesis/2", "chain_id": "x", "validators": []}))
    cases = [
        (tmp_path / "missing.json", genesis, []),
        (bundle, tmp_path / "missing-genesis.json", []),
        (not_json, genesis, []),
        (array, genesis, []),
        (wrong_format, genesis, []),
        (version_1, genesis, []),
        (deep, genesis, []),
        (bundle, not_json, []),
        (bundle, bundle, []),  # a bundle is not a genesis file
        (bundle, bad_genesis, []),
        (bundle, genesis, ["--file", str(tmp_path / "missing-original.pdf")]),
    ]
    for b, g, extra in cases:
        proc = run_cli(b, "--genesis", g, *extra)
        assert proc.returncode == 2, (b, g, extra, proc.stdout, proc.stderr)
        assert "cannot verify" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli(wrong_format, "--genesis", genesis, "--json")
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["valid"] is False and "format" in doc["unusable"]
    proc = run_cli(version_1, "--genesis", genesis)
    assert "version 1" in proc.stderr, proc.stderr


def test_verifier_imports_no_network_or_database(chain: Chain) -> None:
    code = (
        "import sys\n"
        "import ledgernode.verify\n"
        "from ledgernode.cli import main\n"
        f"rc = main(['verify', {str(chain.bundle_paths['last'])!r}, '--genesis', {str(chain.genesis_path)!r},"
        f" '--file', {str(chain.files['photo'])!r}])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'plyvel'))\n"
        "print('RESULT', rc, bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "RESULT 0 []" in proc.stdout


def test_console_without_chinese_still_gets_the_right_exit_code(chain: Chain) -> None:
    """Regression: on a cp1252 console printing the bilingual verdict raised
    UnicodeEncodeError, so a valid bundle exited 1 ("invalid") with a traceback."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONIOENCODING": "cp1252"}
    for extra, rc in (([], 0), (["--json"], 0), (["--file", str(chain.files["other"])], 1)):
        proc = subprocess.run(
            [sys.executable, "-m", "ledgernode", "verify", str(chain.bundle_paths["first"]),
             "--genesis", str(chain.genesis_path), *extra],
            capture_output=True, env=env, cwd=REPO, timeout=60,
        )
        assert proc.returncode == rc, proc.stderr
        assert b"Traceback" not in proc.stderr
    assert b"VALID" in subprocess.run(
        [sys.executable, "-m", "ledgernode", "verify", str(chain.bundle_paths["first"]),
         "--genesis", str(chain.genesis_path)], capture_output=True, env=env, cwd=REPO, timeout=60).stdout
