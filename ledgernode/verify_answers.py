"""Offline checks of the auditors' answers: subject histories, certificate status,
dataset shares, provenance graphs, and consistency between two checkpoints
(docs/verification.md section 2.2).

Like verify.py this trusts only the genesis file and imports no network or
database library. Each answer is checked in steps: every proof (the
checkpoint's QC, each record's signature and inclusion) and then the answer's
own claims, recomputed from the proven records with the same code the node
used (derive.py). A valid verdict states the claim in one line
(`facts["claim"]`). Completeness cannot be proven: see docs/verification.md
section 3.
"""

from __future__ import annotations

from typing import Any, Callable

from . import merkle
from .blocks import Header
from .derive import certificate_status, dataset_grants
from .genesis import Genesis
from .records import Envelope
from .times import utc_short
from .verify import (
    RECORD, CheckFailed, Unusable, Verdict, Where, certify, clean, describe, hash_list, header_of, included,
    plural, run_checks, signed_record,
)

ANSWER_RECORDS_MAX = 10_000
KINDS = ("subject", "status", "shares", "provenance")
KIND_NAMES = {  # what each kind of answer is about, for messages
    "subject": "a subject's history", "status": "a certificate's status",
    "shares": "a dataset's sharing", "provenance": "a record's provenance",
}
STATUS_NAMES = {  # derive.CertStatus.status -> (zh, en)
    "valid": ("有效", "valid"), "suspended": ("暂停", "suspended"), "revoked": ("吊销", "revoked"),
    "expired": ("过期", "expired"), "not_yet_valid": ("尚未生效", "not yet valid"),
    "not_issued": ("未签发", "not issued"),
}
CHECKPOINT = Where("检查点", "the checkpoint")
Records = list[tuple[int, Envelope]]


def check_checkpoint(cp: Any, genesis: Genesis, where: Where = CHECKPOINT) -> Header:
    """Header decodes, belongs to this chain, carries a valid QC, and matches its summary."""
    if not isinstance(cp, dict):
        raise CheckFailed("checkpoint", f"{where.zh}缺失或不是对象", f"{where.en} is missing or not an object",
                          "checkpoint must be an object")
    header = header_of(cp.get("header"), genesis, where)
    certify(cp.get("qc"), header, genesis, where)
    if (cp.get("log_size") != header.log_size or cp.get("log_root") != header.log_root.hex()
            or ("height" in cp and cp["height"] != header.height)):
        raise CheckFailed("checkpoint", f"{where.zh}的摘要（日志大小、日志根或高度）与其签名的区块头不符（摘要被改动）",
                          f"{where.en}'s summary (log size, log root or height) differs from its signed header "
                          "(the summary was altered)", "checkpoint log_size/log_root/height differ from its header")
    return header


def check_entry(entry: Any, header: Header, genesis: Genesis) -> tuple[int, Envelope]:
    """A record of an answer: signed by a registered key and included under `header`."""
    if not isinstance(entry, dict):
        raise CheckFailed("records", "记录不是对象", "the record is not an object", "each record must be an object")
    env, _ = signed_record(entry.get("envelope"), entry.get("id"), genesis, RECORD)
    leaf = included(env, entry.get("leaf_index"), entry.get("inclusion"), header, 0, RECORD, CHECKPOINT)
    return leaf, env


def _records(doc: dict[str, Any], header: Header, genesis: Genesis) -> Records:
    entries = doc.get("records")
    if not isinstance(entries, list) or len(entries) > ANSWER_RECORDS_MAX:
        raise CheckFailed("records", "答复中的记录列表缺失或过长", "the answer's list of records is missing or too long",
                          f"records must be a list of at most {ANSWER_RECORDS_MAX}")
    out = []
    for i, entry in enumerate(entries, 1):
        try:
            out.append(check_entry(entry, header, genesis))
        except CheckFailed as exc:
            raise exc.within(f"第 {i} 条记录（共 {len(entries)} 条）", f"record {i} of {len(entries)}") from None
    leaves = [leaf for leaf, _ in out]
    if leaves != sorted(set(leaves)) and doc.get("kind") != "provenance":
        raise CheckFailed("records", "记录没有按日志顺序排列，或有记录重复", "the records are not in log order, or one "
                          "is listed twice", "records must be in log order, each once")
    return out


def _wrong(zh: str, en: str, detail: str = "") -> CheckFailed:
    return CheckFailed("claims", zh, en, detail)


