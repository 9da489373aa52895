"""The files of a local development network (ledgernode/devnet/__init__.py), and its
devnet.json. On first use `prepare` lays out:

    D/genesis.json              chain "gov-devnet", one validator per department
    D/node{i}/validator.pem     node i's key (PEM PKCS#8, mode 0600); nodes past the
                                genesis's validators are spares (`--spare N`): they
                                follow until governance adds them (docs/governance.md)
    D/node{i}/node.toml         API on 127.0.0.1:P+i, peer link on 127.0.0.1:P+100+i
    D/node{i}/data/             the node's LevelDB
    D/node{i}/node.log          the node's stdout and stderr
    D/clients/admin.pem         a client of department 0 allowed every type (roles ["*"])
    D/clients/<dept>.pem        one client per department, roles for that department's work
    D/devnet.json               what is running: APIs, pids, configs, client keys
    D/tls/                      with --tls: a CA (ca.crt, ca.key) and node{i}.crt / .key for
                                each node's address, named in its [tls]: HTTPS and TLS
                                peer links (docs/security.md section 8)

Later runs reuse every file: keys and the genesis are never regenerated (a
different --nodes or --spare is refused), and node configs are kept as they are. Every
node's config lists every other node, spares included, in its `[peers]`. devnet.json
(`write_manifest`) shows each node's pid as it runs now and its "state" (RUNNING,
RESTARTING or STOPPED below, as devnet/supervisor.py keeps them).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .. import config, crypto, genesis as genesis_mod
from ..errors import InvalidInput
from ..families import FOR_EVERY_DEPT, WILDCARD_ROLES

_T = TypeVar("_T")

CHAIN_ID = "gov-devnet"
DEFAULT_NODES = 4
DEFAULT_DIR = "devnet"
DEFAULT_BASE_PORT = 7100
PEER_PORT_OFFSET = 100  # node i: API on base+i, peer link on base+100+i
NODES_MAX = PEER_PORT_OFFSET - 1  # keeps the API and peer port ranges apart
HOST = "127.0.0.1"
# --netns (devnet/netns.py): node i at 10.77.0.(10 + i) in a namespace of its own, the
# root namespace at 10.77.0.1 on the bridge; NODES_MAX keeps the addresses within the /24.
NETNS_SUBNET = "10.77.0"
NETNS_BRIDGE_ADDRESS = f"{NETNS_SUBNET}.1"
NETNS_PREFIX_LEN = 24
NETNS_ADDRESS_BASE = 10
NETNS_NAMESPACE_PREFIX = "ln-node"  # node i's namespace: ln-node{i}
GENESIS_FILE = "genesis.json"
MANIFEST_FILE = "devnet.json"
TLS_DIR = "tls"
CA_FILE = f"{TLS_DIR}/ca.crt"
CLIENTS_DIR = "clients"
ADMIN_CLIENT = "admin"

# dept id, display name, record families its own client submits (roles of families/)
DEPARTMENTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("justice", "Ministry of Justice", ("evidence.*",)),
    ("market", "State Administration for Market Regulation", ("cert.*", "trace.*")),
    ("health", "National Health Commission", ("dataset.*", "share.*", "cert.*")),
    ("customs", "General Administration of Customs", ("trace.*", "cert.*")),
    ("tax", "State Taxation Administration", ("dataset.*", "share.*")),
    ("police", "Ministry of Public Security", ("evidence.*", "cert.*")),
    ("court", "Supreme People's Court", ("evidence.*",)),
    ("transport", "Ministry of Transport", ("cert.*", "trace.*")),
    ("agriculture", "Ministry of Agriculture and Rural Affairs", ("trace.*", "dataset.*", "share.*")),
    ("ecology", "Ministry of Ecology and Environment", ("dataset.*", "share.*", "evidence.*")),
)
ALL_FAMILIES = WILDCARD_ROLES  # a generic department does every kind of work


class DevnetError(Exception):
    """The devnet directory or the arguments cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class NodeFiles:
    index: int
    dept: str  # a spare's is the department it would join as (department(index))
    config: str  # relative to the devnet directory
    api: str  # http://127.0.0.1:port
    api_listen: tuple[str, int]
    peer_listen: tuple[str, int]
    log: str  # relative to the devnet directory
    spare: bool = False  # its key is no genesis validator's


