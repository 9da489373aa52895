"""Who may read what when a node's reads are authenticated (docs/security.md section 9).

A reader is a registered key not revoked at the head: a genesis client or validator, or one
that `key.add` registered. Each read names the right it needs:

- any registered key: blocks, checkpoints, consistency proofs, certificates' status,
  governance proposals, equivocation proofs, records and answers that hold no record about
  a sensitive dataset;
- a record about a `sensitive` dataset (its dataset.publish, share.grant, share.revoke,
  share.access): the owning department, a department holding a grant of it neither
  revoked nor expired at the head block's time,
  the department that signed that record, and keys with the role `audit.read` (named
  exactly: a wildcard role such as "*" lets a key write every type, not read everything);
- an evidence bundle (and the printable certificate that embeds one): the department that
  signed the record or one its body names (a `dept` field such as share.grant's
  to_dept), or an `audit.read` key; for a record about a sensitive dataset the rule above
  as well.

A block holds every record of its height: a record the reader may not see is withheld
from the block's answer (its envelope replaced by null and its index listed), which
leaves the header and QC as they are. A dataset's classification is its latest publish's,
kept in the owner fact (families/dataset.py); an owner fact of before, which has neither,
counts as sensitive with no grantee.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from .families import TYPES, dataset
from .families.schema import DEPT
from .members import Members
from .records import Envelope

AUDIT_READ = "audit.read"
DATASET_TYPES = frozenset(t.name for t in dataset.FAMILY.types)


@dataclass(frozen=True)
class Reader:
    key_id: str
    dept: str
    roles: tuple[str, ...]
    via: str  # "signature" or "tls"

    @property
    def audits(self) -> bool:
        return AUDIT_READ in self.roles


class Denied(Exception):
    """A registered key without the right a read needs (403, naming the right)."""

    def __init__(self, right: str, message: str) -> None:
        super().__init__(message)
        self.right, self.message = right, message


def reader_of(members: Members, key_id: str, log_size: int, via: str) -> Reader | None:
    """The reader a key id names, if it is registered and not revoked at the head."""
    signer = members.signers.get(key_id)
    if signer is None or (signer.until is not None and signer.until <= log_size):
        return None
    return Reader(key_id, signer.dept, signer.roles, via)


class Facts(Protocol):
    """What the rules read of the ledger: owner facts (the Store's load_fact)."""

    def load_fact(self, kind: str, key: str) -> dict[str, Any] | None: ...


def _dataset_readers(owner: dict[str, Any] | None, now_ms: int) -> set[str] | None:
    """The owner and the live grantees of a dataset, from its owner fact, if it is sensitive
    (an owner fact of before, or none yet, counts as sensitive); None if it is not. `now_ms`:
    the head block's time, which a grant's `expires` must be after (as the ledger judges
    share.access)."""
    if owner is None:
        return set()
    if owner.get("classification", "sensitive") != "sensitive":
        return None
    live = {d for d, grants in owner.get("grantees", {}).items() if any(e > now_ms for e in grants.values())}
    return {owner["dept"], *live}


def sensitive_readers(env: Envelope, facts: Facts, members: Members, now_ms: int) -> frozenset[str] | None:
    """The departments that may read `env` if it is about a sensitive dataset; None if it
    is not about one (any registered key may read it)."""
    if env.record.type not in DATASET_TYPES:
        return None
    depts = _dataset_readers(facts.load_fact(dataset.OWNER, env.record.subject), now_ms)
    if depts is None:
        return None
    signer = members.dept_of(env.record.key)
    if signer is not None:
        depts.add(signer)
    return frozenset(depts)


def admitted(reader: Reader, readers: frozenset[str] | None) -> bool:
    """May `reader` see a record whose `sensitive_readers` are `readers`?"""
    return readers is None or reader.dept in readers or reader.audits


def check_records(reader: Reader, envs: Iterable[Envelope], facts: Facts, members: Members, now_ms: int) -> None:
    """Denied unless the reader may see every one of `envs`."""
    for env in envs:
        if not admitted(reader, sensitive_readers(env, facts, members, now_ms)):
            raise Denied(f"dataset:{env.record.subject}",
                         f"record {env.record_id.hex()} is about the sensitive dataset {env.record.subject}: "
                         f"only its owner, the departments it is granted to and {AUDIT_READ} keys may read it "
                         f"(this key is of {reader.dept})")


def check_subject(reader: Reader, subject: str, facts: Facts, now_ms: int) -> None:
    """Before an answer about `subject` is built: if it is a sensitive dataset, Denied unless
    the reader is of its owner, of a live grantee, or audits (its page, its count and its
    shares would say what its records say)."""
    owner = facts.load_fact(dataset.OWNER, subject)
    if owner is None:
        return  # no dataset of that name: the subject is something else (a certificate, a case)
    depts = _dataset_readers(owner, now_ms)
    if depts is not None and reader.dept not in depts and not reader.audits:
        raise Denied(f"dataset:{subject}", f"{subject} is a sensitive dataset: only its owner, the departments it is "
                     f"granted to and {AUDIT_READ} keys may read about it (this key is of {reader.dept})")


def check_answer(reader: Reader, envs: Iterable[Envelope], facts: Facts, members: Members, now_ms: int) -> None:
    """Denied unless the reader may see every record of an answer; the refusal names no
    record or dataset (the reader asked about something else, a record or a certificate)."""
    try:
        check_records(reader, envs, facts, members, now_ms)
    except Denied:
        raise Denied("answer", "this answer holds a record about a sensitive dataset that this key may not read; "
                     f"ask with a key of a department it is granted to, or an {AUDIT_READ} key") from None


def visible(reader: Reader, env: Envelope, facts: Facts, members: Members, now_ms: int) -> bool:
    return admitted(reader, sensitive_readers(env, facts, members, now_ms))


def parties(env: Envelope, members: Members) -> frozenset[str]:
    """The department that signed `env` and those its body names."""
    named = {env.record.body[f.name] for f in TYPES[env.record.type].fields
             if f.kind is DEPT and isinstance(env.record.body.get(f.name), str)}
    signer = members.dept_of(env.record.key)
    return frozenset(named | ({signer} if signer is not None else set()))


def check_bundle(reader: Reader, env: Envelope, facts: Facts, members: Members, now_ms: int) -> None:
    """Denied unless the reader may have the evidence bundle of `env`."""
    check_records(reader, [env], facts, members, now_ms)
    if reader.audits or reader.dept in parties(env, members):
        return
    raise Denied("party", f"the evidence bundle of record {env.record_id.hex()} is for the departments that "
                 f"signed it or are named in it ({', '.join(sorted(parties(env, members)))}) and {AUDIT_READ} "
                 f"keys; this key is of {reader.dept}")
