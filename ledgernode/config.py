"""Node configuration: a TOML file, checked at start-up with errors that name the field.

Example (configs/node.example.toml):

    data_dir = "data/node0"
    key_file = "keys/node0.pem"   # the node's Ed25519 key: it names the node to its peers
    genesis = "genesis.json"
    api_listen = "127.0.0.1:8100"
    peer_listen = "127.0.0.1:8200"

    [peers]  # the other nodes' peer addresses, keyed by their public key (hex, as in the genesis)
    "5b0b…(64 hex)" = "127.0.0.1:8201"
    "9f1c…(64 hex)" = "127.0.0.1:8202"

`[peers]` is read again on SIGHUP (ledgernode/peers.py): a running node dials the new
addresses without a restart. `index` (a validator's position in the genesis), which
configs of before named, is still accepted and checked against the key; a node whose
key is in no genesis (one that joins by governance, docs/governance.md) leaves it out.

    [limits]
    body_max_bytes = 8388608
    ...

Relative paths are relative to the config file's directory.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .tls import TlsFiles


_DIGITS = re.compile(r"[0-9]{1,9}")  # ASCII only: str.isdigit() also accepts "²"
_PUBKEY_HEX = re.compile(r"[0-9a-f]{64}")
PUBKEY_HEX = _PUBKEY_HEX  # a public key as [peers] keys name it (ledgernode/nodeinit.py checks the same)
OLDER_PEERS_FORMAT = "keys by validator index are the format of before"


class ConfigError(Exception):
    """The config file is missing, not TOML, or a field is wrong; the message names it."""


@dataclass(frozen=True)
class Limits:
    body_max_bytes: int = 8 << 20
    mempool_max_records: int = 20_000
    block_max_records: int = 2_000
    block_interval_ms: int = 50
    round_timeout_ms: int = 2_000
    tick_ms: int = 50
    wait_max_ms: int = 30_000
    wait_default_ms: int = 10_000
    peer_queue_max_messages: int = 10_000
    peer_queue_max_bytes: int = 256 << 20
    batch_max_records: int = 5_000
    inbox_max_events: int = 100_000
    verify_threads: int = 0  # 0: one per core; threads verify signatures with the GIL released
    rejected_kept_ms: int = 3_600_000  # how long a record dropped after admission is reported as rejected
    rejected_kept_max: int = 100_000  # how many such records are remembered (oldest forgotten first)
    # HTTP API connections (ledgernode/api/connections.py, capacity.py):
    header_timeout_ms: int = 10_000  # a request head (line and headers) must arrive within this
    keepalive_timeout_ms: int = 30_000  # an idle keep-alive connection is closed after this
    api_connections_max: int = 0  # 0: the soft RLIMIT_NOFILE minus a reserve (api.capacity.connections_max)
    # The event stream, GET /v1/events (ledgernode/api/events.py):
    events_subscribers_max: int = 100  # streams open at once; one more is answered 503
    events_buffer_events_max: int = 1_000  # events read ahead from the store for one subscriber
    events_send_timeout_ms: int = 10_000  # a write not taken within this cuts the subscriber off
    events_heartbeat_ms: int = 15_000  # an idle stream gets a heartbeat this often
    # Per-client token buckets (ledgernode/throttle.py), each per signing key and per source
    # address: a write takes a token per record (by key) and per request (by address), a read one.
    write_rate_per_s: int = 20_000
    write_burst: int = 40_000
    read_rate_per_s: int = 1_000
    read_burst: int = 2_000


@dataclass(frozen=True)
class NodeConfig:
    path: Path
    data_dir: Path
    key_file: Path
    genesis: Path
    index: int | None  # the key's position in the genesis, if the config names it (checked at start)
    api_listen: tuple[str, int]
    peer_listen: tuple[str, int]
    peers: dict[str, tuple[str, int]]  # validator public key (64 lowercase hex) -> peer address
    limits: Limits = field(default_factory=Limits)
    debug_endpoints: bool = False  # fault injection over HTTP: tests only
    tls: TlsFiles | None = None  # [tls]: HTTPS for the API, TLS on the peer links (ledgernode/tls.py)
    reads: str = "open"  # [api] reads: "open", or "authenticated" (ledgernode/access.py)


def _address(value: Any, name: str) -> tuple[str, int]:
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(f"{name}: expected \"host:port\", got {value!r}")
    host, _, port = value.rpartition(":")
    if not _DIGITS.fullmatch(port) or not 0 < int(port) < 65536 or not host:
        raise ConfigError(f"{name}: expected \"host:port\" with a port 1-65535, got {value!r}")
    return host, int(port)


def _limits(raw: Any) -> Limits:
    if not isinstance(raw, dict):
        raise ConfigError("limits: expected a table")
    known = {f.name for f in fields(Limits)}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"limits.{key}: unknown limit (known: {', '.join(sorted(known))})")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"limits.{key}: expected a positive integer, got {value!r}")
    limits = Limits(**raw)
    if limits.wait_default_ms > limits.wait_max_ms:
        raise ConfigError("limits.wait_default_ms: must not exceed limits.wait_max_ms")
    return limits


def _peers(raw: Any) -> dict[str, tuple[str, int]]:
    if not isinstance(raw, dict):
        raise ConfigError('peers: expected a table like {"<validator public key, 64 hex>" = "10.0.0.2:7201"}')
    peers = {}
    for key, value in raw.items():
        if not _PUBKEY_HEX.fullmatch(key):
            older = f" ({OLDER_PEERS_FORMAT}: write each validator's pubkey from genesis.json instead)" \
                if _DIGITS.fullmatch(key) else ""
            raise ConfigError(f"peers.{ascii(key)[1:-1][:70]}: keys are the other nodes' public keys, 64 "
                              f"lowercase hex characters as in the genesis{older}")
        peers[key] = _address(value, f"peers.{key[:16]}")
    return peers


_TLS_FIELDS = ("cert_file", "key_file", "ca_file", "client_ca")


def _tls(raw: Any, base: Path) -> TlsFiles:
    if not isinstance(raw, dict):
        raise ConfigError('tls: expected a table like {cert_file = "tls/node.crt", key_file = "tls/node.key"}')
    for key, value in raw.items():
        if key not in _TLS_FIELDS:
            raise ConfigError(f"tls.{ascii(key)[1:-1][:40]}: unknown field (known: {', '.join(_TLS_FIELDS)})")
        if not isinstance(value, str) or not value:
            raise ConfigError(f"tls.{key}: expected a file path, got {value!r}")
    for key in ("cert_file", "key_file"):
        if key not in raw:
            raise ConfigError(f"tls.{key}: missing (TLS needs the node's certificate and its key)")

    def file(key: str) -> Path | None:
        return base / raw[key] if key in raw else None

    return TlsFiles(base / raw["cert_file"], base / raw["key_file"], file("ca_file"), file("client_ca"))


READS = ("open", "authenticated")


def _api(raw: Any) -> str:
    if not isinstance(raw, dict):
        raise ConfigError('api: expected a table like {reads = "authenticated"}')
    for key in raw:
        if key != "reads":
            raise ConfigError(f"api.{ascii(key)[1:-1][:40]}: unknown field (known: reads)")
    reads = raw.get("reads", "open")
    if reads not in READS:
        raise ConfigError(f'api.reads: expected "open" or "authenticated", got {reads!r}')
    return str(reads)


def load(path: str | Path) -> NodeConfig:
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    known = {"data_dir", "key_file", "genesis", "index", "api_listen", "peer_listen", "peers",
             "limits", "debug_endpoints", "tls", "api"}
    for key in doc:
        if key not in known:
            raise ConfigError(f"{key}: unknown field")
    base = p.resolve().parent

    def need(name: str, kind: type) -> Any:
        if name not in doc:
            raise ConfigError(f"{name}: missing")
        if not isinstance(doc[name], kind) or isinstance(doc[name], bool) and kind is not bool:
            raise ConfigError(f"{name}: expected {kind.__name__}, got {doc[name]!r}")
        return doc[name]

    index = need("index", int) if "index" in doc else None
    if index is not None and index < 0:
        raise ConfigError("index: must be >= 0")
    peers = _peers(doc.get("peers", {}))
    debug = doc.get("debug_endpoints", False)
    if not isinstance(debug, bool):
        raise ConfigError("debug_endpoints: expected true or false")
    return NodeConfig(
        path=p,
        data_dir=base / need("data_dir", str),
        key_file=base / need("key_file", str),
        genesis=base / need("genesis", str),
        index=index,
        api_listen=_address(need("api_listen", str), "api_listen"),
        peer_listen=_address(need("peer_listen", str), "peer_listen"),
        peers=peers,
        limits=_limits(doc.get("limits", {})),
        debug_endpoints=debug,
        tls=_tls(doc["tls"], base) if "tls" in doc else None,
        reads=_api(doc["api"]) if "api" in doc else "open",
    )


def parse_address(value: Any, name: str) -> tuple[str, int]:
    """(host, port) of "host:port" as the config accepts it; ConfigError naming `name` if not."""
    return _address(value, name)


def render(data_dir: str, key_file: str, genesis: str, api: str, peer: str,
           peers: dict[str, str], limits: dict[str, int] | None = None, debug: bool = False,
           explained: bool = False, tls: dict[str, str] | None = None, reads: str = "open") -> str:
    """TOML text of a node config (devnet, `ledgernode init`). `explained`: each field is
    preceded by comment lines saying what it is (FIELD_NOTES), and every limit not given is
    listed commented out with its default (LIMIT_NOTES). `tls`: a [tls] table (ledgernode/tls.py)."""
    q = json.dumps  # a JSON string is a valid TOML basic string, escapes included
    notes = FIELD_NOTES if explained else {}

    def entry(name: str, line: str) -> list[str]:
        said = [f"# {text}" for text in notes.get(name, ())]
        return [""] + said + [line] if said else [line]

    lines = [*entry("data_dir", f"data_dir = {q(data_dir)}"), *entry("key_file", f"key_file = {q(key_file)}"),
             *entry("genesis", f"genesis = {q(genesis)}"), *entry("api_listen", f"api_listen = {q(api)}"),
             *entry("peer_listen", f"peer_listen = {q(peer)}"),
             *entry("debug_endpoints", f"debug_endpoints = {'true' if debug else 'false'}")]
    gap = [] if explained else [""]  # an explained entry starts with its own blank line
    lines += [*gap, *entry("peers", "[peers]")]
    lines += [f"{q(pubkey)} = {q(addr)}" for pubkey, addr in sorted(peers.items())]
    lines += [*gap, *entry("limits", "[limits]")] + [f"{k} = {v}" for k, v in (limits or {}).items()]
    if explained:
        defaults = Limits()
        for name, text in LIMIT_NOTES.items():
            if name not in (limits or {}):
                # A default of 0 means "derived at start" and is not accepted in the file: show an example.
                value = getattr(defaults, name) or LIMIT_EXAMPLES[name]
                lines += ["", f"# {text}", f"# {name} = {value}"]
    if tls:
        lines += ["", *entry("tls", "[tls]")] + [f"{k} = {q(v)}" for k, v in tls.items()]
    elif explained:  # shown commented out: a table the node would read (TOML has no empty-table default)
        lines += ["", *(f"# {text}" for text in FIELD_NOTES["tls"]), "# [tls]",
                  '# cert_file = "tls/node.crt"', '# key_file = "tls/node.key"', '# ca_file = "tls/ca.crt"']
    if reads != "open":
        lines += ["", *entry("api", "[api]"), f"reads = {q(reads)}"]
    elif explained:
        lines += ["", *(f"# {text}" for text in FIELD_NOTES["api"]), "# [api]", '# reads = "open"']
    return "\n".join(lines).lstrip("\n") + "\n"


# What each field of a node config is, as `render(..., explained=True)` writes it above the
# field (configs/node.example.toml says the same at more length).
FIELD_NOTES: dict[str, tuple[str, ...]] = {
    "data_dir": ("LevelDB data directory, created if missing; the ledger lives in its \"ledger\"",
                 "subdirectory. Only one node process may open it (its pid is in ledger/owner.pid).",
                 "Relative paths in this file are relative to this file's directory."),
    "key_file": ("This node's Ed25519 private key (PEM PKCS#8, mode 0600, made by `ledgernode keygen`).",
                 "It names the node to its peers: a validator's public key is its \"pubkey\" in the genesis."),
    "genesis": ("The network's genesis file: the same bytes on every node, never edited.",),
    "api_listen": ("HTTP API (clients, auditors, /healthz, /readyz, /metrics), \"host:port\".",
                   "127.0.0.1 serves this machine only; an interface address serves others."),
    "peer_listen": ("Authenticated link to the other nodes, \"host:port\": the other nodes must reach",
                    "this address (it is their [peers] entry for this node)."),
    "debug_endpoints": ("true adds POST /v1/debug/faults (drops and delays peer traffic) to the API.",
                        "Tests only: never true on a real network."),
    "peers": ("The other nodes' peer addresses, keyed by public key (64 lowercase hex, as `keygen`",
              "prints it and the genesis holds it). The node dials each. After an edit,",
              "`kill -HUP <pid>` (systemctl reload) makes the running node dial the addresses named",
              "now; the rest of this file is read only at start."),
    "api": ("Who may read: \"open\" (anyone who reaches the API) or \"authenticated\" (requests",
            "signed by a registered key, or over mutual TLS with one: docs/security.md section 9)."),
    "tls": ("TLS on both ports (docs/security.md section 8): cert_file and key_file (PEM) for",
            "this node, optional ca_file (peers' certificates must chain to it) and client_ca",
            "(a certificate an API client presents must be one it signed)."),
    "limits": ("Limits: each optional, a positive integer; units are in the name (_ms milliseconds,",
               "_bytes, _records, _messages, _events). A line left commented out keeps the default",
               "it shows; configs/node.example.toml explains each at length."),
}
LIMIT_NOTES: dict[str, str] = {
    "body_max_bytes": "Largest HTTP request body, on the API and on the peer link (413 beyond).",
    "mempool_max_records": "Records waiting for a block; when full, submissions get 503 + Retry-After.",
    "block_max_records": "Most records in one block (the genesis's block_max_records caps it too).",
    "block_interval_ms": "How long the primary waits to fill a block that is not full before proposing it.",
    "round_timeout_ms": "No commit within this: move to the next round (doubles each round). Raise on slow links.",
    "tick_ms": "The consensus clock's tick: timeouts and re-sends are counted in ticks.",
    "wait_max_ms": "Longest a POST ?wait=1 may wait for its records to commit.",
    "wait_default_ms": "How long ?wait=1 waits when the request gives no timeout_ms (at most wait_max_ms).",
    "peer_queue_max_messages": "Frames queued for one peer link; past this the oldest are dropped.",
    "peer_queue_max_bytes": "...and their total size per peer.",
    "batch_max_records": "Envelopes in one POST /v1/records/batch (413 beyond).",
    "inbox_max_events": "Events queued for the consensus task; beyond it new ones are dropped and counted.",
    "verify_threads": "Signature-verifying threads. Left out: one per CPU core (0 is not accepted here).",
    "rejected_kept_ms": "How long a record rejected when a block was built is still reported as rejected.",
    "rejected_kept_max": "How many such rejected records are remembered (oldest forgotten first).",
    "header_timeout_ms": "A request head (line and headers) must arrive within this (408, then closed).",
    "keepalive_timeout_ms": "An idle keep-alive API connection is closed after this.",
    "api_connections_max": "Most API connections at once. Left out: the soft RLIMIT_NOFILE minus a reserve.",
    "events_subscribers_max": "GET /v1/events streams open at once; one more gets 503 too_many_subscribers.",
    "events_buffer_events_max": "Events read ahead for one stream subscriber at a time.",
    "events_send_timeout_ms": "A stream write not taken by its client within this: the subscriber is cut off.",
    "events_heartbeat_ms": "A heartbeat event (the head checkpoint) on an idle stream at least this often.",
    "write_rate_per_s": "Records per second one signing key, and requests one address, may write (429 beyond).",
    "write_burst": "...and how many of them at once, after a quiet spell.",
    "read_rate_per_s": "Reads per second one key (authenticated reads) and one address may make (429 beyond).",
    "read_burst": "...and how many of them at once.",
}
LIMIT_EXAMPLES: dict[str, int] = {"verify_threads": 2, "api_connections_max": 4096}  # limits whose default is 0
