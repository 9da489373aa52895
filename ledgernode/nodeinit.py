"""`ledgernode init`: a node config for a real multi-host network (docs/operations.md section 2).

From the network's genesis file, this department's key file and a peers file it writes
a node config (ledgernode/config.py, rendered by `config.render(..., explained=True)`,
so every field is explained in comments) and loads it back with the node's own loader.

The peers file is TOML: one line per other node, its public key (the 64 lowercase hex
`ledgernode keygen` prints as "pubkey", the validator's "pubkey" in the genesis) = the
"host:port" of its peer_listen:

    # peers.toml
    "5b0b...64 hex..." = "10.1.0.12:7200"   # market
    "9f1c...64 hex..." = "10.1.0.13:7200"   # health

Refused, with exit code 2 and a message naming the entry: a key that is not 64 hex, not
an Ed25519 key, no genesis validator's, or this node's own; an address that is not
host:port, a wildcard (0.0.0.0 / ::, which cannot be dialled), or named twice. A key that
is no genesis validator's is fine for this node itself: it then follows the chain until
governance adds it (docs/governance.md), and `init` says so.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config, crypto, genesis as genesis_mod
from .errors import InvalidInput

PEERS_FILE_MAX_BYTES = 1 << 20  # a peers file names at most a few hundred nodes
DEFAULT_API = "127.0.0.1:7100"
DEFAULT_PEER_LISTEN = "0.0.0.0:7200"
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", "*", ""})
CONFIG_MODE = 0o640  # no secret in it, but nothing for other users to read either


class InitError(Exception):
    """An input of `init` cannot be used; the message names the file and entry."""


@dataclass(frozen=True)
class Plan:
    """What `init` found: this node's validator index (None: a follower), the peers by
    public key, and the validators no peer entry gives an address for."""

    index: int | None
    dept: str | None
    peers: dict[str, str]
    unaddressed: tuple[str, ...]  # "dept (pubkey prefix)" of each such validator


def load_genesis(path: Path) -> genesis_mod.Genesis:
    try:
        return genesis_mod.parse(path.read_bytes())
    except OSError as exc:
        raise InitError(f"--genesis {path}: cannot read: {exc.strerror}") from None
    except InvalidInput as exc:
        raise InitError(f"--genesis {path}: not a genesis file: {exc.message}") from None


def load_peers(path: Path) -> dict[str, Any]:
    """The peers file's entries as written (checked by `check_peers`)."""
    try:
        with path.open("rb") as f:
            raw = f.read(PEERS_FILE_MAX_BYTES + 1)
    except OSError as exc:
        raise InitError(f"--peers {path}: cannot read: {exc.strerror}") from None
    if len(raw) > PEERS_FILE_MAX_BYTES:
        raise InitError(f"--peers {path}: larger than {PEERS_FILE_MAX_BYTES} bytes")
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InitError(f"--peers {path}: not valid TOML ({exc}); expected lines like "
                        f"\"<64-hex pubkey>\" = \"10.1.0.12:7200\"") from None


def _peer_address(key: str, value: Any, seen: dict[str, str]) -> str:
    try:
        host, port = config.parse_address(value, f"peer {key[:16]}")
    except config.ConfigError as exc:
        raise InitError(f"--peers: {exc}") from None
    if host in WILDCARD_HOSTS:
        raise InitError(f"--peers: peer {key[:16]}: {value!r} is a wildcard address, which cannot be dialled; "
                        f"give the address its node is reached at")
    address = f"{host}:{port}"
    if address in seen:
        raise InitError(f"--peers: {address} is named for two keys ({seen[address][:16]} and {key[:16]})")
    seen[address] = key
    return address


def check_peers(entries: dict[str, Any], gen: genesis_mod.Genesis, me: bytes) -> dict[str, str]:
    """Public key -> "host:port" of each other node, every entry checked (InitError if not)."""
    validators = {v.pubkey.raw.hex(): v for v in gen.validators}
    peers: dict[str, str] = {}
    seen: dict[str, str] = {}
    for key, value in entries.items():
        shown = ascii(key)[1:-1][:70]
        if isinstance(value, dict):
            raise InitError(f"--peers: [{shown}]: no tables; write one line per node: \"<pubkey>\" = \"host:port\"")
        if not config.PUBKEY_HEX.fullmatch(key):
            raise InitError(f"--peers: {shown}: keys are public keys, 64 lowercase hex characters as "
                            f"`ledgernode keygen` prints them")
        problem = crypto.pubkey_problem(bytes.fromhex(key))
        if problem is not None:
            raise InitError(f"--peers: {key[:16]}: {problem}")
        if bytes.fromhex(key) == me:
            raise InitError(f"--peers: {key[:16]} is this node's own key (--key); list only the other nodes")
        if key not in validators:
            raise InitError(f"--peers: {key[:16]} is no validator's key in the genesis; a node that joined later by "
                            f"governance goes in the config's [peers] by hand (docs/operations.md section 2)")
        peers[key] = _peer_address(key, value, seen)
    return peers