def _named(doc: dict[str, Any], field: str, zh: str, en: str) -> None:
    """The answer names what it is about (`field`) as text, even when it lists no record."""
    if not isinstance(doc.get(field), str):
        raise _wrong(f"答复没有以文字写明{zh}", f"the answer does not name its {en} as text",
                     f"{field} must be a string")


def _claims_subject(doc: dict[str, Any], records: Records, g: Genesis) -> None:
    _named(doc, "subject", "主体", "subject")
    for _, env in records:
        if env.record.subject != doc.get("subject"):
            raise _wrong("答复中有记录不是关于该主体的", "a record in the answer is about another subject",
                         f"record {env.record_id.hex()} is about {env.record.subject!r}")
    after = doc.get("next_after")
    if after is not None and (not records or after != records[-1][0]):
        raise _wrong("答复所说的下一页起点与其记录不符", "the answer's next-page position does not follow from its "
                     "records", "next_after must be the last record's leaf index")


def _claims_status(doc: dict[str, Any], records: Records, g: Genesis) -> None:
    _named(doc, "number", "证照编号", "certificate number")
    envs = [env for _, env in records]
    if any(env.record.subject != doc.get("number") or not env.record.type.startswith("cert.") for env in envs):
        raise _wrong("答复中有记录不是关于该证照的", "a record in the answer is not about this certificate",
                     "a record is not about this certificate")
    at = doc.get("at")
    if isinstance(at, bool) or not isinstance(at, int):
        raise _wrong("答复中的查询时间不是整数毫秒", "the answer's time (at) is not a whole number of ms",
                     "at must be an integer time in ms")
    status = certificate_status(envs, at)
    if status.status != doc.get("status"):
        raise _wrong("答复中的证照状态与其记录推算出的不一致", "the answer's certificate status does not follow from "
                     "its records", f"the records give status {status.status!r}, the answer says "
                     f"{doc.get('status')!r}")
    issuer = g.signers[status.issuer_key].dept if status.issuer_key else None
    if issuer != doc.get("issuer"):
        raise _wrong("答复中的签发部门与签发记录的签名者不一致", "the answer's issuing department is not the signer of "
                     "the issue record", f"the issue record was signed by {issuer!r}, the answer says "
                     f"{doc.get('issuer')!r}")


def _claims_shares(doc: dict[str, Any], records: Records, g: Genesis) -> None:
    envs = [env for _, env in records]
    if any(env.record.subject != doc.get("dataset") for env in envs):
        raise _wrong("答复中有记录不是关于该数据集的", "a record in the answer is not about this dataset",
                     "a record is not about this dataset")
    publish = next((env for env in envs if env.record.type == "dataset.publish"), None)
    owner = g.signers[publish.record.key].dept if publish else None
    if owner is None or owner != doc.get("owner"):
        raise _wrong("答复中的数据集所有者不是首条发布记录的签名部门", "the answer's dataset owner is not the "
                     "department that signed its first publish record", f"the first dataset.publish record was "
                     f"signed by {owner!r}, the answer says {doc.get('owner')!r}")
    if dataset_grants(envs, g) != doc.get("grants"):
        raise _wrong("答复中的授权、撤销或访问与其记录不一致", "the answer's grants, revocations or accesses do not "
                     "follow from its records", "grants, revocations or accesses differ from what the records say")


def _claims_provenance(doc: dict[str, Any], records: Records, g: Genesis) -> None:
    ids = {env.record_id.hex(): env for _, env in records}
    if doc.get("root") not in ids:
        raise _wrong("答复中没有根记录", "the root record is not in the answer", "the root record is not in the answer")
    edges = doc.get("edges")
    expected = [[rid, ref.hex()] for rid, env in ids.items() for ref in env.record.refs]
    if (not isinstance(edges, list) or not all(isinstance(e, list) for e in edges)
            or sorted(map(tuple, edges)) != sorted(map(tuple, expected))):
        raise _wrong("答复中的引用关系与记录的引用不一致", "the answer's edges are not exactly the refs of its records",
                     "edges differ from the refs of the records")
    depth = doc.get("depth")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise _wrong("答复中的深度不是非负整数", "the answer's depth is not a whole number >= 0",
                     "depth must be a non-negative integer")
    if doc.get("truncated") is not True:
        _check_complete_to_depth(doc["root"], ids, depth)


