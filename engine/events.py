"""The run's structured event log, ``events.jsonl``: one JSON object per line, append-only.

Rank 0 of the engine writes it (:class:`EventWriter`); the console and the tests follow it
(:class:`EventReader`). The format is the contract between them, documented in
docs/contracts.md and in :data:`EVENT_FIELDS`. This module never imports torch: the console
imports it and must start fast.
"""

from __future__ import annotations

import gc
import json
import math
import os
import time
from itertools import repeat
from pathlib import Path
from typing import Any

import msgspec

from engine.event_index import UNINDEXED_EVENTS, entry_line, open_index

#: Required fields per event, beyond ``event`` and ``time`` that every event carries.
#: Writers may add fields; readers ignore the ones they do not know.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    # each launch or resume; config is the resolved config dict, resumed_from a path or None
    "start": ("world_size", "num_params", "steps_per_epoch", "max_epoch", "resumed_from", "config"),
    # after a data set's lists are read; one event per split ("train", "valid")
    "data": ("split", "lists", "utterances", "hours", "dropped"),
    # every log_interval updates; lr and grad_norm map OptimScheduler name -> value
    "train": (
        "epoch", "step", "lr", "loss", "acc", "grad_norm", "throughput", "padding_ratio", "ranks",
    ),
    # each validation; acc may be None for a CTC-only model
    "valid": ("epoch", "step", "loss", "acc"),
    # each checkpoint save; metric names the keep-n-best criterion, metrics the values saved with it
    "checkpoint": ("path", "epoch", "step", "metric", "metrics", "kept", "deleted"),
    # each averaging; metric is "acc", "loss", "last" or "explicit" (how sources were chosen)
    "average": ("path", "sources", "metric"),
    # the job ends; status is one of END_STATUSES
    "end": ("status", "reason"),
    # an exception on any rank
    "error": ("rank", "message", "traceback"),
}

#: Optional fields readers rely on when present (checked for type by validate_event).
OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {
    # init_param: the weights loaded from train_conf.init_param (the init_param event's fields);
    # model_dir: the FunASR model directory the run started from (``model: DIR``);
    # precision: {"dtype", "reason"}, the training forward's autocast dtype and why (use_bf16: auto)
    "start": ("init_param", "model_dir", "precision"),
}

#: Required fields of each row of a ``train`` event's ``ranks`` list (times in seconds).
RANK_FIELDS: tuple[str, ...] = (
    "rank", "loss", "batch_size", "data_load_s", "forward_s", "backward_s", "optim_s", "total_s",
    "memory_mb",
)

#: Optional fields of a rank row: the rank's resources (engine/trainer/resources.py), each a
#: number and absent where it does not exist (no /proc, no GPU, no NVML).
RANK_HEALTH_FIELDS: tuple[str, ...] = (
    "rss_mb", "cpu_percent", "gpu_util", "gpu_memory_used_mb", "gpu_memory_total_mb", "gpu_temperature_c",
)

END_STATUSES: tuple[str, ...] = ("finished", "stopped", "failed")

# Expected types of fields whose type readers rely on (None is allowed where noted in docs).
_NUMBER = (int, float)
_FIELD_TYPES: dict[tuple[str, str], tuple[type, ...]] = {
    ("start", "world_size"): (int,),
    ("start", "num_params"): (int,),
    ("start", "steps_per_epoch"): (int,),
    ("start", "max_epoch"): (int,),
    ("start", "config"): (dict,),
    ("start", "init_param"): (dict,),
    ("start", "model_dir"): (str,),
    ("start", "precision"): (dict,),
    ("data", "lists"): (list,),
    ("data", "utterances"): (int,),
    ("data", "hours"): _NUMBER,
    ("data", "dropped"): (dict,),
    ("train", "epoch"): (int,),
    ("train", "step"): (int,),
    ("train", "lr"): (dict,),
    ("train", "loss"): _NUMBER,
    ("train", "grad_norm"): (dict,),
    ("train", "ranks"): (list,),
    ("valid", "epoch"): (int,),
    ("valid", "step"): (int,),
    ("valid", "loss"): _NUMBER,
    ("checkpoint", "path"): (str,),
    ("checkpoint", "epoch"): (int,),
    ("checkpoint", "step"): (int,),
    ("checkpoint", "metric"): (str,),
    ("checkpoint", "metrics"): (dict,),
    ("checkpoint", "kept"): (list,),
    ("checkpoint", "deleted"): (list,),
    ("average", "path"): (str,),
    ("average", "sources"): (list,),
    ("average", "metric"): (str,),
    ("end", "status"): (str,),
    ("error", "rank"): (int,),
    ("error", "message"): (str,),
    ("error", "traceback"): (str,),
}

# Events worth an fsync: rare, and the ones a reader must find after a power loss.
_DURABLE_EVENTS = frozenset({"start", "checkpoint", "average", "end", "error"})


