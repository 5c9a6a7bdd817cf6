"""What ``asr-decode`` and ``AutoModel`` accept as input: a jsonl list, a Kaldi wav.scp, audio files.

Every form becomes entries ``{"key", "source", "source_len", "target"?}`` plus a DataReport of
what was dropped and why; nothing is skipped without being counted.
"""

from __future__ import annotations

from pathlib import Path

from engine.data.lists import DataError, probe_audio, read_jsonl, resolve_source, source_len_of
from engine.data.report import DataReport


def read_text_map(path) -> dict[str, str]:
    """Kaldi ``text``: "key transcript" per line (references for a wav.scp)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: reference text file not found")
    refs: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        key, _, text = line.strip().partition(" ")
        if key in refs:
            raise DataError(f"{path}:{number}: duplicate key {key!r}")
        refs[key] = text.strip()
    return refs


def _audio_entries(pairs: list[tuple[str, str, int | None]], report: DataReport, source_name: str) -> list[dict]:
    """(key, path, line) -> entries for readable audio; the rest counted in ``report``."""
    entries = []
    seen: dict[str, int | None] = {}
    for key, path, line in pairs:
        if key in seen:
            report.drop("duplicate_key", source_name, line, key, f"first seen on line {seen[key]}")
            continue
        seen[key] = line
        info, why = probe_audio(path)
        if info is None:
            reason = "missing_audio" if why == "file not found" else "unreadable_audio"
            report.drop(reason, source_name, line, key, f"{path}: {why}")
            continue
        entries.append({"key": key, "source": path, "source_len": source_len_of(info.frames, info.samplerate)})
    report.utterances = len(entries)
    report.seconds = sum(e["source_len"] for e in entries) / 100.0
    return entries


def read_wav_scp(path) -> tuple[list[dict], DataReport]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: wav.scp not found")
    report = DataReport(name=path.name, sources=[str(path)])
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        key, _, audio = line.strip().partition(" ")
        if not audio.strip():
            report.drop("missing_field", str(path), number, key, "no audio path after the key")
            continue
        pairs.append((key, resolve_source(audio.strip(), path.parent.resolve()), number))
    return _audio_entries(pairs, report, str(path)), report


def read_audio_paths(paths: list) -> tuple[list[dict], DataReport]:
    """Audio files named directly; the key is the file name without its extension."""
    report = DataReport(name="audio files", sources=[str(p) for p in paths])
    pairs = [(Path(p).stem, str(Path(p).expanduser().resolve()), index) for index, p in enumerate(paths, start=1)]
    return _audio_entries(pairs, report, "input"), report


def read_inputs(source, text=None, progress: bool = False) -> tuple[list[dict], DataReport]:
    """Entries of a jsonl list, a wav.scp (``text``: optional Kaldi references), one audio file,
    or a Python list of audio paths."""
    if isinstance(source, (list, tuple)):
        entries, report = read_audio_paths(list(source))
    else:
        path = Path(source)
        if not path.exists():
            raise DataError(f"{path}: input not found")
        if path.suffix == ".jsonl":
            entries, report = read_jsonl(path, progress=progress, require_target=False)
        elif path.suffix == ".scp" or path.name == "wav.scp":
            entries, report = read_wav_scp(path)
        else:
            entries, report = read_audio_paths([path])
    if text is not None:
        refs = read_text_map(text)
        for entry in entries:
            if entry["key"] in refs:
                entry["target"] = refs[entry["key"]]
        unmatched = sum(1 for entry in entries if "target" not in entry)
        if unmatched:
            report.note(f"no reference in {text}", unmatched)
    return entries, report
