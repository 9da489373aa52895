"""The peer-link handshake: both nodes sign who they are over fresh nonces (docs/security.md).

A node is named by its Ed25519 public key. The server (the node dialled) sends
`["hello", chain, its pubkey, nonce]`; the dialler, having checked that the key is the
one it dialled, answers `["auth", chain, its pubkey, the server's pubkey, the server's
nonce, its own nonce, signature]` and the server, once it admits that key (a validator
of its current or previous set, or a node its `[peers]` names) and the signature verifies,
`["auth-ok", signature]`. Each signature covers `auth_bytes(chain, signer's key, other's
key, their nonce, my nonce, channel)`, so a link proves who is at each end and a recorded
handshake cannot be replayed. Over TLS, `channel` is the SHA-256 of the certificate the
dialled node presented (ledgernode/tls.py): the dialled node signs and checks it as its
own, the dialler as the one it saw, so a link through anyone who terminates TLS with
another certificate fails to authenticate. On a plain link it is b"" and left out of
the signed bytes, which are then those of before. Until then frames are limited to HANDSHAKE_MAX_BYTES;
`raise_frame_limit` lifts the limit for an authenticated link.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Callable

from .. import codec, crypto
from ..aio import WSMsgType, web
from ..errors import InvalidInput

AUTH_PREFIX = b"ledgernode:peer-auth\n"
NONCE_BYTES = 16
HANDSHAKE_TIMEOUT_S = 5.0  # from accept to authenticated, HTTP upgrade included
HANDSHAKE_MAX_BYTES = 4_096  # largest frame before authentication: hello/auth/auth-ok are ~100-250 bytes
CLOSE_TIMEOUT_S = 1.0  # how long a refused peer gets to answer our close frame
HANDSHAKE_LIMITS = codec.Limits(input_max_bytes=HANDSHAKE_MAX_BYTES, str_max_bytes=256,
                                bin_max_bytes=128, array_max_len=8, map_max_len=0, depth_max=1)
WS_COMPRESS = False  # links carry signed msgpack: nothing to gain, and no inflating of hostile input
WS_DECODE_TEXT = True  # aiohttp's default (text frames are refused anyway)


def auth_bytes(chain: str, signer: bytes, other: bytes, their_nonce: bytes, my_nonce: bytes,
               channel: bytes = b"") -> bytes:
    """What each end signs: its own public key and the other's, both raw 32 bytes, and the
    TLS channel's binding (the dialled node's certificate fingerprint) when there is one."""
    parts: list[object] = [chain, signer, other, their_nonce, my_nonce]
    if channel:
        parts.append(channel)
    return AUTH_PREFIX + codec.encode(parts)


def ws_max_msg_size(frame_max_bytes: int) -> int:
    """aiohttp's max_msg_size for frames of up to `frame_max_bytes`: it refuses a frame of
    max_msg_size bytes or more (aiohttp 3.14 _websocket/reader_py.py), so one more."""
    return frame_max_bytes + 1


def raise_frame_limit(ws: web.WebSocketResponse, request: web.Request, frame_max_bytes: int) -> None:
    """From now on, let a prepared server websocket take frames of up to `frame_max_bytes`.

    aiohttp fixes max_msg_size when prepare() builds the connection's frame reader (the compiled
    reader keeps it in a C field) and offers no way to change it. So this builds a second reader
    of the same class, over the same queue of parsed messages, with the new limit, and makes the
    connection feed its bytes to that one. It is the one place that touches aiohttp's private
    attributes (checked against aiohttp 3.14.5; tests/unit/test_net_limits.py fails if they change):
    WebSocketResponse._parser (the reader; the response keeps it alive), WebSocketResponse._reader
    (the message queue) and RequestHandler._payload_parser (what data_received feeds).

    Call it only when the peer cannot have sent anything past the last frame read: bytes the old
    reader holds unparsed are not carried over. The handshake is lock-step (the dialler waits for
    auth-ok), so an honest validator has not; one that did only breaks its own link.
    """
    protocol = request.protocol
    old: Any = getattr(ws, "_parser", None)
    queue: Any = getattr(ws, "_reader", None)
    if old is None or queue is None or getattr(protocol, "_payload_parser", None) is not old:
        raise RuntimeError("aiohttp's websocket internals changed: review net/handshake.py raise_frame_limit")
    reader_class: Any = type(old)
    new = reader_class(queue, ws_max_msg_size(frame_max_bytes), compress=WS_COMPRESS, decode_text=WS_DECODE_TEXT)
    ws._parser = new
    protocol._payload_parser = new


async def close_refused(ws: web.WebSocketResponse, transport: asyncio.BaseTransport) -> None:
    """Send a refused peer our close frame; give up after CLOSE_TIMEOUT_S. A peer that does not
    read would keep the socket open while our frames wait to be sent: it is aborted."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await ws.close(code=4001, message=b"not an authenticated validator")
    except Exception:  # noqa: BLE001 - timed out, or the connection is gone already
        pass
    if isinstance(transport, asyncio.WriteTransport) and transport.get_write_buffer_size():
        transport.abort()


