"""Tracing (docs/protocol.md section 5): trace.event, one step in a product's or a
batch's life. It has no rule beyond section 4 and writes no fact; its `refs` name the
inputs the event derives from (W3C PROV wasDerivedFrom), which the provenance answer
follows (auditing/answers.py).
"""

from __future__ import annotations

from .schema import HASH, TEXT, Family, Field, RecordType

EVENT = RecordType("trace.event", (
    Field("activity", TEXT), Field("content_hash", HASH, required=False), Field("location", TEXT, required=False),
))
FAMILY = Family("trace", (EVENT,))
