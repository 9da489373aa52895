"""Governance (docs/protocol.md section 13): gov.propose and gov.approve change who may
sign, by a quorum of the validators.

A validator proposes an action with its arguments and an expiry; other validators
approve it by the proposal's record id. The proposal's signer and its approvers are
counted among the validators of the set certifying the block; the record that brings
the count to Q approves it. Its preconditions are checked again, against the state the
rule sees (the parent's plus every change approved earlier in the block, in log order),
and it is applied at the end of the block: `effects` turns the block's approved changes
into key and dept facts, whose values are exactly the state map's entries, with `from`
/ `until` the block's log size.

Fact (state.BlockState writes it, docs/storage.md lists its key):

  gov/<proposal id>   {"record", "action", "args" (canonical msgpack), "expires",
                       "approvers" (key ids, the proposer first), "applied"}

`validator.add` appends a validator to the set from the next height on, with a key
entry as `key.add` makes (roles `["*"]`); its node, started with the genesis file,
caught up as a follower and votes from that height (docs/governance.md section 3).
`validator.remove` takes a validator out of the set from the next height on; its key's
`until` is the block's log size, and its node keeps following as a non-validator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import codec, crypto, ledgermap
from ..genesis import ID_RE, ROLE_RE, ROLES_MAX, VALIDATOR_NAME_MAX_CHARS, VALIDATORS_MAX, Signer
from .schema import HASH, TIME, Family, Field, Kind, Ledger, RecordType, Update, one_of, violation

if TYPE_CHECKING:
    from ..members import Members
    from ..records import Envelope

GOV = "gov"  # fact kinds
KEY = "key"
DEPT = "dept"
VALIDATORS = "validators"  # one fact, key "": the set certifying the next height
EPOCH = "epoch"  # key: the first height of a set, 20 digits (so key order is height order)
MAP_KINDS = frozenset([KEY, DEPT, VALIDATORS])  # facts that are, value for value, state map entries
ID_MAX_CHARS = 64  # key_id, reason and dept of gov args (docs/protocol.md section 13)
NAME_MAX_CHARS = 1_024
ROLE_MAX_CHARS = 64
ACTION_ARGS: dict[str, tuple[str, ...]] = {
    "key.add": ("dept", "name", "pubkey", "roles"),
    "key.revoke": ("key_id", "reason"),
    "validator.add": ("dept", "name", "pubkey"),
    "validator.remove": ("pubkey",),
}
ACTIONS = tuple(ACTION_ARGS)
VALIDATOR_ROLES = ("*",)  # a validator's key entry (docs/protocol.md section 13: "roles ["*"]")
SET_ACTIONS = frozenset(["validator.add", "validator.remove"])


@dataclass(frozen=True)
class Change:
    """An approved action, applied at the end of its block."""

    action: str
    args: Mapping[str, Any]
    record: str  # hex id of the approving record


# -- stateless: the args of each action ---------------------------------------------------


def _map(value: Any, depts: object) -> str | None:
    return None if isinstance(value, dict) else "must be a map"


ARGS = Kind("args", _map, "a map of the action's arguments")


def _args_problem(action: str, args: dict[str, Any]) -> str | None:
    keys = ACTION_ARGS[action]
    if set(args) != set(keys):
        return f"body.args of {action} must have exactly the keys {', '.join(keys)}"
    for name in ("dept", "key_id", "reason"):
        value = args.get(name)
        if name in args and (not isinstance(value, str) or not 1 <= len(value) <= ID_MAX_CHARS):
            return f"body.args.{name} must be a str of 1 to {ID_MAX_CHARS} chars"
    if "dept" in args and not ID_RE.fullmatch(args["dept"]):
        return "body.args.dept must be a department id (letters, digits, '.', '_', '-')"
    if "name" in args and (not isinstance(args["name"], str) or len(args["name"]) > NAME_MAX_CHARS):
        return f"body.args.name must be a str of at most {NAME_MAX_CHARS} chars"
    if "pubkey" in args:
        pubkey = args["pubkey"]
        if not isinstance(pubkey, bytes):
            return "body.args.pubkey must be 32 bytes"
        problem = crypto.pubkey_problem(pubkey)
        if problem is not None:
            return f"body.args.pubkey {problem}"
    if "roles" in args:
        roles = args["roles"]
        if (not isinstance(roles, list) or not 1 <= len(roles) <= ROLES_MAX or not all(
                isinstance(r, str) and len(r) <= ROLE_MAX_CHARS and ROLE_RE.fullmatch(r)
                for r in roles)):
            return (f"body.args.roles must be 1 to {ROLES_MAX} roles like 'cert.*' or 'cert.issue', "
                    f"each of at most {ROLE_MAX_CHARS} chars")
    return None


def _propose_check(body: dict[str, Any]) -> str | None:
    return _args_problem(body["action"], body["args"])


# -- the rule: state seen, quorum, preconditions ------------------------------------------------


def _precondition(ledger: Ledger, action: str, args: Mapping[str, Any]) -> None:
    if action == "validator.remove":
        members = ledger.members
        if members.validator_set.index_of(args["pubkey"]) is None:
            raise violation("gov.validator_known", "the key is not a validator's of the current set")
        if members.n == 1:
            raise violation("gov.validator_last", "the set would be empty: it keeps at least one validator")
        return
    if action == "validator.add" and ledger.members.n >= VALIDATORS_MAX:
        raise violation("gov.validators_max", f"the set holds {VALIDATORS_MAX} validators already")
    if action == "validator.add" and len(args["name"]) > VALIDATOR_NAME_MAX_CHARS:
        # every epoch of every bundle carries the set: its names are held to the genesis's bound
        raise violation("gov.validator_name", f"a validator's name has at most {VALIDATOR_NAME_MAX_CHARS} chars")
    if action in ("key.add", "validator.add"):
        key_id = crypto.key_id(args["pubkey"])
        if ledger.key(key_id) is not None:
            raise violation("gov.key_new", f"key {key_id} is already registered")
        return
    key = ledger.key(args["key_id"])
    if key is None:
        raise violation("gov.key_known", f"key {args['key_id']} is not registered")
    if key.until is not None:
        raise violation("gov.key_active", f"key {args['key_id']} is already revoked")
    if key.validator is not None:
        raise violation("gov.key_not_validator", f"key {args['key_id']} is a validator's; "
                        "a validator's key leaves only with its validator")


def _validators_among(fact: Mapping[str, Any], members: Members) -> int:
    """How many of a proposal's signers are validators of the set `members` names."""
    return sum(1 for k in fact["approvers"] if (s := members.signers.get(k)) is not None and s.validator is not None)