def validate_event(obj: Any) -> list[str]:
    """Problems of one decoded event against the contract; an empty list means it is valid.

    Checks that it is an object with ``event`` and a numeric ``time``, that a known event has
    its required fields with the expected types (bool is not a number here), and the rows of
    ``train``'s ``ranks``. Unknown event names are allowed (newer writers), only checked for
    ``event``/``time``.
    """
    if not isinstance(obj, dict):
        return [f"event is {type(obj).__name__}, not a JSON object"]
    problems = []
    name = obj.get("event")
    if not isinstance(name, str):
        problems.append("missing or non-string 'event'")
    stamp = obj.get("time")
    if isinstance(stamp, bool) or not isinstance(stamp, _NUMBER):
        problems.append("missing or non-numeric 'time'")
    optional = OPTIONAL_FIELDS.get(name, ()) if isinstance(name, str) else ()
    for field in (EVENT_FIELDS.get(name, ()) if isinstance(name, str) else ()) + optional:
        if field not in obj:
            if field not in optional:
                problems.append(f"{name}: missing field '{field}'")
            continue
        expected = _FIELD_TYPES.get((name, field))
        value = obj[field]
        if expected and value is not None and (
            isinstance(value, bool) or not isinstance(value, expected)
        ):
            wanted = "/".join(t.__name__ for t in expected)
            problems.append(f"{name}: field '{field}' is {type(value).__name__}, expected {wanted}")
    if name == "train" and isinstance(obj.get("ranks"), list):
        for index, row in enumerate(obj["ranks"]):
            if not isinstance(row, dict):
                problems.append(f"train: ranks[{index}] is not an object")
                continue
            missing = [field for field in RANK_FIELDS if field not in row]
            if missing:
                problems.append(f"train: ranks[{index}] missing {', '.join(missing)}")
            for field in RANK_HEALTH_FIELDS:
                value = row.get(field)
                if field in row and value is not None and (isinstance(value, bool) or not isinstance(value, _NUMBER)):
                    problems.append(f"train: ranks[{index}].{field} is {type(value).__name__}, expected int/float")
    if name == "end" and obj.get("status") not in END_STATUSES:
        problems.append(f"end: status {obj.get('status')!r} not one of {', '.join(END_STATUSES)}")
    return problems


def _to_json_value(value: Any) -> Any:
    """Make values the engine hands us (tensors, numpy scalars, paths) JSON-serialisable.

    Duck-typed so this module needs neither torch nor numpy.
    """
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):  # torch.Tensor, numpy array or scalar
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"event field value of type {type(value).__name__} is not JSON-serialisable")


def _replace_nonfinite(value: Any, where: str, found: list[str]) -> Any:
    """Copy of ``value`` with NaN/inf floats set to None, their dotted paths added to ``found``."""
    if isinstance(value, float) and not math.isfinite(value):
        found.append(where)
        return None
    if isinstance(value, dict):
        return {k: _replace_nonfinite(v, f"{where}.{k}" if where else str(k), found)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace_nonfinite(v, f"{where}.{i}", found) for i, v in enumerate(value)]
    return value


