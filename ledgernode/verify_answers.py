"""Offline checks of the auditors' answers: subject histories, certificate status,
dataset shares, provenance graphs, and consistency between two checkpoints.

Like verify.py this trusts only the genesis file and imports no network or
database library. Each answer is checked in two steps: every proof (the
checkpoint's QC, each record's signature and inclusion) and then the answer's
own claims, recomputed from the proven records with the same code the node
used (derive.py). Completeness cannot be proven: see docs/verification.md.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from . import merkle
from .blocks import Header, check_qc, decode_header, qc_from_json
from .derive import certificate_status, dataset_grants
from .errors import InvalidInput
from .genesis import Genesis
from .records import Envelope, check_signer, decode_envelope
from .verify import CheckFailed, Unusable, Verdict, _unb64

_HEX32 = re.compile(r"[0-9a-f]{64}\Z")
ANSWER_RECORDS_MAX = 10_000
KINDS = ("subject", "status", "shares", "provenance")


def _hashes(value: Any, what: str) -> list[bytes]:
    if not isinstance(value, list) or not all(isinstance(p, str) and _HEX32.match(p) for p in value):
        raise CheckFailed(f"{what} must be a list of 64-char lowercase hex hashes")
    return [bytes.fromhex(p) for p in value]


def check_checkpoint(cp: Any, genesis: Genesis) -> Header:
    """Header decodes, belongs to this chain, carries a valid QC, and matches its summary."""
    if not isinstance(cp, dict):
        raise CheckFailed("checkpoint must be an object")
    header = decode_header(_unb64(cp.get("header"), "checkpoint header"))
    if header.chain != genesis.chain_id or header.valset != genesis.valset_hash:
        raise CheckFailed("checkpoint header is for another chain or validator set")
    check_qc(qc_from_json(cp.get("qc")), header, genesis)
    if cp.get("log_size") != header.log_size or cp.get("log_root") != header.log_root.hex():
        raise CheckFailed("checkpoint log_size/log_root differ from its header")
    if "height" in cp and cp["height"] != header.height:
        raise CheckFailed("checkpoint height differs from its header")
    return header


def check_entry(entry: Any, header: Header, genesis: Genesis) -> tuple[int, Envelope]:
    """A record of an answer: signed by a registered key and included under `header`."""
    if not isinstance(entry, dict):
        raise CheckFailed("each record must be an object")
    env = decode_envelope(_unb64(entry.get("envelope"), "record envelope"), genesis)
    check_signer(env, genesis)
    if entry.get("id") != env.record_id.hex():
        raise CheckFailed(f"record id {entry.get('id')!r} is not the hash of its record")
    leaf = entry.get("leaf_index")
    if isinstance(leaf, bool) or not isinstance(leaf, int) or not 0 <= leaf < header.log_size:
        raise CheckFailed(f"record {env.record_id.hex()} has a leaf index outside the checkpoint")
    proof = _hashes(entry.get("inclusion"), "inclusion")
    if not merkle.verify_inclusion(env.leaf_hash, leaf, header.log_size, proof, header.log_root):
        raise CheckFailed(f"record {env.record_id.hex()} is not included at leaf {leaf}")
    return leaf, env


def _records(doc: dict[str, Any], header: Header, genesis: Genesis) -> list[tuple[int, Envelope]]:
    entries = doc.get("records")
    if not isinstance(entries, list) or len(entries) > ANSWER_RECORDS_MAX:
        raise CheckFailed(f"records must be a list of at most {ANSWER_RECORDS_MAX}")
    out = [check_entry(e, header, genesis) for e in entries]
    leaves = [leaf for leaf, _ in out]
    if leaves != sorted(set(leaves)) and doc.get("kind") != "provenance":
        raise CheckFailed("records must be in log order, each once")
    return out


def _claims_subject(doc: dict[str, Any], records: list[tuple[int, Envelope]], g: Genesis) -> None:
    for _, env in records:
        if env.record.subject != doc.get("subject"):
            raise CheckFailed(f"record {env.record_id.hex()} is about {env.record.subject!r}")
    after = doc.get("next_after")
    if after is not None and (not records or after != records[-1][0]):
        raise CheckFailed("next_after must be the last record's leaf index")


def _claims_status(doc: dict[str, Any], records: list[tuple[int, Envelope]], g: Genesis) -> None:
    envs = [env for _, env in records]
    if any(env.record.subject != doc.get("number") or not env.record.type.startswith("cert.") for env in envs):
        raise CheckFailed("a record is not about this certificate")
    at = doc.get("at")
    if isinstance(at, bool) or not isinstance(at, int):
        raise CheckFailed("at must be an integer time in ms")
    status = certificate_status(envs, at)
    if status.status != doc.get("status"):
        raise CheckFailed(f"the records give status {status.status!r}, the answer says {doc.get('status')!r}")
    issuer = g.signers[status.issuer_key].dept if status.issuer_key else None
    if issuer != doc.get("issuer"):
        raise CheckFailed(f"the issue record was signed by {issuer!r}, the answer says {doc.get('issuer')!r}")


def _claims_shares(doc: dict[str, Any], records: list[tuple[int, Envelope]], g: Genesis) -> None:
    envs = [env for _, env in records]
    if any(env.record.subject != doc.get("dataset") for env in envs):
        raise CheckFailed("a record is not about this dataset")
    if dataset_grants(envs, g) != doc.get("grants"):
        raise CheckFailed("grants, revocations or accesses differ from what the records say")


def _claims_provenance(doc: dict[str, Any], records: list[tuple[int, Envelope]], g: Genesis) -> None:
    ids = {env.record_id.hex(): env for _, env in records}
    if doc.get("root") not in ids:
        raise CheckFailed("the root record is not in the answer")
    edges = doc.get("edges")
    expected = [[rid, ref.hex()] for rid, env in ids.items() for ref in env.record.refs]
    if not isinstance(edges, list) or sorted(map(tuple, edges)) != sorted(map(tuple, expected)):
        raise CheckFailed("edges differ from the refs of the records")
    depth = doc.get("depth")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise CheckFailed("depth must be a non-negative integer")
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
                    raise CheckFailed(f"ancestor {ref.hex()} of {rid} is missing though within depth")
                if ref.hex() not in seen:
                    seen.add(ref.hex())
                    following.append(ref.hex())
        level = following


CLAIMS: dict[str, Callable[[dict[str, Any], list[tuple[int, Envelope]], Genesis], None]] = {
    "subject": _claims_subject, "status": _claims_status,
    "shares": _claims_shares, "provenance": _claims_provenance,
}


def verify_answer(doc: dict[str, Any], kind: str, genesis: Genesis) -> Verdict:
    """Check a saved answer; raise Unusable (exit 2) if the file is not a `kind` answer at all,
    e.g. an error answer saved by mistake."""
    if doc.get("kind") != kind:
        what = f"a {doc['kind']!r} answer" if isinstance(doc.get("kind"), str) else "not an answer"
        detail = f" (it holds an error: {doc['error']})" if "error" in doc else ""
        raise Unusable(f"this file is {what}, not a {kind!r} answer{detail}")
    verdict = Verdict()
    steps: list[tuple[str, str, str]] = [
        ("checkpoint", "检查点获得法定数量验证节点签名", "checkpoint is certified by a quorum of validators"),
        ("records", "每条记录签名有效且包含在检查点中", "every record is signed and included under the checkpoint"),
        ("claims", "答复内容与记录一致", "the answer's claims follow from its records"),
    ]
    state: dict[str, Any] = {}

    def run(name: str) -> None:
        if name == "checkpoint":
            state["header"] = check_checkpoint(doc.get("checkpoint"), genesis)
        elif name == "records":
            state["records"] = _records(doc, state["header"], genesis)
        else:
            CLAIMS[kind](doc, state["records"], genesis)

    for name, zh, en in steps:
        entry: dict[str, Any] = {"check": name, "zh": zh, "en": en, "ok": False}
        verdict.checks.append(entry)
        try:
            run(name)
        except (CheckFailed, InvalidInput) as exc:
            entry["error"] = exc.message if isinstance(exc, InvalidInput) else str(exc)
            return verdict
        entry["ok"] = True
    verdict.valid = True
    verdict.facts["records"] = len(state["records"])
    verdict.facts["checkpoint"] = {"height": state["header"].height, "log_size": state["header"].log_size}
    return verdict


def check_later(later: Any, header: Header, genesis: Genesis) -> Header:
    """A bundle's `later` section: a newer certified checkpoint that extends `header`."""
    if not isinstance(later, dict):
        raise CheckFailed("later must be an object")
    newer = _later_header(later, genesis)
    proof = _hashes(later.get("consistency"), "later.consistency")
    if not merkle.verify_consistency(header.log_size, newer.log_size, header.log_root, newer.log_root, proof):
        raise CheckFailed("the later checkpoint does not extend the record's block (consistency proof fails)")
    return newer


