"""Local names for the nodes this one links to: a link id per public key (docs/security.md, peer links).

A link is authenticated by the Ed25519 key at its other end (net/handshake.py), so a
peer *is* its public key; the runtime names it by a small int, its link id, that
means something on this node only. The genesis's validators get their index in the
genesis (so a test's partition of "validators 0 and 1" means what it says on every
node); any other key (a node the operator listed in `[peers]`, a validator added by
governance) gets the next free id when it is first named, and keeps it while the
process runs. Ids are never reused, so a late frame of a forgotten link cannot be
mistaken for another peer's. Only keys the node chose to link with are named (the
node's `[peers]` and its validator sets), so the book grows with the network's
membership, not with what strangers send.
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import crypto


class Book:
    def __init__(self, genesis_keys: Iterable[bytes]) -> None:
        self.keys: list[crypto.PublicKey] = [crypto.load_public_key(raw) for raw in genesis_keys]
        self.ids: dict[bytes, int] = {key.raw: i for i, key in enumerate(self.keys)}
        assert len(self.ids) == len(self.keys), "a genesis lists each validator key once"

    def get(self, pubkey: bytes) -> int | None:
        """The link id of `pubkey`, None if it has none yet."""
        return self.ids.get(pubkey)

    def name(self, pubkey: bytes) -> int:
        """The link id of `pubkey`, given one if it has none; InvalidInput if the key does not screen."""
        link = self.ids.get(pubkey)
        if link is None:
            self.keys.append(crypto.load_public_key(pubkey))
            link = self.ids[pubkey] = len(self.keys) - 1
        return link

    def name_all(self, pubkeys: Iterable[bytes]) -> None:
        """Name the keys without an id yet in sorted order: nodes that name the same new keys
        at start (their own among them: ledgernode/peers.py) give them the same ids, as a
        devnet's spare nodes get n, n + 1, ... on every node."""
        for pubkey in sorted(set(pubkeys)):
            self.name(pubkey)

    def key(self, link: int) -> crypto.PublicKey:
        return self.keys[link]

    def known(self, link: int) -> bool:
        return 0 <= link < len(self.keys)