@dataclass(frozen=True)
class ClientFiles:
    dept: str
    key_file: str  # relative to the devnet directory
    key_id: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Devnet:
    root: Path
    chain_id: str
    nodes: tuple[NodeFiles, ...]
    clients: tuple[ClientFiles, ...]
    netns: bool = False  # made with --netns: each node in a namespace of its own (devnet/netns.py)
    ca_file: Path | None = None  # made with --tls: the CA that signed every node's certificate


def netns_address(i: int) -> str:
    """Node i's address in its own namespace (--netns)."""
    return f"{NETNS_SUBNET}.{NETNS_ADDRESS_BASE + i}"


def _host(i: int, netns: bool) -> str:
    return netns_address(i) if netns else HOST


def department(i: int) -> tuple[str, str, tuple[str, ...]]:
    """Validator i's department: the known ones first, then generic ones."""
    if i < len(DEPARTMENTS):
        return DEPARTMENTS[i]
    return f"dept{i}", f"Department {i}", ALL_FAMILIES


def client_roles(families: tuple[str, ...]) -> list[str]:
    """`families`, and the types every department needs whatever its work (share.access:
    every department may read data shared with it) where those do not cover them."""
    roles = list(families)
    roles += [t for t in FOR_EVERY_DEPT if not any(genesis_mod.role_allows(role, t) for role in families)]
    return roles


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _key(path: Path) -> crypto.PrivateKey:
    """The key at `path`, created (mode 0600) if the file does not exist yet."""
    if path.exists():
        return crypto.load_private_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = crypto.generate_private_key()
    crypto.save_private_key(path, key)
    return key


def _node_config_text(i: int, pubkeys: list[str], base_port: int, netns: bool = False, tls: bool = False) -> str:
    """Node i's config; `pubkeys` are every node's public key (hex): the validators' in
    genesis order, then the spares'. `netns`: every node at its own address (netns_address).
    `tls`: both ports over TLS with the certificates of D/tls."""
    peers = {key: f"{_host(j, netns)}:{base_port + PEER_PORT_OFFSET + j}" for j, key in enumerate(pubkeys) if j != i}
    host = _host(i, netns)
    files = {"cert_file": f"../{TLS_DIR}/node{i}.crt", "key_file": f"../{TLS_DIR}/node{i}.key",
             "ca_file": f"../{CA_FILE}", "client_ca": f"../{CA_FILE}"}
    return config.render(
        data_dir="data", key_file="validator.pem", genesis=f"../{GENESIS_FILE}",
        api=f"{host}:{base_port + i}", peer=f"{host}:{base_port + PEER_PORT_OFFSET + i}", peers=peers,
        tls=files if tls else None,
    )


def _make_pki(root: Path, nodes: int, netns: bool) -> None:
    """A CA, and for each node a certificate for its address, in D/tls (kept if there)."""
    tls_dir = root / TLS_DIR
    tls_dir.mkdir(exist_ok=True)
    os.chmod(tls_dir, 0o700)  # the private keys of the CA and of every node's certificate
    if not (root / CA_FILE).exists():
        ca = crypto.make_tls_ca(f"{CHAIN_ID} devnet CA")
        crypto.write_private_file(tls_dir / "ca.key", ca.key_pem, overwrite=True)  # mode 0600
        write_atomic(root / CA_FILE, ca.cert_pem)
    ca = crypto.TlsIdentity((root / CA_FILE).read_bytes(), (tls_dir / "ca.key").read_bytes())
    for i in range(nodes):
        if not (tls_dir / f"node{i}.crt").exists():
            ident = crypto.make_tls_cert(ca, f"node{i}", [_host(i, netns), "localhost"])
            crypto.write_private_file(tls_dir / f"node{i}.key", ident.key_pem, overwrite=True)
            write_atomic(tls_dir / f"node{i}.crt", ident.cert_pem)


def _check_args(nodes: int, base_port: int, spare: int = 0) -> None:
    if not 1 <= nodes <= NODES_MAX:
        raise DevnetError(f"--nodes must be 1 to {NODES_MAX}, got {nodes}")
    if not 0 <= spare <= NODES_MAX - nodes:
        raise DevnetError(f"--spare must be 0 to {NODES_MAX - nodes} with --nodes {nodes}, got {spare}")
    last = base_port + PEER_PORT_OFFSET + nodes + spare - 1
    if not 1024 <= base_port or last > 65535:
        raise DevnetError(f"--base-port {base_port}: ports {base_port}..{last} must lie within 1024..65535")


