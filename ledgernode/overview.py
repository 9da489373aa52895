"""The fields GET /v1/status adds for the browser console's overview (ledgernode/console):
the head block's time, each validator of the current set with its department, the state
of this node's link to it and the last height whose commit certificate carries its vote,
and the mempool's capacity. metrics.status_document holds the rest of the document."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .node import Node

# Heights looked back for each validator's last vote: a bounded read per status request
# (one QC each); a validator with no vote in these shows null.
VOTES_LOOKBACK_HEIGHTS = 16


def last_votes(node: Node, lookback: int = VOTES_LOOKBACK_HEIGHTS) -> dict[bytes, int]:
    """Validator public key -> the highest of the last `lookback` heights its vote certified."""
    votes: dict[bytes, int] = {}
    head = node.store.height
    for height in range(head, max(0, head - lookback), -1):
        keys = node.roster.set_at(height).keys
        for index, _ in node.store.load_qc(height).signatures:
            if 0 <= index < len(keys):
                votes.setdefault(keys[index].raw, height)
    return votes


def overview_fields(node: Node) -> dict[str, Any]:
    head = node.store.head()
    members = node.store.members(node.genesis)
    votes = last_votes(node)
    me, r = node.key.public.raw, node.replica
    primary = r.primary(r.round)
    validators = []
    for index, v in enumerate(members.validators):
        raw = v.pubkey.raw
        link = "self" if raw == me else ("up" if node.net.link_up(raw) else "down")
        validators.append({"index": index, "dept": v.dept, "name": v.name, "key_id": v.pubkey.key_id,
                           "link": link, "last_vote": votes.get(raw), "primary": index == primary})
    return {"head_time_ms": None if head is None else head.time, "mempool_max": node.limits.mempool_max_records,
            "validator_list": validators}