def _check_complete_to_depth(root: str, ids: dict[str, Envelope], depth: int) -> None:
    """Every ancestor within `depth` of the root must be in an untruncated answer."""
    level, seen = [root], {root}
    for _ in range(depth):
        following = []
        for rid in level:
            for ref in ids[rid].record.refs:
                if ref.hex() not in ids:
                    raise _wrong("答复缺少所请求深度以内的祖先记录", "an ancestor within the requested depth is "
                                 "missing from the answer", f"ancestor {ref.hex()} of {rid} is missing though "
                                 "within depth")
                if ref.hex() not in seen:
                    seen.add(ref.hex())
                    following.append(ref.hex())
        level = following


CLAIMS: dict[str, Callable[[dict[str, Any], Records, Genesis], None]] = {
    "subject": _claims_subject, "status": _claims_status,
    "shares": _claims_shares, "provenance": _claims_provenance,
}


# -- the one-line claim of a valid answer ----------------------------------------------------


def _claim_subject(doc: dict[str, Any], records: Records, header: Header) -> dict[str, Any]:
    subject, n, h, after = clean(doc["subject"]), len(records), header.height, doc.get("next_after")
    leaves = [leaf for leaf, _ in records]
    span_zh = f"（日志位置 {leaves[0]}–{leaves[-1]}）" if leaves else ""
    span_en = f" (leaves {leaves[0]} to {leaves[-1]})" if leaves else ""
    more_zh = f"下一页从位置 {after} 之后开始" if after is not None else "节点表示没有更多记录"
    more_en = f"next page after leaf {after}" if after is not None else "the node reports no more records"
    return {"zh": f"主体 {subject}：{n} 条记录{span_zh}，{more_zh}，检查点高度 {h}",
            "en": f"subject {subject}: {plural(n, 'record')}{span_en}, {more_en}, checkpoint height {h}",
            "subject": doc["subject"], "records": n, "leaves": leaves, "next_after": after}


def _claim_status(doc: dict[str, Any], records: Records, header: Header) -> dict[str, Any]:
    number, when, n, h = clean(doc["number"]), utc_short(doc["at"]), len(records), header.height
    status_zh, status_en = STATUS_NAMES.get(doc["status"], (doc["status"], doc["status"]))
    issuer = doc["issuer"]
    by_zh, by_en = (f"，签发部门 {clean(issuer)}", f", issued by {clean(issuer)}") if issuer else ("", "")
    return {"zh": f"证照 {number} 在 {when} 的状态：{status_zh}{by_zh}（{n} 条记录，检查点高度 {h}）",
            "en": f"certificate {number} status at {when}: {status_en}{by_en} ({plural(n, 'record')}, "
                  f"checkpoint height {h})",
            "number": doc["number"], "at": doc["at"], "status": doc["status"], "issuer": issuer, "records": n}


def _claim_shares(doc: dict[str, Any], records: Records, header: Header) -> dict[str, Any]:
    grants, n, h = doc["grants"], len(records), header.height
    revoked = sum(1 for g in grants if g["revoked_by"] is not None)
    # A grant's `expires` is compared with the checkpoint's block time, as the node compares
    # it with a block's time when it accepts an access (docs/protocol.md section 5).
    expired = sum(1 for g in grants if g["revoked_by"] is None and g["expires"] <= header.time)
    live, accesses = len(grants) - revoked - expired, sum(len(g["accesses"]) for g in grants)
    dataset, owner = clean(doc["dataset"]), clean(doc["owner"])
    return {"zh": f"数据集 {dataset}（所有者 {owner}）：共享授权 {len(grants)} 项（截至检查点时间：有效 {live}、"
                  f"已撤销 {revoked}、已过期 {expired}），访问 {accesses} 次，{n} 条记录，检查点高度 {h}",
            "en": f"dataset {dataset} (owner {owner}): {plural(len(grants), 'grant')} ({live} live, {revoked} "
                  f"revoked, {expired} expired at the checkpoint time), {_accesses_en(accesses)}, "
                  f"{plural(n, 'record')}, checkpoint height {h}",
            "dataset": doc["dataset"], "owner": doc["owner"], "grants": len(grants), "live": live,
            "revoked": revoked, "expired": expired, "accesses": accesses, "records": n}


def _accesses_en(n: int) -> str:
    return f"{n} access" + ("" if n == 1 else "es")