def create(root: Path, nodes: int, base_port: int, spare: int = 0, netns: bool = False, tls: bool = False) -> None:
    """Write keys, genesis and node configs for a new devnet (keys already present are
    kept): `nodes` validators, then `spare` nodes whose keys the genesis does not hold."""
    _check_args(nodes, base_port, spare)
    root.mkdir(parents=True, exist_ok=True)
    validators, clients = [], []
    for i in range(nodes):
        dept, name, _ = department(i)
        key = _key(root / f"node{i}" / "validator.pem")
        validators.append({"dept": dept, "name": name, "pubkey": key.public.raw.hex()})
    pubkeys = [v["pubkey"] for v in validators]
    pubkeys += [_key(root / f"node{i}" / "validator.pem").public.raw.hex() for i in range(nodes, nodes + spare)]
    admin = _key(root / CLIENTS_DIR / f"{ADMIN_CLIENT}.pem")
    clients.append({"dept": department(0)[0], "pubkey": admin.public.raw.hex(), "roles": ["*"]})
    for i in range(nodes):
        dept, _, families = department(i)
        key = _key(root / CLIENTS_DIR / f"{dept}.pem")
        clients.append({"dept": dept, "pubkey": key.public.raw.hex(), "roles": client_roles(families)})
    os.chmod(root / CLIENTS_DIR, 0o700)
    raw = genesis_mod.build(CHAIN_ID, validators, clients)
    if tls:
        _make_pki(root, nodes + spare, netns)
    for i in range(nodes + spare):
        write_atomic(root / f"node{i}" / "node.toml", _node_config_text(i, pubkeys, base_port, netns, tls).encode())
    write_atomic(root / GENESIS_FILE, raw)  # last: a directory with a genesis is a made one


def _spares(root: Path, gen: genesis_mod.Genesis) -> int:
    """How many spare nodes the devnet has: node directories past the genesis's validators
    with a key in them, each named in node 0's `[peers]` (as `create` made them); a
    directory with a key node 0 does not name is refused, not started as a spare that
    no validator would link with."""
    try:
        named = set(config.load(root / "node0" / "node.toml").peers)
    except config.ConfigError:
        named = None  # node 0's config is checked (and rewritten if missing) by _node_files
    count = 0
    while (path := root / f"node{gen.n + count}" / "validator.pem").exists():
        if named is not None:
            try:
                key = crypto.load_private_key(path).public.raw.hex()
            except crypto.KeyFileError as exc:
                raise DevnetError(str(exc)) from None
            if key not in named:
                raise DevnetError(f"{path} is the key of no node the devnet's configs name (node 0's [peers]): "
                                  f"remove {path.parent}, or use another --dir")
        count += 1
    return count


def _node_files(root: Path, gen: genesis_mod.Genesis, i: int, base_port: int | None, spare: int,
                netns: bool = False, tls: bool = False) -> NodeFiles:
    rel = f"node{i}/node.toml"
    path = root / rel
    if not path.exists():
        pubkeys = [crypto.load_private_key(root / f"node{j}" / "validator.pem").public.raw.hex()
                   for j in range(gen.n + spare)]
        write_atomic(path, _node_config_text(i, pubkeys, base_port or DEFAULT_BASE_PORT, netns, tls).encode())
    try:
        cfg = config.load(path)
    except config.ConfigError as exc:
        older = " (a devnet directory made by an older version: remove it, or pass another --dir, to make a " \
                "new one)" if config.OLDER_PEERS_FORMAT in str(exc) else ""
        raise DevnetError(f"{path}: {exc}{older}") from None
    if cfg.index not in (None, i):
        raise DevnetError(f"{path}: index is {cfg.index}, expected {i}")
    if tls != (cfg.tls is not None):
        raise DevnetError(f"{path}: {'has no' if tls else 'has a'} [tls] table, unlike node 0's; "
                          "every node of a devnet runs with TLS or none does")
    if netns and (cfg.api_listen[0], cfg.peer_listen[0]) != (netns_address(i), netns_address(i)):
        raise DevnetError(f"{path}: with --netns node {i} listens on {netns_address(i)}, not "
                          f"{cfg.api_listen[0]} / {cfg.peer_listen[0]}")
    if base_port is not None and cfg.api_listen[1] != base_port + i:
        raise DevnetError(f"{path} puts node {i}'s API on port {cfg.api_listen[1]}, not {base_port + i}: "
                          f"this devnet was made with another --base-port; run without --base-port "
                          f"to use its ports, or use another --dir")
    try:
        key = crypto.load_private_key(cfg.key_file)
    except crypto.KeyFileError as exc:
        raise DevnetError(str(exc)) from None
    if i < gen.n and key.public.raw != gen.validators[i].pubkey.raw:
        raise DevnetError(f"{cfg.key_file} is not validator {i}'s key in {root / GENESIS_FILE}")
    if i >= gen.n and gen.validator_set.index_of(key.public.raw) is not None:
        raise DevnetError(f"{cfg.key_file}: spare node {i}'s key is a genesis validator's")
    host, port = cfg.api_listen
    dept = gen.validators[i].dept if i < gen.n else department(i)[0]
    return NodeFiles(i, dept, rel, f"{'https' if tls else 'http'}://{host}:{port}", cfg.api_listen, cfg.peer_listen,
                     f"node{i}/node.log", spare=i >= gen.n)


