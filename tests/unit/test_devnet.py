"""devnet: the files it lays out (keys, genesis, node configs, devnet.json) and their reuse.

No node processes here: these tests cover everything the devnet writes before
it starts anything, and its refusals, which happen before anything starts too.
"""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path

import pytest

from ledgernode import config, crypto, devnet
from ledgernode.cli import main
from ledgernode.genesis import parse

BASE = 7300


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return tmp_path / "devnet"


def test_first_run_writes_keys_genesis_and_configs(root: Path) -> None:
    net = devnet.prepare(root, 4, BASE)
    assert sorted(p.name for p in root.iterdir()) == ["clients", "genesis.json", "node0", "node1", "node2", "node3"]
    keys = [root / f"node{i}" / "validator.pem" for i in range(4)] + sorted((root / "clients").glob("*.pem"))
    assert len(keys) == 4 + 5  # validators; the ["*"] client and one client per department
    for path in keys:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        crypto.load_private_key(path)

    gen = parse((root / "genesis.json").read_bytes())
    assert gen.chain_id == net.chain_id == "gov-devnet"
    assert [v.dept for v in gen.validators] == ["justice", "market", "health", "customs"]
    assert all(v.name and v.name != v.dept for v in gen.validators)
    doc = json.loads((root / "genesis.json").read_bytes())
    assert doc["clients"][0]["roles"] == ["*"]
    assert {c["dept"] for c in doc["clients"][1:]} == set(gen.depts)
    for c in doc["clients"][1:]:
        assert c["roles"] != ["*"] and c["roles"]

    for i in range(4):
        cfg = config.load(root / f"node{i}" / "node.toml")
        assert cfg.index == i
        assert cfg.api_listen == ("127.0.0.1", BASE + i)
        assert cfg.peer_listen == ("127.0.0.1", BASE + devnet.PEER_PORT_OFFSET + i)
        assert cfg.peers == {j: ("127.0.0.1", BASE + 100 + j) for j in range(4) if j != i}
        assert cfg.data_dir == (root / f"node{i}" / "data").resolve()
        assert cfg.genesis.resolve() == (root / "genesis.json").resolve()
        assert crypto.load_private_key(cfg.key_file).public == gen.validators[i].pubkey


def test_department_clients_cover_their_record_types(root: Path) -> None:
    net = devnet.prepare(root, 4, BASE)
    gen = parse((root / "genesis.json").read_bytes())
    for c in net.clients[1:]:
        signer = gen.signers[c.key_id]
        assert signer.dept == c.dept and signer.roles == c.roles
        assert signer.allows("share.access")  # data shared with a department can be read by it
    by_dept = {c.dept: gen.signers[c.key_id] for c in net.clients[1:]}
    assert by_dept["justice"].allows("evidence.notarize")
    assert by_dept["market"].allows("cert.issue") and by_dept["market"].allows("trace.event")
    assert by_dept["health"].allows("dataset.publish") and by_dept["health"].allows("share.grant")
    assert not by_dept["justice"].allows("cert.issue")
    assert gen.signers[net.clients[0].key_id].allows("anything.at.all")


def test_manifest_shape(root: Path) -> None:
    net = devnet.prepare(root, 4, BASE)
    pids = {0: 101, 1: 102, 2: 103, 3: 104}
    path = devnet.write_manifest(net, pids)
    assert path == root / "devnet.json" and not (root / "devnet.json.tmp").exists()
    doc = json.loads(path.read_text())
    assert doc == devnet.manifest(net, pids)
    assert set(doc) == {"chain_id", "genesis", "nodes", "clients"}
    assert doc["chain_id"] == "gov-devnet" and doc["genesis"] == "genesis.json"
    assert doc["nodes"][0] == {"index": 0, "dept": "justice", "api": f"http://127.0.0.1:{BASE}", "pid": 101,
                               "config": "node0/node.toml"}
    for i, node in enumerate(doc["nodes"]):
        assert set(node) == {"index", "dept", "api", "pid", "config"}
        assert node["index"] == i and node["api"] == f"http://127.0.0.1:{BASE + i}"
        assert (root / node["config"]).is_file()
    assert doc["clients"][0]["roles"] == ["*"]
    gen = parse((root / doc["genesis"]).read_bytes())
    for c in doc["clients"]:
        assert set(c) == {"dept", "key_file", "key_id", "roles"}
        assert not Path(c["key_file"]).is_absolute()
        key = crypto.load_private_key(root / c["key_file"])
        assert key.public.key_id == c["key_id"] and tuple(c["roles"]) == gen.signers[c["key_id"]].roles
    assert {c["dept"] for c in doc["clients"]} == set(gen.depts)
    api, key_file, chain = devnet.read_target(root)
    assert (api, key_file, chain) == (f"http://127.0.0.1:{BASE}", root / doc["clients"][0]["key_file"], "gov-devnet")


