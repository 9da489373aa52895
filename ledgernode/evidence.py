"""Evidence bundles (docs/protocol.md section 8): built from a store, read by the verifier.

The bundle proves one record against the header of the block that committed
it: the QC certifies the header, the header's `log_root` covers the leaf.
"""

from __future__ import annotations

import base64
from typing import Any

from .errors import NotFound
from .genesis import Genesis

FORMAT = "ledgernode-evidence/1"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def build_bundle(store: Any, genesis: Genesis, record_id: bytes, later: bool = False) -> dict[str, Any]:
    """The evidence bundle of a committed record; NotFound if it is not committed.

    With `later`, add the newest checkpoint and a consistency proof from the
    record's block to it (when the log has grown since)."""
    where = store.locate(record_id)
    if where is None:
        raise NotFound(f"record {record_id.hex()} is not committed")
    leaf_index, height = where
    header = store.load_header(height)
    assert header.log_start <= leaf_index < header.log_size, "record index points outside its block"
    bundle = {
        "format": FORMAT,
        "chain_id": genesis.chain_id,
        "genesis_hash": genesis.genesis_hash,
        "record_id": record_id.hex(),
        "envelope": b64(store.load_envelope(leaf_index)),
        "leaf_index": leaf_index,
        "block": {"header": b64(header.raw), "qc": store.load_qc(height).to_json()},
        "inclusion": [h.hex() for h in store.inclusion_proof(leaf_index, header.log_size)],
    }
    if later and store.log_size > header.log_size:
        newest = store.head()
        bundle["later"] = {
            "header": b64(newest.raw), "qc": store.load_qc(newest.height).to_json(),
            "consistency": [h.hex() for h in store.consistency_proof(header.log_size, newest.log_size)],
        }
    return bundle
