"""The event log's index, ``events.index.jsonl``: where each event other than ``train`` starts.

A week-long run's ``events.jsonl`` holds a million ``train`` lines and a few thousand others
(start, data, valid, checkpoint, average, end, error ...). A reader that wants the others (the
console attaching to a run, or comparing runs) would otherwise search the whole log: on the
2-core VM that was half of the 1.8 s it took to open a run of a million events. The writer
(:class:`engine.events.EventWriter`) appends here, after each such line of the log, one line
``{"offset":O,"event":"NAME"}``, O being the byte offset where the log's line starts.

The index is a cache of the log and never the other way round. Readers check each entry against
the log (the line at O starts with that event; :func:`indexed_lines`) and read the log itself
when one does not hold; they also search the log after the last indexed line, where a writer
killed between a line and its entry left one unindexed. A writer opening a log first brings the
index up to date (:func:`open_index`): it indexes the lines after the last entry or, where the
index is missing or does not match the log (a log written before indexes existed, a replaced
log), writes it anew from the whole log, atomically. This module never imports torch.
"""

from __future__ import annotations

import mmap
import os
import re
from pathlib import Path

import msgspec

from engine.utils.fileio import atomic_write_bytes

#: Events the index leaves out: the frequent ones, which readers sample or read from the end.
UNINDEXED_EVENTS = frozenset({"train"})

# A log line as EventWriter writes it (compact JSON, "event" first) of an indexed event.
_INDEXED_LINE = re.compile(rb'^\{"event":"(?!train")([^"\\]+)"', re.MULTILINE)
_ENTRY = msgspec.json.Decoder(dict)


def index_path(log_path: str | os.PathLike) -> Path:
    """``events.jsonl`` -> ``events.index.jsonl`` (beside it)."""
    log_path = Path(log_path)
    return log_path.with_name(f"{log_path.stem}.index.jsonl")


def entry_line(offset: int, event: str) -> bytes:
    return b'{"offset":%d,"event":%s}\n' % (offset, msgspec.json.encode(event))


def read_index(path: str | os.PathLike) -> list[tuple[int, str]]:
    """The entries of an index file, by offset, each once; a torn or malformed line is skipped."""
    try:
        data = Path(path).read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return []
    entries: dict[int, str] = {}
    for line in data.split(b"\n"):
        try:
            entry = _ENTRY.decode(line)
        except ValueError:
            continue
        offset, event = entry.get("offset"), entry.get("event")
        if type(offset) is int and offset >= 0 and isinstance(event, str):
            entries[offset] = event
    return sorted(entries.items())


def line_at(fd: int, offset: int, end: int) -> bytes | None:
    """The complete line that starts exactly at ``offset`` (before byte ``end``), else None."""
    if offset >= end:
        return None
    begin = max(0, offset - 1)
    want = 4096
    while True:
        data = os.pread(fd, min(want, end - begin), begin)
        if offset and data[:1] != b"\n":
            return None  # not the start of a line
        first = 1 if offset else 0
        cut = data.find(b"\n", first)
        if cut >= 0:
            return data[first:cut]
        if begin + len(data) >= end:
            return None
        want *= 4


def indexed_lines(fd: int, end: int, entries: list[tuple[int, str]]) -> dict[int, bytes] | None:
    """{offset: line} of the indexed lines before ``end``, or None when the index does not
    describe this log (its first entry is not the log's first line, or an entry's line is
    missing or holds another event). Entries at or past ``end`` are left to the caller."""
    if not entries or entries[0][0] != 0:
        return None
    lines: dict[int, bytes] = {}
    for offset, event in entries:
        if offset >= end:
            break
        line = line_at(fd, offset, end)
        if line is None or not line.startswith(b'{"event":%s' % msgspec.json.encode(event)):
            return None
        lines[offset] = line
    return lines


def indexed_end(lines: dict[int, bytes]) -> int:
    """The offset just after the last of :func:`indexed_lines`' lines: the log from there on is
    what the index may not cover yet."""
    last = max(lines)
    return last + len(lines[last]) + 1


def scan_log(fd: int, start: int, end: int) -> list[tuple[int, str]]:
    """(offset, event) of every indexed event's line in ``[start, end)`` of the log, ``start``
    being a line start. One regex pass over a memory map, in C."""
    if end <= start:
        return []
    with mmap.mmap(fd, end, access=mmap.ACCESS_READ) as data:
        return [(match.start(), match.group(1).decode("utf-8", "replace"))
                for match in _INDEXED_LINE.finditer(data, start, end)]


def open_index(log_path: Path, durable: bool = True) -> int:
    """An O_APPEND descriptor of the log's index, brought up to date with the log first."""
    path = index_path(log_path)
    entries = read_index(path)
    with open(log_path, "rb") as log:
        log_fd = log.fileno()
        # Sized after the index is read: another writer's entry follows its line, so every entry
        # of this log lies before ``end``, and one past it belongs to a log that was replaced.
        end = os.fstat(log_fd).st_size  # EventWriter has ended a torn last line before this
        lines = indexed_lines(log_fd, end, entries)
        if lines is not None and len(lines) == len(entries):
            missing = scan_log(log_fd, indexed_end(lines), end)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if missing:
                os.write(fd, b"".join(entry_line(offset, event) for offset, event in missing))
                if durable:
                    os.fsync(fd)
            return fd
        # No index, or one of another log: written anew from the whole log (empty for a new log).
        found = scan_log(log_fd, 0, end)
    atomic_write_bytes(path, b"".join(entry_line(offset, event) for offset, event in found))
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