def _count_and_apply(ledger: Ledger, fact: dict[str, Any], env: Envelope, action: str,
                     args: Mapping[str, Any]) -> dict[str, Any]:
    """Count the validators among the proposal's signers; at Q, approve it by this record."""
    members = ledger.members
    if _validators_among(fact, members) >= members.quorum:
        _precondition(ledger, action, args)
        if action in SET_ACTIONS and ledger.set_changed:  # only the approving record is refused
            raise violation("gov.one_set_change", "this block already approved a change of the validator set")
        ledger.approve(Change(action, args, env.record_id.hex()))
        return {**fact, "applied": True}
    return fact


def _propose(ledger: Ledger, env: Envelope, signer: Signer) -> list[Update]:
    rec = env.record
    body = rec.body
    if ledger.block_time >= body["expires"]:
        raise violation("gov.expires", "the proposal expires before the block time")
    if ledger.fact(GOV, rec.subject) is not None:
        raise violation("gov.subject_unused", f"proposal {rec.subject} was already proposed")
    _precondition(ledger, body["action"], body["args"])
    fact = {"record": env.record_id.hex(), "action": body["action"], "args": codec.encode(body["args"]),
            "expires": body["expires"], "approvers": [signer.pubkey.key_id], "applied": False}
    return [(GOV, rec.subject, _count_and_apply(ledger, fact, env, body["action"], body["args"]))]


def _approve(ledger: Ledger, env: Envelope, signer: Signer) -> list[Update]:
    rec = env.record
    fact = ledger.fact(GOV, rec.subject)
    if fact is None or fact["record"] != rec.body["proposal"].hex():
        raise violation("gov.proposal", f"no proposal {rec.body['proposal'].hex()} about {rec.subject}")
    if ledger.block_time >= fact["expires"]:
        raise violation("gov.expires", f"proposal {rec.subject} has expired")
    if fact["applied"]:
        raise violation("gov.open", f"proposal {rec.subject} was already approved")
    if signer.pubkey.key_id in fact["approvers"]:
        raise violation("gov.approve_once", f"this validator already signed proposal {rec.subject}")
    fact = {**fact, "approvers": [*fact["approvers"], signer.pubkey.key_id]}
    args = codec.decode(fact["args"])
    return [(GOV, rec.subject, _count_and_apply(ledger, fact, env, fact["action"], args))]


PROPOSE = RecordType("gov.propose", (
    Field("action", one_of("action", ACTIONS)), Field("args", ARGS), Field("expires", TIME),
), _propose, body_check=_propose_check, nested=True)
APPROVE = RecordType("gov.approve", (Field("proposal", HASH),), _approve)
FAMILY = Family("gov", (PROPOSE, APPROVE))