def _claim_provenance(doc: dict[str, Any], records: Records, header: Header) -> dict[str, Any]:
    ids = {env.record_id.hex(): env for _, env in records}
    root, depth, h = doc["root"], doc["depth"], header.height
    rec = ids[root].record
    ancestors, edges, subject = len(ids) - 1, len(doc["edges"]), clean(rec.subject)
    cut_zh, cut_en = ("；节点已截断答复，可能缺少祖先记录", "; the node truncated it, so ancestors may be missing") \
        if doc.get("truncated") is True else ("", "")
    return {"zh": f"溯源：根记录 {root[:16]}…（{rec.type}，主体 {subject}）在深度 {depth} 以内有 {ancestors} 个祖先记录、"
                  f"{edges} 条引用{cut_zh}，检查点高度 {h}",
            "en": f"provenance of root record {root[:16]}… ({rec.type} about {subject}): "
                  f"{plural(ancestors, 'ancestor')} to depth {depth}, {plural(edges, 'edge')}{cut_en}, "
                  f"checkpoint height {h}",
            "root": root, "depth": depth, "ancestors": ancestors, "edges": edges,
            "truncated": doc.get("truncated") is True}


CLAIM_TEXT: dict[str, Callable[[dict[str, Any], Records, Header], dict[str, Any]]] = {
    "subject": _claim_subject, "status": _claim_status,
    "shares": _claim_shares, "provenance": _claim_provenance,
}


# -- answers -------------------------------------------------------------------------------


def _require_kind(doc: dict[str, Any], kind: str) -> None:
    """Unusable (exit 2) unless `doc` is a `kind` answer, saying what it is and what to run."""
    found = doc.get("kind")
    if found == kind:
        return
    if found in KINDS:
        raise Unusable(f"this file is a {found!r} answer ({KIND_NAMES[found]}), not a {kind!r} answer: "
                       f"check it with --kind {found}")
    what = describe(doc)
    hint = ": check it without --kind" if what == "an evidence bundle" else ""
    raise Unusable(f"this file is {what or 'not an answer'}, not a {kind!r} answer{hint}")


def verify_answer(doc: dict[str, Any], kind: str, genesis: Genesis) -> Verdict:
    """Check a saved answer; raise Unusable (exit 2) if the file is not a `kind` answer at all,
    e.g. an error answer saved by mistake."""
    _require_kind(doc, kind)
    verdict = Verdict()
    state: dict[str, Any] = {}

    def checkpoint() -> None:
        state["header"] = check_checkpoint(doc.get("checkpoint"), genesis)

    def records() -> None:
        state["records"] = _records(doc, state["header"], genesis)

    steps = [
        ("checkpoint", "检查点获得法定数量验证节点签名", "checkpoint is certified by a quorum of validators", checkpoint),
        ("records", "每条记录签名有效且包含在检查点中", "every record is signed and included under the checkpoint",
         records),
        ("claims", "答复内容与记录一致", "the answer's claims follow from its records",
         lambda: CLAIMS[kind](doc, state["records"], genesis)),
    ]
    if not run_checks(verdict, steps):
        return verdict
    header = state["header"]
    verdict.facts["claim"] = {"kind": kind, **CLAIM_TEXT[kind](doc, state["records"], header),
                              "checkpoint_height": header.height}
    verdict.facts["records"] = len(state["records"])
    verdict.facts["checkpoint"] = {"height": header.height, "log_size": header.log_size}
    return verdict


def check_later(later: Any, header: Header, genesis: Genesis) -> Header:
    """A bundle's `later` section: a newer certified checkpoint that extends `header`."""
    where = Where("后续检查点", "the later checkpoint")
    if not isinstance(later, dict):
        raise CheckFailed("later", "证据包的后续检查点部分已损坏", "the bundle's later-checkpoint section is damaged",
                          "later must be an object")
    newer = header_of(later.get("header"), genesis, where)
    certify(later.get("qc"), newer, genesis, where)
    proof = hash_list(later.get("consistency"), "later", "一致性证明", "the consistency proof")
    if not merkle.verify_consistency(header.log_size, newer.log_size, header.log_root, newer.log_root, proof):
        raise CheckFailed("later", "后续检查点不是该区块的延续（一致性证明不成立：账本被改写，或证明被改动）",
                          "the later checkpoint does not extend the record's block (the consistency proof fails: "
                          "the ledger was rewritten, or the proof was altered)",
                          "the later checkpoint does not extend the record's block (consistency proof fails)")
    return newer


