"""Evidence (docs/protocol.md section 5): evidence.notarize fixes a document's hash on
the ledger. It has no rule beyond section 4 and writes no fact; what proves it later
is the evidence bundle any committed record has (auditing/bundle.py).
"""

from __future__ import annotations

from .schema import HASH, TEXT, TIME, Family, Field, RecordType

NOTARIZE = RecordType("evidence.notarize", (
    Field("content_hash", HASH), Field("media_type", TEXT), Field("size", TIME), Field("title", TEXT),
))
FAMILY = Family("evidence", (NOTARIZE,))
