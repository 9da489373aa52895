"""Seeded, deterministic simulation of a whole cluster of consensus replicas.

Everything random comes from one `random.Random(seed)`; time is ticks. The
network delays, drops, duplicates and reorders messages and partitions
replicas for a while; replicas crash and restart from what they persisted;
Byzantine replicas lie. `Cluster.run()` returns the checker verdicts K1-K6.

Payload items stand in for records: b"r" + 8-byte id, about subject `s<id % 5>`.
The sim runtime judges a block as the real runtime would (parent link, log_root
over the items, no record twice, the `state` map root after the items' list
appends through ledgermap.block_change) so consensus sees real headers and real
signatures; K6 checks every replica's map against a rebuild from the chain. Each host
applies the replica's outputs through the production driver
(ledgernode/consensus/driver.py), answering each effect at once.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field, replace
from typing import Any, Callable, assert_never

from ledgernode import codec, crypto, ledgermap, maptree, merkle, statemap
from ledgernode.blocks import QC, ZERO_HASH, Header, check_qc, decode_header, decode_qc
from ledgernode.consensus import (
    Answer, BlockData, Blocks, ChainBlocks, Commit, Config, Driver, Effect, Event, FetchBlocks, Message,
    PersistedState, Prepare, Proposal, Replica, RoundChange, next_effect,
)
from ledgernode.consensus.driver import (
    BlockFetched, Build, Dropped, Evidence, Fetch, MempoolSize, PeerMessage, Persist, RecordsChanged, Send,
    StoreCommit, Tick, Validate,
)
from ledgernode.consensus.messages import NO_ROUND, Signed, signing_bytes
from ledgernode.consensus.turns import Turns
from ledgernode.errors import InvalidInput
from ledgernode.genesis import build, parse
from ledgernode.members import ValidatorSet

from .mutants import DRIVER_MUTANTS, MAP_MUTANTS

BLOCK_ITEMS_MAX = 8
CLIENT_RETRY_TICKS = 50
_VERIFY_CACHE: dict[tuple[bytes, bytes, bytes], bool] = {}


def cached_verify(key: crypto.PublicKey, sig: bytes, message: bytes) -> bool:
    """Pure function, so one cache may serve the whole simulated cluster."""
    k = (key.raw, sig, message)
    hit = _VERIFY_CACHE.get(k)
    if hit is None:
        if len(_VERIFY_CACHE) > 200_000:
            _VERIFY_CACHE.clear()
        hit = _VERIFY_CACHE[k] = key.verify(sig, message)
    return hit


SUBJECTS = 5


def item_appends(items: tuple[bytes, ...] | list[bytes], log_start: int) -> list[ledgermap.Append]:
    """The record lists a sim block's items join: each item is about one of SUBJECTS subjects."""
    return [a for offset, item in enumerate(items)
            for a in ledgermap.record_appends(log_start + offset, f"s{int.from_bytes(item[1:], 'big') % SUBJECTS}", ())]


_GENESIS: dict[int, Any] = {}


def sim_key(i: int) -> crypto.PrivateKey:
    return crypto.private_key_from_seed(crypto.sha256(b"sim-validator-%d" % i))


def keys_and_genesis(n: int, spares: int = 0) -> tuple[list[crypto.PrivateKey], Any]:
    """The keys of n validators and `spares` hosts that are not (yet) validators, and the
    genesis of the n."""
    keys = [sim_key(i) for i in range(n + spares)]
    if n not in _GENESIS:
        _GENESIS[n] = parse(build("sim", [{"dept": f"d{i}", "pubkey": k.public.raw.hex()}
                                          for i, k in enumerate(keys[:n])], []))
    return keys, _GENESIS[n]


