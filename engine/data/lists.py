"""FunASR jsonl data lists: reading and checking every entry.

A list line is ``{"key", "source", "source_len", "target", "target_len"}`` (extra fields are
kept). ``source_len`` is FunASR's: 10 ms frames of the audio; ``target_len`` counts words
when the text has a space, else characters. Relative ``source`` paths are taken relative to
the list's directory when the file is there, else to the working directory.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import soundfile
from tqdm import tqdm

from engine.data.report import DataReport

REQUIRED_FIELDS = ("key", "source", "target")
# Checking audio headers is I/O bound: threads overlap the disk waits.
AUDIO_CHECK_THREADS = 8


class DataError(ValueError):
    """A bad data list or entry in strict mode; the message names file, line and key."""


def parse_source_len(value) -> int | None:
    """A list's ``source_len`` as frames, or None when it is not a count (text, negative, true/false)."""
    if isinstance(value, bool):
        return None
    try:
        frames = int(value)
    except (TypeError, ValueError):
        return None
    return frames if frames >= 0 else None


def source_len_of(num_samples: int, sample_rate: int) -> int:
    """FunASR's ``source_len``: the number of 10 ms frames in the audio."""
    return int(num_samples / sample_rate * 100)


def target_len_of(text: str) -> int:
    """FunASR's ``target_len``: words if the text has a space, else characters."""
    return len(text.split()) if " " in text else len(text)


def resolve_source(source: str, list_dir: Path) -> str:
    """Absolute path of an audio file named in a list (relative: to the list's directory first)."""
    path = Path(source).expanduser()
    if path.is_absolute():
        return str(path)
    beside_list = list_dir / path
    if beside_list.exists() or not path.exists():
        return str(beside_list.resolve())
    return str(path.resolve())


def probe_audio(path: str) -> tuple[soundfile._SoundFileInfo | None, str]:
    """Header of an audio file, or (None, why it cannot be read)."""
    if "://" in path:
        return None, "URLs are not supported: the engine works offline, download the audio first"
    if not os.path.exists(path):
        return None, "file not found"
    try:
        info = soundfile.info(path)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        return None, str(error)
    if info.frames <= 0:
        return None, "no audio samples"
    return info, ""


def _iter_lines(path: Path):
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            yield number, raw


def read_jsonl(path, strict: bool = False, check_audio: bool = True, fs: int = 16000,
               progress: bool = False, require_target: bool = True) -> tuple[list[dict], DataReport]:
    """Read a jsonl list; bad entries are skipped and counted (``strict``: raise instead).

    ``require_target=False`` (decoding) keeps entries without a ``target``: they are decoded, not scored.

    With ``check_audio`` every audio header is read: missing or unreadable files are
    reported by key, ``source_len`` is filled in when absent, and the entries that will be
    resampled to ``fs`` or downmixed to mono are counted in the report's notes.
    """
    path = Path(path)
    report = DataReport(name=path.name, sources=[str(path)])
    if not path.is_file():
        raise DataError(f"{path}: data list not found")
    list_dir = path.parent.resolve()

    def problem(reason: str, line: int, key: str | None = None, detail: str = "") -> None:
        if strict:
            where = f"{path}:{line}" + (f" key {key!r}" if key else "")
            raise DataError(f"{where}: {reason}" + (f": {detail}" if detail else ""))
        report.drop(reason, str(path), line, key, detail)

    entries: list[dict] = []
    lines: list[int] = []
    seen: dict[str, int] = {}
    for number, raw in _iter_lines(path):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            problem("not_utf8", number, detail=str(error))
            continue
        if not text.strip():
            continue
        try:
            entry = json.loads(text)
        except json.JSONDecodeError as error:
            problem("malformed_json", number, detail=error.msg)
            continue
        if not isinstance(entry, dict):
            problem("malformed_json", number, detail="a line must be a JSON object")
            continue
        missing = [name for name in REQUIRED_FIELDS if name not in entry and (require_target or name != "target")]
        if missing:
            problem("missing_field", number, entry.get("key"), f"missing {', '.join(missing)}")
            continue
        key = str(entry["key"])
        if key in seen:
            problem("duplicate_key", number, key, f"first seen on line {seen[key]}")
            continue
        seen[key] = number
        target = entry.get("target")
        if "target" in entry:  # always there unless require_target is off
            if not isinstance(target, str):
                problem("bad_field", number, key, f"target must be a string, got {type(target).__name__}")
                continue
            if not target.strip():
                problem("empty_text", number, key)
                continue
        if "source_len" in entry:
            source_len = parse_source_len(entry["source_len"])
            if source_len is None:
                problem("bad_field", number, key,
                        f"source_len must be a whole number of frames ≥ 0, got {entry['source_len']!r}")
                continue
            entry["source_len"] = source_len
        entry["key"] = key
        entry["source"] = resolve_source(str(entry["source"]), list_dir)
        if "target" in entry:
            entry["target"] = target.strip()
            entry.setdefault("target_len", target_len_of(entry["target"]))
        entries.append(entry)
        lines.append(number)

    if check_audio:
        entries, lines = _check_audio(entries, lines, fs, problem, report, progress)
    else:
        for entry in entries:
            if "source_len" not in entry:
                raise DataError(f"{path}: key {entry['key']!r} has no source_len (check_audio=False needs it)")

    report.utterances = len(entries)
    report.seconds = sum(int(e["source_len"]) for e in entries) / 100.0
    return entries, report


def _check_audio(entries, lines, fs, problem, report, progress):
    with ThreadPoolExecutor(AUDIO_CHECK_THREADS) as pool:
        infos = list(tqdm(pool.map(probe_audio, (e["source"] for e in entries)), total=len(entries),
                          desc="checking audio", unit="utt", disable=not progress, leave=False))
    kept, kept_lines = [], []
    resampled: dict[int, int] = {}
    downmixed = 0
    for entry, number, (info, why) in zip(entries, lines, infos):
        if info is None:
            reason = "missing_audio" if why == "file not found" else "unreadable_audio"
            problem(reason, number, entry["key"], f"{entry['source']}: {why}")
            continue
        entry["source_len"] = int(entry.get("source_len") or source_len_of(info.frames, info.samplerate))
        if info.samplerate != fs:
            resampled[info.samplerate] = resampled.get(info.samplerate, 0) + 1
        if info.channels > 1:
            downmixed += 1
        kept.append(entry)
        kept_lines.append(number)
    for rate, count in sorted(resampled.items()):
        report.note(f"resampled {rate} Hz -> {fs} Hz", count)
    if downmixed:
        report.note("downmixed to mono", downmixed)
    return kept, kept_lines
