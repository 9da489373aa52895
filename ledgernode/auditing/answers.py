"""The auditors' answers (docs/protocol.md section 12.5; docs/verification.md section 2.2):
subject histories, certificate status, dataset shares and provenance graphs, built
from a node's ledger and checked offline against the genesis file alone.

Every answer (`ledgernode-answer/2`) carries one `checkpoint` (a header with its
QC); for every record it returns, the envelope, its leaf index and an inclusion
proof against that checkpoint's `log_root`; the signer's `key` entry in the
checkpoint's state map; and a proof that nothing was left out: a `list` of the
subject's record list (a page of it, or all of it), or, for forward provenance, the
`refby` list of every record within depth - 1 hops. Checked in order: the format,
the genesis, the epochs, the checkpoint, every record's inclusion, every signer's
key, the completeness lists, and then the answer's own claims, recomputed from the
proven records with the same code the node used (the families' views in
families/cert.py and families/dataset.py). A valid verdict states the claim in one
line (`facts["claim"]`), saying whether the records are all there are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..blocks import Header
from ..codec import b64
from ..errors import InvalidInput, NotFound
from ..families import cert
from ..families.cert import certificate_status
from ..families.dataset import dataset_grants, dataset_owner
from ..genesis import Genesis
from ..members import AnyDept
from ..records import SUBJECT_PAGE_MAX, Envelope, decode_envelope  # one page size with the store's
from ..times import utc_short
from .checkpoints import check_checkpoint, checkpoint
from .checks import CHECKPOINT, RECORD, CheckFailed, Checks, Verdict, clean, plural
from .lists import (
    KeyEntry, ListShown, check_entry, check_list, check_signed, entry_doc, entry_value, list_doc, list_size, parse_key,
)
from .parse import ANSWER_FORMAT, require_kind
from .epochs import Epochs, check_epochs, epochs_doc
from .proofs import included, record_of
from .reader import LedgerReader

SUBJECT_PAGE_DEFAULT = 100
PROVENANCE_DEPTH_MAX = 16
PROVENANCE_NODES_MAX = 500
SHARES_RECORDS_MAX = 1_000
CERT_RECORDS_MAX = 1_000
ANSWER_RECORDS_MAX = 10_000  # records the verifier checks in one answer
KEYS_MAX = ANSWER_RECORDS_MAX
STATUS_NAMES = {  # families.cert.CertStatus.status -> (zh, en)
    "valid": ("有效", "valid"), "suspended": ("暂停", "suspended"), "revoked": ("吊销", "revoked"),
    "expired": ("过期", "expired"), "not_yet_valid": ("尚未生效", "not yet valid"),
    "not_issued": ("未签发", "not issued"),
}
Records = list[tuple[int, Envelope]]

# -- built by a node ----------------------------------------------------------------------


class _Answer:
    """Collects records, their signers' keys and lists, all against one checkpoint (the
    head when created): one state map and one log size for every proof."""

    def __init__(self, store: LedgerReader, genesis: Genesis) -> None:
        head = store.head()
        if head is None:
            raise NotFound("the ledger is empty")
        self.store, self.genesis, self.head = store, genesis, head
        self.cp = checkpoint(store, head.height)
        self.state = store.map_at(head.state)
        self.keys: dict[str, dict[str, Any]] = {}
        self.records: list[dict[str, Any]] = []

    def add(self, leaf: int, inclusion: list[bytes] | None = None) -> Envelope:
        """The record at `leaf`, with its inclusion proof in the checkpoint's log (given when
        computed with others')."""
        assert leaf < self.head.log_size, "a listed record is below the checkpoint"
        if inclusion is None:
            inclusion = self.store.inclusion_proof(leaf, self.head.log_size)
        raw = self.store.load_envelope(leaf)
        env = decode_envelope(raw, AnyDept.of(self.genesis))
        key = env.record.key
        if key not in self.keys:
            self.keys[key] = entry_doc(self.state, "key", key)
        self.records.append({"id": env.record_id.hex(), "leaf_index": leaf, "envelope": b64(raw),
                             "inclusion": [h.hex() for h in inclusion]})
        return env

    def page(self, namespace: str, name: str | bytes, start: int,
             count: int) -> tuple[dict[str, Any], list[Envelope], int]:
        """The list's positions [start, start + count), their records added, and the list's size."""
        doc, leaves, n = list_doc(self.store, self.state, namespace, name, start, count)
        proofs = self.store.inclusion_proofs(leaves, self.head.log_size)
        return doc, [self.add(leaf, proof) for leaf, proof in zip(leaves, proofs)], n

    def whole(self, namespace: str, name: str | bytes, limit: int, what: str) -> tuple[dict[str, Any], list[Envelope]]:
        """The whole list, refused (not cut) beyond `limit`: a cut list would not verify."""
        n = list_size(self.state, namespace, name)
        if n > limit:
            raise InvalidInput("history_too_long", f"{what} has {n} records, more than the {limit} "
                               "one answer holds; page through /v1/subjects/{subject} instead", 422)
        doc, envs, _ = self.page(namespace, name, 0, n)
        return doc, envs

    def finish(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"format": ANSWER_FORMAT, "kind": kind, "chain_id": self.genesis.chain_id,
                "genesis_hash": self.genesis.genesis_hash, "checkpoint": self.cp,
                "epochs": epochs_doc(self.store, self.head.height),
                "keys": self.keys, "records": self.records, **fields}

    def depts(self) -> dict[str, str]:
        """key_id -> dept of the returned records' signers, from their key entries."""
        return {key_id: parse_key(entry_value(self.state, "key", key_id)).dept for key_id in self.keys}


