"""Command line: `python -m ledgernode <command>` (also the `ledgernode` script)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import crypto
from .errors import InvalidInput


def cmd_keygen(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists():
        print(f"error: {out} exists; keygen never overwrites a key", file=sys.stderr)
        return 2
    key = crypto.generate_private_key()
    out.parent.mkdir(parents=True, exist_ok=True)
    crypto.save_private_key(out, key)
    print(json.dumps({"key_file": str(out), "pubkey": key.public.raw.hex(), "key_id": key.public.key_id}))
    return 0


def _pubkey_hex(spec: str) -> str:
    """A 64-hex public key as given, or the public key of a PEM private key file."""
    if len(spec) == 64 and all(c in "0123456789abcdef" for c in spec):
        return spec
    return crypto.load_private_key(spec).public.raw.hex()


def cmd_genesis(args: argparse.Namespace) -> int:
    from .genesis import build

    validators, clients = [], []
    try:
        for spec in args.validator:
            dept, key, *rest = spec.split(":", 2)
            validators.append({"dept": dept, "name": rest[0] if rest else dept, "pubkey": _pubkey_hex(key)})
        for spec in args.client:
            dept, key, roles = spec.split(":", 2)
            clients.append({"dept": dept, "pubkey": _pubkey_hex(key), "roles": roles.split(",")})
        params = {"record_ts_window_ms": args.record_ts_window_ms, "block_max_records": args.block_max_records}
        raw = build(args.chain_id, validators, clients, params)
    except ValueError:
        print("error: use --validator DEPT:KEY[:NAME] and --client DEPT:KEY:ROLE[,ROLE...]", file=sys.stderr)
        return 2
    except (InvalidInput, crypto.KeyFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.exists():
        print(f"error: {out} exists; a genesis file is written once and never edited", file=sys.stderr)
        return 2
    out.write_bytes(raw)
    print(json.dumps({"genesis": str(out), "genesis_hash": crypto.sha256(raw).hex()}))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from . import verify

    try:
        genesis = verify.load_genesis(Path(args.genesis))
        bundle = verify.load_json(Path(args.bundle), "bundle")
        verdict = verify.verify_bundle(bundle, genesis, Path(args.file) if args.file else None)
    except verify.Unusable as exc:
        if args.json:
            print(json.dumps({"valid": False, "unusable": str(exc)}, ensure_ascii=False))
        print(f"无法验证 cannot verify: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(verdict.to_json(), ensure_ascii=False, indent=2))
    else:
        print(verify.render(verdict))
    return 0 if verdict.valid else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledgernode", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("keygen", help="create an Ed25519 key (PEM PKCS#8, mode 0600)")
    p.add_argument("--out", required=True, help="private key file to create")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("genesis", help="write a genesis file from department entries")
    p.add_argument("--chain-id", required=True)
    p.add_argument("--validator", action="append", default=[], metavar="DEPT:KEY[:NAME]",
                   help="KEY is a PEM key file or 64-hex public key; repeat per validator, in index order")
    p.add_argument("--client", action="append", default=[], metavar="DEPT:KEY:ROLES",
                   help="ROLES like 'cert.*,evidence.notarize'; repeat per client key")
    p.add_argument("--record-ts-window-ms", type=int, default=600_000)
    p.add_argument("--block-max-records", type=int, default=5_000)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_genesis)

    p = sub.add_parser("verify", help="verify an evidence bundle offline")
    p.add_argument("bundle")
    p.add_argument("--genesis", required=True)
    p.add_argument("--file", help="the original file; its SHA-256 must equal body.content_hash")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.set_defaults(func=cmd_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    # The verdict is bilingual: a console that cannot encode Chinese must not turn
    # a printed verdict into a traceback (exit 1, "invalid").
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    return int(args.func(args))
