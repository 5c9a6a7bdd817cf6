"""Read what ``asr-decode --output DIR`` wrote: the summary and the worst utterances."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

SUMMARY = "summary.json"
# Per-utterance scores: one JSON object per line (key, ref, hyp and edit counts).
PER_UTTERANCE = ("utterances.jsonl", "per_utt.jsonl", "results.jsonl")


class DecodeResultError(ValueError):
    """The decode output is missing or unreadable; the message names the file."""


@dataclass
class UtteranceScore:
    key: str
    ref: str
    hyp: str
    errors: int
    units: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.units if self.units else float(self.errors > 0)


@dataclass
class DecodeResult:
    out_dir: Path
    summary: dict
    worst: list[UtteranceScore] = field(default_factory=list)
    skipped_lines: int = 0


def _errors(entry: dict) -> int:
    for key in ("errors", "edits", "char_errors", "cer_errors"):
        if isinstance(entry.get(key), int):
            return entry[key]
    return sum(int(entry.get(k, 0) or 0) for k in ("substitutions", "deletions", "insertions"))


def _units(entry: dict) -> int:
    for key in ("units", "ref_units", "ref_len", "length", "chars"):
        if isinstance(entry.get(key), int):
            return entry[key]
    return len(str(entry.get("ref", entry.get("reference", ""))).replace(" ", ""))


def read_decode_result(out_dir: Path, worst: int = 20) -> DecodeResult:
    out_dir = Path(out_dir)
    path = out_dir / SUMMARY
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DecodeResultError(f"{path}: no summary (did the decode finish?)") from None
    except (OSError, ValueError) as exc:
        raise DecodeResultError(f"{path}: unreadable ({exc})") from None
    if not isinstance(summary, dict):
        raise DecodeResultError(f"{path}: expected a JSON object")
    result = DecodeResult(out_dir=out_dir, summary=summary)
    per_utt = next((out_dir / name for name in PER_UTTERANCE if (out_dir / name).exists()), None)
    if per_utt is None:
        return result
    scores = []
    with open(per_utt, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                result.skipped_lines += 1
                continue
            if not isinstance(entry, dict):
                result.skipped_lines += 1
                continue
            scores.append(UtteranceScore(
                key=str(entry.get("key", "")),
                ref=str(entry.get("ref", entry.get("reference", ""))),
                hyp=str(entry.get("hyp", entry.get("hypothesis", entry.get("text", "")))),
                errors=_errors(entry), units=_units(entry),
            ))
    scores.sort(key=lambda s: (s.errors, s.error_rate), reverse=True)
    result.worst = scores[:worst]
    return result