def subject_history(store: LedgerReader, genesis: Genesis, subject: str, start: int = 0,
                    limit: int = SUBJECT_PAGE_DEFAULT) -> dict[str, Any]:
    """Positions [start, start + limit) of the subject's record list, proven."""
    if not 1 <= limit <= SUBJECT_PAGE_MAX:
        raise InvalidInput("bad_limit", f"limit must be 1 to {SUBJECT_PAGE_MAX}")
    if start < 0:
        raise InvalidInput("bad_from", "from must be a list position >= 0")
    answer = _Answer(store, genesis)
    doc, envs, n = answer.page("subject", subject, start, limit)
    end = doc["from"] + len(envs)
    return answer.finish("subject", subject=subject, list=doc, total=n, next_from=end if end < n else None)


def cert_status(store: LedgerReader, genesis: Genesis, number: str, at_ms: int) -> dict[str, Any]:
    answer = _Answer(store, genesis)
    doc, envs = answer.whole("subject", number, CERT_RECORDS_MAX, f"certificate {number!r}")
    status = certificate_status([env for env in envs if env.record.type in cert.FAMILY], at_ms)
    issuer = answer.depts().get(status.issuer_key) if status.issuer_key else None
    return answer.finish("status", number=number, at=at_ms, status=status.status, issuer=issuer, list=doc)


def dataset_shares(store: LedgerReader, genesis: Genesis, dataset: str) -> dict[str, Any]:
    answer = _Answer(store, genesis)
    doc, envs = answer.whole("subject", dataset, SHARES_RECORDS_MAX, f"dataset {dataset!r}")
    depts = answer.depts()
    owner = dataset_owner(envs, depts)
    if owner is None:
        raise NotFound(f"dataset {dataset!r} was never published")
    return answer.finish("shares", dataset=dataset, owner=owner, grants=dataset_grants(envs, depts), list=doc)