def _client_files(root: Path, gen: genesis_mod.Genesis) -> tuple[ClientFiles, ...]:
    """Genesis clients (in genesis order) whose key file is in D/clients."""
    by_id: dict[str, str] = {}
    for path in sorted((root / CLIENTS_DIR).glob("*.pem")):
        try:
            by_id[crypto.load_private_key(path).public.key_id] = f"{CLIENTS_DIR}/{path.name}"
        except crypto.KeyFileError as exc:
            print(f"devnet: skipping {path}: {exc}", file=sys.stderr)
    out = []
    for key_id, signer in gen.signers.items():
        if signer.validator is None and key_id in by_id:
            out.append(ClientFiles(signer.dept, by_id[key_id], key_id, signer.roles))
    return tuple(out)


def _made_with_netns(root: Path, wanted: bool | None) -> bool:
    """Whether the devnet in `root` was made with --netns: its node 0 listens on
    netns_address(0) (a missing or broken config: as `wanted`, _node_files checks it)."""
    try:
        return config.load(root / "node0" / "node.toml").api_listen[0] == netns_address(0)
    except config.ConfigError:
        return bool(wanted)


def _made_with_tls(root: Path) -> bool:
    try:
        return config.load(root / "node0" / "node.toml").tls is not None
    except config.ConfigError:
        return False


def load(root: Path, nodes: int | None = None, base_port: int | None = None, spare: int | None = None,
         netns: bool | None = None, tls: bool | None = None) -> Devnet:
    """Describe an existing devnet directory, checking it is usable as it stands (`netns`,
    `tls` None: as it was made)."""
    try:
        gen = genesis_mod.parse((root / GENESIS_FILE).read_bytes())
    except OSError as exc:
        raise DevnetError(f"cannot read {root / GENESIS_FILE}: {exc.strerror}") from None
    except InvalidInput as exc:
        raise DevnetError(f"{root / GENESIS_FILE}: {exc.message}") from None
    if nodes is not None and nodes != gen.n:
        raise DevnetError(f"{root} holds a {gen.n}-node devnet (its genesis is never regenerated); "
                          f"run with --nodes {gen.n}, or use another --dir for {nodes} nodes")
    spares = _spares(root, gen)
    if spare is not None and spare != spares:
        raise DevnetError(f"{root} holds {spares} spare node(s) (fixed when it was made); run with --spare "
                          f"{spares}, or use another --dir for {spare}")
    made_netns = _made_with_netns(root, netns)
    if netns is not None and netns != made_netns:
        how = "with" if made_netns else "without"
        raise DevnetError(f"{root} was made {how} --netns (its node configs name "
                          f"{NETNS_SUBNET + '.x' if made_netns else HOST} addresses); run {how} --netns, "
                          f"or use another --dir")
    made_tls = _made_with_tls(root)
    if tls is not None and tls != made_tls:
        how = "with" if made_tls else "without"
        raise DevnetError(f"{root} was made {how} --tls; run {how} --tls, or use another --dir")
    node_files = tuple(_node_files(root, gen, i, base_port, spares, made_netns, made_tls)
                       for i in range(gen.n + spares))
    clients = _client_files(root, gen)
    if not clients:
        raise DevnetError(f"no key in {root / CLIENTS_DIR} belongs to a client of {root / GENESIS_FILE}")
    return Devnet(root, gen.chain_id, node_files, clients, made_netns, root / CA_FILE if made_tls else None)


