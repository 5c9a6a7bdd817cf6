"""ListIndex: a FunASR jsonl list held as a few numpy arrays, its lines read back on demand.

A training list of 10 million utterances is too large to keep as one Python dict per line
(~830 bytes each) on every rank, and reading every audio header at each launch costs minutes
(hours on network storage). So, as FunASR does, ``source_len`` and ``target_len`` are trusted
where the list has them; the audio is checked when an utterance is loaded (engine.data.dataset
counts and skips what cannot be read), and ``asr-data check`` reads every header on demand.

Per kept line the index holds: which list (int16), byte offset (int64) and length (int32) of the
line, line number (int32), ``source_len`` and ``target_len`` (int32): 26 bytes, so a million
lines cost about 26 MB. :meth:`ListIndex.entry` re-reads one line with ``os.pread`` and parses it
into the dict :func:`engine.data.lists.read_jsonl` would have made; the DataLoader does that for
the utterances of a batch only. Parsing uses msgspec (about 10x faster than ``json.loads``),
keys are checked for duplicates through their hashes (a collision is verified on the keys).
Lines without ``source_len`` get it from their audio header; ``check_audio`` reads every header.

This module does not import torch: the console's lr preview batches a list through it.
"""

from __future__ import annotations

import os
from array import array
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import msgspec
import numpy as np

from engine.data.report import DataReport

REQUIRED_FIELDS = ("key", "source", "target")
# Checking audio headers is I/O bound: threads overlap the disk waits.
AUDIO_CHECK_THREADS = 8
# Lines are read in blocks of this many bytes: a whole 1.5 GB list never sits in memory at once, and the
# bytes objects of one block (freed into the allocator's arenas) stay a few MB.
READ_BLOCK = 1 << 22


class DataError(ValueError):
    """A bad data list or entry in strict mode; the message names file, line and key."""


_MISSING = "\x00missing"  # the target of a line without one (decoding lists need none)


class _Line(msgspec.Struct):
    """The fields of a list line the index needs; others are ignored here and kept by ``entry``."""

    key: Any
    source: Any
    target: Any = _MISSING
    source_len: Any = None
    target_len: Any = None


_DECODE_LINE = msgspec.json.Decoder(_Line).decode
_DECODE_DICT = msgspec.json.Decoder().decode


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


def probe_audio(path: str):
    """Header of an audio file (soundfile's info), or (None, why it cannot be read)."""
    import soundfile

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


def parse_source_len(value) -> int | None:
    """A list's ``source_len`` as frames, or None when it is not a count (text, negative, true/false)."""
    if isinstance(value, bool):
        return None
    try:
        frames = int(value)
    except (TypeError, ValueError):
        return None
    return frames if frames >= 0 else None


