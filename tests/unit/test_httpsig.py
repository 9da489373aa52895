"""Signed reads (ledgernode/httpsig.py): the signature base against the Ed25519 example of
RFC 9421 appendix B.2.6 (its key, request and signature), the profile's checks, replay."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, strategies as st

from ledgernode import crypto, httpsig
from ledgernode.errors import InvalidInput
from ledgernode.httpsig import Nonces, Request, SignatureParams, read_signature, sign_request, signature_base

# RFC 9421 B.1.4 test-key-ed25519 (the private key's 32-byte seed) and B.2.6.
RFC_SEED = bytes.fromhex("9f8362f87a484a954e6e740c5b4c0e84229139a20aa8ab56ff66586f6a7d29c5")
RFC_REQUEST = Request("POST", "/foo", "?param=Value&Pet=dog",
                      {"date": "Tue, 20 Apr 2021 02:07:55 GMT", "content-type": "application/json",
                       "content-length": "18"})
RFC_INPUT = 'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473' \
            ';keyid="test-key-ed25519"'
RFC_BASE = ('"date": Tue, 20 Apr 2021 02:07:55 GMT\n"@method": POST\n"@path": /foo\n"@authority": example.com\n'
            '"content-type": application/json\n"content-length": 18\n"@signature-params": ("date" "@method" '
            '"@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"')
RFC_SIGNATURE = "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
KEY = crypto.private_key_from_seed(bytes(range(32)))
NOW = 1_764_633_600


def test_the_rfc_9421_ed25519_example_base_and_signature() -> None:
    params = httpsig.parse_input(RFC_INPUT)
    base = signature_base(RFC_REQUEST, params, authority="example.com")
    assert base.decode() == RFC_BASE
    key = crypto.private_key_from_seed(RFC_SEED)
    assert base64.b64encode(key.sign(base)).decode() == RFC_SIGNATURE  # Ed25519 is deterministic
    assert key.public.verify(base64.b64decode(RFC_SIGNATURE), base)


def test_a_signed_read_passes_and_covers_method_path_and_query() -> None:
    headers = sign_request(KEY, "GET", "/v1/records/ab", "?x=1", NOW, nonce="n" * 24)
    signed = read_signature(Request("GET", "/v1/records/ab", "?x=1", {}), headers["Signature-Input"],
                            headers["Signature"], NOW + 10)
    assert signed.key_id == KEY.public.key_id and KEY.public.verify(signed.signature, signed.base)
    assert signed.base.decode().splitlines()[:3] == ['"@method": GET', '"@path": /v1/records/ab', '"@query": ?x=1']
    for other in (Request("POST", "/v1/records/ab", "?x=1", {}), Request("GET", "/v1/records/ac", "?x=1", {}),
                  Request("GET", "/v1/records/ab", "?x=2", {})):
        moved = read_signature(other, headers["Signature-Input"], headers["Signature"], NOW)
        assert not KEY.public.verify(moved.signature, moved.base)


def test_an_absent_query_is_a_lone_question_mark() -> None:
    headers = sign_request(KEY, "GET", "/v1/checkpoint", "", NOW, nonce="q" * 20)
    signed = read_signature(Request("GET", "/v1/checkpoint", "", {}), headers["Signature-Input"],
                            headers["Signature"], NOW)
    assert '"@query": ?\n' in signed.base.decode()
    assert KEY.public.verify(signed.signature, signed.base)


@pytest.mark.parametrize("signature_input, code, words", [
    ('rd=("@method" "@path");created=%d;keyid="%s";nonce="nnnnnnnnnnnnnnnn"', "bad_signature", "missing @query"),
    ('rd=("@method" "@path" "@query");keyid="%s";nonce="nnnnnnnnnnnnnnnn"', "bad_signature", "created"),
    ('rd=("@method" "@path" "@query");created=%d;nonce="nnnnnnnnnnnnnnnn"', "bad_signature", "keyid"),
    ('rd=("@method" "@path" "@query");created=%d;keyid="%s"', "bad_signature", "nonce"),
    ('rd=("@method" "@path" "@query");created=%d;keyid="%s";nonce="short"', "bad_signature", "nonce"),
    ('rd=("@method" "@path" "@query");created=%d;keyid="%s";nonce="nnnnnnnnnnnnnnnn";alg="rsa-pss-sha512"',
     "bad_signature", "alg"),
    ('rd=("@method" "@path" "@query" "@method");created=%d;keyid="%s";nonce="nnnnnnnnnnnnnnnn"', "bad_signature",
     "each once"),
    ('rd=(@method);created=%d;keyid="%s"', "bad_signature", "one member"),
    ('a=("@method" "@path" "@query");created=%d;keyid="%s";nonce="nnnnnnnnnnnnnnnn", b=()', "bad_signature",
     "one member"),
])
def test_signatures_outside_the_profile_are_refused_saying_why(signature_input: str, code: str, words: str) -> None:
    text = signature_input.replace("%d", str(NOW)).replace("%s", KEY.public.key_id)
    with pytest.raises(InvalidInput) as err:
        read_signature(Request("GET", "/", "", {}), text, "rd=:" + "A" * 86 + "==:", NOW)
    assert err.value.code == code and words in err.value.message


@pytest.mark.parametrize("created", [NOW - httpsig.PAST_S - 1, NOW + httpsig.FUTURE_S + 1])
def test_a_signature_outside_the_window_is_refused(created: int) -> None:
    headers = sign_request(KEY, "GET", "/", "", created, nonce="w" * 16)
    with pytest.raises(InvalidInput) as err:
        read_signature(Request("GET", "/", "", {}), headers["Signature-Input"], headers["Signature"], NOW)
    assert err.value.code == "signature_expired" and "clock" in err.value.message


def test_nonces_refuse_a_replay_while_it_could_pass_and_forget_it_after() -> None:
    keep_s = httpsig.PAST_S + httpsig.FUTURE_S
    nonces = Nonces(per_key_max=2)
    assert nonces.take("k", "a" * 16, NOW) is None
    assert nonces.take("k", "a" * 16, NOW + keep_s - 1) == "replayed"
    assert nonces.take("k", "b" * 16, NOW) is None
    assert nonces.take("k", "c" * 16, NOW) == "full"  # this key's memory is full...
    assert nonces.take("other", "c" * 16, NOW) is None  # ...and another key's is its own
    assert nonces.take("k", "c" * 16, NOW + keep_s + 1) is None  # the old ones expired
    assert len(nonces) == 2


def test_a_nonce_is_kept_as_long_as_its_signature_can_pass() -> None:
    """The latest a signature taken at `now` can pass is created + PAST_S with created up to
    now + FUTURE_S: its nonce must be refused until then."""
    nonces = Nonces()
    created = NOW + httpsig.FUTURE_S
    assert nonces.take("k", "f" * 16, NOW) is None
    headers = sign_request(KEY, "GET", "/", "", created, nonce="f" * 16)
    last_pass = created + httpsig.PAST_S
    read_signature(Request("GET", "/", "", {}), headers["Signature-Input"], headers["Signature"], last_pass)
    assert nonces.take("k", "f" * 16, last_pass) == "replayed"


@given(st.lists(st.sampled_from(["@method", "@path", "@query", "date", "content-type"]), unique=True, max_size=5),
       st.integers(0, 2**40), st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=16, max_size=64))
def test_parameters_encode_and_parse_back(components: list[str], created: int, nonce: str) -> None:
    params = SignatureParams("rd", tuple(components), (("created", created), ("keyid", "0" * 16), ("nonce", nonce)))
    assert httpsig.parse_input(f"rd={params.encode()}") == params
