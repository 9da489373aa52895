"""TLS for the API and the peer links, from the node config's `[tls]` table (docs/security.md
section 9).

    [tls]
    cert_file = "tls/node.crt"    # this node's certificate (PEM, leaf first), for both ports
    key_file = "tls/node.key"     # its private key (PEM)
    ca_file = "tls/ca.crt"        # optional: peers' certificates must chain to it
    client_ca = "tls/clients.crt" # optional: a certificate an API client presents must be its

Why the peer links need more than TLS: a node is named by its Ed25519 key, not by a
certificate, and a network may run on self-signed certificates. So the handshake signs the
SHA-256 of the certificate the dialled node presented (`channel`, net/handshake.py): the
dialled node checks that it is the fingerprint of its own certificate, the dialler that
the answer covers the one it saw. A man in the middle who terminates TLS with a
certificate of its own makes both checks fail, whatever certificate authority it fooled.
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PEM_MAX_BYTES = 1 << 20  # a certificate chain or key file; anything larger is not one
MIN_VERSION = ssl.TLSVersion.TLSv1_2


class TlsError(ValueError):
    """A `[tls]` file is missing, unreadable or not what it should be; the message names it
    (a ValueError: the node refuses to start with it, as with a bad key file)."""


@dataclass(frozen=True)
class TlsFiles:
    cert_file: Path
    key_file: Path
    ca_file: Path | None = None
    client_ca: Path | None = None


@dataclass(frozen=True)
class Tls:
    """The node's TLS material, loaded once at start: contexts and its certificate's fingerprint."""

    files: TlsFiles
    fingerprint: bytes  # SHA-256 of the DER of the node's own (leaf) certificate

    def api_context(self) -> ssl.SSLContext:
        """The API's server side. With `client_ca`, clients may present a certificate, which
        must then be one it signed: a certificate of a registered Ed25519 key makes the
        client that key's reader (api/auth.py). A client without one still connects (probes,
        signed reads); a node whose reads are authenticated still asks it to sign them."""
        ctx = self._server_context()
        if self.files.client_ca is not None:
            _load_verify(ctx, self.files.client_ca, "tls.client_ca")
            ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    def peer_server_context(self) -> ssl.SSLContext:
        """The peer port's server side. Dialling validators prove their key in the handshake,
        so no client certificate is asked for."""
        return self._server_context()

    def peer_client_context(self) -> ssl.SSLContext:
        """The dialler's side. With `ca_file` the peer's certificate must chain to it; without,
        any certificate is taken and the handshake's binding (above) is what authenticates.
        Host names are not checked: peers are named by key, often dialled by IP address."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = MIN_VERSION
        ctx.check_hostname = False
        if self.files.ca_file is not None:
            _load_verify(ctx, self.files.ca_file, "tls.ca_file")
            ctx.verify_mode = ssl.CERT_REQUIRED
        else:
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = MIN_VERSION
        try:
            ctx.load_cert_chain(self.files.cert_file, self.files.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(f"tls.cert_file / tls.key_file ({self.files.cert_file}, {self.files.key_file}): "
                           f"cannot load them as a certificate and its key: {exc}") from None
        return ctx


def load(files: TlsFiles) -> Tls:
    """Read and check the files now, so a bad one stops the node at start with its name."""
    cert_pem = _read(files.cert_file, "tls.cert_file")
    try:
        der = ssl.PEM_cert_to_DER_cert(_first_pem_certificate(cert_pem))
    except ValueError as exc:
        raise TlsError(f"tls.cert_file ({files.cert_file}): not a PEM certificate: {exc}") from None
    tls = Tls(files, fingerprint(der))
    tls.api_context()  # loads the key, and the client CA if named
    tls.peer_client_context()  # loads the peers' CA if named
    return tls


def client_context(ca_file: str | Path | Any) -> ssl.SSLContext:
    """An HTTPS client's context that trusts the CA in `ca_file` (the SDK and the CLI)."""
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"--cacert ({ca_file}): cannot load it as CA certificates: {exc}") from None


def fingerprint(der: bytes) -> bytes:
    return hashlib.sha256(der).digest()


def peer_fingerprint(transport_info: Any) -> bytes | None:
    """The fingerprint of the certificate the other end of a TLS connection presented, from
    `get_extra_info("ssl_object")`; None on a plain connection or when it presented none."""
    if transport_info is None:
        return None
    der = transport_info.getpeercert(binary_form=True)
    return None if der is None else fingerprint(der)


def _read(path: Path, name: str) -> str:
    try:
        with path.open("rb") as f:
            raw = f.read(PEM_MAX_BYTES + 1)
    except OSError as exc:
        raise TlsError(f"{name} ({path}): cannot read: {exc.strerror}") from None
    if len(raw) > PEM_MAX_BYTES:
        raise TlsError(f"{name} ({path}): larger than {PEM_MAX_BYTES} bytes")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise TlsError(f"{name} ({path}): not PEM text") from None


_BEGIN, _END = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"


def _first_pem_certificate(text: str) -> str:
    start = text.find(_BEGIN)
    end = text.find(_END, start)
    if start < 0 or end < 0:
        raise ValueError("no BEGIN/END CERTIFICATE block")
    return text[start:end + len(_END)] + "\n"


def _load_verify(ctx: ssl.SSLContext, path: Path, name: str) -> None:
    try:
        ctx.load_verify_locations(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"{name} ({path}): cannot load it as CA certificates: {exc}") from None
