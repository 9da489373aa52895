"""The auditors' answers (docs/verification.md section 2.2): subject histories, certificate
status, dataset shares and provenance graphs, built from a node's ledger and checked
offline against the genesis file alone.

Every answer carries one `checkpoint` (a header with its QC) and, for every
record it returns, the envelope, its leaf index and an inclusion proof against
that checkpoint's `log_root`. It is checked in three steps: the checkpoint, every
record's signature and inclusion, and then the answer's own claims, recomputed
from the proven records with the same code the node used (the families' views in
families/cert.py and families/dataset.py). A valid verdict states the claim in one
line (`facts["claim"]`). What an answer cannot prove is that it is complete: a node
could leave a record out (docs/verification.md section 3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..blocks import Header
from ..codec import b64
from ..errors import InvalidInput, NotFound
from ..families import cert
from ..families.cert import certificate_status
from ..families.dataset import OWNER, dataset_grants, dataset_owner
from ..genesis import Genesis
from ..records import SUBJECT_PAGE_MAX, Envelope, decode_envelope  # one page size with the store's
from ..times import utc_short
from .checkpoints import check_checkpoint, checkpoint
from .checks import CHECKPOINT, RECORD, CheckFailed, Checks, Verdict, clean, plural
from .parse import require_kind
from .proofs import included, signed_record
from .reader import LedgerReader

SUBJECT_PAGE_DEFAULT = 100
PROVENANCE_DEPTH_MAX = 16
PROVENANCE_NODES_MAX = 500
SHARES_RECORDS_MAX = 1_000
CERT_RECORDS_MAX = 1_000
ANSWER_RECORDS_MAX = 10_000  # records the verifier checks in one answer
STATUS_NAMES = {  # families.cert.CertStatus.status -> (zh, en)
    "valid": ("有效", "valid"), "suspended": ("暂停", "suspended"), "revoked": ("吊销", "revoked"),
    "expired": ("过期", "expired"), "not_yet_valid": ("尚未生效", "not yet valid"),
    "not_issued": ("未签发", "not issued"),
}
Records = list[tuple[int, Envelope]]
Entry = tuple[dict[str, Any], Envelope]

# -- built by a node ----------------------------------------------------------------------


class _Answer:
    """Collects records with proofs against one checkpoint (the head when created)."""

    def __init__(self, store: LedgerReader, genesis: Genesis) -> None:
        if store.height == 0:
            raise NotFound("the ledger is empty")
        self.store, self.genesis = store, genesis
        self.cp = checkpoint(store)
        self.size = self.cp["log_size"]

    def entry(self, leaf: int) -> Entry:
        raw = self.store.load_envelope(leaf)
        env = decode_envelope(raw, self.genesis)
        assert leaf < self.size
        return {
            "id": env.record_id.hex(), "leaf_index": leaf, "height": self.store.height_of_leaf(leaf),
            "envelope": b64(raw), "inclusion": [h.hex() for h in self.store.inclusion_proof(leaf, self.size)],
        }, env

    def subject_entries(self, subject: str, limit: int) -> list[Entry]:
        """All records about `subject`; refuse rather than silently cut a long history."""
        leaves = [leaf for leaf in self.store.subject_leaves(subject, -1, limit + 1) if leaf < self.size]
        if len(leaves) > limit:
            raise InvalidInput("history_too_long", f"{subject!r} has more than {limit} records; "
                               "page through /v1/subjects/{subject} instead", 422)
        return [self.entry(leaf) for leaf in leaves]


def subject_history(store: LedgerReader, genesis: Genesis, subject: str, after: int = -1,
                    limit: int = SUBJECT_PAGE_DEFAULT) -> dict[str, Any]:
    if not 1 <= limit <= SUBJECT_PAGE_MAX:
        raise InvalidInput("bad_limit", f"limit must be 1 to {SUBJECT_PAGE_MAX}")
    if after < -1:
        raise InvalidInput("bad_after", "after must be a leaf index >= -1")
    answer = _Answer(store, genesis)
    leaves = [leaf for leaf in store.subject_leaves(subject, after, limit + 1) if leaf < answer.size]
    more = len(leaves) > limit
    leaves = leaves[:limit]
    return {
        "kind": "subject", "subject": subject, "checkpoint": answer.cp,
        "records": [answer.entry(leaf)[0] for leaf in leaves],
        "next_after": leaves[-1] if more else None,
    }


def cert_status(store: LedgerReader, genesis: Genesis, number: str, at_ms: int) -> dict[str, Any]:
    answer = _Answer(store, genesis)
    entries = [(e, env) for e, env in answer.subject_entries(number, CERT_RECORDS_MAX)
               if env.record.type in cert.FAMILY]
    status = certificate_status([env for _, env in entries], at_ms)
    issuer = genesis.signers.get(status.issuer_key) if status.issuer_key else None
    deciding = set(status.deciding)
    return {
        "kind": "status", "number": number, "at": at_ms, "status": status.status,
        "issuer": issuer.dept if issuer else None, "checkpoint": answer.cp,
        "records": [e for e, env in entries if env.record_id in deciding],
    }


def dataset_shares(store: LedgerReader, genesis: Genesis, dataset: str) -> dict[str, Any]:
    answer = _Answer(store, genesis)
    entries = answer.subject_entries(dataset, SHARES_RECORDS_MAX)
    owner = store.load_fact(OWNER, dataset)
    if owner is None:
        raise NotFound(f"dataset {dataset!r} was never published")
    return {"kind": "shares", "dataset": dataset, "owner": owner["dept"], "checkpoint": answer.cp,
            "records": [e for e, _ in entries],
            "grants": dataset_grants([env for _, env in entries], genesis)}


def provenance(store: LedgerReader, genesis: Genesis, record_id: bytes, depth: int) -> dict[str, Any]:
    if not 0 <= depth <= PROVENANCE_DEPTH_MAX:
        raise InvalidInput("bad_depth", f"depth must be 0 to {PROVENANCE_DEPTH_MAX}")
    answer = _Answer(store, genesis)
    if store.locate(record_id) is None:
        raise NotFound(f"record {record_id.hex()} is not committed")
    nodes: dict[bytes, dict[str, Any]] = {}
    edges: list[list[str]] = []
    # `truncated` says only that PROVENANCE_NODES_MAX cut the graph; refs beyond
    # `depth` are left out by request and the verifier knows which those are.
    frontier, truncated = [(record_id, 0)], False
    while frontier:
        rid, level = frontier.pop(0)
        if rid in nodes:
            continue
        if len(nodes) >= PROVENANCE_NODES_MAX:
            truncated = True
            break
        where = store.locate(rid)
        assert where is not None, "a committed record refers only to committed records"
        entry, env = answer.entry(where[0])
        nodes[rid] = entry
        for ref in env.record.refs:
            edges.append([rid.hex(), ref.hex()])
            if level < depth:
                frontier.append((ref, level + 1))
    return {"kind": "provenance", "root": record_id.hex(), "depth": depth, "checkpoint": answer.cp,
            "records": list(nodes.values()), "edges": edges, "truncated": truncated}


# -- checked offline: the records ------------------------------------------------------------


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


# -- checked offline: the answer's claims follow from its records --------------------------------


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
    if any(env.record.subject != doc.get("number") or env.record.type not in cert.FAMILY for env in envs):
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
    if "issuer" not in doc or issuer != doc["issuer"]:  # "not issued" names its null issuer too
        raise _wrong("答复中的签发部门与签发记录的签名者不一致", "the answer's issuing department is not the signer of "
                     "the issue record", f"the issue record was signed by {issuer!r}, the answer says "
                     f"{doc.get('issuer')!r}")


def _claims_shares(doc: dict[str, Any], records: Records, g: Genesis) -> None:
    envs = [env for _, env in records]
    if any(env.record.subject != doc.get("dataset") for env in envs):
        raise _wrong("答复中有记录不是关于该数据集的", "a record in the answer is not about this dataset",
                     "a record is not about this dataset")
    owner = dataset_owner(envs, g)
    if owner is None or owner != doc.get("owner"):
        raise _wrong("答复中的数据集所有者不是首条发布记录的签名部门", "the answer's dataset owner is not the "
                     "department that signed its first publish record", f"the first dataset.publish record was "
                     f"signed by {owner!r}, the answer says {doc.get('owner')!r}")
    if dataset_grants(envs, g) != doc.get("grants"):
        raise _wrong("答复中的授权、撤销或访问与其记录不一致", "the answer's grants, revocations or accesses do not "
                     "follow from its records", "grants, revocations or accesses differ from what the records say")


def _claims_provenance(doc: dict[str, Any], records: Records, g: Genesis) -> None:
    ids = {env.record_id.hex(): env for _, env in records}
    root = doc.get("root")
    if not isinstance(root, str) or root not in ids:
        raise _wrong("答复中没有根记录", "the root record is not in the answer", "the root record is not in the answer")
    edges = doc.get("edges")
    expected = [[rid, ref.hex()] for rid, env in ids.items() for ref in env.record.refs]
    if (not isinstance(edges, list)
            or not all(isinstance(e, list) and len(e) == 2 and all(isinstance(x, str) for x in e) for e in edges)
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
        if not level:
            break  # no ancestors left: a huge depth costs no more than the answer's records
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


# -- an answer's checks ---------------------------------------------------------------------


class _AnswerChecks(Checks):
    LABELS = {
        "checkpoint": ("检查点获得法定数量验证节点签名", "checkpoint is certified by a quorum of validators"),
        "records": ("每条记录签名有效且包含在检查点中", "every record is signed and included under the checkpoint"),
        "claims": ("答复内容与记录一致", "the answer's claims follow from its records"),
    }
    header: Header
    records: Records

    def __init__(self, doc: dict[str, Any], kind: str, genesis: Genesis) -> None:
        super().__init__()
        self.doc, self.kind, self.genesis = doc, kind, genesis

    def check_checkpoint(self) -> None:
        self.header = check_checkpoint(self.doc.get("checkpoint"), self.genesis)

    def check_records(self) -> None:
        self.records = _records(self.doc, self.header, self.genesis)

    def check_claims(self) -> None:
        CLAIMS[self.kind](self.doc, self.records, self.genesis)

    def conclude(self) -> dict[str, Any]:
        header = self.header
        return {"claim": {"kind": self.kind, **CLAIM_TEXT[self.kind](self.doc, self.records, header),
                          "checkpoint_height": header.height},
                "records": len(self.records),
                "checkpoint": {"height": header.height, "log_size": header.log_size}}


def verify_answer(doc: dict[str, Any], kind: str, genesis: Genesis) -> Verdict:
    """Check a saved answer; raise Unusable (exit 2) if the file is not a `kind` answer at all,
    e.g. an error answer saved by mistake."""
    require_kind(doc, kind)
    return _AnswerChecks(doc, kind, genesis).run()