def provenance(store: LedgerReader, genesis: Genesis, record_id: bytes, depth: int,
               direction: str = "back") -> dict[str, Any]:
    """The records within `depth` hops of `record_id`: what it was made from (`back`,
    following refs) or what was made from it (`forward`, following refby lists)."""
    if not 0 <= depth <= PROVENANCE_DEPTH_MAX:
        raise InvalidInput("bad_depth", f"depth must be 0 to {PROVENANCE_DEPTH_MAX}")
    if direction not in ("back", "forward"):
        raise InvalidInput("bad_direction", "direction must be back or forward")
    answer = _Answer(store, genesis)
    where = store.locate(record_id)
    if where is None or where[0] >= answer.head.log_size:
        raise NotFound(f"record {record_id.hex()} is not committed")
    edges: list[list[str]] = []
    lists: dict[str, dict[str, Any]] = {}
    ids: dict[int, bytes] = {}  # leaf index -> record id of every record returned

    def reach(leaf: int) -> Envelope | None:
        """Return the record at `leaf` unless it is returned already; the new one, to follow next."""
        if leaf in ids:
            return None
        if len(ids) >= PROVENANCE_NODES_MAX:
            raise InvalidInput("graph_too_large", f"more than {PROVENANCE_NODES_MAX} records lie within depth "
                               f"{depth}; ask for a smaller depth", 422)
        env = answer.add(leaf)
        ids[leaf] = env.record_id
        return env

    level = [env for env in (reach(where[0]),) if env is not None]
    for _ in range(depth):
        following: list[Envelope] = []
        for env in level:
            if direction == "back":
                linked = []
                for ref in env.record.refs:
                    loc = store.locate(ref)
                    assert loc is not None, "a committed record refers only to committed records"
                    edges.append([env.record_id.hex(), ref.hex()])
                    linked.append(loc[0])
            else:
                doc, linked, _ = list_doc(store, answer.state, "refby", env.record_id, 0, PROVENANCE_NODES_MAX + 1)
                lists[env.record_id.hex()] = doc
            for leaf in linked:
                new = reach(leaf)
                if direction == "forward":
                    edges.append([ids[leaf].hex(), env.record_id.hex()])
                if new is not None:
                    following.append(new)
        level = following
    fields: dict[str, Any] = {"root": record_id.hex(), "depth": depth, "direction": direction, "edges": edges}
    if direction == "forward":
        fields["lists"] = lists
    return answer.finish("provenance", **fields)


# -- checked offline: the records and their signers -------------------------------------------


def _record(entry: Any, header: Header, genesis: Genesis) -> tuple[int, Envelope]:
    """One of an answer's records: a record of this chain included under `header`."""
    if not isinstance(entry, dict):
        raise CheckFailed("records", "记录不是对象", "the record is not an object", "each record must be an object")
    claimed = entry.get("id")  # for people, yet checked: a wrong id would mislead a reader
    env = record_of(entry.get("envelope"), claimed if isinstance(claimed, str) else None, genesis, RECORD)
    if "id" in entry and claimed != env.record_id.hex():
        raise CheckFailed("records", "记录编号与其内容不一致", "the record's id does not match its bytes",
                          "id must be the record id of the envelope")
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
            out.append(_record(entry, header, genesis))
        except CheckFailed as exc:
            raise exc.within(f"第 {i} 条记录（共 {len(entries)} 条）", f"record {i} of {len(entries)}") from None
    if len({leaf for leaf, _ in out}) != len(out):
        raise CheckFailed("records", "答复中有记录重复", "a record is listed twice", "each record must be listed once")
    return out


def _keys(doc: dict[str, Any], records: Records, header: Header, validators: frozenset[bytes]) -> dict[str, KeyEntry]:
    """Every returned record's signer, from its key entry in the checkpoint's state;
    `validators`: the pubkeys that may sign `gov.*` records."""
    given = doc.get("keys")
    if not isinstance(given, dict) or len(given) > KEYS_MAX:
        raise CheckFailed("key", "答复中的签名密钥部分缺失或过长", "the answer's signing keys are missing or too many",
                          f"keys must be an object of at most {KEYS_MAX} entries")
    keys: dict[str, KeyEntry] = {}
    for i, (leaf, env) in enumerate(records, 1):
        key_id = env.record.key
        zh, en = f"第 {i} 条记录", f"record {i} of {len(records)}"
        if key_id not in keys:
            value = check_entry(given.get(key_id), header.state, "key", key_id, "key",
                                f"{zh}的签名密钥条目", f"{en}'s key entry")
            if value is None:
                raise CheckFailed("key", f"{zh}的签名密钥不在检查点的状态中（从未登记）",
                                  f"{en}'s signing key is not in the checkpoint's state (never registered)",
                                  f"no key entry for {key_id}")
            keys[key_id] = parse_key(value)
        check_signed(env, leaf, keys[key_id], validators, zh, en)
    return keys


# -- checked offline: nothing was left out -------------------------------------------------------