class SimBlocks(ChainBlocks):
    """The replica's block view: each height's validator set from the cluster's schedule."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster.genesis, cached_verify)
        self.c = cluster


    def validators_after(self, block: BlockData, current: ValidatorSet) -> ValidatorSet:
        return self.c.set_at(decode_header(block.header).height + 1)


class LateSetChange(SimBlocks):
    """Mutant: hands each new validator set to the replica one height late."""

    def validators_after(self, block: BlockData, current: ValidatorSet) -> ValidatorSet:
        return self.c.set_at(decode_header(block.header).height)


@dataclass
class Faults:
    drop: float = 0.0
    dup: float = 0.0
    latency_max: int = 3
    partitions: list[tuple[int, int, frozenset[int]]] = field(default_factory=list)  # (start, end, side)
    crashes: list[tuple[int, int, int]] = field(default_factory=list)  # (at, node, down_ticks)
    byzantine: dict[int, str] = field(default_factory=dict)
    heal_at: int = 0  # after this tick: no drops, no partitions, no crashes


@dataclass
class Disk:
    chain: list[tuple[BlockData, QC]] = field(default_factory=list)
    state: bytes | None = None


class Host:
    """One simulated node: the replica plus the runtime around it."""

    def __init__(self, cluster: Cluster, index: int) -> None:
        self.c, self.index = cluster, index
        self.disk = Disk()
        self.map_nodes = maptree.MemoryNodeStore()  # on the disk, as the store's t/ and l/ keys are
        self.lists = ledgermap.MemoryLists()
        self.up = True
        self.mempool: dict[bytes, None] = {}
        self.committed_items: set[bytes] = set()
        self.boot()

    def boot(self) -> None:
        g = self.c.genesis
        last = decode_header(self.disk.chain[-1][0].header) if self.disk.chain else None
        persisted = PersistedState.decode(self.disk.state) if self.disk.state else None
        headers = [decode_header(b.header) for b, _ in self.disk.chain]
        vset = self.c.set_at(len(headers) + 1)
        since = self.c.set_since(len(headers) + 1)  # proposers' indexes name this set from here
        recent = tuple((h, headers[h - 1].proposer) for h in Turns.window(vset.n, len(headers)) if h >= since)
        me = vset.index_of(self.c.keys[self.index].public.raw)
        self.replica = self.c.replica_class(
            Config(g, 0 if me is None else me, round_timeout_ticks=12, resend_ticks=6, fetch_timeout_ticks=15),
            self.c.keys[self.index], len(self.disk.chain), last, persisted, cached_verify,
            recent_proposers=recent, blocks=self.c.blocks_class(self.c), validators=vset,
        )
        self.committed_items = {i for b, _ in self.disk.chain for i in b.payload}
        self.mempool = {k: None for k in self.mempool if k not in self.committed_items}
        self.driver = self.c.make_driver(self)
        self.run(RecordsChanged(len(self.mempool)))

    # -- the production driver, its effects answered at once -------------------

    def run(self, event: Event) -> None:
        """Apply `event` as the node does (consensus/driver.py); a host that crashed
        between two effects (a mutant's crash point) carries out nothing more."""
        effects = self.driver.handle(event)
        answer: Answer = None
        while (effect := next_effect(effects, answer)) is not None and self.up:
            answer = self.effect(effect)

    def effect(self, effect: Effect) -> Answer:
        match effect:
            case StoreCommit(block, qc):
                self.commit(block, qc)
            case MempoolSize():
                return len(self.mempool)
            case Persist(state):
                self.disk.state = state.encode()
            case Send(to, msg):
                self.send(to, msg)
            case Validate(_, _, block):
                return self.judge(block)
            case Build(height, round_):
                return self.build(height, round_)  # built at once: the sim has no build delay
            case Fetch(peer, start):
                self.c.net.send(self.index, self.c.host_of(self.replica.vset.keys[peer]),
                                FetchBlocks("sim", start, 16, self.index))
            case Evidence(ev):
                self.c.evidence[self.index].append(ev)
            case Dropped():
                pass  # the sim keeps no metrics
            case _:
                assert_never(effect)
        return None

    def maybe_crash_between(self) -> bool:
        """Crash now with probability `between_crash_p` (a mutant driver's crash point);
        True if the host is down."""
        booted = len(getattr(self.c, "hosts", ())) == len(self.c.keys)
        if booted and self.c.rng.random() < self.c.between_crash_p and self.index not in self.c.faults.byzantine:
            self.c.crash(self.index, 8)
        return not self.up

    def send(self, to: int | None, msg: Message) -> None:
        """`to` is a validator index of the set of the message's height (Status: of ours);
        a broadcast reaches every other host, followers too."""
        self.c.observe(self.index, msg)
        if to is not None:
            mine = not isinstance(msg, Signed) or msg.height == self.replica.height
            vset = self.replica.vset if mine else self.c.set_at(msg.height)
            if not 0 <= to < vset.n:
                return  # a mutant's index of a set that does not certify the height
            to = self.c.host_of(vset.keys[to])
        targets = [to] if to is not None else [i for i in range(len(self.c.hosts)) if i != self.index]
        for t in targets:
            self.c.net.send(self.index, t, msg)

    def map_change(self, items: tuple[bytes, ...] | list[bytes], log_start: int) -> ledgermap.MapChange:
        parent = self.parent()
        root = parent.state if parent else statemap.EMPTY_ROOT
        appends = self.c.appends_of(items, log_start)
        return ledgermap.block_change(maptree.StateMap(self.map_nodes, root), appends)

    def commit(self, block: BlockData, qc: QC) -> None:
        header = decode_header(block.header)
        assert header.height == len(self.disk.chain) + 1
        change = self.map_change(block.payload, header.log_start)
        assert change.root == header.state, "a committed block's state is the one this replica computes"
        self.map_nodes.put(change.batch.nodes)
        self.lists.save(change)
        self.disk.chain.append((block, qc))
        for item in block.payload:
            self.committed_items.add(item)
            self.mempool.pop(item, None)
            self.c.acknowledged.setdefault(item, header.height)

    def parent(self) -> Header | None:
        return decode_header(self.disk.chain[-1][0].header) if self.disk.chain else None

    def log_frontier(self) -> merkle.Frontier:
        f = merkle.Frontier()
        for b, _ in self.disk.chain:
            for item in b.payload:
                f.append(merkle.leaf_hash(item))
        return f

    def make_block(self, height: int, items: list[bytes], salt: int = 0) -> BlockData:
        parent = self.parent()
        assert (parent.height if parent else 0) + 1 == height
        f = self.log_frontier()
        start = f.size
        for item in items:
            f.append(merkle.leaf_hash(item))
        vset = self.c.set_at(height)
        proposer = vset.index_of(self.c.keys[self.index].public.raw)
        header = Header("sim", height, (parent.time if parent else 0) + 1 + salt,
                        parent.block_hash if parent else ZERO_HASH, self.index if proposer is None else proposer,
                        start, f.size, f.root(), vset.valset_hash, self.map_change(items, start).root)
        return BlockData(header.encode(), tuple(items))

    def build(self, height: int, round_: int) -> BlockData:
        items = [i for i in self.mempool if i not in self.committed_items][: self.c.block_items_max]
        return self.make_block(height, items)

    def judge(self, block: BlockData) -> bool:
        try:
            header = decode_header(block.header)
        except InvalidInput:
            return False
        parent = self.parent()
        if header.height != len(self.disk.chain) + 1 or header.prev != (parent.block_hash if parent else ZERO_HASH):
            return False
        vset = self.c.set_at(header.height)
        if header.valset != vset.valset_hash or not 0 <= header.proposer < vset.n:
            return False
        if len(set(block.payload)) != len(block.payload) or any(
                i in self.committed_items or not i.startswith(b"r") for i in block.payload):
            return False
        f = self.log_frontier()
        if header.log_start != f.size:
            return False
        for item in block.payload:
            f.append(merkle.leaf_hash(item))
        if header.log_size != f.size or header.log_root != f.root():
            return False
        return header.state == self.map_change(block.payload, header.log_start).root

    def tick(self) -> None:
        self.run(Tick())

    # -- network input -------------------------------------------------------

    def receive(self, src: int, msg: Any) -> None:
        if not self.up:
            return
        if isinstance(msg, FetchBlocks):
            chain = self.disk.chain[msg.from_height - 1: msg.from_height - 1 + msg.count]
            if chain:
                self.c.net.send(self.index, src, Blocks("sim", tuple((b, qc.encode()) for b, qc in chain), self.index))
            return
        if isinstance(msg, Blocks):
            for block, qc_raw in msg.blocks:
                if not self.judge(block):
                    break
                self.run(BlockFetched(block, decode_qc(qc_raw)))
            return
        if isinstance(msg, bytes):  # a record from a client
            if msg not in self.committed_items:
                self.mempool[msg] = None
                self.run(RecordsChanged(len(self.mempool)))
            return
        self.run(PeerMessage(src, msg))


def honest_driver(host: Host) -> Driver:
    return Driver(host.replica)


class Net:
    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster
        self.queue: list[tuple[int, int, int, int, Any]] = []
        self.seq = 0
        self.filter: Callable[[int, int, Any], bool] | None = None  # scenario hook: False drops

    def blocked(self, src: int, dst: int) -> bool:
        for start, end, side in self.c.faults.partitions:
            if start <= self.c.now < end and ((src in side) != (dst in side)):
                return True
        return False

    def send(self, src: int, dst: int, msg: Any) -> None:
        c, rng = self.c, self.c.rng
        healed = c.now >= c.faults.heal_at
        if self.blocked(src, dst) or (not healed and rng.random() < c.faults.drop):
            return
        if self.filter is not None and not self.filter(src, dst, msg):
            return
        copies = 2 if not healed and rng.random() < c.faults.dup else 1
        for _ in range(copies):
            self.seq += 1
            at = c.now + 1 + rng.randrange(c.faults.latency_max)
            heapq.heappush(self.queue, (at, self.seq, src, dst, msg))

    def deliver_due(self) -> None:
        while self.queue and self.queue[0][0] <= self.c.now:
            _, _, src, dst, msg = heapq.heappop(self.queue)
            self.c.hosts[dst].receive(src, msg)


class Cluster:
    def __init__(self, seed: int, n: int, faults: Faults, records: int = 40,
                 mutation: str | None = None, replica_class: type = Replica,
                 between_crash_p: float = 0.0, block_items_max: int = BLOCK_ITEMS_MAX,
                 spares: int = 0, schedule: dict[int, tuple[int, ...]] | None = None) -> None:
        """`spares` hosts beyond the n genesis validators follow the chain; `schedule`
        maps a height to the hosts whose keys form the validator set from that height on
        (the ledger's approved set changes, docs/governance.md section 6)."""
        from .byzantine import make_byzantine

        self.seed, self.n, self.faults, self.mutation = seed, n, faults, mutation
        # Every host runs the production driver unless a driver mutant is asked for.
        self.make_driver: Callable[[Host], Driver] = DRIVER_MUTANTS.get(mutation or "", honest_driver)
        # Every host derives a block's list appends this way unless a map mutant is asked for.
        self.appends_of = MAP_MUTANTS.get(mutation or "", item_appends)
        self.rng = random.Random(seed)
        self.keys, self.genesis = keys_and_genesis(n, spares)
        self.schedule = dict(sorted((schedule or {}).items()))
        self.sets = {h: ValidatorSet(tuple(self.keys[i].public for i in hosts)) for h, hosts in self.schedule.items()}
        self.hosts_by_key = {k.public.raw: i for i, k in enumerate(self.keys)}
        self.blocks_class: Callable[[Cluster], SimBlocks] = LateSetChange if mutation == "late_set_change" else SimBlocks
        self.replica_class = replica_class
        self.block_items_max = block_items_max
        self.between_crash_p = between_crash_p
        self.now = 0
        self.net = Net(self)
        self.acknowledged: dict[bytes, int] = {}
        self.signed_values: dict[tuple[int, str, int, int], bytes] = {}
        self.k4_violations: list[str] = []
        self.evidence: dict[int, list[Any]] = {i: [] for i in range(n + spares)}
        self.hosts = [make_byzantine(faults.byzantine[i], self, i) if i in faults.byzantine
                      else Host(self, i) for i in range(n + spares)]
        self.records = [b"r" + i.to_bytes(8, "big") for i in range(records)]
        self.total_records = records
        self.restart_at: dict[int, int] = {}
        self.outstanding: dict[bytes, int] = {}

    @property
    def honest(self) -> list[int]:
        return [i for i in range(len(self.keys)) if i not in self.faults.byzantine]

    def set_at(self, height: int) -> ValidatorSet:
        """The validator set that certifies `height`."""
        return self.sets[self.set_since(height)] if self.set_since(height) else self.genesis.validator_set

    def set_since(self, height: int) -> int:
        """The first height of the set that certifies `height` (0: the genesis set)."""
        return max((h for h in self.schedule if h <= height), default=0)

    def host_of(self, key: crypto.PublicKey) -> int:
        return self.hosts_by_key[key.raw]

    def observe(self, sender: int, msg: Any) -> None:
        """K4 bookkeeping: every value an honest replica ever signed, per slot."""
        if sender in self.faults.byzantine or not isinstance(msg, (Proposal, Prepare, Commit, RoundChange)):
            return
        slot = (sender, msg.kind, msg.height, msg.round)
        value = codec.encode(msg.value)
        prior = self.signed_values.setdefault(slot, value)
        if prior != value:
            self.k4_violations.append(f"validator {sender} signed two values for {slot[1:]}")

    def crash(self, node: int, down: int) -> None:
        host = self.hosts[node]
        if host.up:
            host.up = False
            self.restart_at[node] = self.now + down

    def submit(self, item: bytes) -> None:
        target = self.rng.choice(self.honest)
        for i in range(len(self.hosts)):  # gossip reaches every host's mempool
            self.net.send(target, i, item) if i != target else self.hosts[i].receive(i, item)

    def step(self) -> None:
        self.now += 1
        for at, node, down in self.faults.crashes:
            if at == self.now and node not in self.faults.byzantine:
                self.crash(node, down)
        for node, at in list(self.restart_at.items()):
            if at <= self.now:
                del self.restart_at[node]
                self.hosts[node].up = True
                self.hosts[node].boot()
        if self.records and self.rng.random() < 0.5:
            item = self.records.pop(0)
            self.outstanding[item] = self.now
            self.submit(item)
        if self.now % CLIENT_RETRY_TICKS == 0:  # clients re-submit what was never acknowledged
            for item in [i for i in self.outstanding if i in self.acknowledged]:
                del self.outstanding[item]
            for item in self.outstanding:
                self.submit(item)
        self.net.deliver_due()
        for host in self.hosts:
            if host.up:
                host.tick()

    def height(self, i: int) -> int:
        return len(self.hosts[i].disk.chain)

    def run_until(self, predicate: Callable[[], bool], max_ticks: int) -> bool:
        while self.now < max_ticks:
            self.step()
            if predicate():
                return True
        return False

    def run(self, max_ticks: int = 4000) -> dict[str, list[str]]:
        """Run until every honest replica has committed every record (or time runs out)."""
        total = self.total_records
        while self.now < max_ticks:
            self.step()
            if self.now > self.faults.heal_at and not self.records and all(
                    self.hosts[i].up and len(self.hosts[i].committed_items) >= total for i in self.honest):
                break
        return self.check()

    # -- checkers --------------------------------------------------------------

    def check(self) -> dict[str, list[str]]:
        honest = [self.hosts[i] for i in self.honest]
        chains = [[decode_header(b.header).block_hash for b, _ in h.disk.chain] for h in honest]
        out: dict[str, list[str]] = {f"K{i}": [] for i in range(1, 7)}
        longest = max(chains, key=len)
        for i, chain in zip(self.honest, chains):
            if chain != longest[: len(chain)]:
                out["K1"].append(f"replica {i}'s chain forks from the longest")
        for i, h in zip(self.honest, honest):
            items = [x for b, _ in h.disk.chain for x in b.payload]
            if len(items) != len(set(items)):
                out["K2"].append(f"replica {i} committed a record twice")
            for item, height in self.acknowledged.items():
                if height <= len(h.disk.chain) and item not in h.committed_items:
                    out["K2"].append(f"replica {i} lacks acknowledged record {item.hex()}")
            prev = ZERO_HASH
            for block, qc in h.disk.chain:
                header = decode_header(block.header)
                try:
                    check_qc(qc, header, self.genesis, cached_verify, self.set_at(header.height))
                except InvalidInput as exc:
                    out["K3"].append(f"replica {i} height {header.height}: {exc.message}")
                if header.prev != prev:
                    out["K3"].append(f"replica {i} height {header.height} does not link to its parent")
                prev = header.block_hash
        out["K4"] = list(self.k4_violations)
        for i, h in zip(self.honest, honest):
            out["K6"].extend(self.check_map(i, h))
        for i, h in zip(self.honest, honest):
            if len(h.committed_items) < self.total_records:
                out["K5"].append(f"replica {i} committed {len(h.committed_items)} of "
                                 f"{self.total_records} records by tick {self.now}")
        return out


    def check_map(self, i: int, h: Host) -> list[str]:
        """K6: at every committed height the header's `state` is the root of the naive
        reference (statemap.root_of) over every subject's full list, rebuilt from the
        chain, and this replica's stored map proves each entry against it."""
        listed: dict[bytes, list[int]] = {}
        for block, _ in h.disk.chain:
            header = decode_header(block.header)
            for _, name, leaf in item_appends(block.payload, header.log_start):
                listed.setdefault(statemap.path("subject", name), []).append(leaf)
            expected = statemap.root_of({p: statemap.list_value(leaves) for p, leaves in listed.items()})
            if header.state != expected:
                return [f"replica {i} height {header.height}: header state is not the map of the chain"]
        if h.disk.chain:
            stored = maptree.StateMap(h.map_nodes, decode_header(h.disk.chain[-1][0].header).state)
            for p, leaves in listed.items():
                value = statemap.list_value(leaves)
                if not statemap.verify(stored.root, p, value, stored.prove(p)):
                    return [f"replica {i}: its stored map does not prove a subject's list"]
        return []


def signed_copy(key: crypto.PrivateKey, msg: Any) -> Any:
    return replace(msg, sig=key.sign(signing_bytes(msg)))


__all__ = ["Cluster", "Faults", "NO_ROUND", "signed_copy", "keys_and_genesis", "cached_verify"]
