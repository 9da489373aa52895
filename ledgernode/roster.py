"""Which peer link each validator index is, height by height (docs/governance.md section 6).

Consensus messages name their sender by its index in the validator set of their
height; the peer links are named by link ids (net/book.py), one per public key. A
set may hold keys the genesis does not (`validator.add`), and indexes shift when a
validator leaves. `Roster` keeps the current set and the one before it, with the
heights they certify from, and translates between the two kinds of name: a message
of the height just decided may still be sent or arrive after the set changed.

Runtime messages (`FetchBlocks`, `Blocks`) are named by the link they came on; a
Status, unsigned, is renamed by the receiver to the index its link has at the
receiver's height (node.py), so a node that has not committed a change yet still
hears who is ahead and fetches the change.
"""

from __future__ import annotations

from typing import Any

from .consensus import Commit, Prepare, Proposal, RoundChange, Status
from .members import ValidatorSet
from .net.book import Book

SETS_KEPT = 2  # the current set and the one before it


class Roster:
    def __init__(self, book: Book, current: ValidatorSet, since: int) -> None:
        self.book = book
        book.name_all(k.raw for k in current.keys)
        self.sets: list[tuple[int, ValidatorSet]] = [(since, current)]  # (first height, set), oldest first

    @property
    def current(self) -> ValidatorSet:
        return self.sets[-1][1]

    def changed(self, since: int, validators: ValidatorSet) -> None:
        """A committed block hands heights from `since` on to `validators`; its keys get link ids."""
        assert since > self.sets[-1][0], "sets change at increasing heights"
        self.book.name_all(k.raw for k in validators.keys)
        self.sets = [*self.sets, (since, validators)][-SETS_KEPT:]

    def set_at(self, height: int) -> ValidatorSet:
        """The set of `height`; for a height older than those kept, the oldest kept."""
        return next((s for first, s in reversed(self.sets) if first <= height), self.sets[0][1])

    def link(self, index: int, height: int) -> int | None:
        """The link of validator `index` of the set of `height` (None: no such validator)."""
        vset = self.set_at(height)
        return self.book.get(vset.keys[index].raw) if 0 <= index < vset.n else None

    def sender(self, link: int, height: int) -> int | None:
        """The index the validator at `link` has in the set of `height` (None: not in it)."""
        if not self.book.known(link):
            return None
        return self.set_at(height).index_of(self.book.key(link).raw)

    def admits(self, pubkey: bytes) -> bool:
        """May a node of this key link to us? Any validator of the sets kept."""
        return any(vset.index_of(pubkey) is not None for _, vset in self.sets)


def message_height(msg: Any) -> int:
    """The height whose set names a consensus message's sender: a Status tells the
    height its sender committed, so it is sent from the next one."""
    return msg.height + 1 if isinstance(msg, Status) else msg.height


def is_consensus(msg: Any) -> bool:
    """Does `msg` name its sender by validator index (not by link)?"""
    return isinstance(msg, (Proposal, Prepare, Commit, RoundChange, Status))
