"""Kaldi-style tables (wav.scp, text) to FunASR jsonl lists and back."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from engine.data.lists import (AUDIO_CHECK_THREADS, DataError, parse_source_len, probe_audio, source_len_of,
                               target_len_of)
from engine.data.report import DataReport
from engine.utils.fileio import atomic_write_text


def read_table(path, report: DataReport, strict: bool = False) -> dict[str, tuple[str, int]]:
    """``key value`` lines -> {key: (value, line)}, in file order; bad lines reported by line."""
    path = Path(path)
    table: dict[str, tuple[str, int]] = {}

    def problem(reason: str, line: int, key: str | None = None, detail: str = "") -> None:
        if strict:
            raise DataError(f"{path}:{line}" + (f" key {key!r}" if key else "") + f": {reason}"
                            + (f": {detail}" if detail else ""))
        report.drop(reason, str(path), line, key, detail)

    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as error:
                problem("not_utf8", number, detail=str(error))
                continue
            if not line:
                continue
            key, _, value = line.partition(" ") if " " in line else line.partition("\t")
            value = value.strip()
            if key in table:
                problem("duplicate_key", number, key, f"first seen on line {table[key][1]}")
                continue
            if not value:
                problem("empty_value", number, key)
                continue
            table[key] = (value, number)
    return table


def scp_to_jsonl(scp_files: list, data_types: list[str], jsonl_out, strict: bool = False,
                 progress: bool = True) -> DataReport:
    """FunASR's scp2jsonl: join the tables on key (first table's order), add source_len and target_len."""
    if len(scp_files) != len(data_types):
        raise DataError(f"scp_file_list has {len(scp_files)} files but data_type_list {len(data_types)} types")
    report = DataReport(name=Path(jsonl_out).name, sources=[str(p) for p in scp_files])
    tables = [read_table(path, report, strict) for path in scp_files]
    keys = list(tables[0])
    for table in tables[1:]:
        keys.extend(k for k in table if k not in tables[0])
    joined = []
    for key in keys:
        missing = [str(p) for p, t in zip(scp_files, tables) if key not in t]
        if missing:
            present = next((p, t) for p, t in zip(scp_files, tables) if key in t)
            detail = f"missing from {', '.join(missing)}"
            if strict:
                raise DataError(f"{present[0]}:{present[1][key][1]} key {key!r}: key_in_one_list: {detail}")
            report.drop("key_in_one_list", str(present[0]), present[1][key][1], key, detail)
            continue
        joined.append({"key": key, **{name: table[key][0] for name, table in zip(data_types, tables)}})
    if "source" in data_types:
        joined = _add_source_len(joined, scp_files[data_types.index("source")], tables[data_types.index("source")],
                                 report, strict, progress)
    if "target" in data_types:
        for entry in joined:
            entry["target_len"] = target_len_of(entry["target"])
    report.utterances = len(joined)
    report.seconds = sum(e.get("source_len", 0) for e in joined) / 100.0
    atomic_write_text(jsonl_out, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in joined))
    return report


def _resolve(value: str, scp_dir: Path) -> str:
    path = Path(value).expanduser()
    if path.is_absolute() or "://" in value:
        return value
    if path.exists():
        return str(path.resolve())
    return str((scp_dir / path).resolve())


def _add_source_len(joined, scp_path, table, report, strict, progress):
    scp_dir = Path(scp_path).resolve().parent
    for entry in joined:
        entry["source"] = _resolve(entry["source"], scp_dir)
    with ThreadPoolExecutor(AUDIO_CHECK_THREADS) as pool:
        infos = list(tqdm(pool.map(probe_audio, (e["source"] for e in joined)), total=len(joined),
                          desc="reading audio headers", unit="file", disable=not progress))
    kept = []
    for entry, (info, why) in zip(joined, infos):
        if info is None:
            reason = "missing_audio" if why == "file not found" else "unreadable_audio"
            line = table[entry["key"]][1]
            if strict:
                raise DataError(f"{scp_path}:{line} key {entry['key']!r}: {reason}: {entry['source']}: {why}")
            report.drop(reason, str(scp_path), line, entry["key"], f"{entry['source']}: {why}")
            continue
        ordered = {"key": entry["key"], "source": entry["source"],
                   "source_len": source_len_of(info.frames, info.samplerate)}
        ordered.update((k, v) for k, v in entry.items() if k not in ordered)
        kept.append(ordered)
    return kept


def jsonl_to_scp(jsonl_in, scp_files: list, data_types: list[str], strict: bool = False) -> DataReport:
    """FunASR's jsonl2scp: one ``key value`` table per data type, in the list's order."""
    if len(scp_files) != len(data_types):
        raise DataError(f"scp_file_list has {len(scp_files)} files but data_type_list {len(data_types)} types")
    jsonl_in = Path(jsonl_in)
    if not jsonl_in.is_file():
        raise DataError(f"{jsonl_in}: data list not found")
    report = DataReport(name=jsonl_in.name, sources=[str(jsonl_in)])
    rows: list[list[str]] = [[] for _ in data_types]
    seen: set[str] = set()
    seconds = 0.0
    with open(jsonl_in, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            reason, detail, entry = "", "", None
            try:
                text = raw.decode("utf-8")
                if not text.strip():
                    continue
                entry = json.loads(text)
                if not isinstance(entry, dict):
                    reason, detail = "malformed_json", "a line must be a JSON object"
            except UnicodeDecodeError as error:
                reason, detail = "not_utf8", str(error)
            except json.JSONDecodeError as error:
                reason, detail = "malformed_json", error.msg
            key = entry.get("key") if isinstance(entry, dict) else None
            if not reason:
                missing = [name for name in ["key", *data_types] if name not in entry]
                if missing:
                    reason, detail = "missing_field", f"missing {', '.join(missing)}"
                elif str(key) in seen:
                    reason = "duplicate_key"
                elif "source_len" in entry and parse_source_len(entry["source_len"]) is None:
                    reason = "bad_field"
                    detail = f"source_len must be a whole number of frames ≥ 0, got {entry['source_len']!r}"
            if reason:
                if strict:
                    raise DataError(f"{jsonl_in}:{number}" + (f" key {key!r}" if key else "") + f": {reason}: {detail}")
                report.drop(reason, str(jsonl_in), number, key, detail)
                continue
            seen.add(str(key))
            seconds += (parse_source_len(entry.get("source_len") or 0) or 0) / 100.0
            for column, name in enumerate(data_types):
                value = str(entry[name]).replace("\n", " ")
                rows[column].append(f"{key} {value}\n")
    for path, lines in zip(scp_files, rows):
        atomic_write_text(path, "".join(lines))
    report.utterances = len(seen)
    report.seconds = seconds
    return report
