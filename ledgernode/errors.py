"""Exceptions shared by every layer.

`InvalidInput` is the one error for bad bytes or requests from a client or a peer:
the caller counts it by `code`, drops the input and (over HTTP) answers 4xx.
Our own invariants use `assert` and are never caught.
"""

from __future__ import annotations


class InvalidInput(Exception):
    """Input from outside the node that breaks a rule. Never a bug of ours.

    `code` is a short stable machine name (`non_canonical`, `bad_signature`, ...)
    used for metrics and for the JSON error body; `message` says which rule broke.
    `status` is the HTTP status an API layer should answer with. `rule`, for a
    broken ledger rule (`code` "rule_violation"), names the rule
    (`cert.number_unused`, ...: docs/protocol.md section 5).
    """

    def __init__(self, code: str, message: str, status: int = 400, rule: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.rule = rule


class StorageError(Exception):
    """Base of the expected storage conditions below."""


class NotFound(StorageError):
    """A key that the caller may reasonably ask for is not stored."""


class StoreLocked(StorageError):
    """Another process holds the data directory."""


class StoreCorrupt(StorageError):
    """Bytes on disk fail a check that held when they were written."""


class StoreOutdated(StoreCorrupt):
    """The store was written in an earlier layout: whole, but rebuilt from its own blocks
    before use (docs/storage.md, "Opening"). A StoreCorrupt, so every path that rebuilds a
    damaged store rebuilds this one too."""


class StoreUnwritable(StorageError):
    """The host refuses a write (a full disk, an I/O error): the store is fine, the node stops."""


class NodeFailed(Exception):
    """The node cannot go on safely (a broken invariant, a failed disk write, a certified
    block that fails our rules); it stops, naming why."""
