"""Auditor read commands: fetch an answer the offline verifier checks; save or print it.

`ledgernode checkpoint | history | status | shares | provenance | consistency`
each make one or two calls through the client SDK and keep the node's JSON
unchanged, so a file saved with `--out` verifies with `python -m ledgernode
verify FILE --genesis G --kind KIND` (docs/protocol.md section 9), and two
checkpoints with a proof between them with `verify-consistency`. `record ID`
shows where a submitted record stands. cli.py holds the parsers; this module
holds what each command does, the time parser behind `--at` and the exit codes:

  0  the answer was fetched (and saved); `record`: it is committed
  1  the node answered with an error: its {"error": ...} is printed on stderr;
     `record` / `submit --wait`: a block rejected the record (answer on stderr)
  2  unusable input: bad arguments or time, unreadable file, node unreachable
  3  `record` / `submit --wait`: the record is still pending
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .client import ApiError, Client, TransportError
from .devnet import write_atomic
from .times import parse_time_ms
from .verify import Unusable, load_json

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNUSABLE = 2
EXIT_PENDING = 3

# Where a saved answer of each command is checked, as `python -m ledgernode verify --kind`.
VERIFY_KINDS = {"history": "subject", "status": "status", "shares": "shares", "provenance": "provenance"}


# -- what each command fetches -------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    """One command's result: the answer it prints or saves at --out, files it must
    save besides (the new checkpoint of `consistency`), and a sentence for stderr."""

    doc: dict[str, Any]
    also: tuple[tuple[Path, dict[str, Any]], ...] = ()
    note: str | None = None


def _checkpoint(c: Client, args: argparse.Namespace) -> Fetched:
    return Fetched(c.checkpoint(args.height))


def _history(c: Client, args: argparse.Namespace) -> Fetched:
    doc = c.history(args.subject, args.from_, args.limit)
    more = doc.get("next_from")
    note = None if more is None else (
        f"more records follow: ledgernode history {shlex.quote(args.subject)} --from {more} ...")
    return Fetched(doc, note=note)


def _status(c: Client, args: argparse.Namespace) -> Fetched:
    at_ms = None if args.at is None else parse_time_ms(args.at)
    return Fetched(c.cert_status(args.number, at_ms))


def _shares(c: Client, args: argparse.Namespace) -> Fetched:
    return Fetched(c.shares(args.dataset))


def _provenance(c: Client, args: argparse.Namespace) -> Fetched:
    return Fetched(c.provenance(args.id, args.depth, args.direction))


def _log_size(doc: dict[str, Any], path: str) -> int:
    size = doc.get("log_size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"{path} is not a checkpoint (no integer log_size); save one with `ledgernode checkpoint`")
    return size


def _consistency(c: Client, args: argparse.Namespace) -> Fetched:
    """The proof from --from's log size to --to's, or to the head checkpoint, which is then
    saved at --to-out: a proof checks only against the checkpoint it leads to."""
    if args.to is None and args.to_out is None:
        raise ValueError("without --to, give --to-out FILE to keep the current checkpoint the proof leads to")
    if args.to is not None and args.to_out is not None:
        raise ValueError("--to-out saves the current checkpoint; with --to the newer checkpoint is already a file")
    old = load_json(Path(args.from_), "old checkpoint")
    new = load_json(Path(args.to), "new checkpoint") if args.to is not None else c.checkpoint()
    old_size, new_size = _log_size(old, args.from_), _log_size(new, args.to or "the current checkpoint")
    if old_size > new_size:
        raise ValueError(f"{args.from_} holds {old_size} leaves, more than the newer checkpoint's {new_size}: "
                         "give the older checkpoint as --from")
    proof = c.consistency(old_size, new_size)
    also = () if args.to_out is None else ((Path(args.to_out), new),)
    return Fetched(proof, also)


READS: dict[str, Callable[[Client, argparse.Namespace], Fetched]] = {
    "checkpoint": _checkpoint, "history": _history, "status": _status, "shares": _shares,
    "provenance": _provenance, "consistency": _consistency,
}


# -- running a command -------------------------------------------------------------------


def _json_text(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _verify_hint(args: argparse.Namespace) -> str | None:
    """The command that checks what was saved (genesis from --devnet when known)."""
    genesis = shlex.quote(str(Path(args.devnet) / "genesis.json")) if args.devnet else "GENESIS"
    out = shlex.quote(args.out)
    if args.command in VERIFY_KINDS:
        return f"python -m ledgernode verify {out} --genesis {genesis} --kind {VERIFY_KINDS[args.command]}"
    if args.command == "consistency":
        new = shlex.quote(args.to or args.to_out)
        return (f"python -m ledgernode verify-consistency {shlex.quote(args.from_)} {new} {out} "
                f"--genesis {genesis}")
    return None


def _emit(fetched: Fetched, args: argparse.Namespace) -> None:
    """Save every file first, then say so: a printed path always names a complete file."""
    for path, doc in fetched.also:
        write_atomic(path, _json_text(doc).encode("utf-8"))
    if args.out is None:
        print(_json_text(fetched.doc), end="")
    else:
        write_atomic(Path(args.out), _json_text(fetched.doc).encode("utf-8"))
        saved = [args.out] + [str(path) for path, _ in fetched.also]
        summary: dict[str, Any] = {"saved": saved}
        hint = _verify_hint(args)
        if hint is not None:
            summary["verify"] = hint
        print(json.dumps(summary, ensure_ascii=False))
    if fetched.note:
        print(fetched.note, file=sys.stderr)


def _unreachable(name: str, api: str, exc: TransportError) -> int:
    hint = "is it running?"
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        hint = "its TLS certificate is not one this machine trusts: give --cacert FILE, or --devnet DIR"
    print(f"{name}: no usable answer from the node at {api} ({hint}): {exc}", file=sys.stderr)
    return EXIT_UNUSABLE


def run(args: argparse.Namespace, client: Client) -> int:
    """Run the read command `args.command` against the node `client` reads; the exit code."""
    name, api = args.command, client.api_url
    try:
        fetched = READS[name](client, args)
        _emit(fetched, args)
    except ApiError as exc:
        print(json.dumps(exc.body, ensure_ascii=False), file=sys.stderr)
        return EXIT_FAILED
    except TransportError as exc:
        return _unreachable(name, api, exc)
    except (ValueError, OSError, Unusable) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    return EXIT_OK


# -- where a record stands (`record`, `submit --wait`) ----------------------------------------


def check_command(args: argparse.Namespace, api: str, record_id: str) -> str:
    """The `ledgernode record` line that shows the record's status later, targeted as this run was."""
    target = f"--devnet {shlex.quote(args.devnet)}" if args.devnet else f"--api {shlex.quote(api)}"
    return f"python -m ledgernode record {target} {record_id}"


def report_outcome(answer: dict[str, Any], waited: str, check: str) -> int:
    """Print a record's answer by its status and return the exit code: committed 0 (stdout),
    rejected 1 (stderr), pending 3 (stdout, and on stderr how to check again)."""
    text = json.dumps(answer, ensure_ascii=False)
    status = answer.get("status")
    if status == "rejected":
        print(text, file=sys.stderr)
        return EXIT_FAILED
    print(text)
    if status == "pending":
        print(f"still pending {waited}; check with: {check}", file=sys.stderr)
        return EXIT_PENDING
    return EXIT_OK


def record(args: argparse.Namespace, client: Client) -> int:
    """`ledgernode record ID`: GET /v1/records/{id}, exit code by its status."""
    api = client.api_url
    try:
        answer = client.get_record(args.id)
    except ApiError as exc:
        print(json.dumps(exc.body, ensure_ascii=False), file=sys.stderr)
        return EXIT_FAILED
    except TransportError as exc:
        return _unreachable("record", api, exc)
    except ValueError as exc:
        print(f"record: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    return report_outcome(answer, "at the node", check_command(args, api, str(answer.get("id", args.id))))