def _subject_list(doc: dict[str, Any], records: Records, header: Header, field: str, whole: bool) -> ListShown:
    name = doc.get(field)
    if not isinstance(name, str):
        raise CheckFailed("list", "答复没有以文字写明它所关于的主体", "the answer does not name its subject as text",
                          f"{field} must be a string")
    shown = check_list(doc.get("list"), header.state, "subject", name, [leaf for leaf, _ in records],
                       "答复的记录列表", "the answer's record list")
    if whole and not shown.complete:
        raise CheckFailed("list", f"答复没有包含该主体的全部记录（只有 {shown.count} 条，共 {shown.n} 条）",
                          f"the answer does not hold every record about it ({shown.count} of {shown.n})",
                          "this kind of answer must cover the whole list")
    return shown


def _graph_wrong(zh: str, en: str, detail: str) -> CheckFailed:
    return CheckFailed("list", zh, en, detail)


def _provenance_lists(doc: dict[str, Any], records: Records, header: Header) -> ListShown:
    """`records` are exactly the root and the records within `depth` hops of it, and
    `edges` exactly the links followed: refs (back) or proven refby lists (forward)."""
    by_id = {env.record_id.hex(): (leaf, env) for leaf, env in records}
    root, depth, direction = doc.get("root"), doc.get("depth"), doc.get("direction")
    if (type(depth) is not int or depth < 0 or direction not in ("back", "forward")
            or not isinstance(root, str) or root not in by_id):  # a list or object root is unhashable
        raise _graph_wrong("答复的根记录、深度或方向不对", "the answer's root, depth or direction is wrong",
                           "root must be a returned record, depth an int >= 0, direction back or forward")
    lists = doc.get("lists", {}) if direction == "forward" else {}
    if direction == "forward" and not isinstance(lists, dict):
        raise _graph_wrong("答复的引用列表部分已损坏", "the answer's referrer lists are damaged", "lists must be an object")
    seen, level, expanded = {root}, [root], set()
    edges: list[list[str]] = []
    referrers_of: dict[bytes, list[tuple[int, str]]] = {}  # one pass, not one per expanded record
    for leaf, e in sorted(records, key=lambda r: r[0]):
        for ref in e.record.refs:
            referrers_of.setdefault(ref, []).append((leaf, e.record_id.hex()))
    for _ in range(depth):
        if not level:
            break  # nothing left to follow: a huge depth costs no more than the answer's records
        following = []
        for rid in level:
            env = by_id[rid][1]
            expanded.add(rid)
            if direction == "back":
                linked = [ref.hex() for ref in env.record.refs]
                edges.extend([rid, ref] for ref in linked)
            else:
                referrers = referrers_of.get(env.record_id, [])
                shown = check_list(lists.get(rid), header.state, "refby", env.record_id, [lf for lf, _ in referrers],
                                   f"记录 {rid[:16]}… 的引用者列表", f"the referrers list of record {rid[:16]}…")
                if not shown.complete:
                    raise _graph_wrong(f"答复缺少记录 {rid[:16]}… 的引用者（{shown.count} 条，共 {shown.n} 条）",
                                       f"referrers of record {rid[:16]}… are missing ({shown.count} of {shown.n})",
                                       "a forward answer holds every referrer within depth")
                linked = [r for _, r in referrers]
                edges.extend([r, rid] for r in linked)
            for other in linked:
                if other not in by_id:
                    raise _graph_wrong("答复缺少所请求深度以内的记录", "a record within the requested depth is missing "
                                       "from the answer", f"{other} is linked to {rid} within depth but not returned")
                if other not in seen:
                    seen.add(other)
                    following.append(other)
        level = following
    if seen != set(by_id) or (direction == "forward" and set(lists) != expanded):
        raise _graph_wrong("答复含有所请求深度以外的记录或列表", "the answer holds records or lists beyond the requested "
                           "depth", "records must be exactly those within depth hops of the root")
    given = doc.get("edges")
    if not isinstance(given, list) or sorted(map(_pair, given)) != sorted(map(_pair, edges)):
        raise _graph_wrong("答复中的引用关系与记录的引用不一致", "the answer's edges are not exactly the links of its records",
                           "edges differ from the links followed within depth")
    return ListShown(len(by_id), 0, len(by_id))


def _pair(edge: Any) -> tuple[str, str]:
    if not isinstance(edge, list) or len(edge) != 2 or not all(isinstance(x, str) for x in edge):
        raise _graph_wrong("答复中的引用关系已损坏", "the answer's edges are damaged", "each edge is [referrer, referenced]")
    return edge[0], edge[1]


