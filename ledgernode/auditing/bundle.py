"""Evidence bundles (docs/protocol.md sections 8 and 9): built from a node's ledger,
checked offline against the genesis file alone.

The bundle proves one record against the header of the block that committed it:
the QC certifies the header, the header's `log_root` covers the leaf. Its `state`
section carries a certified checkpoint at or after that block (the node's head when
it built the bundle), the consistency proof from the block to it, and the signer's
`key` entry in the checkpoint's state map: who the key belongs to, the leaves in
which it could sign, and its roles. The checks run in the order of CHECKS (section
12's names) and stop at the first failure; a valid verdict first states, in one line of Chinese and English,
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
from ..members import AnyDept
from ..records import Envelope, decode_envelope
from ..times import utc_text
from .checkpoints import check_checkpoint
from .checks import BLOCK, CHECKPOINT, RECORD, CheckFailed, Checks, Verdict, Where, clean
from .lists import check_entry, check_signed, entry_doc, parse_key
from .parse import FORMAT, Unusable, require_bundle
from .epochs import Epochs, check_epochs, epochs_doc, signer_names
from .proofs import certify, extends, header_of, included, record_of
from .reader import LedgerReader

FILE_CHUNK_BYTES = 1 << 20
CHECKS = [
    ("format", "证据包格式为第 2 版且字段齐全", "the bundle is a version 2 bundle with every field"),
    ("genesis", "创世文件与链标识一致", "genesis file and chain id match"),
    ("epochs", "验证节点集合的变更记录有效", "the validator set's changes (epochs) are valid"),
    ("header", "区块头格式正确且属于本链", "block header is canonical and belongs to this chain"),
    ("qc", "区块获得法定数量验证节点签名", "block is certified by a quorum of validators"),
    ("record", "记录格式正确、属于本链、编号一致", "record is canonical, of this chain, and has its id"),
    ("inclusion", "记录包含在区块的默克尔日志中", "record is included in the block's Merkle log"),
    ("checkpoint", "检查点获得签名且延续了该区块（一致性证明）",
     "the checkpoint is certified and extends the block (consistency proof)"),
    ("key", "签名密钥在检查点状态中登记、当时有效、有权签署且签名有效",
     "the signing key is in the checkpoint's state, could sign then, may sign the type, and the signature verifies"),
    ("file", "原始文件与记录中的哈希一致", "original file matches the hash in the record"),
]
BUNDLE_FIELDS = {"chain_id": str, "genesis_hash": str, "record_id": str, "envelope": str, "leaf_index": int,
                 "block": dict, "inclusion": list, "epochs": list, "state": dict}
STATE_KEYS = frozenset(["checkpoint", "consistency", "key"])
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


def build_bundle(store: LedgerReader, genesis: Genesis, record_id: bytes) -> dict[str, Any]:
    """The evidence bundle of a committed record (docs/protocol.md section 12), against the
    head as its checkpoint; NotFound if the record is not committed."""
    where = store.locate(record_id)
    tip = store.head()  # after locate: the head only grows, so it holds the record's block
    if where is None or tip is None:
        raise NotFound(f"record {record_id.hex()} is not committed")
    leaf_index, height = where
    header = store.load_header(height)
    assert header.log_start <= leaf_index < header.log_size, "record index points outside its block"
    assert tip.height >= height, "a located record is at or below the head"
    raw = store.load_envelope(leaf_index)
    key_id = decode_envelope(raw, AnyDept.of(genesis)).record.key
    return {
        "format": FORMAT,
        "chain_id": genesis.chain_id,
        "genesis_hash": genesis.genesis_hash,
        "record_id": record_id.hex(),
        "envelope": b64(raw),
        "leaf_index": leaf_index,
        "block": {"header": b64(header.raw), "qc": store.load_qc(height).to_json()},
        "inclusion": [h.hex() for h in store.inclusion_proof(leaf_index, header.log_size)],
        "epochs": epochs_doc(store, tip.height),
        "state": {
            "checkpoint": {"header": b64(tip.raw), "qc": store.load_qc(tip.height).to_json()},
            "consistency": [h.hex() for h in store.consistency_proof(header.log_size, tip.log_size)],
            "key": entry_doc(store.map_at(tip.state), "key", key_id),
        },
    }


# -- checked offline ------------------------------------------------------------------------


def _show(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else value


class _BundleChecks(Checks):
    """One bundle's checks; each keeps what the next needs (headers, envelope) on self."""

    LABELS = {name: (zh, en) for name, zh, en in CHECKS}
    header: Header
    checkpoint: Header
    env: Envelope
    epochs: Epochs

    def __init__(self, bundle: dict[str, Any], genesis: Genesis, original: Path | None) -> None:
        super().__init__()
        self.bundle, self.genesis, self.original = bundle, genesis, original

    def names(self) -> list[str]:
        # The file is compared only when given.
        return [name for name in self.LABELS if name != "file" or self.original is not None]

    def check_format(self) -> None:
        for name, kind in BUNDLE_FIELDS.items():
            value = self.bundle.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise CheckFailed("format", f"证据包缺少字段 {name} 或其类型不对", f"the bundle's {name} field is "
                                  "missing or of the wrong type", f"{name} must be a JSON {kind.__name__}")
        if self.bundle["state"].keys() != STATE_KEYS:
            raise CheckFailed("format", "证据包的状态部分字段不对", "the bundle's state section has the wrong fields",
                              f"state must have exactly the keys {sorted(STATE_KEYS)}")

    def check_genesis(self) -> None:
        zh = "证据包不是用这个创世文件生成的（您的创世文件不对，或证据包来自另一个账本）"
        en = "the bundle was made for another genesis file (you have the wrong genesis file, or the bundle " \
             "is from another ledger)"
        if self.bundle.get("genesis_hash") != self.genesis.genesis_hash:
            raise CheckFailed("genesis", zh, en, "bundle genesis_hash is not the SHA-256 of this genesis file")
        if self.bundle.get("chain_id") != self.genesis.chain_id:
            raise CheckFailed("genesis", zh, en, f"bundle chain_id {self.bundle.get('chain_id')!r} is not "
                              f"the genesis chain id {self.genesis.chain_id!r}")

    def check_epochs(self) -> None:
        self.epochs = check_epochs(self.bundle["epochs"], self.genesis)
        self.facts["epoch"] = len(self.epochs.chain) - 1  # the latest one listed: the checkpoint's

    def check_header(self) -> None:
        block = self.bundle["block"]
        self.header = header_of(block.get("header"), self.genesis, BLOCK, self.epochs)
        self.facts["block"] = {
            "height": self.header.height, "time": utc_text(self.header.time),
            "hash": self.header.block_hash.hex(), "log_size": self.header.log_size,
            "log_root": self.header.log_root.hex(),
        }

    def check_qc(self) -> None:
        signers = certify(self.bundle["block"].get("qc"), self.header, self.genesis, BLOCK, self.epochs)
        number, epoch = self.epochs.at(self.header.height)
        self.facts["block"]["epoch"] = number
        self.facts["block"]["validators"] = len(epoch.validators)  # the size of the set that certified it
        self.facts["certified_by"] = signer_names(epoch, signers)

    def check_record(self) -> None:
        self.env = env = record_of(self.bundle["envelope"], self.bundle["record_id"], self.genesis, RECORD)
        rec = env.record
        self.facts["record"] = {
            "id": env.record_id.hex(), "type": rec.type, "subject": rec.subject,
            "body": {k: _show(v) for k, v in rec.body.items()},
            "refs": [r.hex() for r in rec.refs], "claimed_time": utc_text(rec.ts),
            "signer": {"key_id": rec.key},
        }

    def check_inclusion(self) -> None:
        self.facts["leaf_index"] = included(
            self.env, self.bundle["leaf_index"], self.bundle["inclusion"], self.header,
            self.header.log_start, RECORD, Where("该区块", "this block"))

    def check_checkpoint(self) -> None:
        state = self.bundle["state"]
        self.checkpoint = cp = check_checkpoint(state["checkpoint"], self.genesis, CHECKPOINT, self.epochs)
        if cp.height < self.header.height or (cp.height == self.header.height and cp.raw != self.header.raw):
            raise CheckFailed("checkpoint", "检查点早于记录所在区块，或与之同高却不是同一区块",
                              "the checkpoint is older than the record's block, or at its height but another block",
                              f"checkpoint height {cp.height}, block height {self.header.height}")
        extends(self.header, cp, state["consistency"], CheckFailed(
            "checkpoint", "检查点不是该区块的延续（一致性证明不成立：账本被改写，或证明被改动）",
            "the checkpoint does not extend the record's block (the consistency proof fails: the ledger was "
            "rewritten, or the proof was altered)", "the checkpoint does not extend the record's block"))
        self.facts["checkpoint"] = {"height": cp.height, "time": utc_text(cp.time), "log_size": cp.log_size}

    def check_key(self) -> None:
        rec, leaf = self.env.record, self.facts["leaf_index"]
        value = check_entry(self.bundle["state"]["key"], self.checkpoint.state, "key", rec.key, "key",
                            "签名密钥的条目", "the signing key's entry")
        if value is None:
            raise CheckFailed("key", "签名密钥不在检查点的状态中（从未登记）", "the signing key is not in the "
                              "checkpoint's state (it was never registered)", f"no key entry for {rec.key}")
        key = parse_key(value)
        block_set = frozenset(v.pubkey.raw for v in self.epochs.at(self.header.height)[1].validators)
        check_signed(self.env, leaf, key, block_set, "该记录", "the record")
        self.facts["record"]["signer"] = {"key_id": rec.key, "dept": key.dept, "roles": list(key.roles),
                                          "from": key.from_leaf, "until": key.until}

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
        until = rec["signer"]["until"]
        if until is not None:
            zh, en = zh + f"；签名早于该密钥在日志位置 {until} 被吊销", en + f"; signed before the key was revoked at leaf {until}"
            out["key_revoked_at"] = until
        if self.original is not None:
            zh, en, out["file_matches"] = zh + "；原始文件与记录中的哈希一致", en + "; the original file matches it", True
        cp = facts["checkpoint"]
        epoch = self.epochs.at(cp["height"])[0]
        zh, en = zh + f"；检查点高度 {cp['height']}（{cp['time']}，第 {epoch} 届验证节点）", \
            en + f"; checkpoint height {cp['height']} ({cp['time']}, validator epoch {epoch})"
        out["checkpoint_height"] = cp["height"]
        return {"zh": zh, "en": en, **out}


def verify_bundle(bundle: dict[str, Any], genesis: Genesis, original: Path | None = None) -> Verdict:
    """Check an evidence bundle (and `original`, the file its record names, if given);
    Unusable (exit 2) if `bundle` is not a version 2 evidence bundle at all."""
    require_bundle(bundle)
    return _BundleChecks(bundle, genesis, original).run()
