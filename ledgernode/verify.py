"""The offline verifier's entry (docs/protocol.md section 9; for auditors,
docs/verification.md): `python -m ledgernode verify` and `verify-consistency`.

Trusts only the genesis file. The checks live in the auditing package
(ledgernode/auditing/), which uses the codec, crypto, Merkle, record and block
modules and nothing that talks to a network or a database (no aiohttp, no
plyvel), so an auditor can run it on an offline machine. This module reads the
file it is given, hands it to the check of its kind, and prints the verdict.

A verdict first states, in one line of Chinese and English, the claim it
verified (`facts["claim"]`), then every check. A failed check's reason names
the part of the file that failed (record bytes, signature, inclusion proof,
header, commit certificate, genesis) in plain words, then the technical detail;
its `part` field names that part for programs.

Exit codes: 0 valid, 1 invalid (a check failed), 2 unusable input (a file is
missing or unreadable, or is not a genesis file / evidence bundle / certificate
page at all, or is an answer given without its `--kind`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .auditing.answers import verify_answer
from .auditing.bundle import CHECKS, verify_bundle
from .auditing.certificate import bundle_from_page
from .auditing.checks import CheckFailed, Verdict, clean, run_checks
from .auditing.parse import (
    ANSWER_MAX_BYTES, BUNDLE_MAX_BYTES, KINDS, PAGE_MAX_BYTES, Unusable, is_page, load_genesis, load_json, parse_json, read_bounded,
)
from .equivocation import verify_equivocations
from .genesis import Genesis

# What the command line, the client SDK, equivocation.py and auditors' scripts take from here.
__all__ = [
    "BUNDLE_MAX_BYTES", "CHECKS", "PAGE_MAX_BYTES", "CheckFailed", "Loaded", "Unusable", "Verdict", "clean",
    "load_genesis", "load_input", "load_json", "render", "run_checks", "verify_bundle", "verify_file", "write_stdout",
]


@dataclass(frozen=True)
class Loaded:
    doc: dict[str, Any]
    from_page: bool  # the bundle was embedded in a certificate page (auditing/certificate.py)


def load_input(path: Path) -> Loaded:
    """The file `verify` was given: JSON (a bundle or an answer) or a certificate page."""
    raw = read_bounded(path, "file", PAGE_MAX_BYTES)
    if is_page(raw):
        return Loaded(bundle_from_page(raw), True)
    if len(raw) > ANSWER_MAX_BYTES:
        raise Unusable(f"file {path} is larger than {ANSWER_MAX_BYTES} bytes")
    return Loaded(parse_json(raw, f"file {path}"), False)


def verify_file(path: Path, genesis: Genesis, kind: str = "evidence", original: Path | None = None) -> Verdict:
    """What `python -m ledgernode verify PATH --kind KIND` checks: a bundle (JSON or embedded in a
    certificate page) or an answer of `kind`. An answer given as a bundle is Unusable with the
    `--kind` to use: the auditor says what they expect to check (docs/verification.md section 2)."""
    loaded = load_input(path)
    doc = loaded.doc
    if kind == "equivocation" and not loaded.from_page:
        return verify_equivocations(doc, genesis)
    if kind == "evidence":
        if doc.get("kind") in KINDS:
            raise Unusable(f"{path} is a {doc['kind']!r} answer, not an evidence bundle: check it with "
                           f"python -m ledgernode verify {path} --genesis GENESIS --kind {doc['kind']}")
        verdict = verify_bundle(doc, genesis, original)
    elif loaded.from_page:
        raise Unusable(f"{path} is a certificate page, which holds an evidence bundle, not a {kind!r} "
                       "answer: check it without --kind")
    elif original is not None:
        raise Unusable("--file compares a file with an evidence bundle's record; an answer has none")
    else:
        verdict = verify_answer(doc, kind, genesis)
    if loaded.from_page:
        verdict.facts["source"] = "certificate page"
    return verdict


# -- output ---------------------------------------------------------------------------------


def write_stdout(text: str) -> None:
    """Print `text`; if the reader has gone (`verify ... | head -1`), stop quietly. stdout then
    points at devnull, so the interpreter's own flush at exit does not fail again."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _record_lines(rec: dict[str, Any]) -> list[str]:
    signer = rec["signer"]
    head = [f"记录 Record      {rec['id']}", f"  类型 type      {rec['type']}",
            f"  主体 subject   {clean(rec['subject'])}",
            f"  签名者 signer  key {signer['key_id']}" + (f" of department {clean(signer['dept'])}" if "dept" in signer
                                                        else " (its key entry is not proven)"),
            f"  声明时间 claimed time  {rec['claimed_time']}"]
    return head + [f"  {clean(k)}: {clean(v)}" for k, v in rec["body"].items()] + [f"  ref: {r}" for r in rec["refs"]]


def _block_lines(block: dict[str, Any] | None, signers: list[dict[str, Any]]) -> list[str]:
    lines = [f"区块 Block       height {block['height']}, time {block['time']}", f"  hash {block['hash']}",
             f"  log size {block['log_size']}, root {block['log_root']}"] if block else []
    return lines + [f"  认证节点 certified by validator {v['validator']} ({v['dept']}, {v['name']})" for v in signers]


def render(verdict: Verdict) -> str:
    """The verdict as text a person can read: the verdict, the claim it proves, details, checks."""
    facts = verdict.facts
    lines = ["结论 / Verdict: " + ("有效 VALID" if verdict.valid else "无效 INVALID"), ""]
    if facts.get("source") == "certificate page":
        lines.append("来源 source: 证书页面中嵌入的证据包 / the evidence bundle embedded in the certificate page")
    claim = facts.get("claim")
    if claim:
        lines += [f"已核实 verified: {claim['zh']} / {claim['en']}", ""]
    rec, block = facts.get("record"), facts.get("block")
    if rec:
        lines += _record_lines(rec)
    lines += _block_lines(block, facts.get("certified_by", []))
    checkpoint = facts.get("checkpoint")
    if checkpoint and claim:
        # What the verdict relied on (docs/protocol.md section 12.2): an epoch list cannot prove
        # that it is complete, so the checkpoint and its validator epoch are always printed.
        lines.append(f"检查点 Checkpoint  height {checkpoint['height']}, time {checkpoint['time']}, log size "
                     f"{checkpoint['log_size']}, validator epoch {claim.get('epoch', facts.get('epoch', 0))}")
    if rec or block or checkpoint:
        lines.append("")
    for c in verdict.checks:
        mark = "通过 PASS" if c["ok"] else "失败 FAIL"
        lines.append(f"[{mark}] {c['zh']} / {c['en']}")
        if not c["ok"]:
            lines.append(f"        原因 reason: {clean(c['error'])}")
    return "\n".join(lines)
