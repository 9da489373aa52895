"""PBFT-lite replica: a deterministic state machine, one height at a time.

Theory of operation
-------------------
A `Replica` decides one height h at a time. Rounds r of a height are PBFT
views; the primary of (h, r) is validator (h + r) % n. Quorum Q = n - f.
Indexes, n, f and Q are those of the validator set of h (`vset`): the block
committed at h - 1 names the set of h through `BlockView.validators_after`,
so every replica counts a height over the same set (docs/governance.md
section 5). A replica whose key is not in the set follows: it judges and
commits blocks, and signs nothing. A next-height vote whose signature the
current set cannot check is kept, bounded, and judged at that height.

  PROPOSAL(h, r, block)  primary -> all. For r > 0 it carries Q ROUND-CHANGEs
                          for r; if any holds a prepared certificate, the block
                          must be the one prepared in the highest round.
  PREPARE(h, r, d)       after the block validated (runtime answers
                          `on_block_validated`).
  COMMIT(h, r, d)        once prepared: the proposal plus Q PREPAREs for d.
                          We record (r, d, block, the Q prepares) as prepared.
  commit                 Q COMMITs for (h, r, d): the COMMIT signatures are the
                          QC; the block is committed and h moves on.
  ROUND-CHANGE(h, r+1)   when the round timer (base * 2^r ticks; one tick if the
                          primary missed its last turn: turns.py) expires; it
                          carries the sender's prepared round, hash, certificate
                          and block. f + 1 ROUND-CHANGEs above our round make us
                          jump to the smallest of them.

Why it is safe: if d commits in round r*, at least f + 1 honest replicas
prepared d in r*. Any Q round-changes for a later round include one of them
(Q + f + 1 > n), so the highest prepared round in a justification is >= r*
and, by induction over rounds, its block is d (checks.py).

Everything about the height being decided is one `Height` value (`cur`),
replaced whole when a block commits. Messages are dispatched by type with
`match` to the handlers `_on_<message>`. The block format reaches the core only
through the `BlockView` the runtime passes in (`ChainBlocks`, chain.py).

Persist before send: every input returns a frozen `Ready`. The runtime applies
it in order: (1) store `commits` (block + QC, atomic, synced); (2) save `persist`
(synced); (3) send `messages`; (4) run `validate` / `build` / `fetch`.
`persist` is a copy of every (kind, round) -> value this replica signed at this
height, so a replica restarted from it re-signs only identical values
(`_sign` refuses any other: Ed25519 is deterministic, so a resent message is
byte-identical). After applying commits the runtime reports its mempool size
again with `on_records_available`. Nothing here reads a clock, does I/O or draws randomness:
time is `on_tick`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar, assert_never

from .. import codec, crypto
from ..errors import InvalidInput
from ..genesis import VALIDATORS_MAX
from ..members import ValidatorSet
from .checks import check_justification, check_round_change, choose
from .messages import (
    NO_ROUND, BlockData, Blocks, Commit, FetchBlocks, Message, Prepare, Proposal, RoundChange, Signed,
    Status, signed_part, signing_bytes,
)
from .state import (
    QC, BlockView, Config, Equivocation, HeaderView, Height, PersistedState, Ready, ReadyBuilder, Verifier,
)
from .turns import SKIP_TICKS, Turns

ROUND_WINDOW = 16  # accept messages for rounds up to our round + this
FUTURE_MAX_PER_SENDER = 64  # buffered messages for height h + 1
S = TypeVar("S", bound=Signed)  # one signed message type: `_sign(Prepare)` gives a Prepare


def real_verify(key: crypto.PublicKey, sig: bytes, message: bytes) -> bool:
    return key.verify(sig, message)


class Replica:
    def __init__(
        self,
        cfg: Config,
        key: crypto.PrivateKey,
        committed_height: int,
        last_header: HeaderView | None,
        persisted: PersistedState | None = None,
        verify: Verifier = real_verify,
        vote_from: int = 0,
        recent_proposers: tuple[tuple[int, int], ...] = (),
        *,
        blocks: BlockView,
        validators: ValidatorSet | None = None,
    ) -> None:
        """`validators`: the set of height committed_height + 1 (default: the genesis's)."""
        assert (last_header is None) == (committed_height == 0)
        self.cfg, self.key, self.verify, self.blocks = cfg, key, verify, blocks
        self.vset = validators or cfg.genesis.validator_set
        self.me = self.vset.index_of(key.public.raw)  # None: a follower that never signs
        # without a set given, the key must be the genesis validator's at cfg.index
        assert validators is not None or self.me == cfg.index, "key is not this validator's"
        self.committed_height = committed_height
        self.last_hash = last_header.block_hash if last_header else bytes(32)
        self.fetching: tuple[int, int] | None = None  # (peer, ticks waited)
        self.peer_heights: dict[int, int] = {}  # highest committed height each peer showed us
        self.fetched_last = False  # our last commit came from catch-up
        # Signing state for a height above the store's next one: the store lost blocks
        # this replica committed. Follow without signing until that height, then take
        # the state up again, so nothing signed there is ever signed differently.
        self.ahead: PersistedState | None = None
        self.vote_from = vote_from  # no signature at a height below this
        if persisted is not None and persisted.height > committed_height + 1:
            self.ahead, self.vote_from = persisted, max(vote_from, persisted.height)
        if persisted is None or persisted.height != committed_height + 1:
            persisted = PersistedState(committed_height + 1)
        # (height, header.proposer) of the committed heights in Turns.window: who is skipped
        self.turns = Turns(self.n, self.f, recent_proposers)
        self.cur = self._new_height(persisted)
        me = self.me
        if me is not None and self.round > 0 and ("round-change", self.round) in self.cur.state.signed:
            # Restarted mid-round-change: rebuild what we signed so resends carry it
            # (same value, so the same bytes; _sign refuses anything else).
            rc = self._sign(self._round_change(self.round, me), ReadyBuilder())
            if rc is not None:
                self.cur.round_changes[me] = rc

    # -- per-height state ------------------------------------------------------

    @property
    def n(self) -> int:
        return self.vset.n

    @property
    def f(self) -> int:
        return self.vset.f

    @property
    def q(self) -> int:
        return self.vset.quorum

    def _new_height(self, st: PersistedState) -> Height:
        """The state of height `st.height`, fresh but for what `st` carries over a restart."""
        if self.ahead is not None and self.ahead.height == st.height:
            st, self.ahead = self.ahead, None
        return Height(st, self.turns.suspects(st.height), self.turns.is_probe(st.height), self.cfg.resend_ticks)

    @property
    def height(self) -> int:
        return self.cur.state.height

    @property
    def round(self) -> int:
        """Our round at this height: persisted, so a restart resumes in it."""
        return self.cur.state.round

    def primary(self, round_: int) -> int:
        return (self.height + round_) % self.n

    @property
    def is_primary(self) -> bool:
        return self.me is not None and self.primary(self.round) == self.me

    def timeout_ticks(self) -> int:
        if self._skipping():
            return SKIP_TICKS
        if self.primary(self.round) in self.cur.suspects:  # a suspect's probe turn
            return max(1, self.cfg.round_timeout_ticks // 2)
        return self.cfg.round_timeout_ticks << min(self.round, self.cfg.round_timeout_doublings_max)

    def _skipping(self) -> bool:
        """Is this round's primary a suspect whose turn is skipped (consensus/turns.py)? Not
        while we catch up: the height is decided already, and a round change would only cost
        a synced write and a message per height fetched."""
        if self._behind():
            return False
        return self.primary(self.round) in self.cur.suspects and (self.round > 0 or not self.cur.probe)

    def _behind(self) -> bool:
        """Have f + 1 peers (one of them honest) shown us a committed height >= ours, or one
        while we catch up? (After a restart the others' links to us come back one by one;
        a liar gains nothing here once we commit by consensus again.)"""
        ahead = sum(1 for h in self.peer_heights.values() if h >= self.height)
        return ahead >= self.f + 1 or (ahead >= 1 and self.fetched_last)

    def _saw_height(self, sender: int, committed: int) -> None:
        if 0 <= sender < self.n and sender != self.me and committed > self.peer_heights.get(sender, 0):
            self.peer_heights[sender] = committed

    # -- signing -----------------------------------------------------------------

    def _sign(self, msg: S, out: ReadyBuilder) -> S | None:
        """Sign `msg` unless we signed a different value for its (kind, round)."""
        assert msg.height == self.height and msg.sender == self.me
        if self.height < self.vote_from:
            return None  # following only: we may have signed here before and lost the record
        st = self.cur.state
        slot, value = (msg.kind, msg.round), codec.encode(msg.value)
        prior = st.signed.get(slot)
        if prior is not None and prior != value:
            return None
        if prior is None:
            st.signed[slot] = value
            out.persist = st
        return replace(msg, sig=self.key.sign(signing_bytes(msg)))

    def _valid_sig(self, msg: Signed) -> bool:
        if not 0 <= msg.sender < self.n:
            return False
        return self.verify(self.vset.keys[msg.sender], msg.sig, signing_bytes(msg))

    def valid_signature(self, msg: Signed) -> bool:
        """Read-only: does `msg` carry its sender's valid signature? (runtime pre-checks)"""
        return self._valid_sig(msg)

    def _send(self, msg: Signed | None, out: ReadyBuilder) -> None:
        """Broadcast what we signed, if `_sign` signed it."""
        if msg is not None:
            out.messages.append((None, msg))

    # -- inputs ------------------------------------------------------------------

    def on_records_available(self, count: int) -> Ready:
        out = ReadyBuilder()
        self.cur.pending_records = count
        if self._skipping() and self._active():
            self._move_to_round(self.round + 1, out)  # no tick's wait for a suspect primary
        self._maybe_build(out)
        return out.freeze()

    def on_tick(self) -> Ready:
        out = ReadyBuilder()
        if self._active():
            self.cur.ticks += 1
            if self.cur.ticks >= self.timeout_ticks():
                self._move_to_round(self.round + 1, out)
        self.cur.resend_in -= 1
        if self.cur.resend_in <= 0:
            self.cur.resend_in = self.cfg.resend_ticks
            self._resend(out)
        if self.fetching is not None:
            peer, waited = self.fetching
            self.fetching = None if waited + 1 >= self.cfg.fetch_timeout_ticks else (peer, waited + 1)
        if self.cur.decided is not None and self.fetching is None:
            senders = sorted(self.cur.commits.get(self.cur.decided, {}))
            peer = senders[(self.cur.ticks // self.cfg.fetch_timeout_ticks) % len(senders)]
            self._fetch(peer, out)
        self._maybe_build(out)
        return out.freeze()

    def on_message(self, msg: Message) -> Ready:
        out = ReadyBuilder()
        self._dispatch_quietly(msg, out)
        return out.freeze()

    def on_block_built(self, height: int, round_: int, block: BlockData) -> Ready:
        """The runtime built (and checked) a block for our proposal at (height, round)."""
        out = ReadyBuilder()
        cur = self.cur
        if (height, round_) != (self.height, self.round) or cur.building != (height, round_):
            return out.freeze()
        if not self.is_primary or round_ in cur.proposals:
            cur.building = None
            return out.freeze()
        justification = self._justification(round_) if round_ > 0 else ()
        if round_ > 0 and (justification is None or choose(justification)[0] != NO_ROUND):
            cur.building = None
            return out.freeze()  # a prepared block must be re-proposed instead of a new one
        self._propose(block, justification or (), out)
        if round_ in cur.proposals:
            cur.building = None
        # else: we proposed another block in this round before a restart and may
        # not sign this one; `building` stays set so we do not ask again this round.
        return out.freeze()

    def raise_vote_floor(self, height: int) -> None:
        """Sign nothing below `height` (the runtime saw our key in a QC it has no signing
        state for: docs/storage.md, signing state)."""
        self.vote_from = max(self.vote_from, height)

    def on_nothing_to_build(self, height: int, round_: int) -> Ready:
        """The runtime found no record fit for a block at (height, round): at round 0
        nothing is proposed (an empty block would prove nothing); the runtime reports
        its mempool again with `on_records_available`, which may ask for a new build."""
        if self.cur.building == (height, round_) == (self.height, self.round):
            self.cur.building = None
            self.cur.pending_records = 0
        return Ready()

    def on_block_validated(self, height: int, round_: int, block_hash: bytes, ok: bool) -> Ready:
        out = ReadyBuilder()
        p = self.cur.proposals.get(round_)
        if height != self.height or p is None or p.block_hash != block_hash:
            return out.freeze()
        if not ok:
            out.dropped.append("invalid_block")
            return out.freeze()
        self.cur.validated.add((round_, block_hash))
        if round_ == self.round and self.me is not None:
            prep = Prepare(self.cfg.genesis.chain_id, self.height, round_, block_hash, self.me)
            signed = self._sign(prep, out)
            self._send(signed, out)
            if signed is not None:
                self._on_prepare(signed, out)  # may commit: `self.cur` is then the next height
        self._check_prepared(round_, block_hash, out)
        self._check_committed(round_, block_hash, out)
        return out.freeze()

    def on_block_fetched(self, block: BlockData, qc: QC) -> Ready:
        """A committed block from catch-up whose contents the runtime has checked."""
        out = ReadyBuilder()
        header = self.blocks.header(block.header)
        try:
            if header.height != self.height or header.prev != self.last_hash:
                raise InvalidInput("fetch_not_next", "the block is not the next one of our chain")
            self.blocks.check_qc(qc, block, self.vset)
        except InvalidInput as exc:
            out.dropped.append(exc.code)
            return out.freeze()
        self.fetching = None
        self.fetched_last = True
        self._commit(block, header, qc, out)
        return out.freeze()

    # -- message handlers ------------------------------------------------------

    def _dispatch(self, msg: Message, out: ReadyBuilder) -> None:
        if msg.chain != self.cfg.genesis.chain_id:
            raise InvalidInput("wrong_chain", "message for another chain")
        match msg:
            case Status():
                self._on_status(msg, out)
            case Proposal() | Prepare() | Commit() | RoundChange():
                self._on_signed(msg, out)
            case FetchBlocks() | Blocks():
                raise InvalidInput("bad_message", f"{msg.kind} is for the runtime, not the replica")
            case _:
                assert_never(msg)

    def _on_status(self, msg: Status, out: ReadyBuilder) -> None:
        self._saw_height(msg.sender, msg.height)
        if 0 <= msg.sender < self.n and msg.height >= self.height:
            self._fetch(msg.sender, out)  # the sender committed our height

    def _on_signed(self, msg: Signed, out: ReadyBuilder) -> None:
        """Check a signed message, then hand it to its handler once per slot."""
        if msg.sender == self.me and msg.height <= self.height:
            return
        if not self._valid_sig(msg):
            if msg.height == self.height + 1 and self._buffer_unverified(msg):
                return  # the next height's set may differ from ours: judged when replayed there
            raise InvalidInput("bad_signature", f"{msg.kind} signature does not verify")
        if msg.height < self.height:
            if msg.height < self.height - 1 and self.me is not None:  # the sender lags: tell it
                out.messages.append((msg.sender, Status(msg.chain, self.committed_height, self.me)))
            return
        if msg.height > self.height:
            self._saw_height(msg.sender, msg.height - 1)  # it signs there: it committed below
            self._buffer_future(msg)
            self._fetch(msg.sender, out)  # the sender has committed our height
            return
        if msg.round > self.round + ROUND_WINDOW:
            raise InvalidInput("round_window", f"round {msg.round} is too far ahead")
        # The signature covers only the value; check the unsigned parts (block,
        # justification, certificate) before the message may claim its slot, or a
        # tampered relay of a genuine message would shadow the genuine one.
        match msg:
            case Proposal():
                self._check_proposal(msg)
            case RoundChange():
                check_round_change(msg, self.q, self.last_hash, self.blocks, self._valid_sig)
            case Prepare() | Commit():
                pass  # a vote is all signed
        if not self._first_of_slot(msg, out):
            return
        match msg:
            case Proposal():
                self._on_proposal(msg, out)
            case Prepare():
                self._on_prepare(msg, out)
            case Commit():
                self._on_commit(msg, out)
            case RoundChange():
                self._on_round_change(msg, out)
            case _:
                assert_never(msg)

    def _buffer_future(self, msg: Signed) -> None:
        """Keep next-height messages to replay after our commit. At most one message
        carrying a block per sender (a proposal within the block size; round changes
        with a block are left to the sender's re-sends), so a validator can park one
        block here, not 64."""
        if msg.height != self.height + 1:
            return
        queue = self.cur.future.setdefault(msg.sender, [])
        if isinstance(msg, RoundChange) and msg.prepared_block is not None:
            return
        if isinstance(msg, Proposal):
            too_big = msg.block is None or len(msg.block.payload) > self.cfg.genesis.block_max_records
            if too_big or any(isinstance(m, Proposal) for m in queue):
                return
        if len(queue) < FUTURE_MAX_PER_SENDER:
            queue.append(msg)

    def _buffer_unverified(self, msg: Signed) -> bool:
        """Keep a next-height message whose signature our set cannot check, if it is a
        vote or a round change without a block and its sender index could be one; a
        bounded number per index. False: not kept (a new validator's proposal comes
        again with its re-sends)."""
        if isinstance(msg, Proposal) or (isinstance(msg, RoundChange) and msg.prepared_block is not None):
            return False
        if not 0 <= msg.sender < VALIDATORS_MAX:
            return False
        queue = self.cur.future.setdefault(msg.sender, [])
        if len(queue) < FUTURE_MAX_PER_SENDER:
            queue.append(msg)
        return True

    def _first_of_slot(self, msg: Signed, out: ReadyBuilder) -> bool:
        """Keep one value per (sender, kind, round); a second one is evidence."""
        cur, key = self.cur, (msg.sender, msg.kind, msg.round)
        first = cur.seen.get(key)
        if first is None:
            cur.seen[key] = msg
            return True
        if codec.encode(first.value) != codec.encode(msg.value):
            if key not in cur.evidence_keys:  # once per slot, however often re-sent
                cur.evidence_keys.add(key)
                out.evidence.append(Equivocation(msg.sender, msg.kind, msg.height, msg.round,
                                                 signed_part(first), signed_part(msg)))
            raise InvalidInput("equivocation", f"validator {msg.sender} signed two {msg.kind}s")
        return False  # a duplicate: nothing new

    def _check_proposal(self, p: Proposal) -> None:
        if p.sender != self.primary(p.round):
            raise InvalidInput("not_primary", f"validator {p.sender} is not primary of round {p.round}")
        if p.block is None:
            raise InvalidInput("bad_message", "proposal without a block")
        header = self.blocks.header(p.block.header)
        if header.block_hash != p.block_hash or header.height != self.height or header.prev != self.last_hash:
            raise InvalidInput("bad_proposal", "proposal block does not extend our chain")
        if p.round > 0:
            check_justification(p, self.q, self.last_hash, self.blocks, self._valid_sig)

    def _on_proposal(self, p: Proposal, out: ReadyBuilder) -> None:
        assert p.block is not None  # _check_proposal ran first
        if p.round < self.round or p.round in self.cur.proposals:
            return
        if p.round > self.round:
            self._move_to_round(p.round, out)
        self.cur.proposals[p.round] = p
        out.validate.append((self.height, p.round, p.block))

    def _on_prepare(self, m: Prepare, out: ReadyBuilder) -> None:
        self.cur.prepares.setdefault((m.round, m.block_hash), {})[m.sender] = m
        self._check_prepared(m.round, m.block_hash, out)

    def _on_commit(self, m: Commit, out: ReadyBuilder) -> None:
        self.cur.commits.setdefault((m.round, m.block_hash), {})[m.sender] = m
        self._check_committed(m.round, m.block_hash, out)

    def _on_round_change(self, rc: RoundChange, out: ReadyBuilder) -> None:
        round_changes = self.cur.round_changes
        old = round_changes.get(rc.sender)
        if old is None or rc.round > old.round:
            round_changes[rc.sender] = rc
        above = sorted(r.round for r in round_changes.values() if r.round > self.round)
        if len(above) >= self.f + 1:
            self._move_to_round(above[0], out)
        self._maybe_repropose(out)

    # -- quorums -----------------------------------------------------------------

    def _check_prepared(self, round_: int, block_hash: bytes, out: ReadyBuilder) -> None:
        cur = self.cur
        votes = cur.prepares.get((round_, block_hash), {})
        if round_ != self.round or len(votes) < self.q or (round_, block_hash) not in cur.validated:
            return
        st = cur.state
        if st.prepared_round >= round_:
            return
        p = cur.proposals[round_]
        st.prepared_round, st.prepared_hash = round_, block_hash
        st.prepared_cert = tuple(votes[s] for s in sorted(votes)[: self.q])
        st.prepared_block = p.block
        out.persist = st
        if self.me is None:
            return
        commit = Commit(p.chain, self.height, round_, block_hash, self.me)
        signed = self._sign(commit, out)
        self._send(signed, out)
        if signed is not None:
            self._on_commit(signed, out)

    def _check_committed(self, round_: int, block_hash: bytes, out: ReadyBuilder) -> None:
        votes = self.cur.commits.get((round_, block_hash), {})
        if len(votes) < self.q:
            return
        block = self._known_block(block_hash)
        if block is None:
            self.cur.decided = (round_, block_hash)
            return
        sigs = tuple((s, votes[s].sig) for s in sorted(votes)[: self.q])
        qc = QC(self.height, round_, block_hash, sigs)
        self.fetched_last = False
        self._commit(block, self.blocks.header(block.header), qc, out)

    def _known_block(self, block_hash: bytes) -> BlockData | None:
        """A block with this hash whose contents *we* validated. The signature binds
        only the header hash, so an unvalidated copy may carry other records."""
        cur = self.cur
        for p in cur.proposals.values():
            if p.block_hash == block_hash and (p.round, block_hash) in cur.validated:
                return p.block
        if cur.state.prepared_hash == block_hash:
            return cur.state.prepared_block
        return None

    # -- transitions -----------------------------------------------------------

    def _commit(self, block: BlockData, header: HeaderView, qc: QC, out: ReadyBuilder) -> None:
        assert header.height == self.height and header.prev == self.last_hash
        assert qc.block_hash == header.block_hash
        out.commits.append((block, qc))
        self.committed_height = self.height
        self.last_hash = header.block_hash
        self.turns.record(header.height, header.proposer)
        following = self.blocks.validators_after(block, self.vset)
        if following != self.vset:
            self._change_set(following)
        future = self.cur.future
        self.cur = self._new_height(PersistedState(self.height + 1))
        out.persist = self.cur.state
        for queue in future.values():
            for msg in queue:
                if msg.height == self.height:
                    self._dispatch_quietly(msg, out)

    def _change_set(self, validators: ValidatorSet) -> None:
        """The block just committed changed the validator set: the next height is counted
        over the new one. Indexes name other validators now, so what was kept per
        index (peer heights, turns, a fetch in flight) starts afresh."""
        self.vset = validators
        self.me = validators.index_of(self.key.public.raw)
        self.turns = Turns(self.n, self.f)
        self.peer_heights = {}
        self.fetching = None

    def _dispatch_quietly(self, msg: Message, out: ReadyBuilder) -> None:
        try:
            self._dispatch(msg, out)
        except InvalidInput as exc:
            out.dropped.append(exc.code)

    def _move_to_round(self, round_: int, out: ReadyBuilder) -> None:
        assert round_ > self.round
        cur = self.cur
        cur.state.round = round_
        cur.ticks = 0
        cur.building = None
        out.persist = cur.state
        if self.me is not None:
            signed = self._sign(self._round_change(round_, self.me), out)
            self._send(signed, out)
            if signed is not None:
                cur.round_changes[self.me] = signed
        self._maybe_repropose(out)

    def _round_change(self, round_: int, me: int) -> RoundChange:
        st = self.cur.state
        return RoundChange(
            self.cfg.genesis.chain_id, self.height, round_, st.prepared_round, st.prepared_hash,
            me, b"", st.prepared_cert, st.prepared_block,
        )

    def _justification(self, round_: int) -> tuple[RoundChange, ...] | None:
        rcs = [rc for rc in self.cur.round_changes.values() if rc.round == round_]
        if len(rcs) < self.q:
            return None
        rcs.sort(key=lambda rc: (-rc.prepared_round, rc.sender))
        return tuple(replace(rc, prepared_block=None) for rc in rcs[: self.q])

    def _maybe_repropose(self, out: ReadyBuilder) -> None:
        if not self.is_primary or self.round == 0 or self.round in self.cur.proposals:
            return
        justification = self._justification(self.round)
        if justification is None:
            return
        prepared_round, prepared_hash, _ = choose(justification)
        if prepared_round == NO_ROUND:
            self._maybe_build(out)
            return
        block = self._known_block(prepared_hash)
        if block is None:
            for rc in self.cur.round_changes.values():
                if rc.prepared_hash == prepared_hash and rc.prepared_block is not None:
                    block = rc.prepared_block
        if block is not None:
            self._propose(block, justification, out)

    def _propose(self, block: BlockData, justification: tuple[RoundChange, ...], out: ReadyBuilder) -> None:
        header = self.blocks.header(block.header)
        assert header.height == self.height and header.prev == self.last_hash and self.me is not None
        p = Proposal(self.cfg.genesis.chain_id, self.height, self.round, header.block_hash,
                     self.me, b"", block, justification)
        signed = self._sign(p, out)
        if signed is None:
            return
        self._send(signed, out)
        self.cur.proposals[self.round] = signed
        self.cur.seen[(self.me, "proposal", self.round)] = signed
        out.validate.append((self.height, self.round, block))

    def _maybe_build(self, out: ReadyBuilder) -> None:
        cur = self.cur
        if not self.is_primary or self.round in cur.proposals or cur.building is not None:
            return
        if self._skipping():
            return  # the others time out at once: a block of ours would come too late
        if self.round == 0 and cur.pending_records == 0:
            return
        if self.round > 0:
            justification = self._justification(self.round)
            if justification is None or choose(justification)[0] != NO_ROUND:
                return
        cur.building = (self.height, self.round)
        out.build = cur.building

    def _fetch(self, peer: int, out: ReadyBuilder) -> None:
        if self.fetching is None and peer != self.me:
            self.fetching = (peer, 0)
            out.fetch = (peer, self.height)

    def _active(self) -> bool:
        """Is work pending at this height, so that the round timer should run?

        Votes and round changes count only from f + 1 validators (so at least one
        of them honest): a single signed message from a lying validator at an idle
        height must not start our timers and end in an empty block for nothing."""
        cur = self.cur
        if cur.pending_records or self.round or cur.proposals:
            return True
        senders = {s for table in (cur.prepares, cur.commits) for votes in table.values() for s in votes}
        senders.update(cur.round_changes)
        return len(senders) >= self.f + 1

    def _resend(self, out: ReadyBuilder) -> None:
        """Re-send what we signed this round (lost messages stall PBFT otherwise).

        A proposal carries the whole block, so it goes again only to replicas
        from which we have neither a prepare nor a commit for it."""
        cur, me = self.cur, self.me
        if me is None:
            return  # a follower signs nothing, and its Status would name no validator
        proposal = cur.proposals.get(self.round)
        if proposal is not None and proposal.sender == me:
            key = (self.round, proposal.block_hash)
            heard = set(cur.prepares.get(key, {})) | set(cur.commits.get(key, {}))
            for peer in range(self.n):
                if peer != me and peer not in heard:
                    out.messages.append((peer, proposal))
        rc = cur.round_changes.get(me)
        if rc is not None and rc.round == self.round:
            out.messages.append((None, rc))
        for table in (cur.prepares, cur.commits):
            for (r, _), votes in table.items():
                mine = votes.get(me)
                if mine is not None and r == self.round:
                    out.messages.append((None, mine))
        out.messages.append((None, Status(self.cfg.genesis.chain_id, self.committed_height, me)))
