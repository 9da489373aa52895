"""Command line: `python -m ledgernode <command>` (also the `ledgernode` script)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import crypto
from .errors import InvalidInput, StorageError


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
        bundle = verify.load_json(Path(args.bundle), "bundle" if args.kind == "evidence" else "answer")
        if args.kind == "evidence":
            verdict = verify.verify_bundle(bundle, genesis, Path(args.file) if args.file else None)
        else:
            from .verify_answers import verify_answer

            verdict = verify_answer(bundle, args.kind, genesis)
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


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from . import config
    from .node import NodeFailed, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = config.load(args.config)
        asyncio.run(serve(cfg))
    except config.ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except NodeFailed as exc:
        print(f"node stopped: {exc}", file=sys.stderr)
        return 1
    except (ValueError, InvalidInput, crypto.KeyFileError, OSError, StorageError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_devnet(args: argparse.Namespace) -> int:
    from . import devnet

    try:
        net = devnet.prepare(Path(args.dir), args.nodes, args.base_port)
        return devnet.run(net)
    except devnet.DevnetError as exc:
        print(f"devnet: {exc}", file=sys.stderr)
        return 2


def _target(args: argparse.Namespace, need_key: bool) -> tuple[str, str | None, str | None]:
    """(API URL, key file, chain id) from --api/--key/--chain-id, filled in from --devnet D."""
    from . import devnet

    api, key, chain = args.api, getattr(args, "key", None), getattr(args, "chain_id", None)
    if args.devnet:
        d_api, d_key, d_chain = devnet.read_target(Path(args.devnet))
        api, key, chain = api or d_api, key or str(d_key), chain or d_chain
    if not api:
        raise ValueError("give --api URL (or --devnet DIR)")
    if need_key and not key:
        raise ValueError("give --key KEYFILE (or --devnet DIR)")
    return api, key, chain


def _submit_envelope(args: argparse.Namespace) -> dict[str, object]:
    from . import client as sdk

    api, key_file, chain_id = _target(args, need_key=True)
    assert key_file is not None
    try:
        doc = json.loads(args.body)
    except ValueError as exc:
        raise ValueError(f"--body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("--body must be a JSON object")
    body = sdk.json_body(args.type, doc)
    if args.file:
        body = sdk.body_with_file(args.type, body, Path(args.file))
    refs = [sdk.id_hex(r) for r in args.ref]
    api_client = sdk.Client(api, crypto.load_private_key(key_file), chain_id)
    envelope = api_client.record(args.type, args.subject, body, refs)
    answer: dict[str, object] = api_client.submit(envelope, wait=args.wait, timeout_ms=args.timeout_ms)
    return answer


def cmd_submit(args: argparse.Namespace) -> int:
    from . import client as sdk
    from .devnet import DevnetError

    try:
        answer = _submit_envelope(args)
    except sdk.ApiError as exc:
        print(json.dumps(exc.body, ensure_ascii=False), file=sys.stderr)
        return 1
    except (ValueError, OSError, InvalidInput, crypto.KeyFileError, sdk.TransportError, DevnetError) as exc:
        print(f"submit: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(answer, ensure_ascii=False))
    return 0


def cmd_evidence(args: argparse.Namespace) -> int:
    from . import client as sdk
    from .devnet import DevnetError, write_atomic

    try:
        api, _, _ = _target(args, need_key=False)
        bundle = sdk.Client(api).evidence(args.id)
        text = json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
        if args.out:
            write_atomic(Path(args.out), text.encode("utf-8"))
    except sdk.ApiError as exc:
        print(json.dumps(exc.body, ensure_ascii=False), file=sys.stderr)
        return 1
    except (ValueError, OSError, sdk.TransportError, DevnetError) as exc:
        print(f"evidence: {exc}", file=sys.stderr)
        return 2
    if args.out:
        print(json.dumps({"bundle": args.out, "record_id": bundle.get("record_id"),
                          "leaf_index": bundle.get("leaf_index")}))
    else:
        print(text, end="")
    return 0


def _api_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api", help="node API, e.g. http://127.0.0.1:7100")
    p.add_argument("--devnet", metavar="DIR", help="take node 0's API (and the first client key) from DIR/devnet.json")


def cmd_verify_consistency(args: argparse.Namespace) -> int:
    from . import verify
    from .verify_answers import verify_consistency_files

    try:
        genesis = verify.load_genesis(Path(args.genesis))
        docs = [verify.load_json(Path(p), what) for p, what in
                ((args.old, "old checkpoint"), (args.new, "new checkpoint"), (args.proof, "proof"))]
    except verify.Unusable as exc:
        print(f"无法验证 cannot verify: {exc}", file=sys.stderr)
        return 2
    verdict = verify_consistency_files(*docs, genesis)
    if args.json:
        print(json.dumps(verdict.to_json(), ensure_ascii=False, indent=2))
    else:
        print(verify.render(verdict))
        if verdict.valid:
            old, new = verdict.facts["old"], verdict.facts["new"]
            print(f"log grew from {old['log_size']} leaves (height {old['height']}) "
                  f"to {new['log_size']} (height {new['height']}) without rewriting")
    return 0 if verdict.valid else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(args)


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

    p = sub.add_parser("run", help="run a validator node")
    p.add_argument("-c", "--config", required=True, help="node config (TOML)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("devnet", help="run a local N-node network on 127.0.0.1 until Ctrl-C/SIGTERM")
    p.add_argument("--nodes", type=int, default=4, help="validators (default 4); fixed once DIR exists")
    p.add_argument("--dir", default="devnet", help="keys, genesis, configs, data and logs (default ./devnet)")
    p.add_argument("--base-port", type=int, default=None,
                   help="node i's API listens on BASE+i and its peer link on BASE+100+i (default 7100; "
                        "an existing DIR keeps the ports of its node configs)")
    p.set_defaults(func=cmd_devnet)

    p = sub.add_parser("submit", help="sign a record and submit it to a node")
    _api_arguments(p)
    p.add_argument("--key", help="the signer's private key file (PEM); default with --devnet: its first client")
    p.add_argument("--type", required=True, help="record type, e.g. evidence.notarize")
    p.add_argument("--subject", required=True)
    p.add_argument("--body", default="{}",
                   help="JSON object; 64-hex strings in hash fields become 32 bytes, ints stay ints")
    p.add_argument("--ref", action="append", default=[], metavar="HEX", help="id of a record this builds on")
    p.add_argument("--file", help="sets body.content_hash to the file's SHA-256 "
                                  "(evidence.notarize: also size, media_type, title when absent)")
    p.add_argument("--wait", action="store_true", help="wait (bounded) for the record to commit")
    p.add_argument("--timeout-ms", type=int, default=None, help="how long --wait may take (node default 10 s)")
    p.add_argument("--chain-id", help="default: the chain id of the node's GET /v1/genesis")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("evidence", help="fetch a committed record's evidence bundle")
    _api_arguments(p)
    p.add_argument("--id", required=True, help="record id (64 hex)")
    p.add_argument("--out", help="bundle file to write (default: print it)")
    p.set_defaults(func=cmd_evidence)

    p = sub.add_parser("verify", help="verify an evidence bundle offline")
    p.add_argument("bundle")
    p.add_argument("--genesis", required=True)
    p.add_argument("--file", help="the original file; its SHA-256 must equal body.content_hash")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.add_argument("--kind", default="evidence",
                   choices=["evidence", "subject", "status", "shares", "provenance"],
                   help="what the file is: an evidence bundle (default) or a saved API answer")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("bench", help="throughput of a temporary devnet against the verify bound")
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--clients", type=int, default=4, help="concurrent submitting clients")
    p.add_argument("--batch", type=int, default=500, help="records per request (1: single-record endpoint)")
    p.add_argument("--rate", type=float, default=None, help="offered records/s (default: as fast as possible)")
    p.add_argument("--base-port", type=int, default=7600)
    p.add_argument("--no-single", action="store_true", help="skip the single-record phase")
    p.add_argument("--verify-threads", type=int, default=0, help="per node (0: one per core)")
    p.add_argument("--block-max-records", type=int, default=0, help="node limit (0: the default)")
    p.add_argument("--inflight-max", type=int, default=8_000,
                   help="records submitted but not yet committed everywhere (closed loop)")
    p.add_argument("--json", action="store_true", help="last line: one JSON object")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("verify-consistency", help="prove the ledger only grew between two checkpoints")
    p.add_argument("old", help="older checkpoint (JSON from /v1/checkpoints/{height})")
    p.add_argument("new", help="newer checkpoint")
    p.add_argument("proof", help="consistency proof (JSON from /v1/proofs/consistency)")
    p.add_argument("--genesis", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify_consistency)
    return parser


def main(argv: list[str] | None = None) -> int:
    # The verdict is bilingual: a console that cannot encode Chinese must not turn
    # a printed verdict into a traceback (exit 1, "invalid").
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    return int(args.func(args))
