"""DataReport: what a data list held, and every entry that was dropped or changed, by reason.

Nothing in the data pipeline is dropped silently: each stage adds its counts here, the CLIs
print :meth:`DataReport.format`, and the trainer logs :meth:`DataReport.to_event` as the
``data`` event of events.jsonl.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# Problems listed one by one before the report only gives counts (a broken list with a
# million bad lines must not flood the terminal or the event log).
MAX_LISTED_PROBLEMS = 200


@dataclass
class Problem:
    """One bad entry: why it was dropped, and where it came from (file, line, key)."""

    reason: str
    path: str
    line: int | None = None
    key: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        key = f" key {self.key!r}" if self.key else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{where}{key}: {self.reason}{detail}"

    def to_dict(self) -> dict:
        return {"reason": self.reason, "path": self.path, "line": self.line, "key": self.key, "detail": self.detail}


@dataclass
class DataReport:
    """Counts for one or more lists: kept utterances and hours, dropped entries by reason.

    ``notes`` counts entries that were kept but changed on the way (resampled, downmixed,
    text with tokens outside the vocabulary), so that they too are visible.
    """

    name: str = ""
    utterances: int = 0
    seconds: float = 0.0
    dropped: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    # texts/tokens outside the tokenizer's vocabulary ({"texts", "of_texts", "tokens", "of_tokens"})
    oov: dict = field(default_factory=dict)

    @property
    def hours(self) -> float:
        return self.seconds / 3600.0

    @property
    def num_dropped(self) -> int:
        return sum(self.dropped.values())

    def drop(self, reason: str, path: str, line: int | None = None, key: str | None = None, detail: str = "") -> None:
        self.dropped[reason] += 1
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append(Problem(reason, str(path), line, key, detail))

    def note(self, what: str, count: int = 1) -> None:
        self.notes[what] += count

    def merge(self, other: "DataReport") -> "DataReport":
        """Add ``other``'s counts into this report (several lists read as one training set)."""
        self.utterances += other.utterances
        self.seconds += other.seconds
        self.dropped.update(other.dropped)
        self.notes.update(other.notes)
        room = MAX_LISTED_PROBLEMS - len(self.problems)
        self.problems.extend(other.problems[: max(room, 0)])
        self.sources.extend(s for s in other.sources if s not in self.sources)
        return self

    def to_event(self) -> dict:
        """Fields of the ``data`` event (DESIGN.md): utterances, hours, dropped by reason."""
        return {
            "name": self.name,
            "lists": list(self.sources),
            "utterances": self.utterances,
            "hours": round(self.hours, 4),
            "dropped": dict(self.dropped),
            "num_dropped": self.num_dropped,
            "notes": dict(self.notes),
            "problems": [p.to_dict() for p in self.problems[:20]],
            **({"oov": dict(self.oov)} if self.oov else {}),
        }

    def format(self, list_problems: bool = True) -> str:
        """Human text: one line per problem (up to the cap), then the counts."""
        lines = []
        if list_problems:
            lines.extend(str(p) for p in self.problems)
            hidden = self.num_dropped - len(self.problems)
            if hidden > 0:
                lines.append(f"... and {hidden} more problems (counted below)")
        title = self.name or ", ".join(self.sources) or "data"
        lines.append(f"{title}: {self.utterances} utterances, {self.hours:.3f} h kept, {self.num_dropped} dropped")
        for reason, count in sorted(self.dropped.items()):
            lines.append(f"  dropped {reason}: {count}")
        for what, count in sorted(self.notes.items()):
            lines.append(f"  {what}: {count}")
        return "\n".join(lines)