# -- checked offline: the answer's claims follow from its records --------------------------------


def _wrong(zh: str, en: str, detail: str = "") -> CheckFailed:
    return CheckFailed("claims", zh, en, detail)


def _claims_subject(doc: dict[str, Any], records: Records, depts: dict[str, str]) -> None:
    for _, env in records:
        if env.record.subject != doc.get("subject"):
            raise _wrong("答复中有记录不是关于该主体的", "a record in the answer is about another subject",
                         f"record {env.record_id.hex()} is about {env.record.subject!r}")


def _claims_status(doc: dict[str, Any], records: Records, depts: dict[str, str]) -> None:
    _claims_subject({"subject": doc.get("number")}, records, depts)
    at = doc.get("at")
    if isinstance(at, bool) or not isinstance(at, int):
        raise _wrong("答复中的查询时间不是整数毫秒", "the answer's time (at) is not a whole number of ms",
                     "at must be an integer time in ms")
    status = certificate_status([env for _, env in records if env.record.type in cert.FAMILY], at)
    if status.status != doc.get("status"):
        raise _wrong("答复中的证照状态与其记录推算出的不一致", "the answer's certificate status does not follow from "
                     "its records", f"the records give status {status.status!r}, the answer says "
                     f"{doc.get('status')!r}")
    issuer = depts[status.issuer_key] if status.issuer_key else None
    if "issuer" not in doc or issuer != doc["issuer"]:  # "not issued" names its null issuer too
        raise _wrong("答复中的签发部门与签发记录的签名者不一致", "the answer's issuing department is not the signer of "
                     "the issue record", f"the issue record was signed by {issuer!r}, the answer says "
                     f"{doc.get('issuer')!r}")


def _claims_shares(doc: dict[str, Any], records: Records, depts: dict[str, str]) -> None:
    _claims_subject({"subject": doc.get("dataset")}, records, depts)
    envs = [env for _, env in records]
    owner = dataset_owner(envs, depts)
    if owner is None or owner != doc.get("owner"):
        raise _wrong("答复中的数据集所有者不是首条发布记录的签名部门", "the answer's dataset owner is not the "
                     "department that signed its first publish record", f"the first dataset.publish record was "
                     f"signed by {owner!r}, the answer says {doc.get('owner')!r}")
    if dataset_grants(envs, depts) != doc.get("grants"):
        raise _wrong("答复中的授权、撤销或访问与其记录不一致", "the answer's grants, revocations or accesses do not "
                     "follow from its records", "grants, revocations or accesses differ from what the records say")


def _claims_provenance(doc: dict[str, Any], records: Records, depts: dict[str, str]) -> None:
    """Checked with the lists: the graph is the claim."""


CLAIMS: dict[str, Callable[[dict[str, Any], Records, dict[str, str]], None]] = {
    "subject": _claims_subject, "status": _claims_status,
    "shares": _claims_shares, "provenance": _claims_provenance,
}


# -- the one-line claim of a valid answer ----------------------------------------------------


def _as_of(header: Header) -> tuple[str, str]:
    when = utc_short(header.time)
    return f"截至高度 {header.height}（{when}）", f"as of height {header.height}, {when}"


def _coverage(shown: ListShown, about_zh: str, about_en: str, header: Header) -> tuple[str, str]:
    """"all 7 records about LIC-1 as of height 42, ..." or which part of how many a page covers."""
    as_zh, as_en = _as_of(header)
    if shown.n == 0:
        return f"没有关于 {about_zh} 的记录（完整：一条也没有），{as_zh}", f"no records about {about_en} (complete: there are none) {as_en}"
    if shown.complete:
        return (f"关于 {about_zh} 的全部 {shown.n} 条记录（完整），{as_zh}",
                f"all {plural(shown.n, 'record')} about {about_en} (complete) {as_en}")
    if shown.count == 0:
        return (f"关于 {about_zh} 共 {shown.n} 条记录，本页从第 {shown.start + 1} 条起没有记录，{as_zh}",
                f"no records from position {shown.start + 1} of the {shown.n} about {about_en} {as_en}")
    first, last = shown.start + 1, shown.start + shown.count
    return (f"关于 {about_zh} 的第 {first}–{last} 条记录（共 {shown.n} 条），{as_zh}",
            f"records {first}-{last} of {shown.n} about {about_en} {as_en}")


