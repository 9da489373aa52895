"""Command line: `python -m ledgernode <command>` (also the `ledgernode` script)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__, crypto, families, logs
from .config import Limits
from .errors import InvalidInput, StorageError
from .families.schema import Field
from .governance import add_gov_commands

if TYPE_CHECKING:
    from . import client as sdk
from .nodeinit import add_init_command

HELP_WIDTH = 96  # record-type lines of `submit --help`
# `python -m ledgernode ... | head -1`: the reader left before all was written.
BROKEN_PIPE_EXIT = 1


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
        verdict = verify.verify_file(Path(args.bundle), genesis, args.kind, Path(args.file) if args.file else None)
    except verify.Unusable as exc:
        if args.json:
            verify.write_stdout(json.dumps({"valid": False, "unusable": str(exc)}, ensure_ascii=False))
        print(f"无法验证 cannot verify: {exc}", file=sys.stderr)
        return 2
    return _verdict_out(verdict, args.json)


def _verdict_out(verdict: Any, as_json: bool) -> int:
    """Print a verdict (text or JSON); its exit code: 0 valid, 1 not."""
    from . import verify

    # `verify ... | head -1` closes the pipe early: write_stdout then stops quietly and
    # the exit code is still the verdict's.
    verify.write_stdout(json.dumps(verdict.to_json(), ensure_ascii=False, indent=2) if as_json
                        else verify.render(verdict))
    return 0 if verdict.valid else 1


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from . import config
    from .errors import NodeFailed
    from .node import serve

    import signal

    # Until the node's loop takes SIGHUP (peers.py), one must not end the process (also
    # set in __main__.py, for `python -m ledgernode`); the config is read just below.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    logs.configure(args.log_level, args.log_format)
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


def cmd_check(args: argparse.Namespace) -> int:
    """Scrub a stopped node's store (ledgernode/storage/scrub.py): 0 whole, 1 damaged, 2 unusable input."""
    from . import config, verify
    from .storage import scrub

    try:
        cfg = config.load(args.config)
        genesis = verify.load_genesis(cfg.genesis)
        ledger = cfg.data_dir / "ledger"
        report = scrub.check_path(ledger, genesis, progress=lambda line: print(line, file=sys.stderr, flush=True))
    except config.ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except (verify.Unusable, StorageError, scrub.WrongGenesis) as exc:  # StoreLocked names the pid
        print(f"check: {exc}", file=sys.stderr)
        return 2
    print(report.render(ledger))
    return 0 if report.whole else 1


def _peer_blocks(urls: list[str]) -> Any:
    """storage/repair.py's `fetch`: block h from the first of these APIs that gives it
    (repair checks it; an answer that does not even parse counts as not given)."""
    import base64
    import binascii

    from . import client as sdk
    from .blocks import qc_from_json

    clients = [sdk.Client(url) for url in urls]

    def fetch(height: int) -> Any:
        for c in clients:
            try:
                doc = c.block(height)
                return (base64.b64decode(doc["header"], validate=True), qc_from_json(doc["qc"]),
                        tuple(base64.b64decode(e, validate=True) for e in doc["envelopes"]))
            except (sdk.ClientError, InvalidInput, KeyError, TypeError, binascii.Error) as exc:
                print(f"repair: block {height} from {c.api_url}: {exc}", file=sys.stderr)
        return None
    return fetch


def cmd_repair(args: argparse.Namespace) -> int:
    """Rebuild a stopped node's store block by block (ledgernode/storage/repair.py): 0 rebuilt
    to its old head, 1 rebuilt below it (the node fetches the rest), 2 unusable input."""
    from . import config, verify
    from .storage.damage import repair_ledger

    try:
        cfg = config.load(args.config)
        genesis = verify.load_genesis(cfg.genesis)
        fetch = _peer_blocks(args.peer_api) if args.peer_api else None
        rebuilt, aside = repair_ledger(cfg.data_dir, genesis, fetch,
                                       progress=lambda line: print(line, file=sys.stderr, flush=True))
    except config.ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except (verify.Unusable, StorageError, ValueError) as exc:  # StoreLocked names the pid; ValueError: a bad URL
        print(f"repair: {exc}", file=sys.stderr)
        return 2
    print(f"repair: {rebuilt.summary()}")
    print(f"repair: the damaged store is kept as {aside}; start the node as usual")
    return 0 if rebuilt.complete else 1


