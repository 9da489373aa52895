"""Who is asking (docs/security.md sections 9 and 10): per-client limits on every request,
and the reader of a request where the node's reads are authenticated.

The `authenticate` middleware runs after routing and before the handler:
1. the source address's token bucket (writes and reads apart) answers 429 when empty;
2. with `reads = "authenticated"`, a read of any route but OPEN_ROUTES (probes, the node's
   own description, the console's files) needs a reader: a request signed by a registered
   key (ledgernode/httpsig.py: Signature-Input and Signature), or a request over mutual
   TLS whose client certificate is of a registered Ed25519 key. Neither: 401 with an
   Accept-Signature header and a message saying how to sign. Then the key's bucket.
The reader, or None where reads are open, is `request[READER]`; the views ask
ledgernode/access.py whether it may have what it asked for (403 naming the right).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .. import crypto, httpsig
from ..access import Reader, reader_of
from ..aio import web
from ..errors import InvalidInput
from ..service import NodeService, RateLimited
from ..throttle import Throttle
from .errors import Unauthenticated

READER: web.RequestKey[Reader | None] = web.RequestKey("reader")
OPEN_ROUTES = frozenset(["/healthz", "/readyz", "/metrics", "/v1/status", "/v1/genesis", "/v1/openapi.json", "/"])
OPEN_PREFIXES = ("/ui",)  # the console's page and files: it signs its own reads once unlocked
# Probes a load balancer or Prometheus asks: no bucket, so a flood from their host (or behind
# the same address) never makes a healthy node look dead. They cost next to nothing.
PROBES = frozenset(["/healthz", "/readyz", "/metrics"])
ACCEPT_SIGNATURE = f'{httpsig.LABEL}=("@method" "@path" "@query");created;keyid;nonce;alg="{httpsig.ALG}"'
NONCES_FULL_RETRY_S = 5  # a key that used up its nonces: some expire within the window
HOW_TO_SIGN = (
    "reads on this node are authenticated (docs/security.md section 9): sign the request with a registered "
    "key, Signature-Input: rd=(\"@method\" \"@path\" \"@query\");created=<unix seconds>;keyid=\"<key id>\";"
    "nonce=\"<16-64 random characters>\";alg=\"ed25519\" and Signature: rd=:<base64 Ed25519 signature of the "
    "signature base>: (the SDK's Client(api, key=...) and the CLI's --key do this), or connect over mutual TLS "
    "with a certificate of a registered key")


@dataclass
class ReadAuth:
    service: NodeService
    reads: str  # "open" or "authenticated"
    throttle: Throttle
    nonces: httpsig.Nonces = field(default_factory=httpsig.Nonces)
    clock: Callable[[], float] = time.time

    def reader(self, request: web.Request) -> Reader:
        """The registered key a read comes from; Unauthenticated if none."""
        via_tls = self._tls_reader(request)
        if via_tls is not None:
            return via_tls
        signature_input, signature = request.headers.get("Signature-Input"), request.headers.get("Signature")
        if signature_input is None or signature is None:
            raise Unauthenticated("unauthenticated", HOW_TO_SIGN, ACCEPT_SIGNATURE)
        now_s = int(self.clock())
        query = request.rel_url.raw_query_string
        target = httpsig.Request(request.method, request.rel_url.raw_path, f"?{query}", {})
        try:
            signed = httpsig.read_signature(target, signature_input, signature, now_s)
        except InvalidInput as exc:
            raise Unauthenticated(exc.code, exc.message, ACCEPT_SIGNATURE) from None
        store = self.service.store
        members = store.members(self.service.genesis)
        reader = reader_of(members, signed.key_id, store.log_size, "signature")
        if reader is None:
            raise Unauthenticated("unknown_key", f"key {signed.key_id} is not registered on this chain, or it was "
                                  "revoked", ACCEPT_SIGNATURE)
        if not members.signers[signed.key_id].pubkey.verify(signed.signature, signed.base):
            raise Unauthenticated("bad_signature", "the signature does not verify over this request's method, "
                                  "path and query", ACCEPT_SIGNATURE)
        wait = self.throttle.take("read", "key", reader.key_id, time.monotonic())
        if wait is not None:  # before its nonce is kept: a throttled key fills no memory
            raise RateLimited(f"key {reader.key_id} made more reads than its limit; retry in {wait} s", wait)
        refused = self.nonces.take(signed.key_id, signed.nonce, now_s)
        if refused == "replayed":
            raise Unauthenticated("replayed", "this signature's nonce was used already: sign every request anew",
                                  ACCEPT_SIGNATURE)
        if refused == "full":
            self.throttle.refused[("read", "key")] += 1
            raise RateLimited(f"key {reader.key_id} signed more than {self.nonces.per_key_max} reads within "
                              f"{httpsig.PAST_S + httpsig.FUTURE_S} s; retry shortly", NONCES_FULL_RETRY_S)
        return reader

    def _tls_reader(self, request: web.Request) -> Reader | None:
        """The reader a client certificate names; its key's bucket is taken by the middleware."""
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        raw = crypto.tls_cert_ed25519(der) if der else None
        if raw is None:
            return None
        store = self.service.store
        return reader_of(store.members(self.service.genesis), crypto.key_id(raw), store.log_size, "tls")


READ_AUTH: web.AppKey[ReadAuth] = web.AppKey("read_auth", ReadAuth)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _is_open(request: web.Request) -> bool:
    path = request.path
    return path in OPEN_ROUTES or path.startswith(OPEN_PREFIXES)


IPV6_CLIENT_PREFIX_BITS = 64  # one site's IPv6 addresses: a client choosing among them is one client


def _address(request: web.Request) -> str:
    """The client an address bucket is kept for: its IPv4 address, or its IPv6 /64."""
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    host = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_CLIENT_PREFIX_BITS}", strict=False))
    return str(address)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    auth = request.app[READ_AUTH]
    kind = "read" if request.method in ("GET", "HEAD") else "write"
    now_s = time.monotonic()
    if request.path not in PROBES:
        wait = auth.throttle.take(kind, "address", _address(request), now_s)
        if wait is not None:
            raise RateLimited(f"this address made more {kind}s than its limit; retry in {wait} s", wait)
    reader = None
    if kind == "read" and auth.reads == "authenticated" and not _is_open(request):
        reader = auth.reader(request)
        if reader.via == "tls":  # a signed read took its key's token before its nonce was kept
            wait = auth.throttle.take("read", "key", reader.key_id, now_s)
            if wait is not None:
                raise RateLimited(f"key {reader.key_id} made more reads than its limit; retry in {wait} s", wait)
    request[READER] = reader
    return await handler(request)
