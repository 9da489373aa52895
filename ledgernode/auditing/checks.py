"""The one check runner of the offline verifier, and the failure every check raises.

A verification is a list of named checks run in order; the first that fails ends
it (docs/protocol.md section 9). Each check adds {"check", "zh", "en", "ok"} to
the verdict's `checks`, a failed one also its `error` (the reason, in plain
Chinese / English, then the technical detail) and `part` (the part of the file
that failed, docs/verification.md section 5), so a program and a person read the
same verdict. What a check learns goes into the verdict's `facts`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import InvalidInput


class CheckFailed(Exception):
    """A failed check. `part` names the part of the file that failed (docs/verification.md
    section 5); `message` says what failed in plain Chinese / English, then the detail."""

    def __init__(self, part: str, zh: str, en: str, detail: str = "") -> None:
        self.part, self.zh, self.en, self.detail = part, zh, en, detail
        self.message = f"{zh} / {en}" + (f" — 细节 detail: {detail}" if detail else "")
        super().__init__(self.message)

    def within(self, zh: str, en: str) -> CheckFailed:
        """The same failure, said of one item of several, e.g. ("第 2 条记录", "record 2 of 5")."""
        return CheckFailed(self.part, f"{zh}：{self.zh}", f"{en}: {self.en}", self.detail)


@dataclass(frozen=True)
class Where:
    """What a reason is about, e.g. ("区块", "the block") or ("旧检查点", "the old checkpoint")."""

    zh: str
    en: str


RECORD = Where("记录", "the record")
BLOCK = Where("区块", "the block")
CHECKPOINT = Where("检查点", "the checkpoint")


@dataclass
class Verdict:
    valid: bool = False
    checks: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"valid": self.valid, "checks": self.checks, "facts": self.facts}


Step = tuple[str, str, str, Callable[[], None]]


def run_checks(verdict: Verdict, steps: Sequence[Step]) -> bool:
    """Run (name, zh, en, check) steps in order into `verdict`, stopping at the first failure."""
    for name, zh, en, step in steps:
        entry: dict[str, Any] = {"check": name, "zh": zh, "en": en, "ok": False}
        verdict.checks.append(entry)
        try:
            try:
                step()
            except InvalidInput as exc:
                # A rule of the codec, records or blocks that no check names in plain
                # words: still a failed check with its detail, never a traceback.
                raise CheckFailed(name, f"{zh}：未通过", f"{en}: failed", exc.message) from None
        except CheckFailed as exc:
            entry.update(error=exc.message, part=exc.part)
            return False
        entry["ok"] = True
    verdict.valid = True
    return True


class Checks:
    """One verification of one document. A subclass names its checks in LABELS (name ->
    (zh, en), in the order they run) and implements `check_<name>` for each; the checks keep
    what later checks need on `self` and what the verdict states in `facts`."""

    LABELS: ClassVar[dict[str, tuple[str, str]]]

    def __init__(self) -> None:
        self.verdict = Verdict()

    @property
    def facts(self) -> dict[str, Any]:
        return self.verdict.facts

    def names(self) -> list[str]:
        """The checks this document needs, in order: all of LABELS unless a subclass says less."""
        return list(self.LABELS)

    def conclude(self) -> dict[str, Any]:
        """The facts a valid verdict adds once every check passed (its claim, first of all)."""
        return {}

    def run(self) -> Verdict:
        steps: list[Step] = []
        for name in self.names():
            zh, en = self.LABELS[name]
            steps.append((name, zh, en, getattr(self, f"check_{name}")))
        if run_checks(self.verdict, steps):
            self.facts.update(self.conclude())
        return self.verdict


def clean(text: Any) -> str:
    """`text` for one line of a terminal: control characters (a record's subject or body is
    untrusted, and a newline in it could fake a verdict line) shown as a \\u escape (four hex digits)."""
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in str(text))


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
