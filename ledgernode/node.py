"""The node runtime: wires consensus, storage, the peer network and the HTTP API.

Theory of operation. One asyncio task (`_consensus_loop`) owns the `Replica`:
peer messages, ticks, "records admitted" and "build now" arrive as typed events
in one bounded inbox and are handled one at a time. The replica's inputs go
through the consensus `Driver` (consensus/driver.py), which applies every
`Ready` in the order its contract demands as a sequence of effects: commit
blocks (one synced LevelDB batch each), persist the consensus state (synced),
send, then validate / build / fetch. The simulation (tests/sim) runs the same
driver. Clients waiting for a record are answered only after its block is on
disk. Synced writes run on one disk thread and the consensus loop awaits each,
so the order holds while the event loop keeps serving clients; on shutdown the
disk thread finishes its write before the store closes.

Records are verified once per node, on admission (API or gossip); blocks
re-verify only records this node has not admitted itself.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
import signal
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, TypeAlias, TypeVar, assert_never

from . import crypto, genesis as genesis_mod, tls as tls_mod
from .genesis import Genesis
from .activity import Activity
from .catchup import CatchUp
from .admission import Admission
from .api import make_app, request_histogram
from .api.server import ApiServer, serve_api
from .blocks import (
    ZERO_HASH, build_block, check_qc, decode_header, decode_qc,
)
from .config import NodeConfig
from .consensus import (
    Answer, BlockData, Blocks, ChainBlocks, Config, Driver, Effect, Event, FetchBlocks, Message, PersistedState,
    Replica, Status, next_effect,
)
from .consensus.driver import (
    BlockBuilt, BlockFetched, Build, Dropped, Evidence, Fetch, MempoolSize, NothingToBuild, PeerMessage, Persist,
    RecordsChanged, Send, StoreCommit, Tick, Validate,
)
from .consensus.turns import Turns
from .maptree import COMPILED as MAP_DESCENT_COMPILED, StateMap
from .storage.damage import mark_damaged, open_ledger
from .storage.signing import VOTE_MARGIN_HEIGHTS, SigningFile, SigningState, resume
from .errors import InvalidInput, NodeFailed, StoreCorrupt, StoreUnwritable
from .guard import PeerGuard, message_bytes
from .mempool import Mempool
from .metrics import CommitHistograms, metrics_text, readiness_document, status_document
from .overview import overview_fields
from .net import Faults, PeerNetwork
from .net.book import Book
from . import peers
from .peers import peer_links
from .reads import Reads
from .intake import Intake
from .throttle import throttle_of
from .outcomes import Heights, Outcomes
from .witness import Witness
from .judge import Judge
from .families.gov import VALIDATORS
from .members import Members
from .roster import Roster, is_consensus, message_height
from .records import Envelope
from .verification import Verification
from .service import Location, Outcome, Rejection, Submitted, locate_in
from .storage import Store
from .times import now_ms

log = logging.getLogger("ledgernode.node")
_T = TypeVar("_T")

CONSENSUS_KEY = "consensus"
STOP_MAX_S = 20.0  # a shutdown that takes longer is cut short (os._exit), naming what it waited for
EXIT_STOP_TIMEOUT = 3
SCRUB_EVERY_MS = 100  # the background scrub reads one committed block this often
REGOSSIP_MAX_RECORDS = 500  # oldest records sent again when nothing committed for a round timeout
RESEND_MS = 500
FETCH_TIMEOUT_MS = 3_000
EXPIRE_EVERY_TICKS = 100
# Cyclic GC: every record makes a handful of short-lived containers, and with
# CPython's default first threshold (700) records waiting a second or two in
# the mempool were promoted and rescanned by full collections (about a tenth
# of the node's Python time under load). The hot path forms no cycles (the
# rejections it keeps in lists are stored bare, see `verification.kept`), so collect the
# young generation 50x less often.
GC_GEN0_OBJECTS = 50_000

@dataclass(frozen=True)
class FromPeer:
    """A peer's message; its `size` stays in the guard's inbox bytes until it is handled."""

    peer: int
    msg: Message
    size: int


@dataclass(frozen=True)
class RecordsAdmitted:
    """Records joined the mempool: the replica hears the mempool's size when this is handled."""


@dataclass(frozen=True)
class BuildDue:
    """The wait before building our proposal for (height, round) is over."""

    height: int
    round: int


