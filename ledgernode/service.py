"""What the HTTP API asks of a running node: the contract between `api/` and `node.py`.

The API layer turns HTTP into these calls and their results (or InvalidInput /
Backpressure / NotFound) into JSON; it never touches consensus or storage
internals beyond the read-only `store` and `genesis`.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from .genesis import Genesis
from .records import Envelope
from .storage import Store

_T = TypeVar("_T")


class Backpressure(Exception):
    """The node cannot take more work now (mempool full): answer 503 with Retry-After."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimited(Backpressure):
    """A client's token bucket is empty (ledgernode/throttle.py): answer 429 with Retry-After."""


class CatchingUp(Backpressure):
    """The node is behind the network and cannot judge a record's dependencies yet (503)."""


@dataclass(frozen=True)
class Location:
    """Where a committed record sits."""

    record_id: bytes
    height: int
    leaf_index: int
    block_hash: bytes


@dataclass(frozen=True)
class Rejection:
    """A record that passed admission but can no longer commit (a rival got in
    first, or its ts fell out of the window): docs/protocol.md section 5."""

    record_id: bytes
    code: str
    message: str
    height: int  # the height being built or just committed when it was refused
    rule: str | None = None


Outcome = Location | Rejection  # how a waited-for record ended


@dataclass(frozen=True)
class Submitted:
    """Result of admitting one envelope: committed (with location) or pending."""

    envelope: Envelope
    location: Location | None  # None: pending in the mempool


def locate_in(store: Store, record_id: bytes) -> Location | None:
    """Where a committed record sits in `store`, or None."""
    where = store.locate(record_id)
    if where is None:
        return None
    leaf, height = where
    return Location(record_id, height, leaf, store.load_header(height).block_hash)


class NodeService(Protocol):
    genesis: Genesis
    store: Store

    async def submit(self, raws: list[bytes]) -> list[Submitted | Exception]:
        """Validate and admit envelopes (one result per input, in order).

        A record already committed yields its Location and commits nothing new.
        Per-item failures are InvalidInput (4xx) or Backpressure (503)."""

    async def wait_committed(self, record_ids: list[bytes], timeout_s: float) -> list[Outcome | None]:
        """Wait (bounded) until each record commits or is rejected; None for those
        still pending when the time is up."""

    async def wait_height(self, height: int, timeout_s: float) -> None:
        """Return once the committed height is above `height`, or when `timeout_s` is up
        (the event stream's wake-up, api/events.py)."""

    def locate(self, record_id: bytes) -> Location | None: ...

    def pending(self, record_id: bytes) -> Envelope | None:
        """The envelope if the record waits in our mempool, else None."""

    def rejection(self, record_id: bytes) -> Rejection | None:
        """Why the record was dropped after admission, while that is remembered
        (limits `rejected_kept_ms`, `rejected_kept_max`), else None."""

    async def read(self, fn: Callable[..., _T], *args: Any) -> _T:
        """`fn(*args)` off the event loop, bounded (reads.py): Backpressure (503) when
        too many are in flight."""

    def equivocations(self, after: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """(seq, proof) of kept equivocation cases with seq > after (docs/security.md section 5)."""

    def status(self) -> dict[str, Any]:
        """height, round, primary, peers (index -> state), mempool size, evidence count."""

    def readiness(self) -> dict[str, Any]:
        """GET /readyz: {"ready", "reasons", ...}: caught up, and a quorum of validators reachable."""

    def metrics(self) -> str:
        """Prometheus text exposition."""

    def set_faults(self, spec: dict[str, Any]) -> None:
        """Debug only (config debug_endpoints): drop/delay/partition peer traffic."""
