"""Signed reads: HTTP Message Signatures with Ed25519, the profile of docs/security.md section 9.

A client proves which registered key asks by signing the request:

    Signature-Input: rd=("@method" "@path" "@query");created=1764633600;keyid="9f2c...";nonce="Vb3...";alg="ed25519"
    Signature: rd=:<base64 of the Ed25519 signature>:

over the signature base (one line per covered component, then the parameters):

    "@method": GET
    "@path": /v1/records/ab12...
    "@query": ?
    "@signature-params": ("@method" "@path" "@query");created=1764633600;keyid="9f2c...";nonce="Vb3...";alg="ed25519"

`@query` is "?" and the query string as sent ("?" alone when there is none); `keyid` is the
key's id (16 hex, as `/v1/status` and the genesis show it). The node requires `@method`,
`@path` and `@query` among the covered components, `created` at most PAST_S before its
clock and FUTURE_S after, and a `nonce` that key has not used while such a signature could
pass (`Nonces`), so a captured request cannot be replayed. The base is built by
`signature_base` for both sides; the header texts are dictionaries of one member in the
structured-field syntax, parsed strictly here (docs/security.md section 9).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from . import crypto
from .errors import InvalidInput

LABEL = "rd"  # the dictionary key the SDK signs under; any one label is accepted
REQUIRED = ("@method", "@path", "@query")
COMPONENTS_MAX = 16
HEADER_MAX_CHARS = 2_048  # Signature-Input or Signature: far more than the profile needs
NONCE_MAX_CHARS = 64
NONCE_MIN_CHARS = 16
PAST_S = 60  # a signature's `created` may be this far behind the node's clock (a client's clock drifts)
FUTURE_S = 10  # ...and this far ahead of it
NONCES_PER_KEY_MAX = 8_192  # one key's nonces remembered at once: about 117 signed reads a second, sustained
ALG = "ed25519"

_COMPONENT = re.compile(r'"(@?[a-z0-9!#$%&\'*+.^_`|~-]{1,64})"')
_PARAM = re.compile(r';([a-z*][a-z0-9_.*-]{0,63})=("(?:[\x20-\x21\x23-\x5b\x5d-\x7e])*"|-?[0-9]{1,15})')
_INPUT = re.compile(r'([a-z*][a-z0-9_.*-]{0,63})=\(((?:"[^"]*"(?: "[^"]*")*)?)\)((?:;[^;,]+)*)')
_SIGNATURE = re.compile(r"([a-z*][a-z0-9_.*-]{0,63})=:([A-Za-z0-9+/=]{1,200}):")


@dataclass(frozen=True)
class SignatureParams:
    label: str
    components: tuple[str, ...]
    params: tuple[tuple[str, str | int], ...]  # in the order sent: the base repeats it

    def get(self, name: str) -> str | int | None:
        return next((v for k, v in self.params if k == name), None)

    def encode(self) -> str:
        """The inner list and its parameters as structured-field text."""
        inner = " ".join(f'"{c}"' for c in self.components)
        return f"({inner})" + "".join(f';{k}="{v}"' if isinstance(v, str) else f";{k}={v}" for k, v in self.params)


@dataclass(frozen=True)
class Request:
    """What a signature covers of a request: method, path, query (with its "?") and headers."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # lower-case names

    def component(self, name: str, authority: str | None = None) -> str:
        match name:
            case "@method":
                return self.method.upper()
            case "@path":
                return self.path or "/"
            case "@query":
                return self.query if self.query.startswith("?") else "?" + self.query
            case "@authority":
                if authority is None:
                    raise InvalidInput("bad_signature", "@authority is not a component this node signs over")
                return authority
        if name.startswith("@"):
            raise InvalidInput("bad_signature", f"component {name} is not supported")
        value = self.headers.get(name)
        if value is None:
            raise InvalidInput("bad_signature", f"the signed header {name} is not in the request")
        return value.strip()


def signature_base(request: Request, params: SignatureParams, authority: str | None = None) -> bytes:
    lines = [f'"{name}": {request.component(name, authority)}' for name in params.components]
    lines.append(f'"@signature-params": {params.encode()}')
    text = "\n".join(lines)
    if any(ord(ch) < 0x20 or ord(ch) > 0x7E for ch in text.replace("\n", "")):
        raise InvalidInput("bad_signature", "a signed component is not printable ASCII")
    return text.encode("ascii")


def parse_input(text: str) -> SignatureParams:
    """A Signature-Input of one member; InvalidInput saying what is wrong."""
    if len(text) > HEADER_MAX_CHARS:
        raise InvalidInput("bad_signature", f"Signature-Input is longer than {HEADER_MAX_CHARS} characters")
    m = _INPUT.fullmatch(text.strip())
    if m is None:
        raise InvalidInput("bad_signature", 'Signature-Input must be one member: label=("@method" "@path" '
                           '"@query");created=...;keyid="...";nonce="...";alg="ed25519"')
    label, inner, rest = m.groups()
    names = []
    for quoted in inner.split(" ") if inner else []:
        c = _COMPONENT.fullmatch(quoted)
        if c is None:
            raise InvalidInput("bad_signature", f"covered component {quoted[:70]!r} is not a quoted lower-case name")
        names.append(c.group(1))
    components = tuple(names)
    if len(components) > COMPONENTS_MAX or len(set(components)) != len(components):
        raise InvalidInput("bad_signature", f"at most {COMPONENTS_MAX} covered components, each once")
    params: list[tuple[str, str | int]] = []
    at = 0
    while at < len(rest):
        p = _PARAM.match(rest, at)
        if p is None:
            raise InvalidInput("bad_signature", f"Signature-Input parameter {rest[at:at + 40]!r} is malformed")
        name, raw = p.groups()
        if any(k == name for k, _ in params):
            raise InvalidInput("bad_signature", f"Signature-Input parameter {name} is given twice")
        params.append((name, raw[1:-1] if raw.startswith('"') else int(raw)))
        at = p.end()
    return SignatureParams(label, components, tuple(params))


