"""ledgernode/peers.py: peer addresses keyed by validator public key, reloaded on SIGHUP."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from ledgernode import config
from ledgernode.config import ConfigError
from ledgernode.peers import peer_indexes, reload
from tests.fixtures import Net

NET = Net()
KEYS = [v.pubkey.raw.hex() for v in NET.genesis.validators]


def test_keys_resolve_to_the_validators_indexes() -> None:
    peers = {KEYS[2]: ("10.0.0.2", 7202), KEYS[0]: ("10.0.0.0", 7200)}
    assert peer_indexes(NET.genesis, 1, peers) == {0: ("10.0.0.0", 7200), 2: ("10.0.0.2", 7202)}
    assert peer_indexes(NET.genesis, 1, {}) == {}


def test_a_key_of_no_validator_or_of_this_node_is_refused() -> None:
    with pytest.raises(ConfigError, match=f"peers.{'ab' * 8}: not the public key of a validator"):
        peer_indexes(NET.genesis, 1, {"ab" * 32: ("h", 1)})
    with pytest.raises(ConfigError, match="this node's own validator key"):
        peer_indexes(NET.genesis, 1, {KEYS[1]: ("h", 1)})


class _Links:
    def __init__(self) -> None:
        self.given: list[dict[int, tuple[str, int]]] = []

    def set_peers(self, peers: dict[int, tuple[str, int]]) -> list[str]:
        self.given.append(peers)
        return [f"{len(peers)} peers"]


def _config(tmp_path: Path, peers: dict[str, str], api: str = "127.0.0.1:7101") -> config.NodeConfig:
    path = tmp_path / "node.toml"
    path.write_text(config.render("data", "k.pem", "g.json", 1, api, "127.0.0.1:7201", peers))
    return config.load(path)


def test_reload_hands_the_new_addresses_to_the_links(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = _config(tmp_path, {KEYS[0]: "127.0.0.1:7200"})
    counted: list[str] = []
    links: Any = _Links()
    _config(tmp_path, {KEYS[0]: "127.0.0.1:7300", KEYS[3]: "127.0.0.1:7203"}, api="127.0.0.1:9999")
    with caplog.at_level(logging.INFO, "ledgernode.peers"):
        now = reload(cfg, NET.genesis, links, counted.append)
    assert links.given == [{0: ("127.0.0.1", 7300), 3: ("127.0.0.1", 7203)}] and counted == ["peers_reloaded"]
    assert now.peers == {KEYS[0]: ("127.0.0.1", 7300), KEYS[3]: ("127.0.0.1", 7203)}
    assert now.api_listen == cfg.api_listen  # only [peers] is reloaded, and the log says so
    assert "reloads only [peers]" in caplog.text and "2 peers" in caplog.text


@pytest.mark.parametrize("text", ["not = [toml", '[peers]\n"ab" = "127.0.0.1:1"\n'])
def test_a_config_that_does_not_load_changes_nothing(tmp_path: Path, text: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    cfg = _config(tmp_path, {KEYS[0]: "127.0.0.1:7200"})
    cfg.path.write_text(text)
    counted: list[str] = []
    links: Any = _Links()
    assert reload(cfg, NET.genesis, links, counted.append) is cfg
    assert links.given == [] and counted == ["peers_reload_refused"]
    assert "peers not reloaded" in caplog.text


def test_a_reloaded_key_of_no_validator_changes_nothing(tmp_path: Path) -> None:
    cfg = _config(tmp_path, {KEYS[0]: "127.0.0.1:7200"})
    _config(tmp_path, {"ab" * 32: "127.0.0.1:7300"})
    links: Any = _Links()
    counted: list[str] = []
    assert reload(cfg, NET.genesis, links, counted.append) is cfg and links.given == []
    assert counted == ["peers_reload_refused"]