# What the consensus loop takes from its inbox: ticks go to the driver as they are.
InboxEvent: TypeAlias = Tick | RecordsAdmitted | BuildDue | FromPeer


class _LedgerView:
    """The store as the state rules see it, with one shortcut: a record waiting in
    our mempool is not committed (a commit removes its records from the mempool
    right after the store write, and admission re-checks the store), so most
    duplicate checks need no LevelDB read."""

    def __init__(self, store: Store, mempool: Mempool) -> None:
        self.store, self.mempool = store, mempool

    def is_committed(self, record_id: bytes) -> bool:
        return record_id not in self.mempool and self.store.is_committed(record_id)

    def load_fact(self, kind: str, key: str) -> dict[str, Any] | None:
        return self.store.load_fact(kind, key)

    def locate(self, record_id: bytes) -> tuple[int, int] | None:
        return self.store.locate(record_id)

    def map_at(self, root: bytes) -> StateMap:
        return self.store.map_at(root)

    def members(self, genesis: Genesis) -> Members:
        return self.store.members(genesis)


def _check_index(cfg: NodeConfig, at: int | None) -> None:
    """A config that names the genesis index (the format of before) must name the key's, `at`."""
    if cfg.index is not None and cfg.index != at:
        whose = "no genesis validator's key" if at is None else f"validator {at}'s key in the genesis"
        raise ValueError(f"index: the config names validator {cfg.index}, but key_file {cfg.key_file} is {whose} "
                         "(leave index out: the key names the node)")