# -- applying a block's approved changes -------------------------------------------------------


def epoch_key(since: int) -> str:
    return f"{since:020d}"


def _as_key_change(change: Change) -> Change:
    """What a change does to the keys: a validator.add adds the validator's key, a
    validator.remove revokes it."""
    if change.action == "validator.add":
        return Change("key.add", {**change.args, "roles": list(VALIDATOR_ROLES)}, change.record)
    if change.action == "validator.remove":
        return Change("key.revoke", {"key_id": crypto.key_id(change.args["pubkey"]), "reason": "validator removed"},
                      change.record)
    return change


def seen_key(change: Change, key_of: Callable[[str], Signer | None], set_size: int) -> tuple[str, Signer]:
    """The key a change adds or revokes, as the rules of the rest of its block see it:
    present, and revoked or not (its `from` / `until` are known only at the block's end);
    a validator's, at the index it takes in the set, when a validator.add adds it (so a
    key.revoke later in the block is refused, gov.key_not_validator). `set_size`: the
    parent's set's."""
    joins = change.action == "validator.add"
    change = _as_key_change(change)
    if change.action == "key.add":
        a = change.args
        pubkey = crypto.load_public_key(a["pubkey"])
        return pubkey.key_id, Signer(a["dept"], tuple(a["roles"]), pubkey, set_size if joins else None)
    found = key_of(change.args["key_id"])
    assert found is not None, "a revoke is approved only for a registered key"
    return change.args["key_id"], Signer(found.dept, found.roles, found.pubkey, found.validator,
                                         found.from_leaf, found.until if found.until is not None else 0)


def _set_after(change: Change, members: Members) -> list[tuple[str, str, bytes]]:
    """The set a validator.add or validator.remove leaves (at most one per block, so the
    parent's set is the one it changes)."""
    a = change.args
    if change.action == "validator.add":
        return [*((v.dept, v.name, v.pubkey.raw) for v in members.validators), (a["dept"], a["name"], a["pubkey"])]
    return [(v.dept, v.name, v.pubkey.raw) for v in members.validators if v.pubkey.raw != a["pubkey"]]


def effects(changes: list[Change], log_size: int, height: int, members: Members) -> list[Update]:
    """The key, dept, validators and epoch facts the block's approved changes write, in
    order: a key, dept or validators fact's value is its state map entry (docs/protocol.md
    section 11.5). `members`: who could sign in the parent's state."""
    out: list[Update] = []
    new_depts: set[str] = set()
    written: dict[str, dict[str, Any]] = {}
    for change in changes:
        if change.action in SET_ACTIONS:
            out.append((VALIDATORS, "", ledgermap.validators_entry(_set_after(change, members), height + 1)))
            out.append((EPOCH, epoch_key(height + 1), {"since": height + 1}))
        change = _as_key_change(change)
        a = change.args
        if change.action == "key.add":
            pubkey = crypto.load_public_key(a["pubkey"])
            written[pubkey.key_id] = ledgermap.key_entry(pubkey.raw, a["dept"], a["roles"], log_size, None)
            out.append((KEY, pubkey.key_id, written[pubkey.key_id]))
            if a["dept"] not in members.depts and a["dept"] not in new_depts:
                new_depts.add(a["dept"])
                out.append((DEPT, a["dept"], ledgermap.dept_entry(a["name"], log_size)))
        else:
            key_id = a["key_id"]
            if key_id in written:
                value = written[key_id]
            else:
                found = members.signers.get(key_id)
                assert found is not None, "a revoke is approved only for a registered key"
                value = ledgermap.key_entry(found.pubkey.raw, found.dept, found.roles, found.from_leaf, None)
            written[key_id] = {**value, "until": log_size}
            out.append((KEY, key_id, written[key_id]))
    return out


# -- derived view: the proposals, for operators (GET /v1/governance/proposals) ----------------


def _args_json(args: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.hex() if isinstance(v, bytes) else v for k, v in args.items()}


def proposal_view(subject: str, fact: Mapping[str, Any], members: Members, now_ms: int) -> dict[str, Any]:
    """One proposal as `ledgernode gov list` shows it: who signed, how many more are needed."""
    signed = [{"key_id": k, "dept": members.dept_of(k)} for k in fact["approvers"]]
    validators = _validators_among(fact, members)
    state = "applied" if fact["applied"] else "expired" if now_ms >= fact["expires"] else "open"
    return {"id": subject, "record": fact["record"], "action": fact["action"],
            "args": _args_json(codec.decode(fact["args"])), "expires": fact["expires"], "state": state,
            "approvals": signed, "needed": max(0, members.quorum - validators) if state == "open" else 0}
