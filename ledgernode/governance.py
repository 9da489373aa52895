"""`ledgernode gov`: propose, approve and list membership changes (docs/governance.md).

A validator's operator signs gov.propose and gov.approve records with the validator's
key (only those may sign them, docs/protocol.md section 13) and submits them like any
record; `gov list` reads GET /v1/governance/proposals. Exit codes are those of
`ledgernode submit`: 0 accepted, 1 refused by the node, 2 unusable input or no node, 3
still pending after --wait.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import crypto
from .errors import InvalidInput
from .families import gov
from .times import now_ms, parse_time_ms, utc_text

if TYPE_CHECKING:
    from . import client as sdk
# `audit` and `client` (aiohttp's, through the async client) are imported where they are
# used: the CLI builds this command's parser for every command, `verify` among them.

DAY_MS = 86_400_000
EXPIRES_DEFAULT_DAYS = 7
LIST_PAGES_MAX = 100  # pages of proposals `gov list` reads before it says there are more


def _target(args: argparse.Namespace) -> tuple[str, str | None]:
    """(API URL, the validator's key file) from --api / --key, or from --devnet DIR (node
    --validator's API and key)."""
    from .devnet import read_validator  # the devnet's runtime is not needed to read its files

    api, key = args.api, getattr(args, "key", None)
    if args.devnet:
        d_api, d_key = read_validator(Path(args.devnet), args.validator)
        api, key = api or d_api, key or str(d_key)
    if not api:
        raise ValueError("give --api URL (or --devnet DIR)")
    return api, key


def _client(a: argparse.Namespace, need_key: bool = False) -> Any:
    """An SDK client of --api/--devnet that signs with --key (reads too, for a node whose reads
    are authenticated: docs/security.md section 9) and trusts --cacert or the devnet's CA."""
    from . import client as sdk
    from .devnet import read_ca

    api, key_file = _target(a)
    if need_key and not key_file:
        raise ValueError("give --key: the validator's key file (or --devnet DIR)")
    key = crypto.load_private_key(Path(key_file)) if key_file else None
    ca = a.cacert or (read_ca(Path(a.devnet)) if a.devnet else None)
    return sdk.Client(api, key, ca_file=ca)


def _pubkey(path: str | None) -> bytes:
    if not path:
        raise ValueError("give --pubkey-file: the new key's public key (a PEM key file, or 64 hex)")
    text = Path(path).read_text(encoding="utf-8").strip()
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return bytes.fromhex(text)
    try:
        return crypto.load_private_key(Path(path)).public.raw
    except crypto.KeyFileError:
        raise ValueError(f"{path} is neither 64 lowercase hex nor a PEM key file") from None


def _args_of(a: argparse.Namespace) -> dict[str, Any]:
    """The action's arguments from the command line (docs/protocol.md section 13)."""
    given = {"dept": a.dept, "name": a.name, "key_id": a.key_id, "reason": a.reason,
             "roles": a.roles.split(",") if a.roles else None}
    out: dict[str, Any] = {}
    for name in gov.ACTION_ARGS[a.action]:
        if name == "pubkey":
            out[name] = _pubkey(a.pubkey_file)
        elif name == "name" and a.name is None:
            out[name] = a.dept or ""
        elif given[name] is None:
            raise ValueError(f"{a.action} needs --{name.replace('_', '-')}")
        else:
            out[name] = given[name]
    return out


def _expires(a: argparse.Namespace) -> int:
    if a.expires:
        return parse_time_ms(a.expires)
    return now_ms() + EXPIRES_DEFAULT_DAYS * DAY_MS


def _submit(a: argparse.Namespace, record_type: str, subject: str, body: dict[str, Any]) -> int:
    from . import audit
    from . import client as sdk

    client = _client(a, need_key=True)
    try:
        answer = client.submit(client.record(record_type, subject, body), wait=a.wait)
    except sdk.ApiError as exc:
        print(json.dumps(exc.body, ensure_ascii=False), file=sys.stderr)
        return audit.EXIT_FAILED
    print(json.dumps({"proposal": subject, **answer}, ensure_ascii=False))
    pending = a.wait and answer.get("status") != "committed"
    return audit.EXIT_PENDING if pending else audit.EXIT_OK


def _pages(client: sdk.Client) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
    """The node's proposals a page at a time, in id order, with each page's next_after;
    at most LIST_PAGES_MAX pages."""
    after: str | None = None
    for _ in range(LIST_PAGES_MAX):
        page = client.proposals(after)
        after = page["next_after"]
        yield page["proposals"], after
        if after is None:
            return


def _find(client: sdk.Client, proposal: str) -> dict[str, Any] | None:
    for proposals, _ in _pages(client):
        found = next((p for p in proposals if p["id"] == proposal), None)
        if found is not None:
            return found
    return None


def cmd_propose(a: argparse.Namespace) -> int:
    subject = a.id or f"gov-{secrets.token_hex(4)}"
    body = {"action": a.action, "args": _args_of(a), "expires": _expires(a)}
    return _submit(a, "gov.propose", subject, body)


def cmd_approve(a: argparse.Namespace) -> int:
    client = _client(a)
    found = _find(client, a.proposal)
    if found is None:
        raise ValueError(f"no proposal {a.proposal!r} on {client.api_url} (see `ledgernode gov list`)")
    if found["state"] != "open":
        raise ValueError(f"proposal {a.proposal} is {found['state']}; only an open one can be approved")
    return _submit(a, "gov.approve", a.proposal, {"proposal": bytes.fromhex(found["record"])})


def cmd_list(a: argparse.Namespace) -> int:
    from . import audit

    client = _client(a)
    shown: list[dict[str, Any]] = []
    after: str | None = None
    for proposals, after in _pages(client):
        shown += [p for p in proposals if a.all or p["state"] == "open"]
    if a.json:
        print(json.dumps({"proposals": shown, "more": after is not None}, ensure_ascii=False))
        return audit.EXIT_OK
    for p in shown:
        who = ", ".join(f"{s['dept'] or '?'} ({s['key_id']})" for s in p["approvals"])
        print(f"{p['id']}  {p['action']}  {p['state']}  expires {utc_text(p['expires'])}  "
              f"needs {p['needed']} more  signed by {who}")
        print(f"    args {json.dumps(p['args'], ensure_ascii=False)}")
    if not shown:
        print("no open proposals" if not a.all else "no proposals")
    return audit.EXIT_OK


def cmd_gov(a: argparse.Namespace) -> int:
    from . import audit
    from . import client as sdk
    from .devnet import DevnetError

    try:
        return int({"propose": cmd_propose, "approve": cmd_approve, "list": cmd_list}[a.gov_command](a))
    except sdk.ApiError as exc:
        print(json.dumps(exc.body, ensure_ascii=False), file=sys.stderr)
        return audit.EXIT_FAILED
    except (ValueError, OSError, InvalidInput, crypto.KeyFileError, sdk.TransportError, DevnetError) as exc:
        print(f"gov {a.gov_command}: {exc}", file=sys.stderr)
        return audit.EXIT_UNUSABLE


def _where(p: argparse.ArgumentParser, signs: bool) -> None:
    p.add_argument("--api", metavar="URL", help="node API (default: node --validator's from --devnet)")
    p.add_argument("--devnet", metavar="DIR", help="take the API (and key) of node --validator from DIR")
    p.add_argument("--validator", type=int, default=0, metavar="I",
                   help="with --devnet: devnet node I (DIR/nodeI) whose API and key to use, not its index in the "
                        "current set (default 0)")
    p.add_argument("--key", help="the validator's private key file (PEM), which also signs reads "
                   "(default with --devnet: its own)" if signs else "a registered key (PEM) to sign reads with, for a "
                   "node whose reads are authenticated (default with --devnet: node --validator's)")
    p.add_argument("--cacert", metavar="FILE", help="CA certificate (PEM) of an https:// API (default: the system's, "
                   "or the devnet's with --devnet)")
    if signs:
        p.add_argument("--wait", action="store_true", help="wait (bounded) for the record to commit")


def add_gov_commands(sub: Any) -> None:
    g = sub.add_parser("gov", help="propose, approve and list membership changes (validators only)",
                       description="Keys, departments and validators change by a quorum of validators: one proposes, "
                                   "others approve, the change applies at the end of the block that reaches "
                                   "the quorum (docs/governance.md).")
    gsub = g.add_subparsers(dest="gov_command", required=True, metavar="ACTION")
    p = gsub.add_parser("propose", help="propose a change, signed by a validator's key")
    _where(p, signs=True)
    p.add_argument("--action", required=True, choices=gov.ACTIONS)
    p.add_argument("--id", help="the proposal's id, its records' subject (default: gov-<8 random hex>)")
    p.add_argument("--dept", help="key.add, validator.add: the department (a new one joins)")
    p.add_argument("--name", help="key.add, validator.add: the department's name, if it is new (default: --dept)")
    p.add_argument("--pubkey-file", help="key.add, validator.add, validator.remove: the key (PEM, or 64 hex)")
    p.add_argument("--roles", help="key.add: comma-separated roles, e.g. cert.*,trace.event")
    p.add_argument("--key-id", help="key.revoke: the key id (16 hex) to revoke")
    p.add_argument("--reason", help="key.revoke: why, 1 to 64 chars")
    p.add_argument("--expires", metavar="TIME", help=f"when the proposal lapses unapproved (ISO 8601 or ms; "
                                                     f"default: {EXPIRES_DEFAULT_DAYS} days from now)")
    p = gsub.add_parser("approve", help="approve an open proposal, signed by another validator's key")
    _where(p, signs=True)
    p.add_argument("proposal", help="the proposal's id, as `gov list` shows it")
    p = gsub.add_parser("list", help="open proposals, their approvals and expiry")
    _where(p, signs=False)
    p.add_argument("--all", action="store_true", help="applied and expired ones too")
    p.add_argument("--json", action="store_true", help="print JSON")
    g.set_defaults(func=cmd_gov)