def _is_pubkey(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == crypto.PUBKEY_BYTES


async def dial(ws: Any, chain: str, key: crypto.PrivateKey, peer: crypto.PublicKey, channel: bytes = b"") -> None:
    """The dialler's side, on a connected websocket to the node of key `peer`; raises InvalidInput.
    `channel`: the fingerprint of the certificate the peer presented (b"" on a plain link)."""
    hello = codec.decode(await ws.receive_bytes(), HANDSHAKE_LIMITS)
    if not (isinstance(hello, list) and len(hello) == 4 and hello[0] == "hello"
            and hello[1] == chain and hello[2] == peer.raw
            and isinstance(hello[3], bytes) and len(hello[3]) == NONCE_BYTES):
        raise InvalidInput("bad_handshake", f"peer {peer.key_id} sent a bad hello (another chain or another key)")
    me = key.public.raw
    their_nonce, my_nonce = hello[3], os.urandom(NONCE_BYTES)
    sig = key.sign(auth_bytes(chain, me, peer.raw, their_nonce, my_nonce, channel))
    await ws.send_bytes(codec.encode(["auth", chain, me, peer.raw, their_nonce, my_nonce, sig]))
    reply = codec.decode(await ws.receive_bytes(), HANDSHAKE_LIMITS)
    expected = auth_bytes(chain, peer.raw, me, my_nonce, their_nonce, channel)
    if not (isinstance(reply, list) and len(reply) == 2 and reply[0] == "auth-ok"
            and isinstance(reply[1], bytes) and peer.verify(reply[1], expected)):
        raise InvalidInput("bad_handshake", f"peer {peer.key_id} failed to authenticate")


async def answer(ws: web.WebSocketResponse, chain: str, key: crypto.PrivateKey,
                 admit: Callable[[bytes], crypto.PublicKey | None], on_authenticated: Callable[[], None],
                 channel: bytes = b"") -> bytes:
    """The dialled side, on a prepared websocket: the peer's public key, once `admit` took
    it and its signature verified; raises InvalidInput. `on_authenticated` runs before
    auth-ok is sent (see below). `channel`: the fingerprint of this node's own certificate
    on a TLS link (b"" on a plain one)."""
    me, nonce = key.public.raw, os.urandom(NONCE_BYTES)
    await ws.send_bytes(codec.encode(["hello", chain, me, nonce]))
    msg = await ws.receive()
    if msg.type != WSMsgType.BINARY:
        raise InvalidInput("bad_handshake", "expected a binary auth frame")
    auth = codec.decode(msg.data, HANDSHAKE_LIMITS)
    if not (isinstance(auth, list) and len(auth) == 7 and auth[0] == "auth"
            and auth[1] == chain and _is_pubkey(auth[2]) and auth[2] != me and auth[3] == me
            and auth[4] == nonce and isinstance(auth[5], bytes) and len(auth[5]) == NONCE_BYTES
            and isinstance(auth[6], bytes)):
        raise InvalidInput("bad_handshake", "malformed auth")
    their_key, their_nonce, sig = auth[2], auth[5], auth[6]
    peer = admit(their_key)
    if peer is None:
        raise InvalidInput("bad_handshake", f"key {crypto.key_id(their_key)} is no validator's of the current or "
                           "previous set and not in this node's [peers]")
    if not peer.verify(sig, auth_bytes(chain, peer.raw, me, nonce, their_nonce, channel)):
        bound = " over this TLS channel (is someone between us?)" if channel else ""
        raise InvalidInput("bad_handshake", f"auth signature of key {peer.key_id} does not verify{bound}")
    mine = key.sign(auth_bytes(chain, me, peer.raw, their_nonce, nonce, channel))
    # authenticated: no longer counted against the caps, and frames up to FRAME_MAX_BYTES from
    # now on. Both before auth-ok, the first thing the dialler waits for before it sends more.
    on_authenticated()
    await ws.send_bytes(codec.encode(["auth-ok", mine]))
    return peer.raw