def plan(gen: genesis_mod.Genesis, key: crypto.PublicKey, entries: dict[str, Any]) -> Plan:
    peers = check_peers(entries, gen, key.raw)
    index = gen.validator_set.index_of(key.raw)
    unaddressed = tuple(f"{v.dept} ({v.pubkey.raw.hex()[:16]})" for i, v in enumerate(gen.validators)
                        if i != index and v.pubkey.raw.hex() not in peers)
    return Plan(index, gen.validators[index].dept if index is not None else None, peers, unaddressed)


def config_path(target: Path, out_dir: Path) -> str:
    """How the config names `target`: relative to the config's directory when it lies under
    it (the two move together), else absolute."""
    target, out_dir = target.resolve(), out_dir.resolve()
    return str(target.relative_to(out_dir)) if target.is_relative_to(out_dir) else str(target)


def write_config(out: Path, text: str, force: bool) -> None:
    """Write `text` at `out` (via a temporary file and a rename), refusing an existing file
    unless `force`."""
    if out.exists() and not force:
        raise InitError(f"--out {out} exists; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, CONFIG_MODE)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, CONFIG_MODE)
    os.replace(tmp, out)


def _address_arg(value: str, option: str) -> str:
    try:
        host, port = config.parse_address(value, option)
    except config.ConfigError as exc:
        raise InitError(str(exc)) from None
    return f"{host}:{port}"


def init(args: argparse.Namespace) -> tuple[Plan, Path]:
    """Check the inputs, write the config, load it back; (the plan, the config's path)."""
    gen = load_genesis(Path(args.genesis))
    try:
        key = crypto.load_private_key(args.key)
    except crypto.KeyFileError as exc:
        raise InitError(f"--key: {exc}") from None
    found = plan(gen, key.public, load_peers(Path(args.peers)))
    api, peer = _address_arg(args.api, "--api"), _address_arg(args.peer_listen, "--peer-listen")
    out = Path(args.out)
    text = config.render(config_path(Path(args.data_dir), out.parent), config_path(Path(args.key), out.parent),
                         config_path(Path(args.genesis), out.parent), api, peer, found.peers, explained=True)
    write_config(out, f"# Node config written by `ledgernode init` for chain {json.dumps(gen.chain_id)} "
                      f"(genesis {gen.genesis_hash[:16]}).\n\n" + text, args.force)
    try:
        config.load(out)
    except config.ConfigError as exc:  # a bug here, not a bad input: say so plainly
        raise InitError(f"the config written at {out} does not load: {exc}") from None
    return found, out


def _warn_modes(args: argparse.Namespace) -> None:
    data = Path(args.data_dir)
    if data.exists() and stat.S_IMODE(data.stat().st_mode) & stat.S_IRWXO:
        print(f"init: warning: {data} is open to other users (mode {stat.S_IMODE(data.stat().st_mode):o}); "
              f"chmod 700 it", file=sys.stderr)


def cmd_init(args: argparse.Namespace) -> int:
    try:
        found, out = init(args)
    except InitError as exc:
        print(f"init: {exc}", file=sys.stderr)
        return 2
    if found.index is None:
        print("init: the key is no validator's in the genesis: this node will run as a follower (it keeps a "
              "copy of the chain and votes once governance adds it, docs/governance.md)", file=sys.stderr)
    for missing in found.unaddressed:
        print(f"init: warning: no address for validator {missing} in --peers: this node will not dial it "
              f"(add it to [peers] later and `kill -HUP` the node)", file=sys.stderr)
    _warn_modes(args)
    print(json.dumps({"config": str(out), "validator": found.index, "dept": found.dept,
                      "peers": len(found.peers)}))
    return 0


def add_init_command(sub: Any) -> None:
    p = sub.add_parser("init", help="write a node config for a real multi-host network (docs/operations.md)",
                       description="Writes a node config, every field explained, from the genesis, this node's "
                                   "key and a peers file (TOML lines \"<64-hex pubkey>\" = \"host:port\", one "
                                   "per other validator), and loads it back with the node's config loader.",
                       epilog="exit codes: 0 written; 2 an input cannot be used (the message names it) or "
                              "--out exists without --force")
    p.add_argument("--genesis", required=True, help="the network's genesis file")
    p.add_argument("--key", required=True, help="this node's private key file (PEM, mode 0600, from keygen)")
    p.add_argument("--peers", required=True, help="TOML: \"<pubkey>\" = \"host:port\" for each other validator")
    p.add_argument("--data-dir", required=True, help="the node's data directory (created when it first starts)")
    p.add_argument("--api", default=DEFAULT_API, metavar="HOST:PORT", help="api_listen: the HTTP API")
    p.add_argument("--peer-listen", default=DEFAULT_PEER_LISTEN, metavar="HOST:PORT",
                   help="peer_listen: where the other nodes connect (their peers file names it)")
    p.add_argument("--out", required=True, help="the config file to write")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_init)
