"""Keys, signatures and tagged hashing (docs/protocol.md section 2): ledgernode.crypto.

Public-key screening is checked against `ref_classify`, an independent
implementation of RFC 8032 section 5.1.3 point decoding (the reference code of
RFC 8032 section 6, extended coordinates) plus a [8]P == identity test.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgernode import crypto
from ledgernode.crypto import (
    H,
    KeyFileError,
    generate_private_key,
    key_id,
    load_private_key,
    load_public_key,
    private_key_from_seed,
    pubkey_problem,
    save_private_key,
    tagged_hash,
)
from ledgernode.errors import InvalidInput

SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=200)

# --------------------------------------------------------------------------
# Reference Ed25519 point arithmetic (RFC 8032 section 6), independent of the
# module's affine-doubling code.
# --------------------------------------------------------------------------
P = 2**255 - 19
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
IDENTITY = (0, 1, 1, 0)


def _recover_x(y: int, sign: int) -> int | None:
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def _decompress(raw: bytes):
    y = int.from_bytes(raw, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def _add(p1, p2):
    a = (p1[1] - p1[0]) * (p2[1] - p2[0]) % P
    b = (p1[1] + p1[0]) * (p2[1] + p2[0]) % P
    c = 2 * p1[3] * p2[3] * D % P
    d = 2 * p1[2] * p2[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _equal(p1, p2) -> bool:
    return (p1[0] * p2[2] - p2[0] * p1[2]) % P == 0 and (p1[1] * p2[2] - p2[1] * p1[2]) % P == 0


def ref_classify(raw: bytes) -> str:
    """'ok', 'non_canonical' (not a canonical point) or 'small_order'."""
    point = _decompress(raw)
    if point is None:
        return "non_canonical"
    q = point
    for _ in range(3):
        q = _add(q, q)
    return "small_order" if _equal(q, IDENTITY) else "ok"


def module_classify(raw: bytes) -> str:
    problem = pubkey_problem(raw)
    if problem is None:
        return "ok"
    if "small order" in problem:
        return "small_order"
    assert "canonical" in problem, problem
    return "non_canonical"


def assert_rejected(raw: bytes) -> None:
    assert pubkey_problem(raw) is not None
    with pytest.raises(InvalidInput) as info:
        load_public_key(raw)
    assert info.value.code == "bad_pubkey"


# --------------------------------------------------------------------------
# Tagged hash and key ids
# --------------------------------------------------------------------------

def test_tagged_hash_fixed_example():
    expected = "48e9c0c099009502cd53a51adbc12e3be640cdcbf4f2519ab1ef0c160f8357a8"
    assert tagged_hash("key", b"abc").hex() == expected  # printf 'ledgernode:key\nabc' | sha256sum
    assert H("key", b"abc") == hashlib.sha256(b"ledgernode:key\nabc").digest()
    assert H is tagged_hash


@pytest.mark.parametrize("tag", ["record", "header", "valset", "key", "x"])
@pytest.mark.parametrize("data", [b"", b"\x00", b"payload" * 100])
def test_tagged_hash_formula(tag, data):
    assert H(tag, data) == hashlib.sha256(b"ledgernode:" + tag.encode() + b"\n" + data).digest()


def test_tagged_hash_domain_separation():
    assert H("record", b"x") != H("header", b"x")
    # The newline terminates the tag: ("ab", "c...") and ("a", "bc...") differ.
    assert H("ab", b"c") != H("a", b"bc")
    assert H("record", b"") == bytes.fromhex(
        "702ec1c4805dc467ae955529bc11c6152e3e53f67eda15fa48309f12fcacf631"
    )


@SETTINGS
@given(st.binary(min_size=32, max_size=32))
def test_key_id_is_16_lowercase_hex(raw):
    kid = key_id(raw)
    assert re.fullmatch(r"[0-9a-f]{16}", kid)
    assert kid == hashlib.sha256(b"ledgernode:key\n" + raw).digest()[:8].hex()


# --------------------------------------------------------------------------
# Signatures
# --------------------------------------------------------------------------

RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUB = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIG = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def test_rfc8032_test_1():
    key = private_key_from_seed(RFC8032_SEED)
    assert key.public.raw == RFC8032_PUB
    assert key.public.key_id == key_id(RFC8032_PUB) == "780c73de9e69f202"
    assert key.sign(b"") == RFC8032_SIG  # Ed25519 is deterministic
    pub = load_public_key(RFC8032_PUB)
    assert pub.verify(RFC8032_SIG, b"") is True
    assert pub.verify(RFC8032_SIG, b"\x00") is False
    assert ref_classify(RFC8032_PUB) == "ok"


def test_sign_verify_round_trip_and_failures():
    key = private_key_from_seed(bytes(range(32)))
    pub = key.public
    msg = b"ledgernode:record\n" + b"some record bytes"
    sig = key.sign(msg)
    assert len(sig) == 64
    assert pub.verify(sig, msg)
    # any changed message bit
    for i in range(len(msg)):
        changed = bytearray(msg)
        changed[i] ^= 0x01
        assert not pub.verify(sig, bytes(changed))
    assert not pub.verify(sig, msg + b"\x00")
    assert not pub.verify(sig, msg[:-1])
    # any changed signature byte
    for i in range(64):
        bad = bytearray(sig)
        bad[i] ^= 0x80
        assert not pub.verify(bytes(bad), msg)
    # wrong lengths are a plain False, not an exception
    for bad in (b"", sig[:63], sig + b"\x00", sig * 2):
        assert pub.verify(bad, msg) is False
    # another key's signature
    other = private_key_from_seed(bytes([7]) * 32)
    assert not pub.verify(other.sign(msg), msg)
    assert not other.public.verify(sig, msg)


def test_signature_s_must_be_reduced():
    # S + L is the same scalar mod L; a verifier that accepted it would make
    # signatures malleable (RFC 8032 section 5.1.7 requires S < L).
    order = 2**252 + 27742317777372353535851937790883648493
    key = private_key_from_seed(bytes([3]) * 32)
    sig = key.sign(b"m")
    s = int.from_bytes(sig[32:], "little")
    assert s < order
    malleated = sig[:32] + (s + order).to_bytes(32, "little")
    assert not key.public.verify(malleated, b"m")


@SETTINGS
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=64))
def test_random_keys_accepted_and_sign(seed, msg):
    key = private_key_from_seed(seed)
    raw = key.public.raw
    assert pubkey_problem(raw) is None
    assert ref_classify(raw) == "ok"
    pub = load_public_key(raw)
    assert pub.raw == raw and pub.key_id == key_id(raw)
    assert pub.verify(key.sign(msg), msg)


def test_generated_keys_accepted():
    seen = set()
    for _ in range(20):
        key = generate_private_key()
        assert pubkey_problem(key.public.raw) is None
        assert load_public_key(key.public.raw).verify(key.sign(b"x"), b"x")
        seen.add(key.public.raw)
    assert len(seen) == 20


# --------------------------------------------------------------------------
# Public key screening
# --------------------------------------------------------------------------

IDENTITY_KEY = bytes.fromhex("01" + "00" * 31)
IDENTITY_FORGERY = bytes.fromhex("01" + "00" * 31) + bytes(32)  # R = identity, S = 0

SMALL_ORDER = {
    "identity (order 1)": "0100000000000000000000000000000000000000000000000000000000000000",
    "order 2 (y = -1)": "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "order 4 (y = 0, x even)": "0000000000000000000000000000000000000000000000000000000000000000",
    "order 4 (y = 0, x odd)": "0000000000000000000000000000000000000000000000000000000000000080",
    "order 8 a": "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "order 8 b": "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "order 8 a, sign flipped": "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "order 8 b, sign flipped": "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
}

NON_CANONICAL = {
    "y = p": "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "y = p + 1 (identity again)": "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "y = 2**255 - 1": "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "y = p, sign set": "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "identity with sign bit (x = 0)": "0100000000000000000000000000000000000000000000000000000000000080",
    "y = -1 with sign bit (x = 0)": "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "not on the curve (y = 2)": "0200000000000000000000000000000000000000000000000000000000000000",
}


def test_small_order_points_really_have_small_order():
    # The list is complete: the 8 points of the torsion subgroup, all distinct.
    points = {bytes.fromhex(h) for h in SMALL_ORDER.values()}
    assert len(points) == 8
    for raw in points:
        assert ref_classify(raw) == "small_order"


@pytest.mark.parametrize("name", sorted(SMALL_ORDER))
def test_small_order_keys_rejected(name):
    raw = bytes.fromhex(SMALL_ORDER[name])
    assert "small order" in pubkey_problem(raw)
    assert_rejected(raw)


@pytest.mark.parametrize("name", sorted(NON_CANONICAL))
def test_non_canonical_keys_rejected(name):
    raw = bytes.fromhex(NON_CANONICAL[name])
    assert ref_classify(raw) == "non_canonical"
    assert "canonical" in pubkey_problem(raw)
    assert_rejected(raw)


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_wrong_length_keys_rejected(length):
    raw = (RFC8032_PUB * 3)[:length]
    assert "32 bytes" in pubkey_problem(raw)
    assert_rejected(raw)


@pytest.mark.parametrize(
    "raw_hex",
    [
        "0100000000000000000000000000000000000000000000000000000000000000",  # identity
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # identity, y = p + 1
        "0100000000000000000000000000000000000000000000000000000000000080",  # identity, x = 0 sign
    ],
)
def test_identity_key_forgery_accepted_by_openssl_but_key_refused(raw_hex):
    """The attack the screening exists for.

    OpenSSL (through `cryptography`) checks [S]B == R + [k]A. With A the
    identity, [k]A is the identity for every k, so R = identity and S = 0
    satisfy it for *every* message: whoever registered such a key could have
    any record "signed" by it, and the signer could deny every signature.
    """
    raw = bytes.fromhex(raw_hex)
    library_key = Ed25519PublicKey.from_public_bytes(raw)
    for msg in (b"", b"ledgernode:record\nanything", bytes(range(100)), b"\xff" * 1000):
        library_key.verify(IDENTITY_FORGERY, msg)  # no InvalidSignature: forged
    # A normal key does not accept it.
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(RFC8032_PUB).verify(IDENTITY_FORGERY, b"")
    assert not load_public_key(RFC8032_PUB).verify(IDENTITY_FORGERY, b"")
    # ledgernode never builds a PublicKey for it.
    with pytest.raises(InvalidInput) as info:
        load_public_key(raw)
    assert info.value.code == "bad_pubkey"


y_near_p = st.integers(min_value=P - 40, max_value=(1 << 255) - 1)
small_y = st.integers(min_value=0, max_value=300)


@settings(derandomize=True, database=None, deadline=None, max_examples=500)
@given(
    st.one_of(
        st.binary(min_size=32, max_size=32),
        st.tuples(st.one_of(y_near_p, small_y), st.booleans()).map(
            lambda t: (t[0] | (t[1] << 255)).to_bytes(32, "little")
        ),
        st.tuples(st.sampled_from(sorted(SMALL_ORDER.values())), st.booleans()).map(
            lambda t: bytes.fromhex(t[0])[:31] + bytes([bytes.fromhex(t[0])[31] ^ (0x80 * t[1])])
        ),
    )
)
def test_screening_matches_reference(raw):
    verdict = ref_classify(raw)
    assert module_classify(raw) == verdict
    if verdict == "ok":
        pub = load_public_key(raw)
        assert pub.raw == raw and pub.key_id == key_id(raw)
    else:
        assert_rejected(raw)


# --------------------------------------------------------------------------
# Private key files
# --------------------------------------------------------------------------

def test_pem_round_trip_mode_0600(tmp_path):
    key = private_key_from_seed(RFC8032_SEED)
    path = tmp_path / "node.key"
    old = os.umask(0)  # a permissive umask must not widen the mode
    try:
        save_private_key(path, key)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    pem = path.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    parsed = serialization.load_pem_private_key(pem, password=None)
    assert parsed.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    ) == RFC8032_SEED
    loaded = load_private_key(path)
    assert loaded.public.raw == RFC8032_PUB
    assert loaded.sign(b"") == RFC8032_SIG
    assert load_private_key(str(path)).public.raw == RFC8032_PUB


def test_save_refuses_to_overwrite(tmp_path):
    path = tmp_path / "node.key"
    first = generate_private_key()
    save_private_key(path, first)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        save_private_key(path, generate_private_key())
    assert path.read_bytes() == before
    assert load_private_key(path).public.raw == first.public.raw


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o610, 0o601, 0o777])
def test_load_refuses_group_or_other_access(tmp_path, mode):
    path = tmp_path / "node.key"
    save_private_key(path, generate_private_key())
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_private_key(path)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_load_accepts_owner_only_modes(tmp_path, mode):
    path = tmp_path / "node.key"
    key = generate_private_key()
    save_private_key(path, key)
    os.chmod(path, mode)
    assert load_private_key(path).public.raw == key.public.raw


def _write_0600(path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _pkcs8(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: _pkcs8(ec.generate_private_key(ec.SECP256R1())),
        lambda: _pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
        lambda: _pkcs8(ed448.Ed448PrivateKey.generate()),
        lambda: b"not a pem file at all\n",
        lambda: b"",
        lambda: b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        lambda: generate_private_key()._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        lambda: generate_private_key()._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        ),
        lambda: b"A" * (crypto.PEM_MAX_BYTES + 1),
    ],
    ids=["ec-p256", "rsa", "ed448", "garbage", "empty", "bad-base64-der", "public-key-pem",
         "encrypted", "oversized"],
)
def test_load_refuses_non_ed25519_or_garbage(tmp_path, make):
    path = tmp_path / "node.key"
    _write_0600(path, make())
    with pytest.raises(KeyFileError):
        load_private_key(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(KeyFileError):
        load_private_key(tmp_path / "absent.key")