def _claim_subject(doc: dict[str, Any], shown: ListShown, header: Header) -> dict[str, Any]:
    subject = clean(doc["subject"])
    zh, en = _coverage(shown, subject, subject, header)
    return {"zh": f"主体 {subject}：{zh}", "en": f"subject {subject}: {en}", "subject": doc["subject"],
            "records": shown.count, "total": shown.n, "from": shown.start, "complete": shown.complete}


def _late(at: int, header: Header) -> tuple[str, str]:
    if at <= header.time:
        return "", ""
    return ("；注意：查询时间晚于检查点，之后的记录仍可能改变状态",
            "; note: the time asked for is after the checkpoint, so later records may still change it")


def _claim_status(doc: dict[str, Any], shown: ListShown, header: Header) -> dict[str, Any]:
    number, when = clean(doc["number"]), utc_short(doc["at"])
    status_zh, status_en = STATUS_NAMES.get(doc["status"], (doc["status"], doc["status"]))
    issuer = doc["issuer"]
    by_zh, by_en = (f"，签发部门 {clean(issuer)}", f", issued by {clean(issuer)}") if issuer else ("", "")
    cov_zh, cov_en = _coverage(shown, "该证照", "it", header)
    late_zh, late_en = _late(doc["at"], header)
    return {"zh": f"证照 {number} 在 {when} 的状态：{status_zh}{by_zh}（依据{cov_zh}）{late_zh}",
            "en": f"certificate {number} status at {when}: {status_en}{by_en} (from {cov_en}){late_en}",
            "number": doc["number"], "at": doc["at"], "status": doc["status"], "issuer": issuer,
            "records": shown.count, "complete": True}


def _claim_shares(doc: dict[str, Any], shown: ListShown, header: Header) -> dict[str, Any]:
    grants = doc["grants"]
    revoked = sum(1 for g in grants if g["revoked_by"] is not None)
    # A grant's `expires` is compared with the checkpoint's block time, as the node compares
    # it with a block's time when it accepts an access (docs/protocol.md section 5).
    expired = sum(1 for g in grants if g["revoked_by"] is None and g["expires"] <= header.time)
    live, accesses = len(grants) - revoked - expired, sum(len(g["accesses"]) for g in grants)
    dataset, owner = clean(doc["dataset"]), clean(doc["owner"])
    cov_zh, cov_en = _coverage(shown, "该数据集", "it", header)
    return {"zh": f"数据集 {dataset}（所有者 {owner}）：共享授权 {len(grants)} 项（截至检查点时间：有效 {live}、"
                  f"已撤销 {revoked}、已过期 {expired}），访问 {accesses} 次；依据{cov_zh}",
            "en": f"dataset {dataset} (owner {owner}): {plural(len(grants), 'grant')} ({live} live, {revoked} "
                  f"revoked, {expired} expired at the checkpoint time), {_accesses_en(accesses)}; from {cov_en}",
            "dataset": doc["dataset"], "owner": doc["owner"], "grants": len(grants), "live": live,
            "revoked": revoked, "expired": expired, "accesses": accesses, "records": shown.count, "complete": True}


def _accesses_en(n: int) -> str:
    return f"{n} access" + ("" if n == 1 else "es")


def _claim_provenance(doc: dict[str, Any], shown: ListShown, header: Header) -> dict[str, Any]:
    root, depth, direction = doc["root"], doc["depth"], doc["direction"]
    others, edges = shown.n - 1, len(doc["edges"])
    as_zh, as_en = _as_of(header)
    kin_zh, kin_en = ("来源", "ancestor") if direction == "back" else ("后续", "descendant")
    return {"zh": f"溯源：根记录 {root[:16]}… 在深度 {depth} 以内的全部{kin_zh}记录 {others} 条、引用 {edges} 条（完整），{as_zh}",
            "en": f"provenance of root record {root[:16]}…: all {plural(others, kin_en)} within depth {depth}, "
                  f"{plural(edges, 'edge')} (complete) {as_en}",
            "root": root, "depth": depth, "direction": direction, "records": shown.n, "edges": edges,
            "complete": True}