class Node:
    def __init__(self, cfg: NodeConfig) -> None:
        self.cfg = cfg
        self.limits = cfg.limits
        self.genesis = genesis_mod.parse(cfg.genesis.read_bytes())
        self.key = crypto.load_private_key(cfg.key_file)
        genesis_index = self.genesis.validator_set.index_of(self.key.public.raw)  # None: a key that joined later
        _check_index(cfg, genesis_index)
        self.book = Book(v.pubkey.raw for v in self.genesis.validators)
        peer_addresses = peer_links(self.book, self.key.public.raw, cfg.peers)  # before the store is touched
        self.tls = tls_mod.load(cfg.tls) if cfg.tls is not None else None  # a bad file stops the start here
        if cfg.reads == "authenticated" and self.tls is None:
            log.warning("reads are authenticated but the API has no [tls]: signed reads and their answers cross "
                        "the network in clear (docs/security.md section 8)")
        self.store, healed = open_ledger(cfg.data_dir, self.genesis, can_resync=bool(cfg.peers),
                                         progress=lambda line: log.warning("%s", line))
        if healed is not None:
            log.warning("%s", healed)
        self.mempool = Mempool(self.limits.mempool_max_records)
        self.view = _LedgerView(self.store, self.mempool)
        self.admission = Admission(self.genesis, self.view, self.mempool)
        self.outcomes = Outcomes(self.limits.rejected_kept_ms, self.limits.rejected_kept_max)
        self.heights = Heights()  # the event stream's wake-up at each commit
        self.signing = SigningFile(cfg.data_dir, self.genesis.chain_id, self.key.public.raw, genesis_index)
        resumed = resume(self.signing, self.store, self.store.load_meta(CONSENSUS_KEY), self.genesis.validator_set)
        for note in resumed.notes:
            log.warning("%s", note)
        self.signing_lost = resumed.lost
        self.high_water = resumed.high_water  # until we sign again: fetched QCs with our key raise the floor
        persisted = PersistedState.decode(resumed.state) if resumed.state is not None else None
        tick = self.limits.tick_ms
        threads = self.limits.verify_threads or os.cpu_count() or 1
        self.verification = Verification(lambda: self.store.members(self.genesis), self.mempool, threads,
                                         self.count)
        self.judge = Judge(self.genesis, self.store, self.view, self.verification, self.reject)
        members = self.store.members(self.genesis)
        self.roster = Roster(self.book, members.validator_set, members.since)
        self.replica = Replica(
            Config(self.genesis, genesis_index,
                   round_timeout_ticks=max(1, self.limits.round_timeout_ms // tick),
                   resend_ticks=max(1, RESEND_MS // tick),
                   fetch_timeout_ticks=max(1, FETCH_TIMEOUT_MS // tick)),
            self.key, self.store.height, self.store.head(), persisted, vote_from=resumed.vote_from,
            recent_proposers=tuple((h, self.store.load_header(h).proposer)
                                   for h in Turns.window(members.n, self.store.height) if h >= members.since),
            blocks=ChainBlocks(self.genesis, next_set=self.judge.next_set), validators=members.validator_set,
        )
        self.driver = Driver(self.replica)
        self.disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="disk")  # one writer, in order
        self.reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-read")  # catch-up answers
        self.reads = Reads(self.count)  # the API's bundles and answers
        self.witness = Witness(self.store, self.genesis, self._on_disk, self.count)
        self.counters: dict[str, int] = {}
        self.rejected: dict[str, int] = {}  # inputs dropped by the node (peers, blocks, admission)
        self.api_rejected: Counter[str] = Counter()  # HTTP error answers, by code
        self.api_seconds = request_histogram()  # API answer times, by route (api/timing.py)
        self.histograms = CommitHistograms()
        self.records_event_pending = False
        self.net = PeerNetwork(self.genesis, self.key, peer_addresses, self._on_peer_message, self._on_peer_records,
                               self.limits.peer_queue_max_messages, self.limits.peer_queue_max_bytes,
                               book=self.book, admits=self.roster.admits, tls=self.tls)
        self.inbox: asyncio.Queue[InboxEvent] | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.api_server: ApiServer | None = None
        self.ticks = 0
        self.stopping = ""  # the part `stop` waits for, named if it never ends
        self.activity = Activity(log)
        self.regossip_ticks = max(1, self.limits.round_timeout_ms // tick)
        self.committed_at_regossip = 0
        self.guard = PeerGuard(log)
        self.catchup = CatchUp(self.store, self.genesis.chain_id, self.net.index, self.net.send, self.reader,
                               self.count, on_damage=self._damaged)
        self.peer_height = 0  # highest committed height a peer told us of (catch-up target)
        self.throttle = throttle_of(self.limits)  # per-client buckets: the API's and the intake's
        self.intake = Intake(self.genesis, self.store, self.mempool, self.admission, self.verification,
                             self.outcomes, self.reject, lambda: self.peer_height if self.behind() else None,
                             self._admitted, self.throttle)

    # -- counters ----------------------------------------------------------------

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def reject(self, code: str) -> None:
        total = self.rejected[code] = self.rejected.get(code, 0) + 1
        self.activity.rejected(code, total)

    # -- events ------------------------------------------------------------------

    def _post(self, event: InboxEvent) -> bool:
        assert self.inbox is not None
        try:
            self.inbox.put_nowait(event)
        except asyncio.QueueFull:
            self.count("inbox_full_dropped")  # consensus re-sends what matters
            return False
        return True

    def _on_peer_message(self, peer: int, msg: Message) -> None:
        if isinstance(msg, Status):
            # An unsigned hint, named here by the index its link has at our height: a peer
            # past a change of the validator set names itself by its index in the new set,
            # which a node that has not committed the change yet cannot know; the hint is
            # what makes it fetch that change.
            mine = self.roster.sender(peer, self.replica.height)
            if mine is None:
                self.count("status_of_no_validator_dropped")
                return
            msg = replace(msg, sender=mine)
        elif not is_consensus(msg):
            # FetchBlocks and Blocks are unsigned and answer the link they came on: their
            # `sender` is the sender's own name for itself, and we name it by its link
            msg = replace(msg, sender=peer)
        elif msg.sender != self.roster.sender(peer, message_height(msg)):
            # nobody relays another validator's messages (each re-sends its own), and a
            # relayed copy with other unsigned parts could claim the genuine one's slot
            self.count("relayed_dropped")
            return
        size = message_bytes(msg)
        if self.guard.admit(peer, size) and not self._post(FromPeer(peer, msg, size)):
            self.guard.done(peer, size)

    async def _on_peer_records(self, peer: int, raws: list[bytes]) -> None:
        if self.guard.penalised(peer):
            self.count("penalised_records_dropped", len(raws))
            return
        await self.intake.admit(raws, gossip=False)

    def _admitted(self, raws: list[bytes], gossip: bool) -> None:
        if gossip:
            self.net.gossip(raws)
        self._notify_records()

    def _notify_records(self) -> None:
        if not self.records_event_pending:
            self.records_event_pending = True
            if not self._post(RecordsAdmitted()):
                self.records_event_pending = False  # dropped: let the next admission try again

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.limits.tick_ms / 1000)
            self._post(Tick())

    async def _consensus_loop(self) -> None:
        assert self.inbox is not None
        while True:
            event = await self.inbox.get()
            try:
                if isinstance(event, FromPeer):
                    await self.judge.preverify(event.msg, self.replica)
                await self._handle(event)
            except InvalidInput as exc:
                self.reject(exc.code)
            finally:
                if isinstance(event, FromPeer):
                    self.guard.done(event.peer, event.size)

    async def _handle(self, event: InboxEvent) -> None:
        match event:
            case Tick():
                self._on_tick()
                await self._run(event, "round timer expired, no commit in time")
            case RecordsAdmitted():
                self.records_event_pending = False
                await self._run(RecordsChanged(len(self.mempool)))
            case BuildDue(height, round_):
                await self._build(height, round_)
            case FromPeer(peer, FetchBlocks() as fetch):
                self.catchup.serve(peer, fetch)
            case FromPeer(peer, Blocks() as blocks):
                await self._on_blocks(peer, blocks)
            case FromPeer(peer, msg):
                if isinstance(msg, Status):
                    self.peer_height = max(self.peer_height, msg.height)
                await self._run(PeerMessage(peer, msg), f"{msg.kind} from validator {peer}")
            case _:
                assert_never(event)

    def _on_tick(self) -> None:
        """The node's own work once per tick, before the replica's timer runs."""
        self.ticks += 1
        self.activity.flush()
        if self.ticks % EXPIRE_EVERY_TICKS == 0:
            now = now_ms()
            self.intake.rejected(self.admission.recheck(now), self.replica.height)
            self.outcomes.expire(now)
        if self.ticks % self.regossip_ticks == 0:
            self._regossip()

    # -- applying the replica's outputs, in the contract's order (consensus/driver.py) --

    async def _run(self, event: Event, cause: str = "", fetched: bool = False) -> None:
        """Hand `event` to the replica and carry out every effect the driver yields,
        each awaited before the next; `cause` names the input (for the round-change
        log line), `fetched` that its commits came from catch-up."""
        effects = self.driver.handle(event)
        # Read once the replica took the input, as node.py always has: the line reports the
        # round changes made while applying (the follow-up Readys), not one the input made.
        height, round_ = self.replica.height, self.replica.round
        answer: Answer = None
        while (effect := next_effect(effects, answer)) is not None:
            answer = await self._effect(effect, fetched)
        if self.replica.height == height and self.replica.round != round_:
            self.count("round_changes")  # the console's overview shows it (ledgernode_events_total)
            self.activity.round_changed(height, round_, self.replica.round, cause or "peers moved on")

    async def _effect(self, effect: Effect, fetched: bool) -> Answer:
        match effect:
            case StoreCommit(block, qc):
                await self._commit(block, qc, fetched)
            case MempoolSize():
                return len(self.mempool)
            case Persist(state):
                await self._on_disk(self._save_signing, state.encode(), bool(state.signed))
            case Send(to, msg):
                link = None if to is None else self.roster.link(to, message_height(msg))
                if to is None or link is not None:
                    self.net.send(link, msg)
            case Validate(_, _, block):
                return self.judge.validate(block)
            case Build(height, round_):
                self._schedule_build(height, round_)  # answered later: BuildDue, then BlockBuilt
            case Fetch(peer, from_height):
                link = self.roster.link(peer, self.replica.height)
                if link is not None:
                    self.catchup.ask(link, from_height)
            case Evidence(ev):
                await self.witness.keep(ev)
            case Dropped(code):
                self.reject(code)
            case _:
                assert_never(effect)
        return None

    def _signed_and_forgot(self, height: int) -> None:
        """A fetched QC holds our signature but we have no signing state for it: sign
        nothing near it again (docs/storage.md, signing state)."""
        floor = height + 1 + VOTE_MARGIN_HEIGHTS
        if floor > self.replica.vote_from:  # first line at WARNING, the rest (one per block) at DEBUG
            log.log(logging.DEBUG if self.replica.vote_from else logging.WARNING,
                    "this validator's key signed block %d and its signing state is gone: "
                    "it votes again from height %d", height, floor)
        self.replica.raise_vote_floor(floor)

    def _save_signing(self, state: bytes, signed: bool) -> None:
        """On the disk thread: what we signed, synced, before it is sent (docs/storage.md)."""
        high_water = max(self.store.height, self.high_water)
        self.signing.save(SigningState(state, high_water))
        self.high_water = high_water
        if signed:
            self.signing_lost = False

    def equivocations(self, after: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        return self.witness.page(after, limit)

    async def _on_disk(self, fn: Callable[..., None], *args: Any) -> None:
        """A synced write on the disk thread: the consensus loop waits for it (persist
        before send), while the event loop keeps admitting records meanwhile."""
        await asyncio.get_running_loop().run_in_executor(self.disk, fn, *args)

    async def _commit(self, block: BlockData, qc: Any, fetched: bool = False) -> None:
        header = decode_header(block.header)
        checked = self.judge.certified(block)
        await self._on_disk(self.store.commit, checked, qc)
        self.heights.committed()
        if (VALIDATORS, "") in checked.facts:
            members = self.store.members(self.genesis)
            self.roster.changed(members.since, members.validator_set)
            log.warning("the validator set changes at height %d: %d validators, this node %s", members.since,
                        members.n, "follows" if self.replica.me is None else f"is validator {self.replica.me}")
            for line in self.net.prune():
                log.info("%s", line)
        self.judge.committed()
        self.verification.verified.clear()
        ids = [env.record_id for env in checked.block.envelopes]
        self.histograms.committed(len(ids), len(block.header) + sum(len(raw) for raw in block.payload),
                                  self.mempool.waited_s(ids, time.monotonic()))  # before they leave the pool
        failed = self.admission.committed(checked, self._block_cap(), max(now_ms(), header.time + 1))
        self.count("blocks_committed")
        self.count("records_committed", len(ids))
        self.outcomes.committed(Location(rid, header.height, header.log_start + offset, header.block_hash)
                                for offset, rid in enumerate(ids))
        self.intake.rejected(failed, header.height)
        if fetched:
            self.activity.fetched(header.height, len(ids), self.peer_height)
        else:
            self.activity.live(header.height)
            self.activity.committed(header.height, len(ids), qc.round)

    def _regossip(self) -> None:
        """Nothing committed for a round timeout while records wait here: send the oldest
        again. Gossip is sent once, at admission; if it was lost or refused (a peer that
        was behind), f or fewer nodes hold the records and no round change ever gathers
        for them (docs/consensus.md): the primary must hear of them."""
        committed = self.counters.get("blocks_committed", 0)
        if self.mempool and committed == self.committed_at_regossip:
            raws = [env.raw for env in self.mempool.oldest(REGOSSIP_MAX_RECORDS)]
            self.net.gossip(raws)
            self.count("records_regossiped", len(raws))
        self.committed_at_regossip = committed

    def behind(self) -> bool:
        """Does this node know it has not applied every committed block yet?"""
        return self.store.height < self.peer_height or bool(self.catchup.asked)

    def _block_cap(self) -> int:
        return min(self.limits.block_max_records, self.genesis.block_max_records)

    def _schedule_build(self, height: int, round_: int) -> None:
        cap = self._block_cap()
        delay = 0.0 if len(self.mempool) >= cap else self.limits.block_interval_ms / 1000
        asyncio.get_running_loop().call_later(delay, self._post, BuildDue(height, round_))

    async def _build(self, height: int, round_: int) -> None:
        me = self.replica.me
        if (height, round_) != (self.replica.height, self.replica.round) or me is None:
            return
        # the proposer is named by its index in the set of this height, not its link's
        checked, refused = build_block(
            self.mempool.oldest(self._block_cap()), self.store.head(), self.view, self.store.frontier,
            self.genesis, now_ms(), me, sigs_checked=True)
        header = checked.block.header
        self.intake.rejected(self.admission.refused_by_builder(refused, header.time), height)
        if not checked.block.envelopes and round_ == 0:
            # Nothing fit: an empty block would prove nothing. Tell the replica, then
            # report what is left (records admitted meanwhile ask for a new build).
            await self._run(NothingToBuild(height, round_))
            await self._run(RecordsChanged(len(self.mempool)))
            return
        self.judge.built(checked)
        data = BlockData(header.raw, tuple(env.raw for env in checked.block.envelopes))
        await self._run(BlockBuilt(height, round_, data))

    # -- catch-up ----------------------------------------------------------------

    async def _on_blocks(self, peer: int, msg: Blocks) -> None:
        """Blocks from `peer`: each checked by header, `prev` link and commit certificate
        before any of its records (docs/consensus.md), then validated and committed."""
        for block, qc_raw in self.catchup.accept(peer, msg, self.store.height + 1, self.peer_height):
            header = decode_header(block.header)
            if header.height != self.store.height + 1:
                continue
            head = self.store.head()
            try:
                qc = decode_qc(qc_raw)
                if header.prev != (ZERO_HASH if head is None else head.block_hash):
                    raise InvalidInput("bad_prev", f"block {header.height} does not extend our head")
                vset = self.store.members(self.genesis).validator_set  # the set of the head's next height
                check_qc(qc, header, self.genesis, validators=vset)
                mine = vset.index_of(self.key.public.raw)
                if self.signing_lost and any(i == mine for i, _ in qc.signatures):
                    self._signed_and_forgot(header.height)
            except InvalidInput as exc:
                self.guard.penalise(peer, f"a block whose header or commit certificate fails ({exc.code})")
                raise
            if len(block.payload) > self.genesis.block_max_records:
                raise InvalidInput("too_large", f"block {header.height} holds more records than a block may")
            if not self.judge.validate(block, certified=True):
                self.reject("fetched_block_invalid")
                return
            await self._run(BlockFetched(block, qc), fetched=True)
            if self.store.height < header.height:
                return

    # -- the NodeService contract (used by the HTTP API) ---------------------------

    async def submit(self, raws: list[bytes]) -> list[Submitted | Exception]:
        return await self.intake.admit(raws, gossip=True)

    async def wait_committed(self, record_ids: list[bytes], timeout_s: float) -> list[Outcome | None]:
        known: list[Outcome | None] = []
        for rid in record_ids:
            where: Outcome | None = self.locate(rid)
            if where is None and rid not in self.mempool:
                where = self.rejection(rid)
            known.append(where)
        return await self.outcomes.wait(record_ids, known, timeout_s)

    async def wait_height(self, height: int, timeout_s: float) -> None:
        if self.store.height <= height:
            await self.heights.wait(timeout_s)

    def locate(self, record_id: bytes) -> Location | None:
        return locate_in(self.store, record_id)

    def pending(self, record_id: bytes) -> Envelope | None:
        return self.mempool.get(record_id)

    def rejection(self, record_id: bytes) -> Rejection | None:
        return self.outcomes.rejection(record_id, now_ms())

    def reload_peers(self) -> None:
        """SIGHUP: dial the peer addresses the config file names now (ledgernode/peers.py)."""
        self.cfg = peers.reload(self.cfg, self.net, self.count)

    async def read(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await self.reads.run(fn, *args)

    def status(self) -> dict[str, Any]:
        return {**status_document(self), **overview_fields(self)}

    def readiness(self) -> dict[str, Any]:
        return readiness_document(self)

    def metrics(self) -> str:
        return metrics_text(self)

    def set_faults(self, spec: dict[str, Any]) -> None:
        self.net.faults = Faults.from_spec(spec)

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        self.inbox = asyncio.Queue(maxsize=self.limits.inbox_max_events)
        self.fatal: asyncio.Future[NodeFailed] = asyncio.get_running_loop().create_future()
        await self.net.serve(self.cfg.peer_listen)
        api_app = make_app(self, self.limits, self.cfg.debug_endpoints, rejected=self.api_rejected,
                           request_seconds=self.api_seconds, reads=self.cfg.reads, throttle=self.throttle)
        self.api_server = await serve_api(api_app, self.cfg.api_listen, self.limits,
                                          self.tls.api_context() if self.tls else None)
        await self.net.start()
        loop = asyncio.get_running_loop()
        if hasattr(self.store.kv, "on_corrupt"):  # LevelDB: damage found by any reader stops the node
            self.store.kv.on_corrupt = lambda exc: loop.call_soon_threadsafe(self._damaged, exc)
        self.tasks = [asyncio.create_task(self._consensus_loop()), asyncio.create_task(self._ticker()),
                      asyncio.create_task(self._scrub())]
        self.tasks[0].add_done_callback(self._on_consensus_exit)
        self._notify_records()
        self.activity.started(self.key.public.key_id, self.replica.me, self.genesis.chain_id, self.cfg.api_listen,
                              self.cfg.peer_listen, self.cfg.peers, self.store.height, self.store.log_size)
        if not MAP_DESCENT_COMPILED:
            log.warning("the state map's descent is not compiled here (setup.py needs a C compiler and OpenSSL's "
                        "headers): the map is kept by the Python descent, which takes more CPU per record")

    def _on_consensus_exit(self, task: asyncio.Task[None]) -> None:
        """The consensus loop only ends by cancellation; anything else stops the node."""
        if task.cancelled() or self.fatal.done():
            return
        exc = task.exception()
        if isinstance(exc, StoreCorrupt):
            self._damaged(exc)
            return
        if isinstance(exc, StoreUnwritable):  # a full disk under the store or the signing file
            message = f"{exc}; the node stops: make room and start it again, it catches up from its peers"
            log.critical("%s", message)
            self.fatal.set_result(NodeFailed(message))
            return
        log.critical("consensus loop failed, stopping the node: %r", exc)
        self.fatal.set_result(NodeFailed(f"consensus loop failed: {exc!r}"))

    async def _scrub(self) -> None:
        """Read committed blocks back with their checksums verified, one per SCRUB_EVERY_MS,
        round and round: damage is found before a peer or an auditor needs the block."""
        loop, height = asyncio.get_running_loop(), 0
        while True:
            await asyncio.sleep(SCRUB_EVERY_MS / 1000)
            if self.store.height == 0:
                continue
            height = height % self.store.height + 1
            try:
                await loop.run_in_executor(self.reader, self.store.scrub_block, height)
            except StoreCorrupt as exc:
                self._damaged(exc)
                return
            self.count("blocks_scrubbed")

    def _damaged(self, exc: StoreCorrupt) -> None:
        """A read found the store damaged: stop, and have the next start rebuild it (docs/storage.md,
        "A damaged store heals block by block") instead of crash-looping."""
        if self.fatal.done():
            return
        mark_damaged(self.cfg.data_dir, str(exc))
        message = (f"the ledger store is damaged ({exc}): the node stops; start it again and it rebuilds "
                   "the store from its whole blocks and fetches the rest from its peers, keeping its signing state")
        log.critical("%s", message)
        self.fatal.set_result(NodeFailed(message))

    async def stop(self) -> None:
        self.outcomes.close()  # ?wait requests answer 503 now, not at their timeout
        for task in self.tasks:
            task.cancel()
        self.stopping = "the consensus tasks"
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.stopping = "catch-up"
        await self.catchup.stop()
        self.stopping = "the peer links"
        await self.net.stop()
        self.stopping = "the API server"
        if self.api_server is not None:
            await self.api_server.stop()
        self.stopping = "the worker threads"
        self.verification.shutdown()
        self.reader.shutdown(wait=True)
        self.reads.shutdown()
        self.disk.shutdown(wait=True)  # a write in flight completes before the store closes
        self.store.close()
        log.info("node %s stopped at height %d", self.key.public.key_id, self.store.height)


def tune_gc() -> None:
    """The node's cyclic-GC policy (GC_GEN0_OBJECTS), applied once start-up is done;
    scripts/bench_store.py applies it too, to measure the store as a node runs it."""
    gc.collect()
    gc.freeze()  # what start-up built lives as long as the node: never rescan it
    gc.set_threshold(GC_GEN0_OBJECTS, *gc.get_threshold()[1:])


async def serve(cfg: NodeConfig) -> None:
    """Run a node until SIGTERM or SIGINT, then shut down cleanly."""
    loop = asyncio.get_running_loop()
    reload_asked: list[None] = []  # a SIGHUP while the node starts: its peers are reloaded once it runs
    loop.add_signal_handler(signal.SIGHUP, reload_asked.append, None)
    node = Node(cfg)
    tune_gc()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await node.start()
        loop.add_signal_handler(signal.SIGHUP, node.reload_peers)
        if reload_asked:
            node.reload_peers()
        stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        await asyncio.wait([stopper, node.fatal], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
    finally:
        loop.add_signal_handler(signal.SIGHUP, lambda: None)  # stopping: nothing to reload any more
        try:
            await asyncio.wait_for(node.stop(), STOP_MAX_S)
        except asyncio.TimeoutError:
            # Everything acknowledged is synced already: exiting now loses nothing, where
            # hanging would keep a half-stopped node (and its port) alive.
            log.critical("the node did not stop within %g s (waiting for %s): exiting now", STOP_MAX_S,
                         node.stopping)
            logging.shutdown()
            os._exit(EXIT_STOP_TIMEOUT)
    if node.fatal.done():
        raise node.fatal.result()
