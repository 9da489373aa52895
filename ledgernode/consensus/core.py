"""PBFT-lite replica: a deterministic state machine, one height at a time.

Theory of operation
-------------------
A `Replica` decides one height h at a time. Rounds r of a height are PBFT
views; the primary of (h, r) is validator (h + r) % n. Quorum Q = n - f.

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
and, by induction over rounds, its block is d.

Persist before send: every input returns a `Ready`. The runtime applies it
in order: (1) store `commits` (block + QC, atomic, synced); (2) save `persist`
(synced); (3) send `messages`; (4) run `validate` / `build` / `fetch`.
`persist` holds every (kind, round) -> value this replica signed at this
height, so a replica restarted from it re-signs only identical values
(`_sign` refuses any other: Ed25519 is deterministic, so a resent message is
byte-identical). After applying commits the runtime reports its mempool size
again with `on_records_available`. Nothing here reads a clock, does I/O or draws randomness:
time is `on_tick`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from .. import codec, crypto
from ..blocks import QC, Header, check_qc, decode_header
from ..errors import InvalidInput
from .messages import (
    NO_ROUND, BlockData, Commit, Message, Prepare, Proposal, RoundChange, Signed, Status,
    signing_bytes,
)
from .state import Config, Equivocation, PersistedState, Ready
from .turns import SKIP_TICKS, Turns

ROUND_WINDOW = 16  # accept messages for rounds up to our round + this
FUTURE_MAX_PER_SENDER = 64  # buffered messages for height h + 1
EVIDENCE_MAX = 256
Verifier = Callable[[crypto.PublicKey, bytes, bytes], bool]


def real_verify(key: crypto.PublicKey, sig: bytes, message: bytes) -> bool:
    return key.verify(sig, message)


def _signed_part(msg: Signed) -> Signed:
    """The fields a signature covers, without attached blocks or certificates: what
    equivocation evidence needs, and no more."""
    if isinstance(msg, Proposal):
        return replace(msg, block=None, justification=())
    if isinstance(msg, RoundChange):
        return replace(msg, prepared_block=None, prepared_cert=())
    return msg


class Replica:
    def __init__(
        self,
        cfg: Config,
        key: crypto.PrivateKey,
        committed_height: int,
        last_header: Header | None,
        persisted: PersistedState | None = None,
        verify: Verifier = real_verify,
        vote_from: int = 0,
        recent_proposers: tuple[tuple[int, int], ...] = (),
    ) -> None:
        g = cfg.genesis
        assert g.validators[cfg.index].pubkey.raw == key.public.raw, "key is not this validator's"
        assert (last_header is None) == (committed_height == 0)
        self.cfg, self.key, self.verify = cfg, key, verify
        self.n, self.f, self.q = g.n, g.f, g.quorum
        self.committed_height = committed_height
        self.last_hash = last_header.block_hash if last_header else bytes(32)
        self.evidence: list[Equivocation] = []
        self.fetching: tuple[int, int] | None = None  # (peer, ticks waited)
        self.pending_records = 0
        # Signing state for a height above the store's next one: the store lost blocks
        # this replica committed. Follow without signing until that height, then take
        # the state up again, so nothing signed there is ever signed differently.
        self.ahead: PersistedState | None = None
        self.vote_from = vote_from  # no signature at a height below this
        if persisted is not None and persisted.height > committed_height + 1:
            self.ahead, self.vote_from = persisted, max(vote_from, persisted.height)
        if persisted is None or persisted.height != committed_height + 1:
            persisted = PersistedState(committed_height + 1)
        self.evidence_keys: set[tuple[int, int, str, int]] = set()
        # (height, header.proposer) of the committed heights in Turns.window: who is skipped
        self.turns = Turns(self.n, self.f, recent_proposers)
        self._start_height(persisted)
        if self.round > 0 and ("round-change", self.round) in self.state.signed:
            # Restarted mid-round-change: rebuild what we signed so resends carry it
            # (same value, so the same bytes; _sign refuses anything else).
            rc = self._sign(self._round_change(self.round), Ready())
            if rc is not None:
                self.round_changes[self.cfg.index] = rc  # type: ignore[assignment]

    # -- per-height state ------------------------------------------------------

    def _start_height(self, st: PersistedState) -> None:
        if self.ahead is not None and self.ahead.height == st.height:
            st, self.ahead = self.ahead, None
        self.state = st
        self.height = st.height
        self.round = st.round
        self.ticks = 0
        self.resend_in = self.cfg.resend_ticks
        self.proposals: dict[int, Proposal] = {}
        self.validated: set[tuple[int, bytes]] = set()
        self.prepares: dict[tuple[int, bytes], dict[int, Prepare]] = {}
        self.commits: dict[tuple[int, bytes], dict[int, Commit]] = {}
        self.round_changes: dict[int, RoundChange] = {}
        self.seen: dict[tuple[int, str, int], Signed] = {}
        self.future: dict[int, list[Message]] = {}
        self.building: tuple[int, int] | None = None
        self.decided: tuple[int, bytes] | None = None  # Q commits seen, block missing
        self.suspects = self.turns.suspects(self.height)
        self.probe = self.turns.is_probe(self.height)

    def primary(self, round_: int) -> int:
        return (self.height + round_) % self.n

    @property
    def is_primary(self) -> bool:
        return self.primary(self.round) == self.cfg.index

    def timeout_ticks(self) -> int:
        if self._skipping():
            return SKIP_TICKS
        if self.primary(self.round) in self.suspects:  # a suspect's probe turn
            return max(1, self.cfg.round_timeout_ticks // 2)
        return self.cfg.round_timeout_ticks << min(self.round, self.cfg.round_timeout_doublings_max)

    def _skipping(self) -> bool:
        """Is this round's primary a suspect whose turn is skipped (consensus/turns.py)?"""
        return self.primary(self.round) in self.suspects and (self.round > 0 or not self.probe)

    # -- signing -----------------------------------------------------------------

    def _sign(self, msg: Signed, out: Ready) -> Signed | None:
        """Sign `msg` unless we signed a different value for its (kind, round)."""
        assert msg.height == self.height and msg.sender == self.cfg.index
        if self.height < self.vote_from:
            return None  # following only: we may have signed here before and lost the record
        slot, value = (msg.kind, msg.round), codec.encode(msg.value)
        prior = self.state.signed.get(slot)
        if prior is not None and prior != value:
            return None
        if prior is None:
            self.state.signed[slot] = value
            out.persist = self.state
        return replace(msg, sig=self.key.sign(signing_bytes(msg)))

    def _valid_sig(self, msg: Signed) -> bool:
        if not 0 <= msg.sender < self.n:
            return False
        key = self.cfg.genesis.validators[msg.sender].pubkey
        return self.verify(key, msg.sig, signing_bytes(msg))

    def valid_signature(self, msg: Signed) -> bool:
        """Read-only: does `msg` carry its sender's valid signature? (runtime pre-checks)"""
        return self._valid_sig(msg)

    def _send(self, msg: Signed | None, out: Ready, to: int | None = None) -> None:
        if msg is not None:
            out.messages.append((to, msg))

    # -- inputs ------------------------------------------------------------------

    def on_records_available(self, count: int) -> Ready:
        out = Ready()
        self.pending_records = count
        if self._skipping() and self._active():
            self._move_to_round(self.round + 1, out)  # no tick's wait for a suspect primary
        self._maybe_build(out)
        return out

    def on_tick(self) -> Ready:
        out = Ready()
        if self._active():
            self.ticks += 1
            if self.ticks >= self.timeout_ticks():
                self._move_to_round(self.round + 1, out)
        self.resend_in -= 1
        if self.resend_in <= 0:
            self.resend_in = self.cfg.resend_ticks
            self._resend(out)
        if self.fetching is not None:
            peer, waited = self.fetching
            self.fetching = None if waited + 1 >= self.cfg.fetch_timeout_ticks else (peer, waited + 1)
        if self.decided is not None and self.fetching is None:
            senders = sorted(self.commits.get(self.decided, {}))
            peer = senders[(self.ticks // self.cfg.fetch_timeout_ticks) % len(senders)]
            self._fetch(peer, out)
        self._maybe_build(out)
        return out

    def on_message(self, msg: Message) -> Ready:
        out = Ready()
        self._dispatch_quietly(msg, out)
        return out

    def on_block_built(self, height: int, round_: int, block: BlockData) -> Ready:
        """The runtime built (and checked) a block for our proposal at (height, round)."""
        out = Ready()
        if (height, round_) != (self.height, self.round) or self.building != (height, round_):
            return out
        if not self.is_primary or round_ in self.proposals:
            self.building = None
            return out
        justification = self._justification(round_) if round_ > 0 else ()
        if round_ > 0 and (justification is None or self._choose(justification)[0] != NO_ROUND):
            self.building = None
            return out  # a prepared block must be re-proposed instead of a new one
        self._propose(block, justification or (), out)
        if round_ in self.proposals:
            self.building = None
        # else: we proposed another block in this round before a restart and may
        # not sign this one; `building` stays set so we do not ask again this round.
        return out

    def raise_vote_floor(self, height: int) -> None:
        """Sign nothing below `height` (the runtime saw our key in a QC it has no signing
        state for: docs/storage.md, signing state)."""
        self.vote_from = max(self.vote_from, height)

    def on_nothing_to_build(self, height: int, round_: int) -> Ready:
        """The runtime found no record fit for a block at (height, round): at round 0
        nothing is proposed (an empty block would prove nothing); the runtime reports
        its mempool again with `on_records_available`, which may ask for a new build."""
        out = Ready()
        if self.building == (height, round_) == (self.height, self.round):
            self.building = None
            self.pending_records = 0
        return out

    def on_block_validated(self, height: int, round_: int, block_hash: bytes, ok: bool) -> Ready:
        out = Ready()
        p = self.proposals.get(round_)
        if height != self.height or p is None or p.block_hash != block_hash:
            return out
        if not ok:
            out.dropped.append("invalid_block")
            return out
        self.validated.add((round_, block_hash))
        if round_ == self.round:
            prep = Prepare(self.cfg.genesis.chain_id, self.height, round_, block_hash, self.cfg.index)
            signed = self._sign(prep, out)
            self._send(signed, out)
            if signed is not None:
                self._on_prepare(signed, out)
        self._check_prepared(round_, block_hash, out)
        self._check_committed(round_, block_hash, out)
        return out

    def on_block_fetched(self, block: BlockData, qc: QC) -> Ready:
        """A committed block from catch-up whose contents the runtime has checked."""
        out = Ready()
        header = decode_header(block.header)
        if header.height != self.height or header.prev != self.last_hash:
            out.dropped.append("fetch_not_next")
            return out
        try:
            check_qc(qc, header, self.cfg.genesis, self.verify)
        except InvalidInput as exc:
            out.dropped.append(exc.code)
            return out
        self.fetching = None
        self._commit(block, header, qc, out)
        return out

    # -- message handlers ------------------------------------------------------

    def _dispatch(self, msg: Message, out: Ready) -> None:
        if msg.chain != self.cfg.genesis.chain_id:
            raise InvalidInput("wrong_chain", "message for another chain")
        if isinstance(msg, Status):
            if 0 <= msg.sender < self.n and msg.height >= self.height:
                self._fetch(msg.sender, out)
            return
        if not isinstance(msg, (Proposal, Prepare, Commit, RoundChange)):
            raise InvalidInput("bad_message", f"{msg.kind} is for the runtime, not the replica")
        if msg.sender == self.cfg.index:
            return
        if not self._valid_sig(msg):
            raise InvalidInput("bad_signature", f"{msg.kind} signature does not verify")
        if msg.height < self.height:
            if msg.height < self.height - 1:  # the sender lags: tell it to catch up
                out.messages.append((msg.sender, Status(msg.chain, self.committed_height, self.cfg.index)))
            return
        if msg.height > self.height:
            self._buffer_future(msg)
            self._fetch(msg.sender, out)  # the sender has committed our height
            return
        if msg.round > self.round + ROUND_WINDOW:
            raise InvalidInput("round_window", f"round {msg.round} is too far ahead")
        # The signature covers only the value; check the unsigned parts (block,
        # justification, certificate) before the message may claim its slot, or a
        # tampered relay of a genuine message would shadow the genuine one.
        if isinstance(msg, Proposal):
            self._check_proposal(msg)
        elif isinstance(msg, RoundChange):
            self._check_round_change(msg)
        if not self._first_of_slot(msg, out):
            return
        getattr(self, "_on_" + msg.kind.replace("-", "_"))(msg, out)

    def _buffer_future(self, msg: Message) -> None:
        """Keep next-height messages to replay after our commit. At most one message
        carrying a block per sender (a proposal within the block size; round changes
        with a block are left to the sender's re-sends), so a validator can park one
        block here, not 64."""
        if msg.height != self.height + 1:
            return
        queue = self.future.setdefault(msg.sender, [])  # type: ignore[union-attr]
        if isinstance(msg, RoundChange) and msg.prepared_block is not None:
            return
        if isinstance(msg, Proposal):
            too_big = msg.block is None or len(msg.block.payload) > self.cfg.genesis.block_max_records
            if too_big or any(isinstance(m, Proposal) for m in queue):
                return
        if len(queue) < FUTURE_MAX_PER_SENDER:
            queue.append(msg)

    def _first_of_slot(self, msg: Signed, out: Ready) -> bool:
        """Keep one value per (sender, kind, round); a second one is evidence."""
        key = (msg.sender, msg.kind, msg.round)
        first = self.seen.get(key)
        if first is None:
            self.seen[key] = msg
            return True
        if codec.encode(first.value) != codec.encode(msg.value):
            if (msg.height, *key) not in self.evidence_keys:  # once per slot, however often re-sent
                self.evidence_keys.add((msg.height, *key))
                ev = Equivocation(msg.sender, msg.kind, msg.height, msg.round,
                                  _signed_part(first), _signed_part(msg))
                if len(self.evidence) < EVIDENCE_MAX:
                    self.evidence.append(ev)
                out.evidence.append(ev)
            raise InvalidInput("equivocation", f"validator {msg.sender} signed two {msg.kind}s")
        return False  # a duplicate: nothing new

    def _check_proposal(self, p: Proposal) -> None:
        if p.sender != self.primary(p.round):
            raise InvalidInput("not_primary", f"validator {p.sender} is not primary of round {p.round}")
        if p.block is None:
            raise InvalidInput("bad_message", "proposal without a block")
        header = decode_header(p.block.header)
        if header.block_hash != p.block_hash or header.height != self.height or header.prev != self.last_hash:
            raise InvalidInput("bad_proposal", "proposal block does not extend our chain")
        if p.round > 0:
            self._check_justification(p)

    def _on_proposal(self, p: Proposal, out: Ready) -> None:
        assert p.block is not None  # _check_proposal ran first
        if p.round < self.round or p.round in self.proposals:
            return
        if p.round > self.round:
            self._move_to_round(p.round, out)
        self.proposals[p.round] = p
        out.validate.append((self.height, p.round, p.block))

    def _on_prepare(self, m: Prepare, out: Ready) -> None:
        self.prepares.setdefault((m.round, m.block_hash), {})[m.sender] = m
        self._check_prepared(m.round, m.block_hash, out)

    def _on_commit(self, m: Commit, out: Ready) -> None:
        self.commits.setdefault((m.round, m.block_hash), {})[m.sender] = m
        self._check_committed(m.round, m.block_hash, out)

    def _on_round_change(self, rc: RoundChange, out: Ready) -> None:
        old = self.round_changes.get(rc.sender)
        if old is None or rc.round > old.round:
            self.round_changes[rc.sender] = rc
        above = sorted(r.round for r in self.round_changes.values() if r.round > self.round)
        if len(above) >= self.f + 1:
            self._move_to_round(above[0], out)
        self._maybe_repropose(out)

    # -- checks ----------------------------------------------------------------

    def _check_round_change(self, rc: RoundChange) -> None:
        bad = lambda why: InvalidInput("bad_round_change", why)  # noqa: E731
        if rc.round < 1:
            raise bad("round change to round 0")
        if rc.prepared_round == NO_ROUND:
            if rc.prepared_hash or rc.prepared_cert or rc.prepared_block:
                raise bad("prepared data without a prepared round")
            return
        if not 0 <= rc.prepared_round < rc.round:
            raise bad("prepared round must be below the round")
        if rc.prepared_block is not None:
            header = decode_header(rc.prepared_block.header)
            if header.block_hash != rc.prepared_hash or header.prev != self.last_hash:
                raise bad("prepared block does not match the prepared hash or our chain")
        senders = set()
        for p in rc.prepared_cert:
            if (p.chain, p.height, p.round, p.block_hash) != (
                    rc.chain, rc.height, rc.prepared_round, rc.prepared_hash):
                raise bad("prepared certificate names another block or round")
            if p.sender in senders or not self._valid_sig(p):
                raise bad("prepared certificate has a duplicate or bad signature")
            senders.add(p.sender)
        if len(senders) < self.q:
            raise bad(f"prepared certificate has {len(senders)} prepares, needs {self.q}")

    def _choose(self, rcs: tuple[RoundChange, ...]) -> tuple[int, bytes, BlockData | None]:
        """The highest prepared (round, hash, block) among round changes."""
        best = max(rcs, key=lambda rc: rc.prepared_round)
        return best.prepared_round, best.prepared_hash, best.prepared_block

    def _check_justification(self, p: Proposal) -> None:
        bad = lambda why: InvalidInput("bad_justification", why)  # noqa: E731
        senders = set()
        for rc in p.justification:
            if (rc.chain, rc.height, rc.round) != (p.chain, p.height, p.round):
                raise bad("justification holds a round change for another round")
            if rc.sender in senders or not self._valid_sig(rc):
                raise bad("justification has a duplicate or badly signed round change")
            self._check_round_change(rc)
            senders.add(rc.sender)
        if len(senders) < self.q:
            raise bad(f"justification has {len(senders)} round changes, needs {self.q}")
        prepared_round, prepared_hash, _ = self._choose(p.justification)
        if prepared_round != NO_ROUND and prepared_hash != p.block_hash:
            raise bad("proposal must re-propose the block prepared in the highest round")

    def _check_prepared(self, round_: int, block_hash: bytes, out: Ready) -> None:
        votes = self.prepares.get((round_, block_hash), {})
        if round_ != self.round or len(votes) < self.q or (round_, block_hash) not in self.validated:
            return
        if self.state.prepared_round >= round_:
            return
        p = self.proposals[round_]
        self.state.prepared_round, self.state.prepared_hash = round_, block_hash
        self.state.prepared_cert = tuple(votes[s] for s in sorted(votes)[: self.q])
        self.state.prepared_block = p.block
        out.persist = self.state
        commit = Commit(p.chain, self.height, round_, block_hash, self.cfg.index)
        signed = self._sign(commit, out)
        self._send(signed, out)
        if signed is not None:
            self._on_commit(signed, out)

    def _check_committed(self, round_: int, block_hash: bytes, out: Ready) -> None:
        votes = self.commits.get((round_, block_hash), {})
        if len(votes) < self.q:
            return
        block = self._known_block(block_hash)
        if block is None:
            self.decided = (round_, block_hash)
            return
        sigs = tuple((s, votes[s].sig) for s in sorted(votes)[: self.q])
        qc = QC(self.height, round_, block_hash, sigs)
        self._commit(block, decode_header(block.header), qc, out)

    def _known_block(self, block_hash: bytes) -> BlockData | None:
        """A block with this hash whose contents *we* validated. The signature binds
        only the header hash, so an unvalidated copy may carry other records."""
        for p in self.proposals.values():
            if p.block_hash == block_hash and (p.round, block_hash) in self.validated:
                return p.block
        if self.state.prepared_hash == block_hash:
            return self.state.prepared_block
        return None

    # -- transitions -----------------------------------------------------------

    def _commit(self, block: BlockData, header: Header, qc: QC, out: Ready) -> None:
        assert header.height == self.height and header.prev == self.last_hash
        assert qc.block_hash == header.block_hash
        out.commits.append((block, qc))
        self.committed_height = self.height
        self.last_hash = header.block_hash
        self.turns.record(header.height, header.proposer)
        future = self.future
        self._start_height(PersistedState(self.height + 1))
        out.persist = self.state
        for queue in future.values():
            for msg in queue:
                if msg.height == self.height:
                    self._dispatch_quietly(msg, out)
        # The committed records left the runtime's mempool; it reports the new count
        # with on_records_available after applying the commit. Until then assume none,
        # or we would ask to build a block from records that are already committed.
        self.pending_records = 0

    def _dispatch_quietly(self, msg: Message, out: Ready) -> None:
        try:
            self._dispatch(msg, out)
        except InvalidInput as exc:
            out.dropped.append(exc.code)

    def _move_to_round(self, round_: int, out: Ready) -> None:
        assert round_ > self.round
        self.round = self.state.round = round_
        self.ticks = 0
        self.building = None
        out.persist = self.state
        signed = self._sign(self._round_change(round_), out)
        self._send(signed, out)
        if signed is not None:
            self.round_changes[self.cfg.index] = signed  # type: ignore[assignment]
        self._maybe_repropose(out)

    def _round_change(self, round_: int) -> RoundChange:
        st = self.state
        return RoundChange(
            self.cfg.genesis.chain_id, self.height, round_, st.prepared_round, st.prepared_hash,
            self.cfg.index, b"", st.prepared_cert, st.prepared_block,
        )

    def _justification(self, round_: int) -> tuple[RoundChange, ...] | None:
        rcs = [rc for rc in self.round_changes.values() if rc.round == round_]
        if len(rcs) < self.q:
            return None
        rcs.sort(key=lambda rc: (-rc.prepared_round, rc.sender))
        return tuple(replace(rc, prepared_block=None) for rc in rcs[: self.q])

    def _maybe_repropose(self, out: Ready) -> None:
        if not self.is_primary or self.round == 0 or self.round in self.proposals:
            return
        justification = self._justification(self.round)
        if justification is None:
            return
        prepared_round, prepared_hash, _ = self._choose(justification)
        if prepared_round == NO_ROUND:
            self._maybe_build(out)
            return
        block = self._known_block(prepared_hash)
        if block is None:
            for rc in self.round_changes.values():
                if rc.prepared_hash == prepared_hash and rc.prepared_block is not None:
                    block = rc.prepared_block
        if block is not None:
            self._propose(block, justification, out)

    def _propose(self, block: BlockData, justification: tuple[RoundChange, ...], out: Ready) -> None:
        header = decode_header(block.header)
        assert header.height == self.height and header.prev == self.last_hash
        p = Proposal(self.cfg.genesis.chain_id, self.height, self.round, header.block_hash,
                     self.cfg.index, b"", block, justification)
        signed = self._sign(p, out)
        if signed is None:
            return
        self._send(signed, out)
        self.proposals[self.round] = signed  # type: ignore[assignment]
        self.seen[(self.cfg.index, "proposal", self.round)] = signed
        out.validate.append((self.height, self.round, block))

    def _maybe_build(self, out: Ready) -> None:
        if not self.is_primary or self.round in self.proposals or self.building is not None:
            return
        if self._skipping():
            return  # the others time out at once: a block of ours would come too late
        if self.round == 0 and self.pending_records == 0:
            return
        if self.round > 0:
            justification = self._justification(self.round)
            if justification is None or self._choose(justification)[0] != NO_ROUND:
                return
        self.building = (self.height, self.round)
        out.build = self.building

    def _fetch(self, peer: int, out: Ready) -> None:
        if self.fetching is None and peer != self.cfg.index:
            self.fetching = (peer, 0)
            out.fetch = (peer, self.height)

    def _active(self) -> bool:
        """Is work pending at this height, so that the round timer should run?

        Votes and round changes count only from f + 1 validators (so at least one
        of them honest): a single signed message from a lying validator at an idle
        height must not start our timers and end in an empty block for nothing."""
        if self.pending_records or self.round or self.proposals:
            return True
        senders = {s for table in (self.prepares, self.commits) for votes in table.values() for s in votes}
        senders.update(self.round_changes)
        return len(senders) >= self.f + 1

    def _resend(self, out: Ready) -> None:
        """Re-send what we signed this round (lost messages stall PBFT otherwise).

        A proposal carries the whole block, so it goes again only to replicas
        from which we have neither a prepare nor a commit for it."""
        proposal = self.proposals.get(self.round)
        if proposal is not None and proposal.sender == self.cfg.index:
            key = (self.round, proposal.block_hash)
            heard = set(self.prepares.get(key, {})) | set(self.commits.get(key, {}))
            for peer in range(self.n):
                if peer != self.cfg.index and peer not in heard:
                    out.messages.append((peer, proposal))
        rc = self.round_changes.get(self.cfg.index)
        if rc is not None and rc.round == self.round:
            out.messages.append((None, rc))
        for kind, table in (("prepare", self.prepares), ("commit", self.commits)):
            for (r, _), votes in table.items():
                mine = votes.get(self.cfg.index)
                if mine is not None and r == self.round:
                    out.messages.append((None, mine))
        out.messages.append((None, Status(self.cfg.genesis.chain_id, self.committed_height, self.cfg.index)))

    def snapshot(self) -> dict[str, Any]:
        """Read-only view for status pages and tests."""
        return {"height": self.height, "round": self.round, "primary": self.primary(self.round),
                "prepared_round": self.state.prepared_round, "evidence": len(self.evidence),
                "skipped": sorted(self.suspects)}