def test_second_run_reuses_identical_files(root: Path) -> None:
    first = devnet.prepare(root, 4, BASE)
    before = _snapshot(root)
    assert devnet.prepare(root, 4, BASE) == first
    assert devnet.prepare(root, 4) == first  # no --base-port: the configs' own ports
    assert _snapshot(root) == before  # same bytes, not even rewritten


def test_default_ports(root: Path) -> None:
    net = devnet.prepare(root)
    assert [n.api for n in net.nodes] == [f"http://127.0.0.1:{7100 + i}" for i in range(4)]
    assert [n.peer_listen[1] for n in net.nodes] == [7200 + i for i in range(4)]


def test_other_node_count_is_refused(root: Path) -> None:
    devnet.prepare(root, 4, BASE)
    before = _snapshot(root)
    with pytest.raises(devnet.DevnetError, match="4-node devnet.*--nodes 4"):
        devnet.prepare(root, 7, BASE)
    assert _snapshot(root) == before


def test_cli_refuses_other_node_count(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    devnet.prepare(root, 4, BASE)
    assert main(["devnet", "--nodes", "5", "--dir", str(root), "--base-port", str(BASE)]) == 2
    err = capsys.readouterr().err
    assert "4-node devnet" in err and "--nodes 4" in err
    assert not (root / "devnet.json").exists()


def test_other_base_port_is_refused(root: Path) -> None:
    devnet.prepare(root, 4, BASE)
    with pytest.raises(devnet.DevnetError, match="another --base-port"):
        devnet.prepare(root, 4, BASE + 10)


def test_missing_config_is_rewritten_keys_never(root: Path) -> None:
    devnet.prepare(root, 4, BASE)
    text = (root / "node2" / "node.toml").read_text()
    key = (root / "node2" / "validator.pem").read_bytes()
    (root / "node2" / "node.toml").unlink()
    devnet.prepare(root, 4, BASE)
    assert (root / "node2" / "node.toml").read_text() == text
    assert (root / "node2" / "validator.pem").read_bytes() == key


def test_swapped_validator_key_is_refused(root: Path) -> None:
    devnet.prepare(root, 4, BASE)
    (root / "node1" / "validator.pem").unlink()
    crypto.save_private_key(root / "node1" / "validator.pem", crypto.generate_private_key())
    with pytest.raises(devnet.DevnetError, match="not validator 1's key"):
        devnet.prepare(root, 4, BASE)


def test_interrupted_first_run_keeps_keys_it_made(root: Path) -> None:
    (root / "node0").mkdir(parents=True)
    key = crypto.generate_private_key()
    crypto.save_private_key(root / "node0" / "validator.pem", key)
    devnet.prepare(root, 4, BASE)
    assert parse((root / "genesis.json").read_bytes()).validators[0].pubkey == key.public


def test_many_nodes_get_generic_departments(root: Path) -> None:
    n = len(devnet.DEPARTMENTS) + 2
    net = devnet.prepare(root, n, BASE)
    gen = parse((root / "genesis.json").read_bytes())
    assert gen.n == n and len(set(gen.depts)) == n
    assert [v.dept for v in gen.validators][-2:] == [f"dept{n - 2}", f"dept{n - 1}"]
    assert len(net.clients) == n + 1


@pytest.mark.parametrize("nodes, base", [(0, BASE), (devnet.NODES_MAX + 1, BASE), (4, 80), (4, 65500)])
def test_bad_arguments(root: Path, nodes: int, base: int) -> None:
    with pytest.raises(devnet.DevnetError):
        devnet.prepare(root, nodes, base)
    assert not (root / "genesis.json").exists()


def test_busy_port_is_reported_before_starting(root: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        net = devnet.prepare(root, 1, port)
        with pytest.raises(devnet.DevnetError, match=f"127.0.0.1:{port}"):
            devnet.check_ports(net)


def test_read_target_without_a_running_devnet(root: Path) -> None:
    devnet.prepare(root, 4, BASE)
    with pytest.raises(devnet.DevnetError, match="is the devnet running"):
        devnet.read_target(root)


def test_guide_names_apis_logs_and_a_submit_command(root: Path) -> None:
    net = devnet.prepare(root, 4, BASE)
    text = devnet.guide(net)
    for i in range(4):
        assert f"http://127.0.0.1:{BASE + i}" in text and str(root / f"node{i}" / "node.log") in text
    assert str(root / "devnet.json") in text
    assert f"python -m ledgernode submit --api http://127.0.0.1:{BASE} --key {root / net.clients[0].key_file}" in text
    assert f"python -m ledgernode submit --devnet {root}" in text and "--wait" in text
    assert "python -m ledgernode verify bundle.json --genesis" in text
