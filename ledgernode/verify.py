"""Offline verifier for evidence bundles (DESIGN section 6).

Trusts only the genesis file. Uses the codec, crypto, Merkle, record and block
modules and nothing that talks to a network or a database (no aiohttp, no
plyvel), so an auditor can run it on an offline machine. Checks run in the
design's order and stop at the first failure; the verdict says which check
failed and why, in Chinese and English.

Exit codes: 0 valid, 1 invalid (a check failed), 2 unusable input (a file is
missing or unreadable, or is not a genesis file / evidence bundle at all).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import merkle
from .blocks import check_qc, decode_header, qc_from_json
from .errors import InvalidInput
from .evidence import FORMAT
from .genesis import GENESIS_MAX_BYTES, Genesis, parse, strict_object
from .records import check_signer, decode_envelope, record_id_of

BUNDLE_MAX_BYTES = 4 << 20
FILE_CHUNK_BYTES = 1 << 20
_HEX32 = re.compile(r"^[0-9a-f]{64}\Z")

CHECKS = [
    ("genesis", "创世文件与链标识一致", "genesis file and chain id match"),
    ("header", "区块头格式正确且属于本链", "block header is canonical and belongs to this chain"),
    ("qc", "区块获得法定数量验证节点签名", "block is certified by a quorum of validators"),
    ("record", "记录格式正确、签名有效、签名者有权提交", "record is canonical, signed, and the signer may submit it"),
    ("inclusion", "记录包含在区块的默克尔日志中", "record is included in the block's Merkle log"),
    ("file", "原始文件与记录中的哈希一致", "original file matches the hash in the record"),
    ("later", "更新的检查点延续了该区块（一致性证明）", "a newer checkpoint extends the block (consistency proof)"),
]


class Unusable(Exception):
    """Input the verifier cannot even start on (exit 2)."""


class CheckFailed(Exception):
    pass


@dataclass
class Verdict:
    valid: bool = False
    checks: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"valid": self.valid, "checks": self.checks, "facts": self.facts}


def _unb64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise CheckFailed(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise CheckFailed(f"{what} is not valid base64") from None


def utc_text(ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC, or the raw number if out of range."""
    try:
        t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _show(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else value


class _Run:
    """One verification: the parsed inputs and what each check learned."""

    def __init__(self, bundle: dict[str, Any], genesis: Genesis, original: Path | None) -> None:
        self.bundle, self.genesis, self.original = bundle, genesis, original
        self.verdict = Verdict()

    def check_genesis(self) -> None:
        if self.bundle.get("genesis_hash") != self.genesis.genesis_hash:
            raise CheckFailed("bundle genesis_hash is not the SHA-256 of this genesis file")
        if self.bundle.get("chain_id") != self.genesis.chain_id:
            raise CheckFailed(f"bundle chain_id {self.bundle.get('chain_id')!r} is not the genesis chain id")

    def check_header(self) -> None:
        block = self.bundle.get("block")
        if not isinstance(block, dict):
            raise CheckFailed("bundle has no block object")
        self.header = decode_header(_unb64(block.get("header"), "block.header"))
        if self.header.chain != self.genesis.chain_id or self.header.valset != self.genesis.valset_hash:
            raise CheckFailed("header chain or validator set differs from the genesis")
        self.verdict.facts["block"] = {
            "height": self.header.height, "time": utc_text(self.header.time),
            "hash": self.header.block_hash.hex(), "log_size": self.header.log_size,
            "log_root": self.header.log_root.hex(),
        }

    def check_qc(self) -> None:
        qc = qc_from_json(self.bundle["block"].get("qc"))
        check_qc(qc, self.header, self.genesis)
        self.verdict.facts["certified_by"] = [
            {"validator": i, "dept": self.genesis.validators[i].dept, "name": self.genesis.validators[i].name}
            for i, _ in qc.signatures
        ]

    def check_record(self) -> None:
        env = decode_envelope(_unb64(self.bundle.get("envelope"), "envelope"), self.genesis)
        signer = check_signer(env, self.genesis)
        if self.bundle.get("record_id") != env.record_id.hex():
            raise CheckFailed("record_id does not match the hash of the record")
        assert record_id_of(env.record_bytes) == env.record_id
        self.env = env
        rec = env.record
        self.verdict.facts["record"] = {
            "id": env.record_id.hex(), "type": rec.type, "subject": rec.subject,
            "body": {k: _show(v) for k, v in rec.body.items()},
            "refs": [r.hex() for r in rec.refs], "claimed_time": utc_text(rec.ts),
            "signer": {"key_id": rec.key, "dept": signer.dept},
        }

    def check_inclusion(self) -> None:
        index = self.bundle.get("leaf_index")
        path = self.bundle.get("inclusion")
        if isinstance(index, bool) or not isinstance(index, int):
            raise CheckFailed("leaf_index is not an integer")
        if not self.header.log_start <= index < self.header.log_size:
            raise CheckFailed(f"leaf {index} is outside the block's leaves "
                              f"[{self.header.log_start}, {self.header.log_size})")
        if not isinstance(path, list) or not all(isinstance(p, str) and _HEX32.match(p) for p in path):
            raise CheckFailed("inclusion must be a list of 64-char lowercase hex hashes")
        proof = [bytes.fromhex(p) for p in path]
        leaf = merkle.leaf_hash(self.env.raw)
        if not merkle.verify_inclusion(leaf, index, self.header.log_size, proof, self.header.log_root):
            raise CheckFailed("inclusion path does not lead to the header's log_root")
        self.verdict.facts["leaf_index"] = index

    def check_file(self) -> None:
        assert self.original is not None
        expected = self.env.record.body.get("content_hash")
        if not isinstance(expected, bytes):
            raise CheckFailed(f"a {self.env.record.type} record has no content_hash to compare")
        digest = hashlib.sha256()
        try:
            with self.original.open("rb") as fh:
                while chunk := fh.read(FILE_CHUNK_BYTES):
                    digest.update(chunk)
        except OSError as exc:
            raise Unusable(f"cannot read {self.original}: {exc.strerror}") from None
        if digest.digest() != expected:
            raise CheckFailed(f"SHA-256 of the file is {digest.hexdigest()}, record says {expected.hex()}")

    def check_later(self) -> None:
        from .verify_answers import check_later

        newer = check_later(self.bundle["later"], self.header, self.genesis)
        self.verdict.facts["later"] = {"height": newer.height, "time": utc_text(newer.time), "log_size": newer.log_size}

    def run(self) -> Verdict:
        steps: list[Callable[[], None]] = [
            self.check_genesis, self.check_header, self.check_qc,
            self.check_record, self.check_inclusion,
        ]
        if self.original is not None:
            steps.append(self.check_file)
        if "later" in self.bundle:
            steps.append(self.check_later)
        meta = {name: (zh, en) for name, zh, en in CHECKS}
        for step in steps:
            name = step.__name__.removeprefix("check_")
            zh, en = meta[name]
            entry = {"check": name, "zh": zh, "en": en, "ok": False}
            self.verdict.checks.append(entry)
            try:
                step()
            except (CheckFailed, InvalidInput) as exc:
                entry["error"] = exc.message if isinstance(exc, InvalidInput) else str(exc)
                return self.verdict
            entry["ok"] = True
        self.verdict.valid = True
        return self.verdict


def load_genesis(path: Path) -> Genesis:
    try:
        raw = path.read_bytes() if path.stat().st_size <= GENESIS_MAX_BYTES else None
    except OSError as exc:
        raise Unusable(f"cannot read genesis {path}: {exc.strerror}") from None
    if raw is None:
        raise Unusable(f"genesis {path} is larger than {GENESIS_MAX_BYTES} bytes")
    try:
        return parse(raw)
    except InvalidInput as exc:
        raise Unusable(f"{path} is not a usable genesis file: {exc.message}") from None


def load_json(path: Path, what: str, max_bytes: int = BUNDLE_MAX_BYTES) -> dict[str, Any]:
    try:
        if path.stat().st_size > max_bytes:
            raise Unusable(f"{what} {path} is larger than {max_bytes} bytes")
        doc = json.loads(path.read_bytes(), object_pairs_hook=strict_object)
    except OSError as exc:
        raise Unusable(f"cannot read {what} {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise Unusable(f"{what} {path} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise Unusable(f"{what} {path} is not a JSON object")
    return doc


def verify_bundle(bundle: dict[str, Any], genesis: Genesis, original: Path | None = None) -> Verdict:
    if bundle.get("format") != FORMAT:
        raise Unusable(f"not an evidence bundle: format is not {FORMAT!r}")
    return _Run(bundle, genesis, original).run()


def render(verdict: Verdict) -> str:
    """The verdict as text a person can read."""
    lines = ["结论 / Verdict: " + ("有效 VALID" if verdict.valid else "无效 INVALID"), ""]
    rec = verdict.facts.get("record")
    if rec:
        lines += [
            f"记录 Record      {rec['id']}",
            f"  类型 type      {rec['type']}",
            f"  主体 subject   {rec['subject']}",
            f"  签名者 signer  key {rec['signer']['key_id']} of department {rec['signer']['dept']}",
            f"  声明时间 claimed time  {rec['claimed_time']}",
        ]
        lines += [f"  {k}: {v}" for k, v in rec["body"].items()]
        lines += [f"  ref: {r}" for r in rec["refs"]]
    block = verdict.facts.get("block")
    if block:
        lines += [
            f"区块 Block       height {block['height']}, time {block['time']}",
            f"  hash {block['hash']}",
            f"  log size {block['log_size']}, root {block['log_root']}",
        ]
    for v in verdict.facts.get("certified_by", []):
        lines.append(f"  认证节点 certified by validator {v['validator']} ({v['dept']}, {v['name']})")
    lines.append("")
    for c in verdict.checks:
        mark = "通过 PASS" if c["ok"] else "失败 FAIL"
        lines.append(f"[{mark}] {c['zh']} / {c['en']}")
        if not c["ok"]:
            lines.append(f"        原因 reason: {c['error']}")
    return "\n".join(lines)
