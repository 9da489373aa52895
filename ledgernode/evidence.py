"""Evidence bundles (DESIGN section 6): built from a store, read by the verifier.

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


def build_bundle(store: Any, genesis: Genesis, record_id: bytes) -> dict[str, Any]:
    """The evidence bundle of a committed record; NotFound if it is not committed."""
    where = store.locate(record_id)
    if where is None:
        raise NotFound(f"record {record_id.hex()} is not committed")
    leaf_index, height = where
    header = store.load_header(height)
    assert header.log_start <= leaf_index < header.log_size, "record index points outside its block"
    return {
        "format": FORMAT,
        "chain_id": genesis.chain_id,
        "genesis_hash": genesis.genesis_hash,
        "record_id": record_id.hex(),
        "envelope": b64(store.load_envelope(leaf_index)),
        "leaf_index": leaf_index,
        "block": {"header": b64(header.raw), "qc": store.load_qc(height).to_json()},
        "inclusion": [h.hex() for h in store.inclusion_proof(leaf_index, header.log_size)],
    }
