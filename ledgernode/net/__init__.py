"""Authenticated peer links between validators over websockets.

Theory of operation. Every node listens on its peer address and dials every
node its `[peers]` names; a link is used in one direction only: we *send* on
the links we dialled and *receive* on the links others dialled to us. Each
link starts with a handshake that both sides sign with their Ed25519 keys over
(chain_id, both public keys, both fresh nonces), so a link proves who is at
the other end and cannot be replayed; a node takes links only from the keys it
dials and those its `admits` names (the validators of its sets). Peers are
named locally by link ids (`book`). Anything else is refused and counted.

Modules: `links` (PeerNetwork: dialling, send queues, frames), `book` (link ids
by public key), `handshake` (the
signed hello/auth/auth-ok and the websocket frame limits), `gate` (the caps on
unauthenticated connections), `faults` (test-only drops, delays and partitions,
seeded).

Hostile clients. Anyone can reach the peer port; until a connection has
authenticated it may cost the node only a few KiB and a few seconds:

- `serve()` listens behind a gate (`_Gate`) that sees each connection from the
  moment it is accepted. Past PREAUTH_CONNECTIONS_MAX unauthenticated
  connections in total, or PREAUTH_PER_ADDRESS_MAX from one source address, a
  new one is closed at once (before aiohttp builds anything for it). An
  admitted one is aborted if it has not authenticated PREAUTH_LIFETIME_S after
  it was accepted (slow or silent HTTP included), or once it has sent more than
  PREAUTH_BYTES_MAX bytes (request line, headers and websocket frames).
- `handle_inbound` (also usable on any aiohttp app, without the gate) reads the
  handshake with a frame limit of HANDSHAKE_MAX_BYTES, under a deadline of
  HANDSHAKE_TIMEOUT_S from the accept (or from the request, without the gate),
  and applies the same connection caps. Only after the signature verified does
  it raise the link's frame limit to FRAME_MAX_BYTES (`_raise_frame_limit`).
- Every refused connection is counted once in `counters` (the node's /metrics
  ledgernode_events_total{event=...}): `peer_refused` (a failed or late
  handshake), `peer_preauth_total_full`, `peer_preauth_address_full`,
  `peer_preauth_timeout`, `peer_preauth_too_large`. Each is logged through one
  `Throttle`: at most one WARNING per cause per REFUSED_LINE_S, however many
  arrive. (A request for a websocket subprotocol is refused before aiohttp
  sees it: aiohttp would log a WARNING of its own for each.)
- The dialler gives connecting, the upgrade and the handshake HANDSHAKE_TIMEOUT_S
  in all, and reads frames of HANDSHAKE_MAX_BYTES only: the server sends
  nothing else. Frames over FRAME_MAX_BYTES are dropped before sending
  (`send_frame_too_large_dropped`): the receiver would close the link on them.
"""

from __future__ import annotations

from .faults import Faults
from .gate import PREAUTH_BYTES_MAX, PREAUTH_CONNECTIONS_MAX, PREAUTH_LIFETIME_S, PREAUTH_PER_ADDRESS_MAX, PreAuth
from .handshake import CLOSE_TIMEOUT_S, HANDSHAKE_MAX_BYTES, HANDSHAKE_TIMEOUT_S, NONCE_BYTES, auth_bytes
from .links import (
    FRAME_MAX_BYTES, FRAME_OVERHEAD_MAX_BYTES, GOSSIP_MAX_RECORDS, PEER_PATH, REFUSED_LINE_S, PeerNetwork,
)

__all__ = [
    "CLOSE_TIMEOUT_S", "FRAME_MAX_BYTES", "FRAME_OVERHEAD_MAX_BYTES", "Faults", "GOSSIP_MAX_RECORDS",
    "HANDSHAKE_MAX_BYTES", "HANDSHAKE_TIMEOUT_S", "NONCE_BYTES", "PEER_PATH", "PREAUTH_BYTES_MAX",
    "PREAUTH_CONNECTIONS_MAX", "PREAUTH_LIFETIME_S", "PREAUTH_PER_ADDRESS_MAX", "PeerNetwork", "PreAuth",
    "REFUSED_LINE_S", "auth_bytes",
]