def prepare(root: Path, nodes: int = DEFAULT_NODES, base_port: int | None = None, spare: int | None = None,
            netns: bool | None = None, tls: bool | None = None) -> Devnet:
    """Create the devnet's files on first use; on later uses check and reuse them
    (`spare` None: as many spares as the directory has; `netns` None: as it was made, a new
    one without)."""
    if not (root / GENESIS_FILE).exists():
        create(root, nodes, DEFAULT_BASE_PORT if base_port is None else base_port, spare or 0, bool(netns),
               bool(tls))
    return load(root, nodes, base_port, spare, netns, tls)


RUNNING = "running"  # the process runs now (it may still be starting up)
RESTARTING = "restarting"  # it exited; devnet starts it again once the backoff has passed
STOPPED = "stopped"  # devnet gave up on it (or never started it)


@dataclass(frozen=True)
class NodeState:
    """One node as devnet.json shows it: the pid of its process as it runs now."""

    pid: int | None
    state: str = RUNNING
    reason: str | None = None  # why it is not running, when it is not


def manifest(net: Devnet, states: Mapping[int, NodeState]) -> dict[str, Any]:
    """The devnet.json document; paths are relative to the devnet directory. A node missing
    from `states` has not been started."""
    nodes = []
    for n in net.nodes:
        st = states.get(n.index, NodeState(None, STOPPED, "not started"))
        nodes.append({"index": n.index, "dept": n.dept, "api": n.api, "pid": st.pid, "state": st.state,
                      "reason": st.reason, "config": n.config, "spare": n.spare})
        if net.netns:  # only then: devnet.json of a devnet on 127.0.0.1 is as it was
            nodes[-1]["netns"] = f"{NETNS_NAMESPACE_PREFIX}{n.index}"
    return {
        "chain_id": net.chain_id,
        "genesis": GENESIS_FILE,
        **({"ca_file": CA_FILE} if net.ca_file is not None else {}),  # only then: as it was without --tls
        "nodes": nodes,
        "clients": [{"dept": c.dept, "key_file": c.key_file, "key_id": c.key_id, "roles": list(c.roles)}
                    for c in net.clients],
    }


def write_manifest(net: Devnet, states: Mapping[int, NodeState]) -> Path:
    path = net.root / MANIFEST_FILE
    write_atomic(path, (json.dumps(manifest(net, states), indent=2) + "\n").encode())
    return path


def _read_manifest(root: Path, pick: Callable[[Any], _T]) -> _T:
    """`pick` applied to a running devnet's devnet.json; DevnetError naming what is wrong."""
    path = root / MANIFEST_FILE
    try:
        return pick(json.loads(path.read_bytes()))
    except OSError as exc:
        raise DevnetError(f"cannot read {path}: {exc.strerror} (is the devnet running?)") from None
    except (ValueError, KeyError, IndexError, TypeError):
        raise DevnetError(f"{path} is not a devnet.json written by `ledgernode devnet`") from None


def read_ca(root: Path) -> Path | None:
    """The CA file of a running devnet made with --tls (None: plain HTTP)."""
    return _read_manifest(root, lambda doc: root / doc["ca_file"] if "ca_file" in doc else None)


def read_target(root: Path) -> tuple[str, Path, str]:
    """(API of node 0, first client's key file, chain id) from a running devnet's devnet.json."""
    return _read_manifest(root, lambda doc: (doc["nodes"][0]["api"], root / doc["clients"][0]["key_file"],
                                             doc["chain_id"]))


def read_validator(root: Path, index: int) -> tuple[str, Path]:
    """(API, validator key file) of node `index` from a running devnet's devnet.json."""
    nodes = _read_manifest(root, lambda doc: [(str(n["api"]), (root / n["config"]).parent / "validator.pem")
                                              for n in doc["nodes"]])
    if not 0 <= index < len(nodes):
        raise DevnetError(f"the devnet has nodes 0 to {len(nodes) - 1}, not {index}")
    return nodes[index]