class ListIndex:
    """Kept lines of one or more lists; ``entry(i)`` parses line i on demand (any process)."""

    COLUMNS = ("list_id", "offset", "length", "line", "source_len", "target_len")

    def __init__(self, paths: list[str], columns: dict[str, np.ndarray]):
        self.paths = [str(p) for p in paths]
        self.list_dirs = [Path(p).parent.resolve() for p in self.paths]
        self.list_id = columns["list_id"].astype(np.int16, copy=False)
        self.offset = columns["offset"].astype(np.int64, copy=False)
        self.length = columns["length"].astype(np.int32, copy=False)
        self.line = columns["line"].astype(np.int32, copy=False)
        self.source_len = columns["source_len"].astype(np.int32, copy=False)
        self.target_len = columns["target_len"].astype(np.int32, copy=False)
        self._fds: dict[int, int] = {}
        self._pid = os.getpid()

    @classmethod
    def empty(cls, paths=()) -> "ListIndex":
        return cls(list(paths), {name: np.zeros(0, dtype=np.int64) for name in cls.COLUMNS})

    def __len__(self) -> int:
        return len(self.offset)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in self.COLUMNS)

    def columns(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.COLUMNS}

    def take(self, indices) -> "ListIndex":
        """The index of these entries (a boolean mask or positions), in that order."""
        return ListIndex(self.paths, {name: column[indices] for name, column in self.columns().items()})

    @classmethod
    def concat(cls, indexes: list["ListIndex"]) -> "ListIndex":
        paths: list[str] = []
        parts: dict[str, list[np.ndarray]] = {name: [] for name in cls.COLUMNS}
        for index in indexes:
            for name, column in index.columns().items():
                parts[name].append(column + len(paths) if name == "list_id" else column)
            paths.extend(index.paths)
        if not indexes:
            return cls.empty()
        return cls(paths, {name: np.concatenate(columns) for name, columns in parts.items()})

    # Reading lines back ------------------------------------------------------------------------

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_fds"] = {}  # file descriptors do not cross processes
        return state

    def _fd(self, list_id: int) -> int:
        if self._pid != os.getpid():  # a forked DataLoader worker: its own descriptors
            self._fds, self._pid = {}, os.getpid()
        fd = self._fds.get(list_id)
        if fd is None:
            fd = self._fds[list_id] = os.open(self.paths[list_id], os.O_RDONLY)
        return fd

    def raw(self, i: int) -> bytes:
        list_id = int(self.list_id[i])
        return os.pread(self._fd(list_id), int(self.length[i]), int(self.offset[i]))

    def where(self, i: int) -> tuple[str, int]:
        """(list path, line number) of entry i."""
        return self.paths[int(self.list_id[i])], int(self.line[i])

    def entry(self, i: int) -> dict:
        """Entry i as a dict: the line's fields, ``key`` as text, ``target`` stripped, ``source``
        resolved, ``source_len``/``target_len`` as indexed, and ``list`` (its list's path)."""
        list_id = int(self.list_id[i])
        try:
            entry = _DECODE_DICT(self.raw(i))
        except (msgspec.DecodeError, OSError) as error:  # the list changed under the run
            raise DataError(f"{self.paths[list_id]}:{int(self.line[i])}: cannot read the line again: {error}") from None
        entry["key"] = str(entry["key"])
        if "target" in entry:
            entry["target"] = str(entry["target"]).strip()
        entry["source"] = resolve_source(str(entry["source"]), self.list_dirs[list_id])
        entry["source_len"] = int(self.source_len[i])
        entry["target_len"] = int(self.target_len[i])
        entry["list"] = self.paths[list_id]
        return entry

    def key(self, i: int) -> str:
        return str(_DECODE_LINE(self.raw(i)).key)

    def text(self, i: int) -> str:
        """Entry i's target text (without making the whole entry)."""
        target = _DECODE_LINE(self.raw(i)).target
        return "" if target is _MISSING else str(target).strip()

    def texts(self) -> Iterator[str]:
        """Every kept entry's target text, in order (for building a tokenizer)."""
        for i in range(len(self)):
            yield str(_DECODE_LINE(self.raw(i)).target).strip()

    def seconds(self) -> float:
        return float(self.source_len.sum(dtype=np.int64)) / 100.0

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def __del__(self):
        try:
            if self._pid == os.getpid():
                self.close()
        except Exception:  # interpreter shutdown
            pass


def _blocks(path: Path) -> Iterator[tuple[int, bytes]]:
    """(byte offset, block) of the file in blocks of about READ_BLOCK bytes that end at a line end."""
    offset, rest = 0, b""
    with open(path, "rb", buffering=0) as handle:
        while True:
            block = handle.read(READ_BLOCK)
            if not block:
                break
            data = rest + block if rest else block
            cut = data.rfind(b"\n") + 1
            if cut:
                yield offset, data[:cut]
                offset += cut
            rest = data[cut:]
    if rest:
        yield offset, rest + b"\n"