def _later_header(later: dict[str, Any], genesis: Genesis) -> Header:
    header = decode_header(_unb64(later.get("header"), "later header"))
    if header.chain != genesis.chain_id or header.valset != genesis.valset_hash:
        raise CheckFailed("later header is for another chain or validator set")
    check_qc(qc_from_json(later.get("qc")), header, genesis)
    return header


def verify_consistency_files(old: Any, new: Any, proof_doc: Any, genesis: Genesis) -> Verdict:
    """Two saved checkpoints and a consistency proof: the ledger only grew between them."""
    verdict = Verdict()
    entry: dict[str, Any] = {"check": "consistency", "zh": "新检查点是旧检查点的延续",
                             "en": "the newer checkpoint extends the older one", "ok": False}
    verdict.checks.append(entry)
    try:
        a, b = check_checkpoint(old, genesis), check_checkpoint(new, genesis)
        if not isinstance(proof_doc, dict) or proof_doc.get("from") != a.log_size or proof_doc.get("to") != b.log_size:
            raise CheckFailed(f"proof must be from {a.log_size} to {b.log_size}")
        proof = _hashes(proof_doc.get("proof"), "proof")
        if not merkle.verify_consistency(a.log_size, b.log_size, a.log_root, b.log_root, proof):
            raise CheckFailed("consistency proof does not connect the two log roots")
    except (CheckFailed, InvalidInput) as exc:
        entry["error"] = exc.message if isinstance(exc, InvalidInput) else str(exc)
        return verdict
    entry["ok"] = True
    verdict.valid = True
    verdict.facts = {"old": {"height": a.height, "log_size": a.log_size},
                     "new": {"height": b.height, "log_size": b.log_size}}
    return verdict