CLAIM_TEXT: dict[str, Callable[[dict[str, Any], ListShown, Header], dict[str, Any]]] = {
    "subject": _claim_subject, "status": _claim_status,
    "shares": _claim_shares, "provenance": _claim_provenance,
}


# -- an answer's checks ---------------------------------------------------------------------


class _AnswerChecks(Checks):
    LABELS = {
        "genesis": ("创世文件与链标识一致", "genesis file and chain id match"),
        "epochs": ("验证节点集合的变更记录有效", "the validator set's changes (epochs) are valid"),
        "checkpoint": ("检查点获得法定数量验证节点签名", "checkpoint is certified by a quorum of validators"),
        "records": ("每条记录格式正确且包含在检查点中", "every record is canonical and included under the checkpoint"),
        "key": ("每条记录的签名密钥在检查点状态中、当时有效且签名有效",
                "every record's signing key is in the checkpoint's state, could sign then, and its signature verifies"),
        "list": ("答复完整：记录列表由检查点的状态证明，没有遗漏", "complete: the record lists are proven by the "
                 "checkpoint's state, nothing left out"),
        "claims": ("答复内容与记录一致", "the answer's claims follow from its records"),
    }
    header: Header
    records: Records
    keys: dict[str, KeyEntry]
    shown: ListShown
    epochs: Epochs

    def __init__(self, doc: dict[str, Any], kind: str, genesis: Genesis) -> None:
        super().__init__()
        self.doc, self.kind, self.genesis = doc, kind, genesis

    def check_genesis(self) -> None:
        if self.doc.get("genesis_hash") != self.genesis.genesis_hash or self.doc.get("chain_id") != self.genesis.chain_id:
            raise CheckFailed("genesis", "答复不是用这个创世文件生成的（您的创世文件不对，或答复来自另一个账本）",
                              "the answer was made for another genesis file (you have the wrong genesis file, or "
                              "the answer is from another ledger)", "genesis_hash or chain_id differs")

    def check_epochs(self) -> None:
        self.epochs = check_epochs(self.doc.get("epochs"), self.genesis)

    def check_checkpoint(self) -> None:
        self.header = check_checkpoint(self.doc.get("checkpoint"), self.genesis, epochs=self.epochs)

    def check_records(self) -> None:
        self.records = _records(self.doc, self.header, self.genesis)

    def check_key(self) -> None:
        self.keys = _keys(self.doc, self.records, self.header, self.epochs.keys_up_to(self.header.height))

    def check_list(self) -> None:
        if self.kind == "provenance":
            self.shown = _provenance_lists(self.doc, self.records, self.header)
        else:
            field = {"subject": "subject", "status": "number", "shares": "dataset"}[self.kind]
            self.shown = _subject_list(self.doc, self.records, self.header, field, whole=self.kind != "subject")

    def check_claims(self) -> None:
        CLAIMS[self.kind](self.doc, self.records, {k: key.dept for k, key in self.keys.items()})
        if self.kind == "subject":
            # For people, yet a lie in them would mislead: they must say what the list proves.
            n, end = self.shown.n, self.shown.start + self.shown.count
            next_from = None if end == n else end
            if self.doc.get("total", n) != n or self.doc.get("next_from", next_from) != next_from:
                raise _wrong("答复所说的记录总数或下一页起点与其列表不符", "the answer's total or next page does not "
                             "follow from its list", f"total must be {n}, next_from {next_from}")

    def conclude(self) -> dict[str, Any]:
        header = self.header
        return {"claim": {"kind": self.kind, **CLAIM_TEXT[self.kind](self.doc, self.shown, header),
                          "checkpoint_height": header.height, "epoch": self.epochs.at(header.height)[0]},
                "records": len(self.records),
                "checkpoint": {"height": header.height, "log_size": header.log_size, "time": utc_short(header.time)}}


def verify_answer(doc: dict[str, Any], kind: str, genesis: Genesis) -> Verdict:
    """Check a saved answer; raise Unusable (exit 2) if the file is not a version 2 `kind`
    answer at all, e.g. an error answer saved by mistake."""
    require_kind(doc, kind)
    return _AnswerChecks(doc, kind, genesis).run()
