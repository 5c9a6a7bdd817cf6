"""Error rates: CER and WER with substitution / deletion / insertion counts.

What is counted (also written into summary.json by :func:`scoring_conventions`):

* Both sides are first normalised by :class:`TextNormalizer` (its options are recorded).
* **CER** units are the characters of the normalised text without whitespace: each CJK
  character is one unit, and so is each letter or digit of an English word. Spaces are not
  units, so "a b" vs "ab" is no error (word boundaries are the WER's business).
* **WER** units are words, with each CJK character taken as one word (Chinese has no spaces
  to delimit words; this is the "mixed error rate" FunASR and WeNet report for code-switched
  text). On pure Chinese WER therefore equals CER; on pure English it is the usual WER.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from engine.data.tokenizer import split_units

APOSTROPHES = "'’"


class TextNormalizer:
    """Explicit, recorded text normalisation applied to references and hypotheses alike."""

    def __init__(self, lowercase: bool = True, remove_punctuation: bool = True, nfkc: bool = True):
        self.lowercase = lowercase
        self.remove_punctuation = remove_punctuation
        self.nfkc = nfkc

    @property
    def options(self) -> dict:
        return {"lowercase": self.lowercase, "remove_punctuation": self.remove_punctuation, "nfkc": self.nfkc}

    def __call__(self, text: str) -> str:
        if self.nfkc:  # full-width letters and digits -> ASCII, compatibility forms unified
            text = unicodedata.normalize("NFKC", text)
        if self.lowercase:
            text = text.lower()
        if self.remove_punctuation:
            text = self._strip_punctuation(text)
        return " ".join(text.split())

    @staticmethod
    def _strip_punctuation(text: str) -> str:
        """Unicode punctuation (categories P*) becomes a space, except an apostrophe inside a
        word ("don't" stays one word)."""
        chars = []
        for index, char in enumerate(text):
            if unicodedata.category(char).startswith("P"):
                inside_word = (char in APOSTROPHES and 0 < index < len(text) - 1
                               and text[index - 1].isalnum() and text[index + 1].isalnum())
                chars.append("'" if inside_word else " ")
            else:
                chars.append(char)
        return "".join(chars)


def char_units(text: str) -> list[str]:
    """CER units: every non-whitespace character."""
    return [char for char in text if not char.isspace()]


def word_units(text: str) -> list[str]:
    """WER units: whitespace-separated words, each CJK character a word of its own."""
    return split_units(text)


UNITS = {"char": char_units, "word": word_units}


@dataclass
class ErrorCounts:
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    ref_length: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float | None:
        """errors / reference units; None when there is no reference unit to count against."""
        return self.errors / self.ref_length if self.ref_length else (0.0 if self.errors == 0 else None)

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(self.substitutions + other.substitutions, self.deletions + other.deletions,
                           self.insertions + other.insertions, self.ref_length + other.ref_length)

    def to_dict(self) -> dict:
        return {"substitutions": self.substitutions, "deletions": self.deletions, "insertions": self.insertions,
                "errors": self.errors, "length": self.ref_length, "rate": self.rate}


def align_counts(ref: list[str], hyp: list[str]) -> ErrorCounts:
    """Levenshtein alignment of two unit sequences, counted as S, D and I.

    Written by hand because torchaudio.functional.edit_distance returns only the total
    distance; the split into substitutions, deletions and insertions needs the backtrace.
    Ties on the way back prefer a match/substitution, then a deletion, then an insertion
    (sclite's order), so the total always equals the edit distance.
    """
    rows, cols = len(ref) + 1, len(hyp) + 1
    cost = [list(range(cols))] + [[i] + [0] * (cols - 1) for i in range(1, rows)]
    for i in range(1, rows):
        above, here, r = cost[i - 1], cost[i], ref[i - 1]
        for j in range(1, cols):
            diagonal = above[j - 1] + (r != hyp[j - 1])
            here[j] = min(diagonal, above[j] + 1, here[j - 1] + 1)
    counts = ErrorCounts(ref_length=len(ref))
    i, j = len(ref), len(hyp)
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            counts.substitutions += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            counts.deletions += 1
            i -= 1
        else:
            counts.insertions += 1
            j -= 1
    return counts


def error_counts(ref: str, hyp: str, unit: str = "char", normalizer: TextNormalizer | None = None) -> ErrorCounts:
    """S/D/I of ``hyp`` against ``ref`` in ``unit`` ("char" for CER, "word" for WER)."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
    if normalizer is not None:
        ref, hyp = normalizer(ref), normalizer(hyp)
    split = UNITS[unit]
    return align_counts(split(ref), split(hyp))


def scoring_conventions(normalizer: TextNormalizer) -> dict:
    """How the numbers in a summary were counted, stored beside them."""
    return {
        "normalization": normalizer.options,
        "cer_units": "characters of the normalised text, whitespace excluded; each CJK character one unit",
        "wer_units": "whitespace-separated words; each CJK character counts as one word",
    }
