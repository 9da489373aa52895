"""Byzantine replicas for the simulation: real replicas whose outgoing traffic lies.

Each runs an honest `Replica` inside (so it stays plausible) and rewrites what
leaves it, signing the lies with its own key. None of them can sign as
another validator: that is the one thing the fault model rules out.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ledgernode.consensus import Commit, Message, Prepare, Proposal, RoundChange
from ledgernode.consensus.messages import NO_ROUND, signing_bytes

from .cluster import Host

REPLAY_LOG_MAX = 500


class Byzantine(Host):
    def sign(self, msg: Any) -> Any:
        return replace(msg, sig=self.c.keys[self.index].sign(signing_bytes(msg)))

    def halves(self) -> tuple[list[int], list[int]]:
        others = [i for i in range(self.c.n) if i != self.index]
        return others[: len(others) // 2], others[len(others) // 2:]

    def send(self, to: int | None, msg: Message) -> None:
        for t in ([to] if to is not None else [i for i in range(self.c.n) if i != self.index]):
            for out in self.lie(t, msg):
                self.c.net.send(self.index, t, out)

    def lie(self, to: int, msg: Any) -> list[Any]:
        return [msg]

    def at_our_height(self, msg: Any) -> bool:
        """Lies that build blocks need our chain to be at the message's height."""
        return msg.height == len(self.disk.chain) + 1


class Silent(Byzantine):
    def lie(self, to: int, msg: Any) -> list[Any]:
        return []


class SilentPrimary(Byzantine):
    def lie(self, to: int, msg: Any) -> list[Any]:
        return [] if isinstance(msg, Proposal) else [msg]


class Equivocator(Byzantine):
    """As primary, sends one block to half the replicas and another to the rest; votes for both."""

    def __init__(self, cluster: Any, index: int) -> None:
        self.alt: dict[tuple[int, int], Proposal] = {}
        super().__init__(cluster, index)

    def alternative(self, p: Proposal) -> Proposal:
        key = (p.height, p.round)
        if key not in self.alt:
            items = list(p.block.payload[1:]) if p.block and p.block.payload else []
            block = self.make_block(p.height, items, salt=1 + p.round)
            from ledgernode.blocks import decode_header
            self.alt[key] = self.sign(replace(p, block=block, block_hash=decode_header(block.header).block_hash))
        return self.alt[key]

    def lie(self, to: int, msg: Any) -> list[Any]:
        a, _ = self.halves()
        if isinstance(msg, Proposal) and self.at_our_height(msg):
            return [msg] if to in a else [self.alternative(msg)]
        if isinstance(msg, (Prepare, Commit)):
            alt = self.alt.get((msg.height, msg.round))
            extra = [self.sign(replace(msg, block_hash=alt.block_hash))] if alt else []
            return [msg] + extra
        return [msg]


class DoubleVoter(Byzantine):
    """Votes for what it is shown and, to half the replicas, for something else too."""

    def lie(self, to: int, msg: Any) -> list[Any]:
        a, _ = self.halves()
        if isinstance(msg, (Prepare, Commit)) and to in a:
            return [self.sign(replace(msg, block_hash=bytes(31) + bytes([msg.round + 1]))), msg]
        return [msg]


class ForgedJustification(Byzantine):
    """As a later-round primary, proposes a fresh block with a truncated justification,
    and sends round changes claiming a prepared certificate it does not have."""

    def lie(self, to: int, msg: Any) -> list[Any]:
        if not isinstance(msg, (Proposal, RoundChange)) or not self.at_our_height(msg):
            return [msg]
        if isinstance(msg, Proposal) and msg.round > 0:
            from ledgernode.blocks import decode_header
            fresh = self.make_block(msg.height, [], salt=7 + msg.round)
            just = tuple(rc for rc in msg.justification if rc.prepared_round == NO_ROUND)
            return [self.sign(replace(msg, block=fresh, block_hash=decode_header(fresh.header).block_hash,
                                      justification=just))]
        if isinstance(msg, RoundChange) and msg.prepared_round == NO_ROUND and msg.round > 0:
            fake = self.make_block(msg.height, [], salt=99)
            from ledgernode.blocks import decode_header
            h = decode_header(fake.header).block_hash
            cert = (self.sign(Prepare(msg.chain, msg.height, 0, h, self.index)),)
            return [self.sign(replace(msg, prepared_round=0, prepared_hash=h, prepared_cert=cert,
                                      prepared_block=fake))]
        return [msg]


class PayloadTamperer(Byzantine):
    """As primary, sends one replica its genuine signed proposal with other records:
    the signature binds only the header hash, so only validation can catch it."""

    def lie(self, to: int, msg: Any) -> list[Any]:
        victim = (self.index + 1) % self.c.n
        if isinstance(msg, Proposal) and msg.block is not None and to == victim:
            forged = replace(msg.block, payload=msg.block.payload + (b"r-forged-%d" % msg.height,))
            return [replace(msg, block=forged)]
        return [msg]


class Replayer(Byzantine):
    """Re-sends old messages it received from others, at random, forever."""

    def __init__(self, cluster: Any, index: int) -> None:
        self.log: list[Any] = []
        super().__init__(cluster, index)

    def receive(self, src: int, msg: Any) -> None:
        if isinstance(msg, (Proposal, Prepare, Commit, RoundChange)) and len(self.log) < REPLAY_LOG_MAX:
            self.log.append(msg)
        super().receive(src, msg)

    def tick(self) -> None:
        super().tick()
        if self.log and self.c.rng.random() < 0.3:
            msg = self.c.rng.choice(self.log)
            self.c.net.send(self.index, self.c.rng.randrange(self.c.n), msg)


KINDS = {
    "silent": Silent, "silent_primary": SilentPrimary, "equivocate": Equivocator,
    "double_vote": DoubleVoter, "forge_rc": ForgedJustification, "replay": Replayer,
    "tamper_payload": PayloadTamperer,
}


def make_byzantine(kind: str, cluster: Any, index: int) -> Host:
    return KINDS[kind](cluster, index)
