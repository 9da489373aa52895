"""The pre-authentication gate of the peer port (docs/security.md, peer port).

`Gate` stands in front of aiohttp's protocol for every accepted connection: past
PREAUTH_CONNECTIONS_MAX unauthenticated connections in total, or PREAUTH_PER_ADDRESS_MAX
from one address, a new one is closed at once; an admitted one is aborted
PREAUTH_LIFETIME_S after the accept, or past PREAUTH_BYTES_MAX received, unless it has
authenticated by then (the handshake calls `PreAuth.leave`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from . import handshake

PREAUTH_LIFETIME_S = handshake.HANDSHAKE_TIMEOUT_S + handshake.CLOSE_TIMEOUT_S  # then the gate aborts it
PREAUTH_BYTES_MAX = 8_192  # all an unauthenticated connection may send: upgrade request (~300) + auth frame
PREAUTH_CONNECTIONS_MAX = 64  # unauthenticated connections at once, in total
PREAUTH_PER_ADDRESS_MAX = 8  # ... and from one source address


@dataclass
class Pending:
    """One connection that has not authenticated yet."""

    address: str
    deadline: float  # loop time
    received: int = 0  # bytes, counted by the gate
    counted: bool = False  # its refusal is counted (once per connection, under the first cause)


class PreAuth:
    """The unauthenticated connections of one node, by transport: how many, from where, until when."""

    def __init__(self, total_max: int = PREAUTH_CONNECTIONS_MAX,
                 per_address_max: int = PREAUTH_PER_ADDRESS_MAX) -> None:
        self.total_max, self.per_address_max = total_max, per_address_max
        self.pending: dict[object, Pending] = {}
        self.per_address: dict[str, int] = {}

    def enter(self, key: object, address: str, deadline: float) -> str | None:
        """Admit a connection, or return why not (a counter name): the caps are full."""
        if len(self.pending) >= self.total_max:
            return "peer_preauth_total_full"
        if self.per_address.get(address, 0) >= self.per_address_max:
            return "peer_preauth_address_full"
        self.pending[key] = Pending(address, deadline)
        self.per_address[address] = self.per_address.get(address, 0) + 1
        return None

    def get(self, key: object) -> Pending | None:
        return self.pending.get(key)

    def leave(self, key: object) -> None:
        """The connection authenticated or ended (idempotent)."""
        entry = self.pending.pop(key, None)
        if entry is not None:
            left = self.per_address[entry.address] - 1
            if left:
                self.per_address[entry.address] = left
            else:
                del self.per_address[entry.address]

    def __len__(self) -> int:
        return len(self.pending)


class Refuser(Protocol):
    """What the gate needs of the peer network: the caps, and how to count a refusal."""

    preauth: PreAuth

    def refuse(self, cause: str, address: str, why: object) -> None: ...

    def refuse_pending(self, entry: Pending, cause: str, why: object) -> None: ...


def address_of(transport: Any) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if isinstance(peer, (tuple, list)) and peer else "unknown"


class Gate(asyncio.Protocol):
    """Stands in front of aiohttp's protocol for one accepted connection on the peer port.

    Refuses it at once past the caps (no aiohttp handler is built for it), aborts it
    PREAUTH_LIFETIME_S after the accept or past PREAUTH_BYTES_MAX received if it has not
    authenticated by then, and otherwise passes every call through. Authentication is
    `preauth.leave(transport)`, done when the handshake verified.
    """

    def __init__(self, network: Refuser, factory: Callable[[], asyncio.Protocol]) -> None:
        self.network, self.factory = network, factory
        self.inner: asyncio.Protocol | None = None
        self.transport: Any = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP server's connections
        self.transport = transport
        net, loop = self.network, asyncio.get_running_loop()
        address = address_of(transport)
        cause = net.preauth.enter(transport, address, loop.time() + handshake.HANDSHAKE_TIMEOUT_S)
        if cause is not None:
            net.refuse(cause, address, f"{len(net.preauth)} unauthenticated connections open")
            transport.abort()
            return
        self.timer = loop.call_later(PREAUTH_LIFETIME_S, self._expire)
        self.inner = self.factory()
        self.inner.connection_made(transport)

    def _expire(self) -> None:
        entry = self.network.preauth.get(self.transport)
        if entry is not None:
            self.network.refuse_pending(entry, "peer_preauth_timeout",
                                        f"not authenticated {PREAUTH_LIFETIME_S:g} s after connecting")
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.inner is None:
            return
        entry = self.network.preauth.get(self.transport)
        if entry is not None:
            entry.received += len(data)
            if entry.received > PREAUTH_BYTES_MAX:
                self.network.refuse_pending(entry, "peer_preauth_too_large",
                                            f"sent more than {PREAUTH_BYTES_MAX} bytes before authenticating")
                self.transport.abort()
                return
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.inner is not None:
            self.network.preauth.leave(self.transport)
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()
