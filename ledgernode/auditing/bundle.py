"""Evidence bundles (docs/protocol.md sections 8 and 9): built from a node's ledger,
checked offline against the genesis file alone.

The bundle proves one record against the header of the block that committed it:
the QC certifies the header, the header's `log_root` covers the leaf. With
`later` it also carries a newer checkpoint and a consistency proof from the
record's block to it. The checks run in the order of CHECKS and stop at the
first failure; a valid verdict first states, in one line of Chinese and English,
the claim it verified (`facts["claim"]`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..blocks import Header
from ..codec import b64
from ..errors import NotFound
from ..genesis import Genesis
from ..records import Envelope
from ..times import utc_text
from .checks import BLOCK, RECORD, CheckFailed, Checks, Verdict, Where, clean
from .parse import FORMAT, Unusable, require_bundle
from .proofs import certified, certify, extends, header_of, included, signed_record
from .reader import LedgerReader

FILE_CHUNK_BYTES = 1 << 20
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

# -- built by a node ----------------------------------------------------------------------


def build_bundle(store: LedgerReader, genesis: Genesis, record_id: bytes, later: bool = False) -> dict[str, Any]:
    """The evidence bundle of a committed record; NotFound if it is not committed.

    With `later`, add the newest checkpoint and a consistency proof from the
    record's block to it (when the log has grown since)."""
    where = store.locate(record_id)
    if where is None:
        raise NotFound(f"record {record_id.hex()} is not committed")
    leaf_index, height = where
    header = store.load_header(height)
    assert header.log_start <= leaf_index < header.log_size, "record index points outside its block"
    bundle = {
        "format": FORMAT,
        "chain_id": genesis.chain_id,
        "genesis_hash": genesis.genesis_hash,
        "record_id": record_id.hex(),
        "envelope": b64(store.load_envelope(leaf_index)),
        "leaf_index": leaf_index,
        "block": {"header": b64(header.raw), "qc": store.load_qc(height).to_json()},
        "inclusion": [h.hex() for h in store.inclusion_proof(leaf_index, header.log_size)],
    }
    if later and store.log_size > header.log_size:
        newest = store.head()
        assert newest is not None, "a log that grew has a head"
        bundle["later"] = {
            "header": b64(newest.raw), "qc": store.load_qc(newest.height).to_json(),
            "consistency": [h.hex() for h in store.consistency_proof(header.log_size, newest.log_size)],
        }
    return bundle


# -- checked offline ------------------------------------------------------------------------


def check_later(later: Any, header: Header, genesis: Genesis) -> Header:
    """A bundle's `later` section: a newer certified checkpoint that extends `header`."""
    if not isinstance(later, dict):
        raise CheckFailed("later", "证据包的后续检查点部分已损坏", "the bundle's later-checkpoint section is damaged",
                          "later must be an object")
    newer = certified(later, genesis, Where("后续检查点", "the later checkpoint"))
    extends(header, newer, later.get("consistency"), CheckFailed(
        "later", "后续检查点不是该区块的延续（一致性证明不成立：账本被改写，或证明被改动）",
        "the later checkpoint does not extend the record's block (the consistency proof fails: the ledger was "
        "rewritten, or the proof was altered)",
        "the later checkpoint does not extend the record's block (consistency proof fails)"))
    return newer


def _show(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else value


class _BundleChecks(Checks):
    """One bundle's checks; each keeps what the next needs (header, envelope) on self."""

    LABELS = {name: (zh, en) for name, zh, en in CHECKS}
    header: Header
    env: Envelope

    def __init__(self, bundle: dict[str, Any], genesis: Genesis, original: Path | None) -> None:
        super().__init__()
        self.bundle, self.genesis, self.original = bundle, genesis, original

    def names(self) -> list[str]:
        # The file is compared only when given, the later checkpoint only when the bundle has one.
        wanted = {"file": self.original is not None, "later": "later" in self.bundle}
        return [name for name in self.LABELS if wanted.get(name, True)]

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
        self.facts["block"] = {
            "height": self.header.height, "time": utc_text(self.header.time),
            "hash": self.header.block_hash.hex(), "log_size": self.header.log_size,
            "log_root": self.header.log_root.hex(),
        }

    def check_qc(self) -> None:
        signers = certify(self.bundle["block"].get("qc"), self.header, self.genesis, BLOCK)
        self.facts["certified_by"] = [
            {"validator": i, "dept": self.genesis.validators[i].dept, "name": self.genesis.validators[i].name}
            for i in signers
        ]

    def check_record(self) -> None:
        env, signer = signed_record(self.bundle.get("envelope"), self.bundle.get("record_id"), self.genesis, RECORD)
        self.env = env
        rec = env.record
        self.facts["record"] = {
            "id": env.record_id.hex(), "type": rec.type, "subject": rec.subject,
            "body": {k: _show(v) for k, v in rec.body.items()},
            "refs": [r.hex() for r in rec.refs], "claimed_time": utc_text(rec.ts),
            "signer": {"key_id": rec.key, "dept": signer.dept},
        }

    def check_inclusion(self) -> None:
        self.facts["leaf_index"] = included(
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
        newer = check_later(self.bundle["later"], self.header, self.genesis)
        self.facts["later"] = {"height": newer.height, "time": utc_text(newer.time), "log_size": newer.log_size}

    def conclude(self) -> dict[str, Any]:
        return {"claim": self.claim()}

    def claim(self) -> dict[str, Any]:
        """The one-line statement this verdict proves, and its fields."""
        facts = self.facts
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


def verify_bundle(bundle: dict[str, Any], genesis: Genesis, original: Path | None = None) -> Verdict:
    """Check an evidence bundle (and `original`, the file its record names, if given);
    Unusable (exit 2) if `bundle` is not an evidence bundle at all."""
    require_bundle(bundle)
    return _BundleChecks(bundle, genesis, original).run()
