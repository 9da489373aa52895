"""Answers for auditors (docs/verification.md), each with a proof for every record.

Every answer carries one `checkpoint` (a header with its QC) and, for every
record it returns, the envelope, its leaf index and an inclusion proof against
that checkpoint's `log_root`, so the whole answer verifies offline with the
genesis file alone (`python -m ledgernode verify --kind ...`). What an answer
cannot prove is that it is complete: a node could leave a record out. See
docs/verification.md.
"""

from __future__ import annotations

from typing import Any

from .derive import certificate_status, dataset_grants
from .errors import InvalidInput, NotFound
from .evidence import b64
from .genesis import Genesis
from .records import Envelope, decode_envelope

SUBJECT_PAGE_DEFAULT = 100
SUBJECT_PAGE_MAX = 1_000
PROVENANCE_DEPTH_MAX = 16
PROVENANCE_NODES_MAX = 500
SHARES_RECORDS_MAX = 1_000
CERT_RECORDS_MAX = 1_000


def checkpoint(store: Any, height: int | None = None) -> dict[str, Any]:
    """Header + QC at `height` (default: the head); NotFound if there is none."""
    height = store.height if height is None else height
    if not 1 <= height <= store.height:
        raise NotFound(f"no block at height {height} (head is {store.height})")
    header = store.load_header(height)
    return {
        "height": height, "header": b64(header.raw), "qc": store.load_qc(height).to_json(),
        "log_size": header.log_size, "log_root": header.log_root.hex(),
    }


def consistency(store: Any, old_size: int, new_size: int) -> dict[str, Any]:
    if not 0 <= old_size <= new_size <= store.log_size:
        raise InvalidInput("bad_range", f"need 0 <= from <= to <= {store.log_size} (the log size)")
    return {"from": old_size, "to": new_size,
            "proof": [h.hex() for h in store.consistency_proof(old_size, new_size)]}


class _Answer:
    """Collects records with proofs against one checkpoint (the head when created)."""

    def __init__(self, store: Any, genesis: Genesis) -> None:
        if store.height == 0:
            raise NotFound("the ledger is empty")
        self.store, self.genesis = store, genesis
        self.cp = checkpoint(store)
        self.size = self.cp["log_size"]

    def entry(self, leaf: int) -> tuple[dict[str, Any], Envelope]:
        raw = self.store.load_envelope(leaf)
        env = decode_envelope(raw, self.genesis)
        assert leaf < self.size
        return {
            "id": env.record_id.hex(), "leaf_index": leaf, "height": self.store.height_of_leaf(leaf),
            "envelope": b64(raw), "inclusion": [h.hex() for h in self.store.inclusion_proof(leaf, self.size)],
        }, env

    def subject_entries(self, subject: str, limit: int) -> list[tuple[dict[str, Any], Envelope]]:
        """All records about `subject`; refuse rather than silently cut a long history."""
        leaves = [leaf for leaf in self.store.subject_leaves(subject, -1, limit + 1) if leaf < self.size]
        if len(leaves) > limit:
            raise InvalidInput("history_too_long", f"{subject!r} has more than {limit} records; "
                               "page through /v1/subjects/{subject} instead", 422)
        return [self.entry(leaf) for leaf in leaves]


def subject_history(store: Any, genesis: Genesis, subject: str, after: int = -1,
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


def cert_status(store: Any, genesis: Genesis, number: str, at_ms: int) -> dict[str, Any]:
    answer = _Answer(store, genesis)
    entries = [(e, env) for e, env in answer.subject_entries(number, CERT_RECORDS_MAX)
               if env.record.type.startswith("cert.")]
    status = certificate_status([env for _, env in entries], at_ms)
    issuer = genesis.signers.get(status.issuer_key) if status.issuer_key else None
    deciding = set(status.deciding)
    return {
        "kind": "status", "number": number, "at": at_ms, "status": status.status,
        "issuer": issuer.dept if issuer else None, "checkpoint": answer.cp,
        "records": [e for e, env in entries if env.record_id in deciding],
    }


def dataset_shares(store: Any, genesis: Genesis, dataset: str) -> dict[str, Any]:
    answer = _Answer(store, genesis)
    entries = answer.subject_entries(dataset, SHARES_RECORDS_MAX)
    owner = store.load_fact("owner", dataset)
    if owner is None:
        raise NotFound(f"dataset {dataset!r} was never published")
    return {"kind": "shares", "dataset": dataset, "owner": owner["dept"], "checkpoint": answer.cp,
            "records": [e for e, _ in entries],
            "grants": dataset_grants([env for _, env in entries], genesis)}


def provenance(store: Any, genesis: Genesis, record_id: bytes, depth: int) -> dict[str, Any]:
    if not 0 <= depth <= PROVENANCE_DEPTH_MAX:
        raise InvalidInput("bad_depth", f"depth must be 0 to {PROVENANCE_DEPTH_MAX}")
    answer = _Answer(store, genesis)
    where = store.locate(record_id)
    if where is None:
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
        leaf, _ = store.locate(rid)
        entry, env = answer.entry(leaf)
        nodes[rid] = entry
        for ref in env.record.refs:
            edges.append([rid.hex(), ref.hex()])
            if level < depth:
                frontier.append((ref, level + 1))
    return {"kind": "provenance", "root": record_id.hex(), "depth": depth, "checkpoint": answer.cp,
            "records": list(nodes.values()), "edges": edges, "truncated": truncated}
