"""Peer addresses: node config keyed by validator public key, reloaded on SIGHUP.

`[peers]` in the node config maps another validator's public key (64 lowercase hex, as
in the genesis) to its peer address (ledgernode/config.py). `peer_indexes` resolves the
keys against the genesis validators once at start and on every reload; the links
(net/links.py) are addressed by validator index. On SIGHUP the node reads its config
file again and `reload` hands the new addresses to the links, which redial a changed
one at once: a department that moves a node to a new address tells the others, and
they follow without a restart. Only `[peers]` is reloaded; a file that does not load,
or names a key that is no validator's, changes nothing and is logged.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from . import config
from .config import ConfigError, NodeConfig
from .genesis import Genesis
from .net import PeerNetwork

log = logging.getLogger("ledgernode.peers")


def peer_indexes(genesis: Genesis, index: int, peers: dict[str, tuple[str, int]]) -> dict[int, tuple[str, int]]:
    """Validator index -> address; ConfigError naming a key that is not another validator's."""
    by_key = {v.pubkey.raw.hex(): i for i, v in enumerate(genesis.validators)}
    out: dict[int, tuple[str, int]] = {}
    for key, address in peers.items():
        peer = by_key.get(key)
        if peer is None:
            raise ConfigError(f"peers.{key[:16]}: not the public key of a validator in the genesis")
        if peer == index:
            raise ConfigError(f"peers.{key[:16]}: this node's own validator key (index {index})")
        out[peer] = address
    return out


def reload(cfg: NodeConfig, genesis: Genesis, net: PeerNetwork, count: Callable[[str], None]) -> NodeConfig:
    """Read `cfg.path` again and dial its `[peers]`; the config now in force."""
    try:
        fresh = config.load(cfg.path)
        addresses = peer_indexes(genesis, cfg.index, fresh.peers)
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
