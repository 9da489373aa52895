"""ledgernode: a permissioned ledger that government departments run together."""

__version__ = "0.1.0"
