"""What an auditor hands the verifier, read with bounds: base64 and hex fields, JSON files,
the genesis file, and what a JSON document is when it is not the one expected.

Nothing here is trusted yet: a field that does not parse is a failed check
(CheckFailed naming the part), a file that cannot even be read is Unusable (exit 2,
docs/verification.md section 5).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..genesis import GENESIS_MAX_BYTES, Genesis, parse, strict_object
from .checks import CheckFailed, Where, clean

BUNDLE_MAX_BYTES = 4 << 20
# An answer of a whole list: up to 1,000 records with their proofs (auditing/answers.py).
ANSWER_MAX_BYTES = 16 << 20
# A certificate page holds the bundle (indented, non-ASCII escaped) and its rendering.
PAGE_MAX_BYTES = 16 << 20
HEX32 = re.compile(r"[0-9a-f]{64}")  # a SHA-256 hash or a record id, as the ledger writes it

FORMAT = "ledgernode-evidence/2"  # an evidence bundle (docs/protocol.md section 12.4)
ANSWER_FORMAT = "ledgernode-answer/2"  # an answer (docs/protocol.md section 12.5)
OLD_FORMATS = {"ledgernode-evidence/1": "an evidence bundle of version 1"}
EQUIVOCATION_FORMAT = "ledgernode-equivocation/1"
KINDS = ("subject", "status", "shares", "provenance")
KIND_NAMES = {  # what each kind of answer is about, for messages
    "subject": "a subject's history", "status": "a certificate's status",
    "shares": "a dataset's sharing", "provenance": "a record's provenance",
}


class Unusable(Exception):
    """Input the verifier cannot even start on (exit 2)."""


# -- fields --------------------------------------------------------------------------------


def unb64(value: Any, part: str, where: Where, what: Where) -> bytes:
    """Base64 `value`; CheckFailed naming `what` of `where` (e.g. the block's header) if not."""
    try:
        if isinstance(value, str):
            return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        pass
    raise CheckFailed(part, f"{where.zh}的{what.zh}缺失或已损坏（不是 base64 文本）",
                      f"{where.en}'s {what.en}: missing or damaged (not base64 text)",
                      f"{what.en} is not a valid base64 string")


def hash_list(value: Any, part: str, zh: str, en: str) -> list[bytes]:
    """A proof: a list of 64-char lowercase hex hashes, else CheckFailed naming the proof (zh, en)."""
    if not isinstance(value, list) or not all(isinstance(p, str) and HEX32.fullmatch(p) for p in value):
        raise CheckFailed(part, f"{zh}已损坏（应为 64 位十六进制哈希的列表）",
                          f"{en} is damaged (it must be a list of 64-hex-digit hashes)",
                          "a proof must be a list of 64-char lowercase hex hashes")
    return [bytes.fromhex(p) for p in value]


# -- files ---------------------------------------------------------------------------------


def load_genesis(path: Path) -> Genesis:
    try:
        raw = path.read_bytes() if path.stat().st_size <= GENESIS_MAX_BYTES else None
    except OSError as exc:
        raise Unusable(f"cannot read genesis {path}: {exc.strerror}") from None
    if raw is None:
        raise Unusable(f"genesis {path} is larger than {GENESIS_MAX_BYTES} bytes")
    try:
        return parse(raw)
    except InvalidInput as exc:
        raise Unusable(f"{path} is not a usable genesis file: {exc.message}") from None


def parse_json(raw: bytes | str, what: str) -> dict[str, Any]:
    """A JSON object (a key given twice is refused); Unusable naming `what` otherwise."""
    try:
        doc = json.loads(raw, object_pairs_hook=strict_object)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise Unusable(f"{what} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise Unusable(f"{what} is not a JSON object")
    return doc


def read_bounded(path: Path, what: str, max_bytes: int) -> bytes:
    """The bytes of `path`, reading no more than one byte past `max_bytes`; Unusable otherwise."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise Unusable(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(raw) > max_bytes:
        raise Unusable(f"{what} {path} is larger than {max_bytes} bytes")
    return raw


def load_json(path: Path, what: str, max_bytes: int = BUNDLE_MAX_BYTES) -> dict[str, Any]:
    return parse_json(read_bounded(path, what, max_bytes), f"{what} {path}")


def is_page(raw: bytes) -> bool:
    """HTML, not JSON: the first character that is not a BOM or white space is "<"."""
    return raw.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n").startswith(b"<")


# -- what a document is ----------------------------------------------------------------------


def describe(doc: dict[str, Any]) -> str | None:
    """What a JSON object that is not what was expected looks like, for an exit-2 message."""
    error = doc.get("error")
    if error is not None:
        if isinstance(error, dict):
            error = f"{error.get('code')}: {error.get('message')}"
        return f"an error answer from a node ({clean(error)}), saved by mistake"
    if doc.get("kind") in KINDS:
        return f"a {doc['kind']!r} answer"
    if doc.get("format") == FORMAT:
        return "an evidence bundle"
    if isinstance(doc.get("format"), str) and doc["format"] in OLD_FORMATS:
        return OLD_FORMATS[doc["format"]] + ", which a version 2 ledger does not write"
    if doc.get("format") == EQUIVOCATION_FORMAT or "equivocations" in doc:
        return "an equivocation proof (check it with --kind equivocation)"
    if isinstance(doc.get("format"), str) and doc["format"].startswith("ledgernode-genesis/"):
        return "a genesis file"
    if "header" in doc and "qc" in doc:
        return "a checkpoint"
    if {"from", "to", "proof"} <= doc.keys():
        return "a consistency proof"
    return "an empty JSON object" if not doc else None


def require_kind(doc: dict[str, Any], kind: str) -> None:
    """Unusable (exit 2) unless `doc` is a `kind` answer, saying what it is and what to run."""
    found = doc.get("kind")
    if found == kind and doc.get("format") == ANSWER_FORMAT:
        return
    if found == kind:
        raise Unusable(f"this {kind!r} answer's format is {clean(doc.get('format'))!r}, not {ANSWER_FORMAT!r}: "
                       "it was made by version 1 of the ledger, or altered")
    if found in KINDS:
        raise Unusable(f"this file is a {found!r} answer ({KIND_NAMES[found]}), not a {kind!r} answer: "
                       f"check it with --kind {found}")
    what = describe(doc)
    hint = ": check it without --kind" if what == "an evidence bundle" else ""
    raise Unusable(f"this file is {what or 'not an answer'}, not a {kind!r} answer{hint}")


def require_bundle(doc: dict[str, Any]) -> None:
    """Unusable (exit 2) unless `doc` says it is an evidence bundle, saying what it is instead."""
    if doc.get("format") != FORMAT:
        what = describe(doc)
        raise Unusable(f"this file is {what}, not an evidence bundle (its format is not {FORMAT!r})" if what
                       else f"not an evidence bundle: format is not {FORMAT!r}")
