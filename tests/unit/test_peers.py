"""ledgernode/peers.py: peer addresses keyed by public key, reloaded on SIGHUP."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from ledgernode import config, crypto
from ledgernode.config import ConfigError
from ledgernode.net.book import Book
from ledgernode.peers import peer_links, reload
from tests.fixtures import Net

NET = Net()
KEYS = [v.pubkey.raw.hex() for v in NET.genesis.validators]
ME = NET.genesis.validators[1].pubkey.raw


def book() -> Book:
    return Book(v.pubkey.raw for v in NET.genesis.validators)


def test_genesis_validators_keep_their_index_and_other_keys_get_the_next_ids_in_key_order() -> None:
    peers = {KEYS[2]: ("10.0.0.2", 7202), KEYS[0]: ("10.0.0.0", 7200)}
    assert peer_links(book(), ME, peers) == {0: ("10.0.0.0", 7200), 2: ("10.0.0.2", 7202)}
    assert peer_links(book(), ME, {}) == {}
    new = sorted(crypto.generate_private_key().public.raw.hex() for _ in range(3))
    b = book()
    links = peer_links(b, ME, {new[2]: ("c", 3), new[0]: ("a", 1), KEYS[3]: ("v", 3), new[1]: ("b", 2)})
    assert links == {NET.n + 2: ("c", 3), NET.n: ("a", 1), 3: ("v", 3), NET.n + 1: ("b", 2)}
    assert [b.key(NET.n + i).raw.hex() for i in range(3)] == new
    # named once: a reload that lists them again keeps their ids
    assert peer_links(b, ME, {new[1]: ("b", 2)}) == {NET.n + 1: ("b", 2)}


def test_a_key_that_does_not_screen_or_of_this_node_is_refused() -> None:
    with pytest.raises(ConfigError, match=f"peers.{'00' * 8}: public key has small order"):
        peer_links(book(), ME, {"00" * 32: ("h", 1)})
    with pytest.raises(ConfigError, match="this node's own key"):
        peer_links(book(), ME, {KEYS[1]: ("h", 1)})


class _Links:
    def __init__(self) -> None:
        self.given: list[dict[int, tuple[str, int]]] = []
        self.book = book()
        self.key = NET.validators[1]

    def set_peers(self, peers: dict[int, tuple[str, int]]) -> list[str]:
        self.given.append(peers)
        return [f"{len(peers)} peers"]


def _config(tmp_path: Path, peers: dict[str, str], api: str = "127.0.0.1:7101") -> config.NodeConfig:
    path = tmp_path / "node.toml"
    path.write_text(config.render("data", "k.pem", "g.json", api, "127.0.0.1:7201", peers))
    return config.load(path)


def test_reload_hands_the_new_addresses_to_the_links(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = _config(tmp_path, {KEYS[0]: "127.0.0.1:7200"})
    counted: list[str] = []
    links: Any = _Links()
    _config(tmp_path, {KEYS[0]: "127.0.0.1:7300", KEYS[3]: "127.0.0.1:7203"}, api="127.0.0.1:9999")
    with caplog.at_level(logging.INFO, "ledgernode.peers"):
        now = reload(cfg, links, counted.append)
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
    assert reload(cfg, links, counted.append) is cfg
    assert links.given == [] and counted == ["peers_reload_refused"]
    assert "peers not reloaded" in caplog.text


def test_a_reloaded_key_that_does_not_screen_changes_nothing(tmp_path: Path) -> None:
    cfg = _config(tmp_path, {KEYS[0]: "127.0.0.1:7200"})
    _config(tmp_path, {"00" * 32: "127.0.0.1:7300"})
    links: Any = _Links()
    counted: list[str] = []
    assert reload(cfg, links, counted.append) is cfg and links.given == []
    assert counted == ["peers_reload_refused"]
