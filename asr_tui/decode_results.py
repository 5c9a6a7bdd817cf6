"""Read what ``asr-decode --output DIR`` wrote: the summary and the worst utterances."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

SUMMARY = "summary.json"
# Per utterance: {"key", "ref", "hyp", "char": {errors, length, ...}, "word": {...}} per line.
PER_UTTERANCE = "utt_scores.jsonl"


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


def _counts(entry: dict) -> tuple[int, int]:
    """(character errors, reference characters) of one utt_scores.jsonl row."""
    chars = entry.get("char") if isinstance(entry.get("char"), dict) else {}
    errors, length = chars.get("errors"), chars.get("length")
    return (errors if isinstance(errors, int) else 0, length if isinstance(length, int) else 0)


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
    per_utt = out_dir / PER_UTTERANCE
    if not per_utt.exists():
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
            errors, units = _counts(entry)
            scores.append(UtteranceScore(key=str(entry.get("key", "")), ref=str(entry.get("ref", "")),
                                         hyp=str(entry.get("hyp", "")), errors=errors, units=units))
    scores.sort(key=lambda s: (s.errors, s.error_rate), reverse=True)
    result.worst = scores[:worst]
    return result