def index_list(path, *, strict: bool = False, check_audio: bool = False, fs: int = 16000,
               progress: bool = False, require_target: bool = True) -> tuple[ListIndex, DataReport]:
    """Index one jsonl list; bad lines are skipped and counted (``strict``: raise instead).

    ``require_target=False`` (decoding) keeps lines without a ``target`` (their target_len is 0).

    With ``check_audio`` every audio header is read (missing or unreadable files are dropped and
    reported by key; resampled/downmixed entries are counted in the notes); without it only the
    lines without ``source_len`` are probed, to fill it in.
    """
    path = Path(path)
    report = DataReport(name=path.name, sources=[str(path)])
    if not path.is_file():
        raise DataError(f"{path}: data list not found")

    def problem(reason: str, line: int, key: str | None = None, detail: str = "") -> None:
        if strict:
            where = f"{path}:{line}" + (f" key {key!r}" if key else "")
            raise DataError(f"{where}: {reason}" + (f": {detail}" if detail else ""))
        report.drop(reason, str(path), line, key, detail)

    # array.array holds raw machine integers: no Python int object per value while the list is read;
    # the int32 ones become the index's columns without a copy.
    offsets, hashes = array("q"), array("q")
    lengths, numbers, source_lens, target_lens = array("i"), array("i"), array("i"), array("i")
    unknown_len: list[int] = []  # positions (in the columns) of lines without source_len
    bar = _progress(path, progress)
    decode = _DECODE_LINE
    number = 0  # lines before the block
    for block_offset, block in _blocks(path):
        raws = block.split(b"\n")[:-1]
        ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
        kept: list[int] = []
        # The per-line loop is the start-up cost of a large list: only cheap checks in it.
        for j, raw in enumerate(raws):
            try:
                line = decode(raw)
            except msgspec.DecodeError as error:
                _decode_problem(problem, error, raw, number + j + 1)
                continue
            key, target, source_len, target_len = line.key, line.target, line.source_len, line.target_len
            if type(key) is not str:
                if not isinstance(key, int) or isinstance(key, bool):
                    problem("bad_field", number + j + 1, None, f"key must be text, got {key!r}")
                    continue
                key = str(key)
            if target is _MISSING:
                if require_target:
                    problem("missing_field", number + j + 1, key, "missing `target`")
                    continue
                target, target_len = "", 0
            elif type(target) is not str:
                problem("bad_field", number + j + 1, key, f"target must be a string, got {type(target).__name__}")
                continue
            elif not target or target.isspace():
                problem("empty_text", number + j + 1, key)
                continue
            if type(source_len) is not int or source_len < 0:
                if source_len is None:
                    unknown_len.append(len(source_lens))
                    source_len = -1
                else:
                    source_len = parse_source_len(source_len)
                    if source_len is None:
                        problem("bad_field", number + j + 1, key,
                                f"source_len must be a whole number of frames ≥ 0, got {line.source_len!r}")
                        continue
            if type(target_len) is not int or target_len < 0:
                target_len = parse_source_len(target_len) if target_len is not None else None
                if target_len is None:
                    target_len = target_len_of(target.strip())
            kept.append(j)
            source_lens.append(source_len)
            target_lens.append(target_len)
            hashes.append(hash(key))
        if kept:
            kept_at = np.asarray(kept, dtype=np.int64)
            line_ends = ends[kept_at]
            line_starts = np.where(kept_at > 0, ends[np.maximum(kept_at - 1, 0)] + 1, 0)
            offsets.frombytes((line_starts + block_offset).astype(np.int64).tobytes())
            lengths.frombytes((line_ends - line_starts).astype(np.int32).tobytes())
            numbers.frombytes((kept_at + number + 1).astype(np.int32).tobytes())
        number += len(raws)
        if bar is not None:
            bar.update(len(raws))
    if bar is not None:
        bar.close()

    columns = {
        "list_id": np.zeros(len(offsets), dtype=np.int16),
        "offset": np.frombuffer(offsets, dtype=np.int64),
        "length": np.frombuffer(lengths, dtype=np.int32),
        "line": np.frombuffer(numbers, dtype=np.int32),
        "source_len": np.frombuffer(source_lens, dtype=np.int32),
        "target_len": np.frombuffer(target_lens, dtype=np.int32),
    }
    index = ListIndex([str(path)], columns)
    keep = np.ones(len(index), dtype=bool)
    _drop_duplicates(index, np.frombuffer(hashes, dtype=np.int64), keep, problem)
    del hashes
    to_probe = np.arange(len(index)) if check_audio else np.array(unknown_len, dtype=np.int64)
    to_probe = to_probe[keep[to_probe]] if len(to_probe) else to_probe
    if len(to_probe):
        _probe(index, to_probe, keep, fs, problem, report, progress)
    if not keep.all():
        index = index.take(keep)
    report.utterances = len(index)
    report.seconds = index.seconds()
    return index, report