def cmd_devnet(args: argparse.Namespace) -> int:
    from . import devnet

    try:
        if args.netns:  # before any file is written: a devnet dir made for namespaces needs them
            devnet.netns.check_permitted()
        net = devnet.prepare(Path(args.dir), args.nodes, args.base_port, args.spare, args.netns or None,
                             args.tls or None)
        return devnet.run(net, log_level=args.log_level, log_format=args.log_format)
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


def _submit_envelope(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """(API URL, the node's answer) for the record the arguments describe, signed and submitted."""
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
    api_client = sdk.Client(api, crypto.load_private_key(key_file), chain_id, ca_file=_ca_file(args))
    envelope = api_client.record(args.type, args.subject, body, refs)
    return api, api_client.submit(envelope, wait=args.wait, timeout_ms=args.timeout_ms)


def cmd_submit(args: argparse.Namespace) -> int:
    from . import audit, client as sdk
    from .devnet import DevnetError

    try:
        api, answer = _submit_envelope(args)
    except sdk.ApiError as exc:  # RecordRejected too: its answer is the body printed
        print(json.dumps(exc.body, ensure_ascii=False), file=sys.stderr)
        return audit.EXIT_FAILED
    except (ValueError, OSError, InvalidInput, crypto.KeyFileError, sdk.TransportError, DevnetError) as exc:
        print(f"submit: {exc}", file=sys.stderr)
        return audit.EXIT_UNUSABLE
    if not args.wait:  # pending is the expected answer then
        print(json.dumps(answer, ensure_ascii=False))
        return audit.EXIT_OK
    waited = (f"after {args.timeout_ms} ms" if args.timeout_ms is not None else
              f"after the node's default wait ({Limits().wait_default_ms} ms unless its config says otherwise)")
    return audit.report_outcome(answer, waited, audit.check_command(args, api, str(answer.get("id"))))


def _read_client(args: argparse.Namespace) -> sdk.Client:
    """A client of the API from --api/--devnet that signs its reads with --key (or the
    devnet's first client key) and trusts --cacert for https."""
    from . import client as sdk

    api, key_file, _ = _target(args, need_key=False)
    if key_file and not args.key and not Path(key_file).exists():
        key_file = None  # the devnet's client key is only a default: a read of an open node needs none
    key = crypto.load_private_key(key_file) if key_file else None
    return sdk.Client(api, key, ca_file=_ca_file(args))


def _ca_file(args: argparse.Namespace) -> str | Path | None:
    """--cacert, or the CA of a devnet made with --tls when --devnet names it."""
    from . import devnet

    if args.cacert:
        return str(args.cacert)
    return devnet.read_ca(Path(args.devnet)) if args.devnet else None


def _read_client_or_none(args: argparse.Namespace) -> sdk.Client | None:
    """`_read_client`, or None after saying on stderr why there is none."""
    from .devnet import DevnetError

    try:
        return _read_client(args)
    except (ValueError, DevnetError, crypto.KeyFileError) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return None


def cmd_read(args: argparse.Namespace) -> int:
    """checkpoint, history, status, shares, provenance, consistency: see ledgernode/audit.py."""
    from . import audit

    client = _read_client_or_none(args)
    return audit.EXIT_UNUSABLE if client is None else audit.run(args, client)


def cmd_record(args: argparse.Namespace) -> int:
    from . import audit

    client = _read_client_or_none(args)
    return audit.EXIT_UNUSABLE if client is None else audit.record(args, client)


def cmd_evidence(args: argparse.Namespace) -> int:
    from . import client as sdk
    from .devnet import DevnetError, write_atomic

    try:
        bundle = _read_client(args).evidence(args.id)
        text = json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
        if args.out:
            write_atomic(Path(args.out), text.encode("utf-8"))
    except sdk.ApiError as exc:
        print(json.dumps(exc.body, ensure_ascii=False), file=sys.stderr)
        return 1
    except (ValueError, OSError, sdk.TransportError, DevnetError, crypto.KeyFileError) as exc:
        print(f"evidence: {exc}", file=sys.stderr)
        return 2
    if args.out:
        print(json.dumps({"bundle": args.out, "record_id": bundle.get("record_id"),
                          "leaf_index": bundle.get("leaf_index")}))
    else:
        print(text, end="")
    return 0


def _api_arguments(p: argparse.ArgumentParser, signs: bool = False) -> None:
    p.add_argument("--api", metavar="URL",
                   help="node API, e.g. http://127.0.0.1:7100 (default: node 0's API from --devnet)")
    what = "node 0's API and the first client key" if signs else "node 0's API and the key that signs reads"
    p.add_argument("--devnet", metavar="DIR", help=f"take {what} from DIR/devnet.json (default: none)")
    if not signs:
        p.add_argument("--key", help="a registered key (PEM) to sign the reads with, for a node whose reads are "
                       "authenticated (docs/security.md section 9) (default with --devnet: its first client)")
    p.add_argument("--cacert", metavar="FILE", help="CA certificate (PEM) that signed the node's TLS certificate, "
                   "for an https:// API (default: the system's)")


def cmd_verify_consistency(args: argparse.Namespace) -> int:
    from . import verify
    from .auditing.checkpoints import verify_consistency_files

    try:
        genesis = verify.load_genesis(Path(args.genesis))
        docs = [verify.load_json(Path(p), what) for p, what in
                ((args.old, "old checkpoint"), (args.new, "new checkpoint"), (args.proof, "proof"))]
        old, new, proof = docs
        verdict = verify_consistency_files(old, new, proof, genesis)
    except verify.Unusable as exc:
        print(f"无法验证 cannot verify: {exc}", file=sys.stderr)
        return 2
    return _verdict_out(verdict, args.json)


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(args)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default unless it already states one; the
    record-type and exit-code epilogs keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.required or not action.option_strings or action.default is None:
            return text
        if action.default is False:
            return text + " (default: off)"
        if action.default == []:
            return text + " (default: none)"
        return str(super()._get_help_string(action))


class _Parser(argparse.ArgumentParser):
    """The parser of ledgernode and, through add_subparsers, of each of its commands."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _kind_suffix(field: Field) -> str:
    """' kind' of a body field; a field named like its kind (classification) needs none."""
    return "" if field.kind.name == field.name else f" {field.kind.name}"


def record_types_help() -> str:
    """Every record type with its body fields, read from the registry (families/, the one table)."""
    kinds = ", ".join(f"{kind.name} {kind.help}" for kind in families.KINDS)
    lines = textwrap.wrap(
        f"record types and their body fields (? optional; kinds of docs/protocol.md section 5: {kinds}):",
        HELP_WIDTH)
    width = max(len(name) for name in families.TYPES)
    for record_type, rtype in families.TYPES.items():
        fields = ", ".join(f"{f.name}{'' if f.required else '?'}{_kind_suffix(f)}" for f in rtype.fields)
        lines += textwrap.wrap(fields, HELP_WIDTH, initial_indent=f"  {record_type:<{width}}  ",
                               subsequent_indent=" " * (width + 4))
    return "\n".join(lines)


SUBMIT_EXIT_CODES = """exit codes:
  0  the node accepted the record: committed, or (without --wait) pending
  1  the node refused it ({"error": ...} on stderr), or with --wait a block rejected it
     ({"id", "status": "rejected", "error", "height"} on stderr)
  2  unusable input (arguments, key, --body, --file) or the node cannot be reached
  3  --wait ran out with the record still pending: its JSON on stdout, on stderr a
     sentence with the `ledgernode record` line that checks it later"""

READ_EXIT_CODES = """exit codes: 0 fetched (and saved); 1 the node answered with an error
({"error": ...} on stderr); 2 unusable input (arguments, time, file) or the node cannot be reached"""


def _log_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", choices=logs.LEVELS, default="info", help="lowest level logged")
    p.add_argument("--log-format", choices=logs.FORMATS, default="text",
                   help="text: 'time logger LEVEL message' lines; json: one object a line")


def _add_setup_commands(sub: Any) -> None:
    p = sub.add_parser("keygen", help="create an Ed25519 key (PEM PKCS#8, mode 0600)")
    p.add_argument("--out", required=True, help="private key file to create")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("genesis", help="write a genesis file from department entries")
    p.add_argument("--chain-id", required=True, help="the chain's id, e.g. gov-devnet")
    p.add_argument("--validator", action="append", default=[], metavar="DEPT:KEY[:NAME]",
                   help="KEY is a PEM key file or 64-hex public key; repeat per validator, in index order")
    p.add_argument("--client", action="append", default=[], metavar="DEPT:KEY:ROLES",
                   help="ROLES like 'cert.*,evidence.notarize'; repeat per client key")
    p.add_argument("--record-ts-window-ms", type=int, default=600_000,
                   help="how far a record's ts may be from its block's time")
    p.add_argument("--block-max-records", type=int, default=5_000, help="records a block may hold")
    p.add_argument("--out", required=True, help="genesis file to create")
    p.set_defaults(func=cmd_genesis)

    p = sub.add_parser("run", help="run a validator node",
                       epilog="exit codes: 0 stopped by SIGTERM or SIGINT; 1 the node stopped on a fault "
                              "(the message says what to do); 2 cannot start; 3 a shutdown that did not "
                              "finish in 20 s was cut short (nothing acknowledged is lost)")
    p.add_argument("-c", "--config", required=True, help="node config (TOML)")
    _log_arguments(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="check a stopped node's store block by block and report damage",
                       epilog="exit codes: 0 the store is whole; 1 damage found (the report says where and "
                              "how to repair); 2 unusable input: config, genesis, no store, or a running "
                              "node holds it")
    p.add_argument("-c", "--config", required=True, help="the node's config (TOML): its data_dir and genesis")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("repair", help="rebuild a stopped node's store block by block, fetching damaged "
                                      "blocks from peers",
                       epilog="every block is checked as catch-up checks it (QC, prev, log root, rules) before "
                              "it is kept; the damaged store is kept beside the new one. exit codes: 0 rebuilt to "
                              "its old head; 1 rebuilt below it (the node fetches the rest from its peers when "
                              "it starts); 2 unusable input: config, genesis, no store, or a running node holds it")
    p.add_argument("-c", "--config", required=True, help="the node's config (TOML): its data_dir and genesis")
    p.add_argument("--from", dest="peer_api", action="append", default=[], metavar="URL",
                   help="a peer's API (e.g. http://127.0.0.1:7101) to fetch damaged blocks from; repeatable")
    p.set_defaults(func=cmd_repair)

    p = sub.add_parser("devnet", help="run a local N-node network on 127.0.0.1 until Ctrl-C/SIGTERM")
    p.add_argument("--nodes", type=int, default=4, help="validators (default 4); fixed once DIR exists")
    p.add_argument("--spare", type=int, default=None, metavar="N",
                   help="N more nodes whose keys the genesis does not hold: they follow the chain until "
                        "`gov propose --action validator.add` adds them (docs/governance.md); fixed once DIR "
                        "exists (default: 0 for a new DIR, else as DIR has)")
    p.add_argument("--dir", default="devnet", help="keys, genesis, configs, data and logs (default ./devnet)")
    p.add_argument("--base-port", type=int, default=None,
                   help="node i's API listens on BASE+i and its peer link on BASE+100+i (default 7100; "
                        "an existing DIR keeps the ports of its node configs)")
    p.add_argument("--netns", action="store_true",
                   help="root only: each node in a network namespace of its own at 10.77.0.(10+i), on a bridge "
                        "lnbr0 with 10.77.0.1 in this namespace (docs/operations.md section 7); fixed once DIR exists")
    p.add_argument("--tls", action="store_true",
                   help="make a CA and a certificate per node in DIR/tls and run both ports over TLS "
                        "(docs/security.md section 8); fixed once DIR exists")
    _log_arguments(p)
    p.set_defaults(func=cmd_devnet)


def _add_submit_commands(sub: Any) -> None:
    p = sub.add_parser("submit", help="sign a record and submit it to a node",
                       epilog=record_types_help() + "\n\n" + SUBMIT_EXIT_CODES)
    _api_arguments(p, signs=True)
    p.add_argument("--key", help="the signer's private key file (PEM) (default with --devnet: its first client)")
    p.add_argument("--type", required=True, help="record type, e.g. evidence.notarize (listed below)")
    p.add_argument("--subject", required=True, help="what the record is about, 1 to 256 chars")
    p.add_argument("--body", default="{}",
                   help="JSON object; 64-hex strings in hash fields become 32 bytes, ints stay ints")
    p.add_argument("--ref", action="append", default=[], metavar="HEX",
                   help="id of a record this builds on (repeatable)")
    p.add_argument("--file", help="sets body.content_hash to the file's SHA-256 "
                                  "(evidence.notarize: also size, media_type, title when absent) (default: none)")
    p.add_argument("--wait", action="store_true", help="wait (bounded) for the record to commit")
    p.add_argument("--timeout-ms", type=int, default=None, help="how long --wait may take (node default 10 s)")
    p.add_argument("--chain-id", help="default: the chain id of the node's GET /v1/genesis")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("evidence", help="fetch a committed record's evidence bundle")
    _api_arguments(p)
    p.add_argument("--id", required=True, help="record id (64 hex)")
    p.add_argument("--out", help="bundle file to write (default: print it)")
    p.set_defaults(func=cmd_evidence)

    p = sub.add_parser("record", help="show where a submitted record stands: committed, pending or rejected",
                       epilog="exit codes: 0 committed; 1 rejected (answer on stderr) or a node error; "
                              "2 unusable input or unreachable node; 3 still pending")
    _api_arguments(p)
    p.add_argument("id", help="record id (64 hex), as printed by submit")
    p.set_defaults(func=cmd_record)


def _read_parser(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_text, epilog=READ_EXIT_CODES,
                                                description=textwrap.fill(help_text + ".", HELP_WIDTH))
    _api_arguments(p)
    p.add_argument("--out", metavar="FILE", help="save the answer here (default: print it)")
    p.set_defaults(func=cmd_read)
    return p


def _add_read_commands(sub: Any) -> None:
    p = _read_parser(sub, "checkpoint", "fetch a certified checkpoint to keep (for `consistency` later)")
    p.add_argument("--height", type=int, default=None, help="a committed height (default: the head)")
    p = _read_parser(sub, "history", "fetch a page of a subject's records (verify --kind subject)")
    p.add_argument("subject", help="subject, e.g. a certificate number or evidence id")
    p.add_argument("--from", dest="from_", type=int, default=None, metavar="POSITION",
                   help="start at this position of the subject's list, the answer's next_from (default: 0)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="records per page (default: the node's page size)")
    p = _read_parser(sub, "status", "fetch a certificate's status at a time (verify --kind status)")
    p.add_argument("number", help="certificate number (the cert.issue subject)")
    p.add_argument("--at", metavar="TIME", help="ISO 8601 with an offset (2026-12-02T10:00:00Z, "
                   "2026-12-02T10:00+08:00), a date (2026-12-02 = 00:00 UTC) or integer ms "
                   "(default: the node's current time)")
    p = _read_parser(sub, "shares", "fetch a dataset's grants, revocations and accesses (verify --kind shares)")
    p.add_argument("dataset", help="dataset id (the dataset.publish subject)")
    p = _read_parser(sub, "provenance", "fetch the records a record derives from, or (--direction forward) "
                     "every record made from it (verify --kind provenance)")
    p.add_argument("id", help="record id (64 hex)")
    p.add_argument("--depth", type=int, default=None, metavar="N",
                   help="levels of refs to follow (default: the node's default depth)")
    p.add_argument("--direction", choices=("back", "forward"), default="back",
                   help="back: what it was made from (default); forward: what was made from it, e.g. a recall")
    p = _read_parser(sub, "consistency", "fetch the proof that the ledger only grew since a saved checkpoint "
                     "(check it with verify-consistency OLD NEW PROOF)")
    p.add_argument("--from", dest="from_", required=True, metavar="OLD.json",
                   help="the older checkpoint, saved by `ledgernode checkpoint`")
    p.add_argument("--to", metavar="NEW.json",
                   help="the newer checkpoint (default: fetch the node's current one and save it at --to-out)")
    p.add_argument("--to-out", metavar="FILE",
                   help="where to save the current checkpoint when there is no --to (default: none; "
                        "required without --to)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ledgernode", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_setup_commands(sub)
    add_init_command(sub)
    _add_submit_commands(sub)
    _add_read_commands(sub)
    add_gov_commands(sub)

    p = sub.add_parser("verify", help="verify an evidence bundle offline")
    p.add_argument("bundle")
    p.add_argument("--genesis", required=True, help="the genesis file you trust")
    p.add_argument("--file", help="the original file; its SHA-256 must equal body.content_hash (default: none)")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.add_argument("--kind", default="evidence",
                   choices=["evidence", "subject", "status", "shares", "provenance", "equivocation"],
                   help="what the file is: an evidence bundle (default), a saved API answer, or "
                        "equivocation proofs from GET /v1/equivocations")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("bench", help="throughput of a temporary devnet against the verify bound")
    p.add_argument("--nodes", type=int, default=4, help="validators")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    p.add_argument("--clients", type=int, default=4, help="concurrent submitting clients")
    p.add_argument("--batch", type=int, default=500, help="records per request (1: single-record endpoint)")
    p.add_argument("--rate", type=float, default=None, help="offered records/s (default: as fast as possible)")
    p.add_argument("--base-port", type=int, default=7600, help="as devnet's --base-port")
    p.add_argument("--no-single", action="store_true", help="skip the single-record phase")
    p.add_argument("--verify-threads", type=int, default=0, help="per node (0: one per core)")
    p.add_argument("--block-max-records", type=int, default=0, help="node limit (0: the default)")
    p.add_argument("--inflight-max", type=int, default=8_000,
                   help="records submitted but not yet committed everywhere (closed loop)")
    p.add_argument("--json", action="store_true", help="last line: one JSON object")
    p.add_argument("--plot", metavar="FILE", default=None,
                   help="also write throughput and latency over time as an SVG chart (default: none)")
    p.add_argument("--tls", action="store_true", help="run the devnet with TLS on both ports (devnet --tls)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("verify-consistency", help="prove the ledger only grew between two checkpoints")
    p.add_argument("old", help="older checkpoint (JSON from /v1/checkpoints/{height})")
    p.add_argument("new", help="newer checkpoint")
    p.add_argument("proof", help="consistency proof (JSON from /v1/proofs/consistency)")
    p.add_argument("--genesis", required=True, help="the genesis file you trust")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.set_defaults(func=cmd_verify_consistency)
    return parser


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


def main(argv: list[str] | None = None) -> int:
    # The verdict is bilingual: a console that cannot encode Chinese must not turn
    # a printed verdict into a traceback (exit 1, "invalid").
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    code = BROKEN_PIPE_EXIT
    try:
        try:
            code = _run(argv)
        except SystemExit as exc:  # --help, --version, usage errors: their text is still buffered
            code = exc.code if isinstance(exc.code, int) else BROKEN_PIPE_EXIT
            raise
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        # The Python docs' pattern (signal module, "Note on SIGPIPE"): the reader is
        # gone, so point stdout at devnull, or the interpreter's own flush at exit
        # fails again and prints a traceback. A command that had finished keeps its code.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return code
    return code