# -- two checkpoints and a consistency proof ------------------------------------------------


def _require_shapes(old: Any, new: Any, proof_doc: Any) -> None:
    """Unusable (exit 2) for a file that is not a checkpoint / proof at all, e.g. an error answer."""
    for doc, label, is_it in ((old, "old checkpoint", lambda d: "header" in d or "qc" in d),
                              (new, "new checkpoint", lambda d: "header" in d or "qc" in d),
                              (proof_doc, "proof", lambda d: "proof" in d)):
        if not isinstance(doc, dict) or "error" in doc or not is_it(doc):
            what = describe(doc) if isinstance(doc, dict) else "not a JSON object"
            raise Unusable(f"the {label} file is {what or 'not a ' + label}, not a "
                           f"{'consistency proof' if label == 'proof' else 'checkpoint'} (expected: "
                           "verify-consistency OLD-CHECKPOINT NEW-CHECKPOINT PROOF)")


def _consistent(a: Header, b: Header, proof_doc: dict[str, Any]) -> None:
    if a.log_size > b.log_size:
        raise CheckFailed("order", f"两个检查点的顺序似乎颠倒了：“旧”检查点（高度 {a.height}，日志大小 {a.log_size}）"
                          f"比“新”检查点（高度 {b.height}，日志大小 {b.log_size}）更新。请先给旧的、再给新的",
                          f"the checkpoints look swapped: the old one (height {a.height}, log size {a.log_size}) is "
                          f"newer than the new one (height {b.height}, log size {b.log_size}). Give the older "
                          "checkpoint first: python -m ledgernode verify-consistency OLDER.json NEWER.json PROOF.json "
                          "--genesis genesis.json", f"old log size {a.log_size} > new log size {b.log_size}")
    if proof_doc.get("from") != a.log_size or proof_doc.get("to") != b.log_size:
        raise CheckFailed("proof", "一致性证明不是这两个检查点之间的（日志大小不对应）",
                          "the consistency proof is not for these two checkpoints (its log sizes differ from theirs)",
                          f"the proof is from {proof_doc.get('from')!r} to {proof_doc.get('to')!r}, the checkpoints "
                          f"have log sizes {a.log_size} and {b.log_size}: fetch "
                          f"/v1/proofs/consistency?from={a.log_size}&to={b.log_size}")
    proof = hash_list(proof_doc.get("proof"), "proof", "一致性证明", "the consistency proof")
    if not merkle.verify_consistency(a.log_size, b.log_size, a.log_root, b.log_root, proof):
        raise CheckFailed("proof", "一致性证明不成立：新检查点不是旧检查点的延续（账本被改写、来自不同账本，或证明被改动）",
                          "the consistency proof fails: the new checkpoint does not extend the old one (the ledger "
                          "was rewritten, they are from different ledgers, or the proof was altered)",
                          "consistency proof does not connect the two log roots")


def verify_consistency_files(old: Any, new: Any, proof_doc: Any, genesis: Genesis) -> Verdict:
    """Two saved checkpoints and a consistency proof: the ledger only grew between them.
    Unusable (exit 2) if a file is not a checkpoint or proof at all."""
    _require_shapes(old, new, proof_doc)
    verdict = Verdict()
    state: dict[str, Header] = {}

    def check() -> None:
        state["a"] = check_checkpoint(old, genesis, Where("旧检查点", "the old checkpoint"))
        state["b"] = check_checkpoint(new, genesis, Where("新检查点", "the new checkpoint"))
        _consistent(state["a"], state["b"], proof_doc)

    if not run_checks(verdict, [("consistency", "新检查点是旧检查点的延续", "the newer checkpoint extends the older one",
                                 check)]):
        return verdict
    a, b = state["a"], state["b"]
    verdict.facts = {
        "claim": {"zh": f"账本日志从 {a.log_size} 条记录（高度 {a.height}）增长到 {b.log_size} 条（高度 {b.height}），"
                        "已有记录未被改写",
                  "en": f"log grew from {plural(a.log_size, 'leaf').replace('leafs', 'leaves')} (height {a.height}) to {b.log_size} (height "
                        f"{b.height}) without rewriting",
                  "old_height": a.height, "old_log_size": a.log_size,
                  "new_height": b.height, "new_log_size": b.log_size},
        "old": {"height": a.height, "log_size": a.log_size},
        "new": {"height": b.height, "log_size": b.log_size},
    }
    return verdict