def _decode_problem(problem, error: Exception, raw: bytes, number: int) -> None:
    """The reason a line failed to decode (blank lines are no problem)."""
    message = str(error)
    if isinstance(error, msgspec.ValidationError):
        if "missing required field" in message:
            problem("missing_field", number, _loose_key(raw), message.replace("Object missing required field", "missing"))
        else:
            problem("malformed_json", number, detail="a line must be a JSON object")
    elif raw.strip():
        problem("not_utf8" if "UTF-8" in message else "malformed_json", number, detail=message)


def _loose_key(raw: bytes) -> str | None:
    try:
        value = _DECODE_DICT(raw).get("key")
    except (msgspec.DecodeError, AttributeError):
        return None
    return None if value is None else str(value)


def _drop_duplicates(index: ListIndex, hashes: np.ndarray, keep: np.ndarray, problem) -> None:
    """Later lines repeating an earlier line's key are dropped; equal hashes are checked on the keys."""
    if len(hashes) < 2:
        return
    order = np.argsort(hashes, kind="stable")
    ordered = hashes[order]
    repeats = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
    if not len(repeats):
        return
    starts = np.unique(np.searchsorted(ordered, ordered[repeats], side="left"))
    found: list[tuple[int, int, str]] = []
    for start in starts:
        end = int(np.searchsorted(ordered, ordered[start], side="right"))
        first_of: dict[str, int] = {}
        for position in order[start:end]:  # stable: in line order
            position = int(position)
            key = index.key(position)
            if key in first_of:
                found.append((position, first_of[key], key))
            else:
                first_of[key] = position
    for position, first, key in sorted(found):
        keep[position] = False
        problem("duplicate_key", int(index.line[position]), key, f"first seen on line {int(index.line[first])}")


def _probe(index: ListIndex, positions: np.ndarray, keep: np.ndarray, fs: int, problem, report, progress) -> None:
    entries = (index.entry(int(i)) for i in positions)
    with ThreadPoolExecutor(AUDIO_CHECK_THREADS) as pool:
        sources = [(int(i), e["key"], e["source"]) for i, e in zip(positions, entries)]
        infos = pool.map(probe_audio, (source for _, _, source in sources))
        bar = _progress(Path(index.paths[0]), progress, total=len(sources), what="checking audio")
        resampled: dict[int, int] = {}
        downmixed = 0
        for (i, key, source), (info, why) in zip(sources, infos):
            if bar is not None:
                bar.update(1)
            if info is None:
                reason = "missing_audio" if why == "file not found" else "unreadable_audio"
                problem(reason, int(index.line[i]), key, f"{source}: {why}")
                keep[i] = False
                continue
            if index.source_len[i] < 0:
                index.source_len[i] = source_len_of(info.frames, info.samplerate)
            if info.samplerate != fs:
                resampled[info.samplerate] = resampled.get(info.samplerate, 0) + 1
            if info.channels > 1:
                downmixed += 1
        if bar is not None:
            bar.close()
    for rate, count in sorted(resampled.items()):
        report.note(f"resampled {rate} Hz -> {fs} Hz", count)
    if downmixed:
        report.note("downmixed to mono", downmixed)


def _progress(path: Path, enabled: bool, total: int | None = None, what: str = "reading"):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"{what} {path.name}", unit="line" if total is None else "utt", leave=False)


def index_lists(paths, *, fs: int = 16000, progress: bool = False, check_audio: bool = False,
                strict: bool = False) -> tuple[ListIndex, DataReport]:
    """Several lists as one index (training reads its lists as one set) and their merged report."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    report = DataReport(name=", ".join(str(p) for p in paths))
    indexes = []
    for path in paths:
        index, list_report = index_list(path, fs=fs, progress=progress, check_audio=check_audio, strict=strict)
        indexes.append(index)
        report.merge(list_report)
    return ListIndex.concat(indexes), report
