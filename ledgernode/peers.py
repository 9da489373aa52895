"""Peer addresses: node config keyed by public key, reloaded on SIGHUP.

`[peers]` in the node config maps another node's public key (64 lowercase hex, as in
the genesis or in the governance record that added it) to its peer address
(ledgernode/config.py). `peer_links` names each key by its link id (net/book.py) at
start and on every reload; the links (net/links.py) are addressed by link id. On
SIGHUP the node reads its config file again and `reload` hands the new addresses to
the links, which redial a changed one at once: a department that moves a node to a
new address, or a node that joins, is told to the others, and they follow without a
restart. Only `[peers]` is reloaded; a file that does not load, or names a key that
does not screen, changes nothing and is logged.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from . import config, crypto
from .config import ConfigError, NodeConfig
from .net import PeerNetwork
from .net.book import Book

log = logging.getLogger("ledgernode.peers")


def peer_links(book: Book, me: bytes, peers: dict[str, tuple[str, int]]) -> dict[int, tuple[str, int]]:
    """Link id -> address; ConfigError naming a key that is not an Ed25519 key, or ours.
    A key may be any node's: a validator's, or a node that joins or follows."""
    keys = {}
    for key in peers:
        raw = bytes.fromhex(key)
        if raw == me:
            raise ConfigError(f"peers.{key[:16]}: this node's own key")
        problem = crypto.pubkey_problem(raw)
        if problem is not None:
            raise ConfigError(f"peers.{key[:16]}: {problem}")
        keys[key] = raw
    book.name_all([*keys.values(), me])  # ours too: every node of a network names the same keys alike
    return {book.name(keys[key]): address for key, address in peers.items()}


def reload(cfg: NodeConfig, net: PeerNetwork, count: Callable[[str], None]) -> NodeConfig:
    """Read `cfg.path` again and dial its `[peers]`; the config now in force."""
    try:
        fresh = config.load(cfg.path)
        addresses = peer_links(net.book, net.key.public.raw, fresh.peers)
    except ConfigError as exc:
        count("peers_reload_refused")
        log.error("SIGHUP: peers not reloaded: %s", exc)
        return cfg
    if dataclasses.replace(fresh, peers=cfg.peers) != cfg:
        log.warning("SIGHUP reloads only [peers]: restart the node to apply the other changes in %s", cfg.path)
    changes = net.set_peers(addresses)
    count("peers_reloaded")
    log.info("SIGHUP: peers reloaded from %s: %s", cfg.path, "; ".join(changes) or "no change")
    return dataclasses.replace(cfg, peers=fresh.peers)
