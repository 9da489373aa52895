"""What the builders of bundles and answers read from a node's ledger.

The node's store (docs/storage.md) provides all of it; naming only what the
builders read keeps this package free of the storage layer, so the verifier the
auditors run imports no database library.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..blocks import QC, Header
from ..merkle import NodeReader
from ..maptree import StateMap


class ListTree(NodeReader, Protocol):
    """One record list's tree, and the leaf indexes at its positions."""

    def leaves(self, start: int, end: int) -> list[int]: ...


class LedgerReader(Protocol):
    """Committed blocks, their records and Merkle proofs, read-only."""

    @property
    def height(self) -> int:
        """The height of the newest committed block (0 while there is none)."""

    @property
    def log_size(self) -> int:
        """The number of leaves (committed records) in the log."""

    def head(self) -> Header | None: ...

    def load_header(self, height: int) -> Header: ...

    def load_qc(self, height: int) -> QC: ...

    def load_envelope(self, leaf_index: int) -> bytes: ...

    def locate(self, record_id: bytes) -> tuple[int, int] | None:
        """(leaf_index, height) of a committed record, or None."""

    def height_of_leaf(self, leaf_index: int) -> int: ...

    def subject_leaves(self, subject: str, after: int = -1, limit: int = 100) -> list[int]:
        """Leaf indexes of the records about `subject`, in log order, after `after`."""

    def load_fact(self, kind: str, key: str) -> dict[str, Any] | None: ...

    def facts_of(self, kind: str, after: str = "", limit: int = ...) -> list[tuple[str, dict[str, Any]]]:
        """Facts of one kind in key order, from the first key after `after`."""

    def inclusion_proof(self, leaf_index: int, size: int) -> list[bytes]: ...

    def inclusion_proofs(self, leaf_indexes: Sequence[int], size: int) -> list[list[bytes]]:
        """One proof per leaf, in a log of `size`."""

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]: ...

    def map_at(self, root: bytes) -> StateMap: ...

    def list_nodes(self, list_path: bytes) -> ListTree: ...
