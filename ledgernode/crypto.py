"""Keys, signatures and tagged hashing: the only module that imports crypto libraries.

Signing and key files use `cryptography` (PEM, PKCS#8). Verification uses
libsodium through PyNaCl: measured here at about twice the rate of
`cryptography`'s OpenSSL path on one core, and, unlike it, it releases the
GIL, so a node can verify on every core with threads (docs/performance.md).

Every public key passes `load_public_key`, which screens it before any signature
is checked with it. OpenSSL's Ed25519 verify accepts a signature (R = identity,
S = 0) on any message under a small-order key such as the identity `01 00..00`,
so a registered small-order key would let anyone forge that signer. We decode
the point ourselves (RFC 8032 section 5.1.3), reject non-canonical encodings
(y >= p, or x = 0 with the sign bit set) and reject points whose order divides
the cofactor 8.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from nacl._sodium import ffi as _ffi, lib as _sodium
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import InvalidInput

# nacl.bindings calls this on import; we call libsodium directly, so call it here
# (idempotent; -1 means libsodium could not initialise and nothing may be verified).
if _sodium.sodium_init() < 0:
    raise ImportError("libsodium failed to initialise")

PUBKEY_BYTES = 32
SIGNATURE_BYTES = 64
KEY_ID_CHARS = 16
PEM_MAX_BYTES = 4096

# Curve25519 in twisted Edwards form (RFC 8032 section 5.1).
_P = 2**255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def tag_prefix(tag: str) -> bytes:
    """What H(tag, data) hashes before `data`: b"ledgernode:" + tag + b"\\n"."""
    return b"ledgernode:" + tag.encode("ascii") + b"\n"


def tagged_hash(tag: str, data: bytes) -> bytes:
    """H(tag, data) = SHA-256(tag_prefix(tag) + data)."""
    return hashlib.sha256(tag_prefix(tag) + data).digest()


H = tagged_hash


def key_id(pubkey: bytes) -> str:
    """hex(H("key", pubkey)[:8]): 16 lowercase hex characters."""
    return tagged_hash("key", pubkey)[:8].hex()


def _decode_point(raw: bytes) -> tuple[int, int] | None:
    """Affine (x, y) of a canonical encoding, or None if not canonical/on curve."""
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    sign = raw[31] >> 7
    if y >= _P:
        return None
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = (u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P)) % _P
    if (v * x * x - u) % _P != 0:
        x = (x * _SQRT_M1) % _P
        if (v * x * x - u) % _P != 0:
            return None
    if x == 0 and sign == 1:
        return None
    if x & 1 != sign:
        x = _P - x
    return x, y


def _double(point: tuple[int, int]) -> tuple[int, int]:
    x, y = point
    xx, yy, xy = x * x % _P, y * y % _P, x * y % _P
    dxy = _D * xx * yy % _P
    x3 = 2 * xy * pow(1 + dxy, _P - 2, _P) % _P
    y3 = (yy + xx) * pow(1 - dxy, _P - 2, _P) % _P
    return x3, y3


def pubkey_problem(raw: bytes) -> str | None:
    """Why `raw` is not an acceptable Ed25519 public key, or None if it is."""
    if len(raw) != PUBKEY_BYTES:
        return f"public key must be {PUBKEY_BYTES} bytes, got {len(raw)}"
    point = _decode_point(raw)
    if point is None:
        return "public key is not a canonical curve point"
    for _ in range(3):
        point = _double(point)
    if point == (0, 1):
        return "public key has small order"
    return None


@dataclass(frozen=True)
class PublicKey:
    """A screened Ed25519 public key; build it with `load_public_key`."""

    raw: bytes
    key_id: str

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Ed25519 verify (libsodium: also refuses non-canonical S and small-order R)."""
        if len(signature) != SIGNATURE_BYTES:
            return False
        signed = signature + message
        # Straight to libsodium (PyNaCl's own cffi binding): crypto_sign_open with no
        # output buffer only verifies, where the nacl.bindings wrapper also allocates,
        # copies the message out and raises on failure; it releases the GIL either way.
        return _sodium.crypto_sign_open(_ffi.NULL, _ffi.NULL, signed, len(signed), self.raw) == 0