def parse_signature(text: str, label: str) -> bytes:
    if len(text) > HEADER_MAX_CHARS:
        raise InvalidInput("bad_signature", f"Signature is longer than {HEADER_MAX_CHARS} characters")
    m = _SIGNATURE.fullmatch(text.strip())
    if m is None or m.group(1) != label:
        raise InvalidInput("bad_signature", f"Signature must be one member {label}=:<base64>: matching Signature-Input")
    try:
        sig = base64.b64decode(m.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("bad_signature", "Signature is not base64") from None
    if len(sig) != crypto.SIGNATURE_BYTES:
        raise InvalidInput("bad_signature", f"an Ed25519 signature is {crypto.SIGNATURE_BYTES} bytes, not {len(sig)}")
    return sig


@dataclass(frozen=True)
class Signed:
    """A signature that passed the profile's checks; its key is to be looked up and verified."""

    params: SignatureParams
    key_id: str
    nonce: str
    created_s: int
    signature: bytes
    base: bytes


def read_signature(request: Request, signature_input: str, signature: str, now_s: int) -> Signed:
    """Parse and check a request's signature headers against the profile (not the key)."""
    params = parse_input(signature_input)
    missing = [c for c in REQUIRED if c not in params.components]
    if missing:
        raise InvalidInput("bad_signature",
                           f"the signature must cover {', '.join(REQUIRED)}; missing {', '.join(missing)}")
    created, key_id, nonce, alg = (params.get(k) for k in ("created", "keyid", "nonce", "alg"))
    if not isinstance(created, int):
        raise InvalidInput("bad_signature", "the signature needs created=<unix seconds>")
    if not -FUTURE_S <= now_s - created <= PAST_S:
        raise InvalidInput("signature_expired", f"the signature was created {now_s - created} s before this "
                           f"node's clock; it must be within {PAST_S} s before and {FUTURE_S} s after "
                           "(check the client's clock)")
    expires = params.get("expires")
    if expires is not None and (not isinstance(expires, int) or expires < now_s):
        raise InvalidInput("signature_expired", "the signature's expires time has passed")
    if not isinstance(key_id, str) or not re.fullmatch(r"[0-9a-f]{16}", key_id):
        raise InvalidInput("bad_signature", 'the signature needs keyid="<key id, 16 hex>"')
    if not isinstance(nonce, str) or not NONCE_MIN_CHARS <= len(nonce) <= NONCE_MAX_CHARS:
        raise InvalidInput("bad_signature", f'the signature needs nonce="..." of {NONCE_MIN_CHARS}-{NONCE_MAX_CHARS} '
                           "characters, new for every request")
    if alg is not None and alg != ALG:
        raise InvalidInput("bad_signature", f'alg must be "{ALG}"')
    sig = parse_signature(signature, params.label)
    return Signed(params, key_id, nonce, created, sig, signature_base(request, params))


class Nonces:
    """Each key's nonces of accepted signatures, for as long as such a signature could pass
    the time check: at most `per_key_max` per key, so one key filling its own memory only
    refuses that key. Registered keys are few (membership), so the keys kept are bounded.

    A nonce is kept until `now + PAST_S + FUTURE_S` from when it was taken: a signature
    accepted then has `created` <= now + FUTURE_S and passes no later than created + PAST_S.
    Expiry therefore follows the order nonces were taken in, and the oldest leave first."""

    def __init__(self, per_key_max: int = NONCES_PER_KEY_MAX) -> None:
        self.per_key_max = per_key_max
        self._kept: dict[str, OrderedDict[str, float]] = {}  # key id -> nonce -> expiry

    def __len__(self) -> int:
        return sum(len(kept) for kept in self._kept.values())

    def take(self, key_id: str, nonce: str, now_s: float) -> str | None:
        """Remember a nonce of `key_id`; None if new, else why the request is refused
        ("replayed", or "full": this key used per_key_max nonces within the window)."""
        kept = self._kept.setdefault(key_id, OrderedDict())
        while kept and next(iter(kept.values())) < now_s:
            kept.popitem(last=False)
        if nonce in kept:
            return "replayed"
        if len(kept) >= self.per_key_max:
            return "full"
        kept[nonce] = now_s + PAST_S + FUTURE_S
        return None


def sign_request(key: crypto.PrivateKey, method: str, path: str, query: str, now_s: int,
                 nonce: str | None = None, label: str = LABEL) -> dict[str, str]:
    """The two headers that sign a read (the SDK's and the CLI's side)."""
    params = SignatureParams(label, REQUIRED, (("created", now_s), ("keyid", key.public.key_id),
                                               ("nonce", nonce or secrets.token_urlsafe(18)), ("alg", ALG)))
    base = signature_base(Request(method, path, query, {}), params)
    sig = base64.b64encode(key.sign(base)).decode("ascii")
    return {"Signature-Input": f"{label}={params.encode()}", "Signature": f"{label}=:{sig}:"}
