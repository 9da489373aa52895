"""devnet --netns without namespaces (ledgernode/devnet/layout.py, netns.py): the configs it
lays out name each node's own 10.77.0.x address, a directory keeps the choice it was made
with, and the refusals (not root, no `ip`) exit 2 before anything is written. The
namespaces themselves are tested in tests/integration/test_netns.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledgernode import config, devnet
from ledgernode.cli import main
from ledgernode.devnet import netns

BASE = 7400


def test_configs_name_each_nodes_own_address(tmp_path: Path) -> None:
    net = devnet.prepare(tmp_path / "d", 4, BASE, netns=True)
    assert net.netns
    for node in net.nodes:
        cfg = config.load(tmp_path / "d" / node.config)
        mine = f"10.77.0.{10 + node.index}"
        assert cfg.api_listen == (mine, BASE + node.index)
        assert cfg.peer_listen == (mine, BASE + 100 + node.index)
        assert node.api == f"http://{mine}:{BASE + node.index}"
        assert sorted(host for host, _ in cfg.peers.values()) == \
            [f"10.77.0.{10 + j}" for j in range(4) if j != node.index]
    doc = devnet.manifest(net, {})
    assert [n["netns"] for n in doc["nodes"]] == [f"ln-node{i}" for i in range(4)]


def test_a_directory_keeps_how_it_was_made(tmp_path: Path) -> None:
    made = devnet.prepare(tmp_path / "ns", 4, BASE, netns=True)
    assert devnet.prepare(tmp_path / "ns") == made  # no flag: as made
    with pytest.raises(devnet.DevnetError, match="made with --netns"):
        devnet.prepare(tmp_path / "ns", netns=False)
    plain = devnet.prepare(tmp_path / "plain", 4, BASE)
    assert not plain.netns and "netns" not in devnet.manifest(plain, {})["nodes"][0]
    with pytest.raises(devnet.DevnetError, match="made without --netns"):
        devnet.prepare(tmp_path / "plain", netns=True)


def test_a_node_config_edited_to_another_address_is_refused(tmp_path: Path) -> None:
    devnet.prepare(tmp_path / "d", 4, BASE, netns=True)
    path = tmp_path / "d" / "node2" / "node.toml"
    path.write_text(path.read_text().replace('api_listen = "10.77.0.12:', 'api_listen = "127.0.0.1:'))
    with pytest.raises(devnet.DevnetError, match="node 2 listens on 10.77.0.12"):
        devnet.prepare(tmp_path / "d")


def test_not_root_exits_2_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    assert main(["devnet", "--netns", "--dir", str(tmp_path / "d")]) == 2
    assert "--netns needs root" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_no_ip_command_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns.shutil, "which", lambda name: None)
    assert main(["devnet", "--netns", "--dir", str(tmp_path / "d")]) == 2
    assert "apt-get install iproute2" in capsys.readouterr().err


def test_nodes_start_inside_their_namespace() -> None:
    cmd = ["python", "-m", "ledgernode", "run", "-c", "node.toml"]
    assert netns.wrap(3, cmd) == ["ip", "netns", "exec", "ln-node3", *cmd]


def test_devnet_json_of_a_netns_devnet_is_json(tmp_path: Path) -> None:
    net = devnet.prepare(tmp_path / "d", 2, BASE, netns=True)
    path = devnet.write_manifest(net, {})
    target = devnet.read_target(tmp_path / "d")
    assert target[0] == "http://10.77.0.10:7400" and json.loads(path.read_text())["nodes"][1]["netns"] == "ln-node1"