def _dumps(obj: dict) -> str:
    """Strict JSON (any reader, jq included, can parse it): a NaN or infinite value is written
    as null and its field path listed under ``nonfinite``, so a diverged loss is still visible."""
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                          default=_to_json_value)
    except ValueError:
        found: list[str] = []
        plain = json.loads(json.dumps(obj, default=_to_json_value))
        clean = _replace_nonfinite(plain, "", found)
        clean["nonfinite"] = found
        return json.dumps(clean, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class EventWriter:
    """Appends events to ``path``, one JSON line per :meth:`write`, never rewriting the file.

    Each line goes out in a single ``write(2)`` on an ``O_APPEND`` descriptor, so two writers
    (the trainer and ``asr-average``) never interleave inside a line, and it is visible to
    readers at once. Rare events that matter after a crash (start, checkpoint, average, end,
    error) are also fsynced; frequent train/valid lines are not, to keep the training step cheap.
    Each event other than ``train`` also gets an entry in the log's index
    (engine/event_index.py), which the writer brings up to date when it opens the log.
    ``enabled=False`` (ranks other than 0) makes every call a no-op and creates no file.
    """

    def __init__(self, path: str | os.PathLike, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        self._fd: int | None = None
        self._index_fd: int | None = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._end_torn_line()
            self._index_fd = open_index(self.path)

    def _end_torn_line(self) -> None:
        """A previous writer killed mid-line left no newline: end that line so ours stays whole."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        with open(self.path, "rb") as handle:
            handle.seek(size - 1)
            last = handle.read(1)
        if last != b"\n":
            os.write(self._fd, b"\n")

    def write(self, event: str, **fields: Any) -> dict | None:
        """Append one event; ``time`` (Unix seconds) is added unless given. Returns the object."""
        if not self.enabled:
            return None
        if self._fd is None:
            raise ValueError(f"event log {self.path} is closed")
        obj = {"event": event, "time": time.time(), **fields}
        data = (_dumps(obj) + "\n").encode("utf-8")
        written = os.write(self._fd, data)
        while written < len(data):  # short writes only happen on full disks or signals
            written += os.write(self._fd, data[written:])
        if event not in UNINDEXED_EVENTS:
            # O_APPEND left this descriptor's offset at the end of our own line, whatever the
            # other writer appended before it.
            offset = os.lseek(self._fd, 0, os.SEEK_CUR) - len(data)
            os.write(self._index_fd, entry_line(offset, event))
        if event in _DURABLE_EVENTS:
            os.fsync(self._fd)
            os.fsync(self._index_fd)
        return obj

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._index_fd is not None:
            os.close(self._index_fd)
            self._index_fd = None

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


class EventReader:
    """Follows an event log incrementally: each :meth:`read_new` returns the events added since.

    It remembers the byte offset after the last complete line. A last line without its newline
    (the writer is mid-write, or was killed there) is left for the next call. Lines that are not
    a JSON object with an ``event`` name are skipped and counted in :attr:`malformed` (the latest
    described in :attr:`last_problem`), never raised. A file that does not exist yet reads as
    empty; a file that got shorter than the offset, was replaced by another file, or no longer
    has a line end where the last read stopped, is read again from the start (counted in
    :attr:`restarts`).
    """

    CHUNK_BYTES = 16 * 1024 * 1024

    def __init__(self, path: str | os.PathLike, offset: int = 0):
        """``offset``: a byte offset just after a complete line, where reading starts (a reader
        that scanned the history itself continues from there)."""
        self.path = Path(path)
        self.offset = offset
        self.malformed = 0
        self.restarts = 0
        self.last_problem: str | None = None
        self._inode: tuple[int, int] | None = None

    def read_new(self) -> list[dict]:
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            return []
        with handle:
            stat = os.fstat(handle.fileno())
            inode = (stat.st_dev, stat.st_ino)
            if self._inode is not None and (inode != self._inode or stat.st_size < self.offset):
                self._restart()
            self._inode = inode
            if stat.st_size == self.offset:
                return []
            if self.offset:  # rewritten in place and grown past us: the line end we stopped at moved
                handle.seek(self.offset - 1)
                if handle.read(1) != b"\n":
                    self._restart()
            handle.seek(self.offset)
            events: list[dict] = []
            pending = b""
            while True:
                chunk = handle.read(self.CHUNK_BYTES)
                if not chunk:
                    break
                block = pending + chunk if pending else chunk
                end = block.rfind(b"\n")
                if end < 0:
                    pending = block
                    continue
                self._parse_lines(block, end, events)
                self.offset += end + 1
                pending = block[end + 1:]
        return events

    def _parse_lines(self, block: bytes, end: int, events: list[dict]) -> None:
        """Decode the complete lines of ``block[:end]`` into ``events``, counting bad ones.

        msgspec decodes the whole block in one call (the stdlib's per-line ``json.loads`` is
        several times slower: a week-long run has a million events); only a block holding a bad
        line is decoded line by line, with ``json.loads`` as a last try for foreign writers'
        NaN/Infinity. The cyclic GC is paused meanwhile: building a million dicts would
        otherwise trigger repeated full collections.
        """
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            try:
                decoded = _OBJECT_DECODER.decode_lines(block[:end])
            except ValueError:  # not JSON, not an object, or not UTF-8
                self._parse_line_by_line(block, end, events)
                return
            if all(map(dict.__contains__, decoded, repeat("event"))):
                events += decoded
            else:
                self._parse_line_by_line(block, end, events)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _parse_line_by_line(self, block: bytes, end: int, events: list[dict]) -> None:
        line_start = self.offset
        for line in block[:end].split(b"\n"):
            if line:
                obj = decode_line(line)
                if type(obj) is dict and "event" in obj:
                    events.append(obj)
                elif isinstance(obj, ValueError):
                    self._count_malformed(line_start, f"not JSON ({obj})")
                else:
                    self._count_malformed(line_start, "not an object with an 'event' field")
            line_start += len(line) + 1

    def _restart(self) -> None:
        self.offset = 0
        self.restarts += 1

    def _count_malformed(self, offset: int, why: str) -> None:
        self.malformed += 1
        self.last_problem = f"{self.path}: line at byte {offset}: {why}"


_DECODER = msgspec.json.Decoder()
_OBJECT_DECODER = msgspec.json.Decoder(dict)


def decode_line(line: bytes) -> Any:
    """One line decoded (msgspec; ``json.loads`` for what it refuses, such as a foreign writer's
    NaN), or the ValueError saying why it is not JSON. The console decodes single lines with it."""
    try:
        return _DECODER.decode(line)
    except ValueError:
        try:
            return json.loads(line)
        except ValueError as error:
            return error


def read_events(path: str | os.PathLike) -> list[dict]:
    """All complete, well-formed events of a log (a one-shot :class:`EventReader`)."""
    return EventReader(path).read_new()
