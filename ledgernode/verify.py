"""Offline verifier for evidence bundles (docs/protocol.md section 9; for auditors,
docs/verification.md).

Trusts only the genesis file. Uses the codec, crypto, Merkle, record and block
modules and nothing that talks to a network or a database (no aiohttp, no
plyvel), so an auditor can run it on an offline machine. Checks run in the
order of docs/protocol.md section 9 and stop at the first failure.

A verdict first states, in one line of Chinese and English, the claim it
verified (`facts["claim"]`), then every check. A failed check's reason names
the part of the file that failed (record bytes, signature, inclusion proof,
header, commit certificate, genesis) in plain words, then the technical detail;
its `part` field names that part for programs.

Exit codes: 0 valid, 1 invalid (a check failed), 2 unusable input (a file is
missing or unreadable, or is not a genesis file / evidence bundle / certificate
page at all, or is an answer given without its `--kind`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import codec, merkle
from .blocks import Header, check_qc, decode_header, qc_from_json
from .errors import InvalidInput
from .evidence import FORMAT
from .genesis import GENESIS_MAX_BYTES, Genesis, Signer, parse, strict_object
from .records import ENVELOPE_LIMITS, Envelope, check_signer, decode_envelope, record_id_of
from .times import utc_text

BUNDLE_MAX_BYTES = 4 << 20
# A certificate page holds the bundle (indented, non-ASCII escaped) and its rendering.
PAGE_MAX_BYTES = 16 << 20
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
TYPE_NAMES: dict[str, tuple[str, str]] = {
    "dataset.publish": ("数据目录发布", "dataset published"),
    "share.grant": ("数据共享授权", "data sharing granted"),
    "share.revoke": ("数据共享撤销", "data sharing revoked"),
    "share.access": ("共享数据访问", "shared data accessed"),
    "cert.issue": ("电子证照签发", "certificate issued"),
    "cert.revoke": ("电子证照吊销", "certificate revoked"),
    "cert.suspend": ("电子证照暂停", "certificate suspended"),
    "cert.resume": ("电子证照恢复", "certificate resumed"),
    "evidence.notarize": ("电子数据存证", "evidence notarized"),
    "trace.event": ("溯源事件", "tracing event"),
}


class Unusable(Exception):
    """Input the verifier cannot even start on (exit 2)."""


class CheckFailed(Exception):
    """A failed check. `part` names the part of the file that failed (docs/verification.md
    section 5); `reason` says what failed in plain Chinese / English, then the detail."""

    def __init__(self, part: str, zh: str, en: str, detail: str = "") -> None:
        self.part, self.zh, self.en, self.detail = part, zh, en, detail
        self.reason = f"{zh} / {en}" + (f" — 细节 detail: {detail}" if detail else "")
        super().__init__(self.reason)

    def within(self, zh: str, en: str) -> CheckFailed:
        """The same failure, said of one item of several, e.g. ("第 2 条记录", "record 2 of 5")."""
        return CheckFailed(self.part, f"{zh}：{self.zh}", f"{en}: {self.en}", self.detail)


@dataclass(frozen=True)
class Where:
    """What a reason is about, e.g. ("区块", "the block") or ("旧检查点", "the old checkpoint")."""

    zh: str
    en: str


RECORD = Where("记录", "the record")
BLOCK = Where("区块", "the block")


@dataclass
class Verdict:
    valid: bool = False
    checks: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"valid": self.valid, "checks": self.checks, "facts": self.facts}


Step = tuple[str, str, str, Callable[[], None]]


def run_checks(verdict: Verdict, steps: list[Step]) -> bool:
    """Run (name, zh, en, check) steps in order into `verdict`, stopping at the first failure."""
    for name, zh, en, step in steps:
        entry: dict[str, Any] = {"check": name, "zh": zh, "en": en, "ok": False}
        verdict.checks.append(entry)
        try:
            step()
        except CheckFailed as exc:
            entry.update(error=exc.reason, part=exc.part)
            return False
        except InvalidInput as exc:
            # A rule of the codec, records or blocks that the helpers below do not
            # name in plain words: still a failed check with its detail, never a traceback.
            entry.update(error=f"{zh}：未通过 / {en}: failed — 细节 detail: {exc.message}", part=name)
            return False
        entry["ok"] = True
    verdict.valid = True
    return True


def clean(text: Any) -> str:
    """`text` for one line of a terminal: control characters (a record's subject or body is
    untrusted, and a newline in it could fake a verdict line) shown as a \\u escape (four hex digits)."""
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in str(text))


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def unb64(value: Any, part: str, where: Where, what: Where) -> bytes:
    """Base64 `value`; CheckFailed naming `what` of `where` (e.g. the block's header) if not."""
    try:
        if isinstance(value, str):
            return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        pass
    raise CheckFailed(part, f"{where.zh}的{what.zh}缺失或已损坏（不是 base64 文本）",
                      f"{where.en}'s {what.en}: missing or damaged (not base64 text)",
                      f"{what.en} is not a valid base64 string")


def _show(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else value


# -- the proofs, shared with verify_answers.py ------------------------------------------


def header_of(value: Any, genesis: Genesis, where: Where) -> Header:
    """The header in base64 `value`: well formed and of this chain and validator set."""
    raw = unb64(value, "header", where, Where("区块头", "header"))
    try:
        header = decode_header(raw)
    except InvalidInput as exc:
        raise CheckFailed("header", f"{where.zh}的区块头被改动或已损坏（不是格式正确的区块头）",
                          f"{where.en}'s header was altered or damaged (it is not a well-formed header)",
                          exc.message) from None
    if header.chain != genesis.chain_id or header.valset != genesis.valset_hash:
        raise CheckFailed("genesis", f"{where.zh}属于另一个账本或另一组验证节点（与您的创世文件不符）",
                          f"{where.en} belongs to another ledger or validator set (it does not match your "
                          "genesis file)", "header chain or validator set differs from the genesis")
    return header


_QC_REASONS = [  # (words in the blocks.check_qc message, zh, en): the first match names the failure
    ("different block", "{zh}的区块头不是验证节点签名的那个区块（区块头或提交证书被改动）",
     "{en}'s header is not the block the validators signed (the header or its commit certificate was altered)"),
    ("unknown validator", "{zh}的提交证书列出了创世文件中没有的验证节点",
     "{en}'s commit certificate names a validator that is not in your genesis file"),
    ("twice", "{zh}的提交证书把同一个验证节点列了两次", "{en}'s commit certificate lists one validator twice"),
    ("does not verify", "{zh}的提交证书中有验证节点签名无效（签名被改动，或不是用该节点的密钥签的）",
     "a validator signature in {en}'s commit certificate does not verify (it was altered, or made with "
     "another key)"),
    ("needs", "为{zh}签名的验证节点不足法定数量", "too few validators signed {en} (a quorum is needed)"),
    ("", "{zh}的提交证书（验证节点签名）已损坏或不完整",
     "{en}'s commit certificate (the validators' signatures) is damaged or incomplete"),
]


def certify(qc_json: Any, header: Header, genesis: Genesis, where: Where) -> list[int]:
    """Check that `qc_json` certifies `header` under the genesis validators; the signers' indices."""
    try:
        qc = qc_from_json(qc_json)
        check_qc(qc, header, genesis)
    except InvalidInput as exc:
        zh, en = next((zh, en) for words, zh, en in _QC_REASONS if words in exc.message)
        raise CheckFailed("qc", zh.format(zh=where.zh), en.format(en=where.en), exc.message) from None
    return [i for i, _ in qc.signatures]


_RECORD_REASONS: dict[str, tuple[str, str, str]] = {  # InvalidInput.code -> (part, zh, en)
    "wrong_chain": ("genesis", "{zh}属于另一个账本（链标识不同）", "{en} was made for another ledger (a different chain id)"),
    "unknown_key": ("signer", "{zh}的签名密钥不在您的创世文件中",
                    "{en} was signed with a key that is not in your genesis file"),
    "role_denied": ("signer", "{zh}的签名密钥无权签署这类记录",
                    "{en}'s signing key is not allowed to sign this type of record"),
    "bad_signature": ("signature", "{zh}的签名与其内容不符（记录或签名被改动）",
                      "{en}'s signature does not match its bytes (the record or the signature was altered)"),
}
_RECORD_INVALID = ("record_bytes", "{zh}不是本账本的有效记录（格式损坏或字段不合规则）",
                   "{en} is not a valid record of this ledger (damaged, or a field breaks the rules)")


def _id_of_envelope(raw: bytes) -> str | None:
    """hex id of the record inside envelope bytes that still split into [record, sig], else None."""
    pair = codec.split_bin_pair(raw, ENVELOPE_LIMITS)
    if pair is None:
        try:
            outer = codec.decode(raw, ENVELOPE_LIMITS)
        except InvalidInput:
            return None
        if not isinstance(outer, list) or len(outer) != 2 or not isinstance(outer[0], bytes):
            return None
        pair = outer[0], outer[1]
    return record_id_of(pair[0]).hex()


def signed_record(value: Any, claimed_id: Any, genesis: Genesis, where: Where) -> tuple[Envelope, Signer]:
    """The envelope in base64 `value`: a valid record, signed by a key allowed its type, whose
    id is `claimed_id`. A record whose bytes no longer hash to the id it came with was altered,
    whatever rule its changed bytes now break, so that is the reason given first."""
    raw = unb64(value, "record_bytes", where, Where("字节", "bytes"))
    altered = _id_of_envelope(raw) != claimed_id
    try:
        env = decode_envelope(raw, genesis)
        signer = check_signer(env, genesis)
    except InvalidInput as exc:
        if altered:
            raise CheckFailed("record_bytes", f"{where.zh}的内容被改动（与记录编号、签名不再一致）",
                              f"{where.en}'s bytes were altered (its id / signature no longer match)",
                              exc.message) from None
        part, zh, en = _RECORD_REASONS.get(exc.code, _RECORD_INVALID)
        raise CheckFailed(part, zh.format(zh=where.zh), en.format(en=where.en), exc.message) from None
    if altered:
        raise CheckFailed("record_id", f"{where.zh}的编号与记录内容不一致（编号被改动，或记录被替换）",
                          f"{where.en}'s id does not match its bytes (the id was altered, or the record "
                          "was replaced)", "record_id does not match the hash of the record")
    assert record_id_of(env.record_bytes) == env.record_id
    return env, signer


def included(env: Envelope, index: Any, path: Any, header: Header, lowest: int,
             where: Where, scope: Where) -> int:
    """Check that `path` proves `env` at leaf `index` (lowest <= index < log_size) under `header`."""
    if isinstance(index, bool) or not isinstance(index, int):
        raise CheckFailed("inclusion", f"{where.zh}在日志中的位置（leaf_index）缺失或不是整数",
                          f"{where.en}'s position in the log (leaf_index) is missing or not a whole number",
                          "leaf_index is not an integer")
    if not lowest <= index < header.log_size:
        raise CheckFailed("inclusion", f"{where.zh}在日志中的位置超出{scope.zh}的范围",
                          f"{where.en}'s position in the log is outside {scope.en}",
                          f"leaf {index} is outside the leaves [{lowest}, {header.log_size})")
    proof = hash_list(path, "inclusion", f"{where.zh}的包含证明", f"{where.en}'s inclusion proof")
    if not merkle.verify_inclusion(env.leaf_hash, index, header.log_size, proof, header.log_root):
        raise CheckFailed("inclusion", f"{where.zh}的包含证明不能连到{scope.zh}的日志根（证明、位置或记录被改动）",
                          f"{where.en}'s inclusion proof does not lead to the log root of {scope.en} "
                          "(the proof, the position or the record was altered)",
                          f"inclusion path does not lead to the log_root at leaf {index}")
    return index


def hash_list(value: Any, part: str, zh: str, en: str) -> list[bytes]:
    """A proof: a list of 64-char lowercase hex hashes, else CheckFailed naming the proof (zh, en)."""
    if not isinstance(value, list) or not all(isinstance(p, str) and _HEX32.match(p) for p in value):
        raise CheckFailed(part, f"{zh}已损坏（应为 64 位十六进制哈希的列表）",
                          f"{en} is damaged (it must be a list of 64-hex-digit hashes)",
                          "a proof must be a list of 64-char lowercase hex hashes")
    return [bytes.fromhex(p) for p in value]


# -- the evidence bundle ------------------------------------------------------------------


class _Run:
    """One verification: the parsed inputs and what each check learned."""

    def __init__(self, bundle: dict[str, Any], genesis: Genesis, original: Path | None) -> None:
        self.bundle, self.genesis, self.original = bundle, genesis, original
        self.verdict = Verdict()

    def check_genesis(self) -> None:
        zh = "证据包不是用这个创世文件生成的（您的创世文件不对，或证据包来自另一个账本）"
        en = "the bundle was made for another genesis file (you have the wrong genesis file, or the bundle " \
             "is from another ledger)"
        if self.bundle.get("genesis_hash") != self.genesis.genesis_hash:
            raise CheckFailed("genesis", zh, en, "bundle genesis_hash is not the SHA-256 of this genesis file")
        if self.bundle.get("chain_id") != self.genesis.chain_id:
            raise CheckFailed("genesis", zh, en, f"bundle chain_id {self.bundle.get('chain_id')!r} is not "
                              f"the genesis chain id {self.genesis.chain_id!r}")

    def check_header(self) -> None:
        block = self.bundle.get("block")
        if not isinstance(block, dict):
            raise CheckFailed("header", "证据包缺少区块部分", "the bundle has no block section",
                              "bundle has no block object")
        self.header = header_of(block.get("header"), self.genesis, BLOCK)
        self.verdict.facts["block"] = {
            "height": self.header.height, "time": utc_text(self.header.time),
            "hash": self.header.block_hash.hex(), "log_size": self.header.log_size,
            "log_root": self.header.log_root.hex(),
        }

    def check_qc(self) -> None:
        signers = certify(self.bundle["block"].get("qc"), self.header, self.genesis, BLOCK)
        self.verdict.facts["certified_by"] = [
            {"validator": i, "dept": self.genesis.validators[i].dept, "name": self.genesis.validators[i].name}
            for i in signers
        ]

    def check_record(self) -> None:
        env, signer = signed_record(self.bundle.get("envelope"), self.bundle.get("record_id"), self.genesis, RECORD)
        self.env = env
        rec = env.record
        self.verdict.facts["record"] = {
            "id": env.record_id.hex(), "type": rec.type, "subject": rec.subject,
            "body": {k: _show(v) for k, v in rec.body.items()},
            "refs": [r.hex() for r in rec.refs], "claimed_time": utc_text(rec.ts),
            "signer": {"key_id": rec.key, "dept": signer.dept},
        }

    def check_inclusion(self) -> None:
        self.verdict.facts["leaf_index"] = included(
            self.env, self.bundle.get("leaf_index"), self.bundle.get("inclusion"), self.header,
            self.header.log_start, RECORD, Where("该区块", "this block"))

    def check_file(self) -> None:
        assert self.original is not None
        expected = self.env.record.body.get("content_hash")
        if not isinstance(expected, bytes):
            raise CheckFailed("file", "这类记录没有可与文件比对的哈希", "this type of record has no file hash to "
                              "compare with", f"a {self.env.record.type} record has no content_hash")
        digest = hashlib.sha256()
        try:
            with self.original.open("rb") as fh:
                while chunk := fh.read(FILE_CHUNK_BYTES):
                    digest.update(chunk)
        except OSError as exc:
            raise Unusable(f"cannot read {self.original}: {exc.strerror}") from None
        if digest.digest() != expected:
            raise CheckFailed("file", "原始文件与记录中的哈希不一致（不是同一个文件，或文件被改动）",
                              "the original file does not match the record's hash (a different or altered file)",
                              f"SHA-256 of the file is {digest.hexdigest()}, record says {expected.hex()}")

    def check_later(self) -> None:
        from .verify_answers import check_later

        newer = check_later(self.bundle["later"], self.header, self.genesis)
        self.verdict.facts["later"] = {"height": newer.height, "time": utc_text(newer.time), "log_size": newer.log_size}

    def claim(self) -> dict[str, Any]:
        """The one-line statement this verdict proves, and its fields."""
        facts = self.verdict.facts
        rec, height, leaf = facts["record"], facts["block"]["height"], facts["leaf_index"]
        subject, dept = clean(rec["subject"]), clean(rec["signer"]["dept"])
        type_zh = TYPE_NAMES.get(rec["type"], ("",))[0]
        zh = (f"记录 {rec['id'][:16]}…：{type_zh}（{rec['type']}），主体 {subject}，由 {dept} 签名，"
              f"日志位置 {leaf}，区块高度 {height}")
        en = f"record {rec['id'][:16]}… ({rec['type']}) about {subject}, signed by {dept}, leaf {leaf}, " \
             f"block height {height}"
        out = {"record_id": rec["id"], "type": rec["type"], "subject": rec["subject"],
               "dept": rec["signer"]["dept"], "leaf_index": leaf, "height": height}
        if self.original is not None:
            zh, en, out["file_matches"] = zh + "；原始文件与记录中的哈希一致", en + "; the original file matches it", True
        if "later" in facts:
            later = facts["later"]["height"]
            zh, en = zh + f"；高度 {later} 的后续检查点延续了该区块", en + f"; a later checkpoint at height {later} extends it"
            out["later_height"] = later
        return {"zh": zh, "en": en, **out}

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
        named = [(s.__name__.removeprefix("check_"), *meta[s.__name__.removeprefix("check_")], s) for s in steps]
        if run_checks(self.verdict, named):
            self.verdict.facts["claim"] = self.claim()
        return self.verdict


# -- input files ----------------------------------------------------------------------------


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


def parse_json(raw: bytes | str, what: str) -> dict[str, Any]:
    """A JSON object (a key given twice is refused); Unusable naming `what` otherwise."""
    try:
        doc = json.loads(raw, object_pairs_hook=strict_object)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise Unusable(f"{what} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise Unusable(f"{what} is not a JSON object")
    return doc


def _read_bounded(path: Path, what: str, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise Unusable(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(raw) > max_bytes:
        raise Unusable(f"{what} {path} is larger than {max_bytes} bytes")
    return raw


def load_json(path: Path, what: str, max_bytes: int = BUNDLE_MAX_BYTES) -> dict[str, Any]:
    return parse_json(_read_bounded(path, what, max_bytes), f"{what} {path}")


def is_page(raw: bytes) -> bool:
    """HTML, not JSON: the first character that is not a BOM or white space is "<"."""
    return raw.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n").startswith(b"<")


@dataclass(frozen=True)
class Loaded:
    doc: dict[str, Any]
    from_page: bool  # the bundle was embedded in a certificate page (certificate.py)


def load_input(path: Path) -> Loaded:
    """The file `verify` was given: JSON (a bundle or an answer) or a certificate page."""
    raw = _read_bounded(path, "file", PAGE_MAX_BYTES)
    if is_page(raw):
        from .certificate import bundle_from_page

        return Loaded(bundle_from_page(raw), True)
    if len(raw) > BUNDLE_MAX_BYTES:
        raise Unusable(f"file {path} is larger than {BUNDLE_MAX_BYTES} bytes")
    return Loaded(parse_json(raw, f"file {path}"), False)


def describe(doc: dict[str, Any]) -> str | None:
    """What a JSON object that is not what was expected looks like, for an exit-2 message."""
    from .verify_answers import KINDS

    error = doc.get("error")
    if error is not None:
        if isinstance(error, dict):
            error = f"{error.get('code')}: {error.get('message')}"
        return f"an error answer from a node ({clean(error)}), saved by mistake"
    if doc.get("kind") in KINDS:
        return f"a {doc['kind']!r} answer"
    if doc.get("format") == FORMAT:
        return "an evidence bundle"
    if doc.get("format") == "ledgernode-equivocation/1" or "equivocations" in doc:
        return "an equivocation proof (check it with --kind equivocation)"
    if isinstance(doc.get("format"), str) and doc["format"].startswith("ledgernode-genesis/"):
        return "a genesis file"
    if "header" in doc and "qc" in doc:
        return "a checkpoint"
    if {"from", "to", "proof"} <= doc.keys():
        return "a consistency proof"
    return "an empty JSON object" if not doc else None


def verify_bundle(bundle: dict[str, Any], genesis: Genesis, original: Path | None = None) -> Verdict:
    if bundle.get("format") != FORMAT:
        what = describe(bundle)
        raise Unusable(f"this file is {what}, not an evidence bundle (its format is not {FORMAT!r})" if what
                       else f"not an evidence bundle: format is not {FORMAT!r}")
    return _Run(bundle, genesis, original).run()


def verify_file(path: Path, genesis: Genesis, kind: str = "evidence", original: Path | None = None) -> Verdict:
    """What `python -m ledgernode verify PATH --kind KIND` checks: a bundle (JSON or embedded in a
    certificate page) or an answer of `kind`. An answer given as a bundle is Unusable with the
    `--kind` to use: the auditor says what they expect to check (docs/verification.md section 2)."""
    from .verify_answers import KINDS, verify_answer

    loaded = load_input(path)
    doc = loaded.doc
    if kind == "equivocation" and not loaded.from_page:
        from .equivocation import verify_equivocations

        return verify_equivocations(doc, genesis)
    if kind == "evidence":
        if doc.get("kind") in KINDS:
            raise Unusable(f"{path} is a {doc['kind']!r} answer, not an evidence bundle: check it with "
                           f"python -m ledgernode verify {path} --genesis GENESIS --kind {doc['kind']}")
        verdict = verify_bundle(doc, genesis, original)
    elif loaded.from_page:
        raise Unusable(f"{path} is a certificate page, which holds an evidence bundle, not a {kind!r} "
                       "answer: check it without --kind")
    elif original is not None:
        raise Unusable("--file compares a file with an evidence bundle's record; an answer has none")
    else:
        verdict = verify_answer(doc, kind, genesis)
    if loaded.from_page:
        verdict.facts["source"] = "certificate page"
    return verdict


# -- output ---------------------------------------------------------------------------------


def write_stdout(text: str) -> None:
    """Print `text`; if the reader has gone (`verify ... | head -1`), stop quietly. As the
    Python documentation of signal (note on SIGPIPE) recommends, stdout then points at devnull,
    so the interpreter's own flush at exit does not fail again."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def render(verdict: Verdict) -> str:
    """The verdict as text a person can read: the verdict, the claim it proves, details, checks."""
    lines = ["结论 / Verdict: " + ("有效 VALID" if verdict.valid else "无效 INVALID"), ""]
    if verdict.facts.get("source") == "certificate page":
        lines.append("来源 source: 证书页面中嵌入的证据包 / the evidence bundle embedded in the certificate page")
    claim = verdict.facts.get("claim")
    if claim:
        lines += [f"已核实 verified: {claim['zh']} / {claim['en']}", ""]
    rec = verdict.facts.get("record")
    if rec:
        lines += [
            f"记录 Record      {rec['id']}",
            f"  类型 type      {rec['type']}",
            f"  主体 subject   {clean(rec['subject'])}",
            f"  签名者 signer  key {rec['signer']['key_id']} of department {clean(rec['signer']['dept'])}",
            f"  声明时间 claimed time  {rec['claimed_time']}",
        ]
        lines += [f"  {clean(k)}: {clean(v)}" for k, v in rec["body"].items()]
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
    if rec or block:
        lines.append("")
    for c in verdict.checks:
        mark = "通过 PASS" if c["ok"] else "失败 FAIL"
        lines.append(f"[{mark}] {c['zh']} / {c['en']}")
        if not c["ok"]:
            lines.append(f"        原因 reason: {clean(c['error'])}")
    return "\n".join(lines)