def load_public_key(raw: bytes) -> PublicKey:
    problem = pubkey_problem(raw)
    if problem is not None:
        raise InvalidInput("bad_pubkey", problem)
    return PublicKey(bytes(raw), key_id(raw))


@dataclass(frozen=True)
class PrivateKey:
    _key: Ed25519PrivateKey = field(repr=False)
    public: PublicKey

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


def _wrap(key: Ed25519PrivateKey) -> PrivateKey:
    raw = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return PrivateKey(key, load_public_key(raw))


def generate_private_key() -> PrivateKey:
    return _wrap(Ed25519PrivateKey.generate())


def private_key_from_seed(seed: bytes) -> PrivateKey:
    """Deterministic key from 32 seed bytes: for tests and simulations only."""
    return _wrap(Ed25519PrivateKey.from_private_bytes(seed))


def encode_private_key(key: PrivateKey) -> bytes:
    return key._key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_private_file(path: str | os.PathLike[str], data: bytes, overwrite: bool) -> None:
    """Write `data` to a file only its owner may read (mode 0600), synced before return;
    without `overwrite`, an existing file is an error (FileExistsError), never replaced."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


def save_private_key(path: str | os.PathLike[str], key: PrivateKey) -> None:
    """Write PEM PKCS#8 with mode 0600; never overwrite an existing key."""
    write_private_file(path, encode_private_key(key), overwrite=False)


class KeyFileError(Exception):
    """A private key file is missing, unreadable, too open or not Ed25519 PEM."""


def load_private_key(path: str | os.PathLike[str]) -> PrivateKey:
    p = Path(path)
    try:
        info = p.stat()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {p}: {exc.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"key file {p} is readable by others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run: chmod 600 {p}"
        )
    if info.st_size > PEM_MAX_BYTES:
        raise KeyFileError(f"key file {p} is larger than {PEM_MAX_BYTES} bytes")
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"key file {p} is not an unencrypted PEM key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"key file {p} holds a {type(key).__name__}, not Ed25519")
    return _wrap(key)


# -- TLS certificates (devnet --tls, tests; docs/security.md section 8) ---------------------

TLS_CERT_DAYS = 825  # the longest validity browsers accept for a server certificate


@dataclass(frozen=True)
class TlsIdentity:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes


def _tls_name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ledgernode"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _tls_key_pem(key: ec.EllipticCurvePrivateKey | Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_tls_ca(common_name: str) -> TlsIdentity:
    """A self-signed certificate authority (ECDSA P-256: what every TLS stack speaks)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_tls_name(common_name)).issuer_name(_tls_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=TLS_CERT_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    return TlsIdentity(cert.public_bytes(serialization.Encoding.PEM), _tls_key_pem(key))


def make_tls_cert(ca: TlsIdentity, common_name: str, hosts: list[str], client: bool = False,
                  key: PrivateKey | None = None) -> TlsIdentity:
    """A certificate signed by `ca` for `hosts` (IP addresses or DNS names), usable by a
    server, and with `client` also as a TLS client's. With `key`, the certificate is of that
    Ed25519 key (a registered key's: the API takes it as that key's, docs/security.md
    section 10), else of a new P-256 key."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    subject_key: ec.EllipticCurvePrivateKey | Ed25519PrivateKey = (
        ec.generate_private_key(ec.SECP256R1()) if key is None else key._key)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_tls_name(common_name)).issuer_name(ca_cert.subject)
               .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=TLS_CERT_DAYS))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return TlsIdentity(cert.public_bytes(serialization.Encoding.PEM), _tls_key_pem(subject_key))


def tls_cert_ed25519(der: bytes) -> bytes | None:
    """The raw Ed25519 public key of a DER certificate, or None (another kind of key, or
    not a certificate): how a client certificate names a registered key."""
    try:
        public = x509.load_der_x509_certificate(der).public_key()
    except ValueError:
        return None
    if not isinstance(public, Ed25519PublicKey):
        return None
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
