"""The proofs that bundles and answers carry, checked against the genesis alone
(docs/protocol.md section 9): a header of this chain and validator set, the commit
certificate (QC) of its validators, a signed record, its inclusion in a header's
log, and a consistency proof from one header's log to a later one's.

Each check raises CheckFailed whose reason names, in plain words, which part of
which document failed (`Where`), then the technical detail.
"""

from __future__ import annotations

from typing import Any

from .. import codec, merkle
from ..blocks import Header, check_qc, decode_header, qc_from_json
from ..errors import InvalidInput
from ..genesis import Genesis
from ..members import AnyDept
from ..records import ENVELOPE_LIMITS, Envelope, decode_envelope, record_id_of
from .checks import CheckFailed, Where
from .epochs import Epoch, Epochs, genesis_epochs
from .parse import hash_list, unb64

# -- this header belongs to this chain ------------------------------------------------------


def _epoch(header: Header, genesis: Genesis, epochs: Epochs | None) -> Epoch:
    """The epoch certifying `header`: of `epochs`, or the genesis set's when none are given."""
    return (epochs or genesis_epochs(genesis)).at(header.height)[1]


def header_of(value: Any, genesis: Genesis, where: Where, epochs: Epochs | None = None) -> Header:
    """The header in base64 `value`: well formed, of this chain, and naming the validator
    set of its epoch (default: only the genesis set)."""
    raw = unb64(value, "header", where, Where("区块头", "header"))
    try:
        header = decode_header(raw)
    except InvalidInput as exc:
        raise CheckFailed("header", f"{where.zh}的区块头被改动或已损坏（不是格式正确的区块头）",
                          f"{where.en}'s header was altered or damaged (it is not a well-formed header)",
                          exc.message) from None
    if header.chain != genesis.chain_id or header.valset != _epoch(header, genesis, epochs).keys.valset_hash:
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


def certify(qc_json: Any, header: Header, genesis: Genesis, where: Where,
            epochs: Epochs | None = None) -> list[int]:
    """Check that `qc_json` certifies `header` under the validators of its epoch; the
    signers' indices."""
    try:
        qc = qc_from_json(qc_json)
        check_qc(qc, header, genesis, validators=_epoch(header, genesis, epochs).keys)
    except InvalidInput as exc:
        zh, en = next((zh, en) for words, zh, en in _QC_REASONS if words in exc.message)
        raise CheckFailed("qc", zh.format(zh=where.zh), en.format(en=where.en), exc.message) from None
    return [i for i, _ in qc.signatures]


def certified(doc: dict[str, Any], genesis: Genesis, where: Where, epochs: Epochs | None = None) -> Header:
    """The header of a checkpoint-like `doc` ({"header", "qc", ...}): of this chain, and
    certified by a quorum of the validators of its epoch."""
    header = header_of(doc.get("header"), genesis, where, epochs)
    certify(doc.get("qc"), header, genesis, where, epochs)
    return header


# -- a signed record and its place in the log --------------------------------------------------


_RECORD_REASONS: dict[str, tuple[str, str, str]] = {  # InvalidInput.code -> (part, zh, en)
    "wrong_chain": ("genesis", "{zh}属于另一个账本（链标识不同）", "{en} was made for another ledger (a different chain id)"),
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


def record_of(value: Any, claimed_id: Any, genesis: Genesis, where: Where) -> Envelope:
    """The envelope in base64 `value`: a valid record of this chain whose id is `claimed_id`
    (None: the id is not claimed, an answer's records are named by position). Its signer is
    judged by its `key` entry (auditing/lists.py). A record whose bytes no longer hash to
    the id it came with was altered, whatever rule its changed bytes now break, so that is
    the reason given first."""
    raw = unb64(value, "record_bytes", where, Where("字节", "bytes"))
    altered = claimed_id is not None and _id_of_envelope(raw) != claimed_id
    try:
        env = decode_envelope(raw, AnyDept.of(genesis))
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
    return env


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


# -- the ledger only grew -------------------------------------------------------------------


def extends(old: Header, new: Header, path: Any, failed: CheckFailed) -> None:
    """Check that consistency proof `path` leads from `old`'s log to `new`'s; raise `failed`
    (saying what a broken proof means where it was given) if it does not."""
    proof = hash_list(path, failed.part, "一致性证明", "the consistency proof")
    if not merkle.verify_consistency(old.log_size, new.log_size, old.log_root, new.log_root, proof):
        raise failed
