"""How many API connections the node may hold open at once (api/server.py): the cap.

`connections_max(limits)` is limits.api_connections_max, or when that is 0 (the default)
the process's soft RLIMIT_NOFILE minus FD_RESERVE (LevelDB's table files, two sockets per
possible peer validator, logs and the rest, sockets being accepted or closed), at least
API_CONNECTIONS_FLOOR. What happens to a connection arriving at the cap is the pool's
business (api/connections.py).
"""

from __future__ import annotations

from ..config import Limits
from ..genesis import VALIDATORS_MAX
from .listening import ACCEPT_BATCH

try:
    import resource
except ImportError:  # pragma: no cover - not on POSIX
    resource = None  # type: ignore[assignment]

FD_RESERVE_LEVELDB = 1_000  # LevelDB's default max_open_files: table files it may keep open
FD_RESERVE_PEERS = 2 * VALIDATORS_MAX  # an inbound and an outbound link per other validator
FD_RESERVE_OTHER = 128  # logs, stdio, epoll, listening sockets, thread pools, files read at start
# Sockets accepted but not yet counted open, and evicted ones not yet closed: at most a
# few batches (a transport is made, and an aborted one closed, one loop turn later).
FD_RESERVE_ACCEPT = 3 * ACCEPT_BATCH
FD_RESERVE = FD_RESERVE_LEVELDB + FD_RESERVE_PEERS + FD_RESERVE_OTHER + FD_RESERVE_ACCEPT
API_CONNECTIONS_FLOOR = 256  # the derived cap never goes below this, whatever the fd limit
FD_UNLIMITED = 1 << 20  # stands for RLIM_INFINITY when deriving the cap


def connections_max(limits: Limits, nofile_soft: int | None = None) -> int:
    """limits.api_connections_max, or derived from the soft fd limit (module docstring)."""
    if limits.api_connections_max:
        return limits.api_connections_max
    return max(API_CONNECTIONS_FLOOR, fd_soft_limit(nofile_soft) - FD_RESERVE)


def fd_soft_limit(nofile_soft: int | None = None) -> int:
    if nofile_soft is None:
        if resource is None:  # pragma: no cover
            return API_CONNECTIONS_FLOOR + FD_RESERVE
        nofile_soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if nofile_soft == resource.RLIM_INFINITY:
            nofile_soft = FD_UNLIMITED
    return nofile_soft
