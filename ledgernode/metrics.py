"""What a node tells about itself: the `/v1/status` document and the `/metrics` page
(Prometheus text format) that ledgernode/api/views.py serves, both read from the
running node's parts. Their names and shapes are what operators and tools read
(ledgernode/client.py, ledgernode/bench.py), so they live in one place, apart from
the runtime that keeps the numbers (node.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .api import render_rejected

if TYPE_CHECKING:
    from .node import Node

STATUS_EVIDENCE_MAX = 20  # the newest equivocation cases /v1/status lists


def status_document(node: Node) -> dict[str, Any]:
    r = node.replica
    return {
        # the node's key, and its position in the genesis (null: a node that joined later)
        "chain_id": node.genesis.chain_id, "key_id": node.key.public.key_id,
        "index": node.genesis.validator_set.index_of(node.key.public.raw),
        # this node's index in the set of the height it decides (null: it follows, its key
        # is in no set now), and that set's size (docs/governance.md section 5)
        "validator": r.me, "validators": r.n,
        "height": node.store.height, "round": r.round, "primary": r.primary(r.round),
        "skipped": sorted(r.cur.suspects),  # primaries that missed their last turn (consensus/turns.py)
        "ticks": node.ticks, "round_timeout_ticks": r.timeout_ticks(),
        "log_size": node.store.log_size, "mempool": len(node.mempool),
        "rejected_kept": len(node.outcomes), "waiting": node.outcomes.waiting(),
        "peers": {str(k): v for k, v in node.net.peer_states().items()},
        "evidence": [
            {"validator": v, "kind": k, "height": h, "round": r_}
            for (v, k, h, r_) in list(node.witness.slots)[-STATUS_EVIDENCE_MAX:]
        ],
    }


def metrics_text(node: Node) -> str:
    lines = [
        "# TYPE ledgernode_height gauge", f"ledgernode_height {node.store.height}",
        "# TYPE ledgernode_round gauge", f"ledgernode_round {node.replica.round}",
        "# TYPE ledgernode_log_size gauge", f"ledgernode_log_size {node.store.log_size}",
        "# TYPE ledgernode_mempool_records gauge", f"ledgernode_mempool_records {len(node.mempool)}",
        "# TYPE ledgernode_rejected_kept gauge", f"ledgernode_rejected_kept {len(node.outcomes)}",
        "# TYPE ledgernode_evidence gauge", f"ledgernode_evidence {len(node.witness.slots)}",
        "# TYPE ledgernode_reads_inflight gauge", f"ledgernode_reads_inflight {node.reads.inflight}",
        "# TYPE ledgernode_peer_up gauge",
    ]
    for peer, st in node.net.peer_states().items():
        lines.append(f'ledgernode_peer_up{{peer="{peer}"}} {1 if st["out"] == "up" else 0}')
    lines.append("# TYPE ledgernode_events_total counter")
    for name, value in sorted({**node.counters, **node.net.counters, **node.guard.counters}.items()):
        lines.append(f'ledgernode_events_total{{event="{name}"}} {value}')
    lines.append("# TYPE ledgernode_rejected_total counter")
    for code, value in sorted(node.rejected.items()):
        lines.append(f'ledgernode_rejected_total{{reason="{code}"}} {value}')
    api = node.api_server.render_metrics() if node.api_server is not None else ""
    return "\n".join(lines) + "\n" + render_rejected(node.api_rejected) + api
