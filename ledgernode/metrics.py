"""What a node tells about itself: the `/v1/status` document and the `/metrics` page
(Prometheus text format) that ledgernode/api/views.py serves, both read from the
running node's parts. Their names and shapes are what operators and tools read
(ledgernode/client.py, ledgernode/bench.py), so they live in one place, apart from
the runtime that keeps the numbers (node.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .api import render_rejected
from .histogram import Histogram
from .threadcpu import cpu_by_kind

if TYPE_CHECKING:
    from .node import Node

STATUS_EVIDENCE_MAX = 20  # the newest equivocation cases /v1/status lists
# Bucket bounds of the node's histograms: seconds, records and bytes. Commits take tens of
# ms on a quiet network and seconds under a full closed-loop load (docs/performance.md);
# a block holds at most the genesis's block_max_records (5,000 by default).
SUBMIT_TO_COMMIT_SECONDS_BOUNDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BLOCK_RECORDS_BOUNDS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
BLOCK_BYTES_BOUNDS = (1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20)


@dataclass
class CommitHistograms:
    """What the node observes at each commit: its records' wait and the block's size."""

    submit_to_commit: Histogram = field(default_factory=lambda: Histogram(
        "ledgernode_submit_to_commit_seconds",
        "From a client's request admitting a record at this node to the record's block on disk here.",
        SUBMIT_TO_COMMIT_SECONDS_BOUNDS))
    block_records: Histogram = field(default_factory=lambda: Histogram(
        "ledgernode_block_records", "Records per committed block.", BLOCK_RECORDS_BOUNDS))
    block_bytes: Histogram = field(default_factory=lambda: Histogram(
        "ledgernode_block_bytes", "Bytes per committed block (header and envelopes).", BLOCK_BYTES_BOUNDS))

    def committed(self, records: int, size_bytes: int, waited_s: list[float]) -> None:
        self.block_records.observe(records)
        self.block_bytes.observe(size_bytes)
        for seconds in waited_s:
            self.submit_to_commit.observe(seconds)

    def render(self) -> str:
        return "".join(h.render() for h in (self.submit_to_commit, self.block_records, self.block_bytes))


def status_document(node: Node) -> dict[str, Any]:
    r = node.replica
    return {
        # the node's key, and its position in the genesis (null: a node that joined later)
        "chain_id": node.genesis.chain_id, "key_id": node.key.public.key_id,
        "index": node.genesis.validator_set.index_of(node.key.public.raw),
        # this node's index in the set of the height it decides (null: it follows, its key
        # is in no set now), and that set's size (docs/governance.md section 5)
        "validator": r.me, "validators": r.n,
        "reads": node.cfg.reads,  # "open" or "authenticated" (docs/security.md section 9)
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


def readiness_document(node: Node) -> dict[str, Any]:
    """GET /readyz: ready when the node has caught up with the heights its peers told it
    of and can reach a quorum of the current validator set (itself counted if it is one),
    so a load balancer sends clients only to nodes whose answers are current and whose
    submissions can commit. `reasons` says what is missing."""
    vset = node.roster.current
    me = node.key.public.raw
    reachable = sum(1 for k in vset.keys if k.raw == me or node.net.link_up(k.raw))
    reasons = []
    if node.behind():
        reasons.append(f"catching up: height {node.store.height}, a peer is at {node.peer_height}")
    if reachable < vset.quorum:
        reasons.append(f"{reachable} of the {vset.n} validators reachable (this node counted if it is one); "
                       f"a quorum is {vset.quorum}")
    return {"ready": not reasons, "height": node.store.height, "peer_height": node.peer_height,
            "validators_reachable": reachable, "quorum": vset.quorum, "reasons": reasons}


def _series(name: str, kind: str, help_text: str) -> list[str]:
    """The # HELP and # TYPE lines of one series (Prometheus text format)."""
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def metrics_text(node: Node) -> str:
    gauges = [
        ("ledgernode_height", "Committed height of this node's ledger.", node.store.height),
        ("ledgernode_round", "Consensus round at the height being decided.", node.replica.round),
        ("ledgernode_log_size", "Records in the Merkle log (leaves).", node.store.log_size),
        ("ledgernode_mempool_records", "Records admitted and waiting for a block.", len(node.mempool)),
        ("ledgernode_mempool_max_records", "Records the mempool holds at most (limits.mempool_max_records).",
         node.mempool.max_records),
        ("ledgernode_rejected_kept", "Records dropped after admission whose reason is still reported.",
         len(node.outcomes)),
        ("ledgernode_evidence", "Equivocation cases (a validator's two values for one slot) kept.",
         len(node.witness.slots)),
        ("ledgernode_reads_inflight", "Auditors' reads (bundles, answers) running now.", node.reads.inflight),
        ("ledgernode_ready", "1 while GET /readyz answers 200 (caught up, a quorum reachable).",
         1 if readiness_document(node)["ready"] else 0),
    ]
    lines = [line for name, help_text, value in gauges
             for line in (*_series(name, "gauge", help_text), f"{name} {value}")]
    lines += _series("ledgernode_store_leaf_hashes_refused_total", "counter",
                     "Stored leaf-hash blocks (h/) that failed their check; their proofs read the envelopes "
                     "instead (docs/storage.md): run `ledgernode check` on the stopped node.")
    lines.append(f"ledgernode_store_leaf_hashes_refused_total {node.store.leaf_blocks_refused}")
    lines += _series("ledgernode_thread_cpu_seconds_total", "counter",
                     "CPU seconds of this node's threads by kind: main (the event loop), disk, verify, "
                     "api-read, native (LevelDB's own threads) ... (ledgernode/threadcpu.py).")
    for kind, seconds in sorted(cpu_by_kind().items()):
        lines.append(f'ledgernode_thread_cpu_seconds_total{{threads="{kind}"}} {seconds:.2f}')
    lines += _series("ledgernode_peer_up", "gauge", "1 while this node's link to the peer is up, by link id and key.")
    for peer, st in node.net.peer_states().items():
        # the link id is this node's own name for the peer; its key names it on every node
        key_id = node.book.key(peer).key_id
        lines.append(f'ledgernode_peer_up{{peer="{peer}",key_id="{key_id}"}} {1 if st["out"] == "up" else 0}')
    lines += _series("ledgernode_events_total", "counter", "Link, catch-up and runtime events, by event.")
    for name, value in sorted({**node.counters, **node.net.counters, **node.guard.counters}.items()):
        lines.append(f'ledgernode_events_total{{event="{name}"}} {value}')
    lines += _series("ledgernode_rejected_total", "counter",
                     "Inputs the node dropped (admission, blocks, peers), by reason.")
    for code, value in sorted(node.rejected.items()):
        lines.append(f'ledgernode_rejected_total{{reason="{code}"}} {value}')
    api = node.api_server.render_metrics() if node.api_server is not None else ""
    return ("\n".join(lines) + "\n" + render_rejected(node.api_rejected) + api + node.histograms.render()
            + node.api_seconds.render() + node.throttle.render_metrics())
