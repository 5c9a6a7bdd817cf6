"""Follow a run directory: its event log, run.json and its text logs, incrementally.

Attaching reads the history once, then only new bytes are read. A log of a week-long run can
hold a million events, so attaching does not parse every line: the rare events (start, data,
valid, checkpoint, average, end, error) are found with one regex pass over a memory map of the
file, window by window so resident memory stays bounded (or, where the engine's index of the
log holds, read at the offsets it lists: engine/event_index.py), and train events are sampled at
evenly spaced offsets, enough to draw every chart at full width. New events are then read with
``engine.events.EventReader`` from the end of that history.
"""

from __future__ import annotations

import mmap
import os
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from engine.event_index import index_path, indexed_end, indexed_lines, read_index
from engine.events import EventReader, decode_line

from asr_tui.run_state import RunState

# Files up to this size are simply parsed whole; above it, attach samples train events:
# ATTACH_TRAIN_SAMPLES points are more than a chart of any terminal width can show.
FULL_PARSE_BYTES = 8 * 1024 * 1024
ATTACH_TRAIN_SAMPLES = 1000
SCAN_CHUNK_BYTES = 16 * 1024 * 1024  # searched, then its pages released
# The last train events are all read, not sampled: the health rules judge consecutive intervals.
TAIL_BYTES = 64 * 1024
# EventWriter writes compact JSON ("event":"train"); json.dumps' default adds one space.
RARE_EVENT = re.compile(rb'"event": ?"(?:start|data|valid|checkpoint|average|end|error)"')
TRAIN_EVENT = re.compile(rb'"event": ?"train"')
START_EVENT = re.compile(rb'"event": ?"start"')


def parse_line(line: bytes) -> dict | None:
    """One event, or None for a line that is not a JSON object with an ``event`` field.

    Decoded as the engine's reader does (msgspec, several times faster than ``json.loads``,
    which matters for the thousands of lines an attach or a Compare reads).
    """
    event = decode_line(line)
    if not isinstance(event, dict) or "event" not in event:
        return None
    return event


@dataclass
class HistoryScan:
    """Result of reading a log's history: where live reading continues and what was skipped."""

    offset: int
    bad_lines: int = 0
    sampled_train: int = 0
    total_bytes: int = 0


def scan_history(path: Path, state: RunState, train_samples: int = ATTACH_TRAIN_SAMPLES) -> HistoryScan:
    """Fold the complete lines of ``path`` into ``state``; returns the offset after the last one.

    Small logs are parsed whole. Large ones: every rare event plus ``train_samples`` train
    events at evenly spaced offsets and every train event of the last TAIL_BYTES (the rank
    table shows the last; the health rules judge the last intervals).
    """
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return HistoryScan(offset=0)
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return HistoryScan(offset=0)
        if size <= FULL_PARSE_BYTES:
            data = handle.read(size)
            end = data.rfind(b"\n") + 1  # a torn last line waits for the live reader
            scan = HistoryScan(offset=end, total_bytes=size)
            for line in data[:end].splitlines():
                if not line.strip():
                    continue
                event = parse_line(line)
                if event is None:
                    scan.bad_lines += 1
                else:
                    state.apply(event)
            return scan
        return _sample_history(handle, size, state, train_samples)


class _MappedLog:
    """A read-only map of a log's complete lines, scanned in line-aligned windows.

    The regex runs over the map in C with no copy of the file (a buffered read costs as much
    as the search itself); each window's pages are handed back to the kernel once searched,
    so the console's resident memory stays bounded however big the log (they stay in the
    page cache).
    """

    def __init__(self, handle, size: int) -> None:
        self.path = Path(handle.name)
        self.fd = handle.fileno()
        self.map = mmap.mmap(self.fd, size, access=mmap.ACCESS_READ)
        self.map.madvise(mmap.MADV_SEQUENTIAL)
        self.end = self.map.rfind(b"\n") + 1  # a torn last line is not read yet

    def close(self) -> None:
        self.map.close()

    def line_at(self, start: int) -> bytes:
        return self.map[start:self.map.find(b"\n", start, self.end)]

    def matching_lines(self, pattern: re.Pattern, start: int = 0) -> dict[int, bytes]:
        """{offset: line} of every complete line from ``start`` on that ``pattern`` matches."""
        found: dict[int, bytes] = {}
        data, pos = self.map, start
        while pos < self.end:
            cut = data.find(b"\n", min(pos + SCAN_CHUNK_BYTES, self.end) - 1, self.end) + 1 or self.end
            for match in pattern.finditer(data, pos, cut):
                line_start = data.rfind(b"\n", pos, match.start()) + 1 or pos
                found[line_start] = self.line_at(line_start)
            self._release(pos, cut)
            pos = cut
        return found

    def indexed_matching_lines(self, pattern: re.Pattern) -> dict[int, bytes]:
        """:meth:`matching_lines` for a ``pattern`` of events the engine indexes, read through the
        log's index (engine/event_index.py) where it describes this log: the indexed lines
        ``pattern`` matches, then a search of the log after the last one only."""
        lines = indexed_lines(self.fd, self.end, read_index(index_path(self.path)))
        if lines is None:
            return self.matching_lines(pattern)
        found = {start: line for start, line in lines.items() if pattern.search(line)}
        found.update(self.matching_lines(pattern, indexed_end(lines)))
        return found

    def _release(self, start: int, stop: int) -> None:
        page_start = start - start % mmap.PAGESIZE
        if stop > page_start:
            self.map.madvise(mmap.MADV_DONTNEED, page_start, stop - page_start)

    def line_after(self, offset: int) -> tuple[int, bytes] | None:
        """The first complete line starting at or after ``offset``, with its own offset.

        Read with pread, not through the map: touching one byte of a mapped page cache folio
        can map the whole folio, and a thousand samples would then map most of the file.
        """
        want = 4096
        while True:
            begin = max(0, offset - 1)
            data = os.pread(self.fd, min(want, self.end - begin), begin)
            first = 0 if offset == 0 else data.find(b"\n") + 1
            if offset and not first:
                if begin + len(data) >= self.end:
                    return None
            else:
                last = data.find(b"\n", first)
                if last >= 0:
                    return begin + first, data[first:last]
                if begin + len(data) >= self.end:
                    return None
            want *= 4  # a line longer than what was read

    def tail_lines(self, nbytes: int) -> list[tuple[int, bytes]]:
        """(offset, line) of the complete lines in about the last ``nbytes`` (read with pread)."""
        begin = max(0, self.end - nbytes)
        data = os.pread(self.fd, self.end - begin, begin)
        first = 0 if begin == 0 else data.find(b"\n") + 1
        lines, pos = [], first
        while pos < len(data):
            cut = data.find(b"\n", pos)
            if cut < 0:
                break
            lines.append((begin + pos, data[pos:cut]))
            pos = cut + 1
        return lines

    def last_matching_line(self, pattern: re.Pattern) -> tuple[int, bytes] | None:
        """The last complete line ``pattern`` matches, searched backwards in growing windows."""
        window = 64 * 1024
        while True:
            lo = max(0, self.end - window)
            lo = self.map.find(b"\n", lo - 1, self.end) + 1 if lo else 0
            last = None
            for last in pattern.finditer(self.map, lo, self.end):
                pass
            self._release(lo, self.end)
            if last is not None:
                line_start = self.map.rfind(b"\n", lo, last.start()) + 1 or lo
                return line_start, self.line_at(line_start)
            if lo == 0:
                return None
            window *= 4


def _sample_history(handle, size: int, state: RunState, train_samples: int) -> HistoryScan:
    log = _MappedLog(handle, size)
    try:
        scan = HistoryScan(offset=log.end, total_bytes=size)
        found = log.indexed_matching_lines(RARE_EVENT)
        stride = max(1, log.end // max(1, train_samples))
        for offset in range(0, log.end, stride):
            sample = log.line_after(offset)
            if sample is not None and sample[0] not in found and TRAIN_EVENT.search(sample[1]):
                found[sample[0]] = sample[1]
                scan.sampled_train += 1
        last_train = log.last_matching_line(TRAIN_EVENT)
        if last_train is not None:
            found.setdefault(*last_train)
        for start, line in log.tail_lines(TAIL_BYTES):
            if TRAIN_EVENT.search(line):
                found.setdefault(start, line)
    finally:
        log.close()
    for start in sorted(found):
        event = parse_line(found[start])
        if event is None:
            scan.bad_lines += 1
        else:
            state.apply(event)
    return scan


def find_events(path: Path, names: tuple[str, ...]) -> list[dict]:
    """Every event named in ``names`` in the log, found by a regex pass instead of parsing all."""
    pattern = re.compile(rb'"event": ?"(?:' + b"|".join(re.escape(n.encode()) for n in names) + rb')"')
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return []
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return []
        log = _MappedLog(handle, size)
        try:
            lines = log.indexed_matching_lines(pattern) if "train" not in names else log.matching_lines(pattern)
        finally:
            log.close()
    events = [parse_line(lines[start]) for start in sorted(lines)]
    return [e for e in events if e is not None and e.get("event") in names]


def read_tail_events(path: Path, max_bytes: int = 256 * 1024) -> tuple[list[dict], bool, int]:
    """Events of the last launch (back to its ``start``) within about ``max_bytes`` of the end.

    Returns (events in log order, complete, offset): complete says the last ``start`` was
    reached (or the file was read whole); offset is where the complete lines read end. Used by
    the runs list, which needs only the latest state.
    """
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return [], True, 0
    with handle:
        size = os.fstat(handle.fileno()).st_size
        chunk = 64 * 1024
        data = b""
        pos = size
        while pos > 0 and len(data) < max_bytes:
            step = min(chunk, pos)
            pos -= step
            handle.seek(pos)
            data = handle.read(step) + data
            # Only a complete line counts: the first line of a window that does not begin the
            # file may be cut, and is dropped below, so a start found there means reading on.
            first_complete = data.find(b"\n") + 1 if pos > 0 else 0
            if first_complete and START_EVENT.search(data, first_complete):
                break
            if pos == 0 and START_EVENT.search(data):
                break
            chunk *= 2
    end = data.rfind(b"\n") + 1
    offset = pos + end
    lines = data[:end].splitlines()
    if pos > 0 and lines:
        lines = lines[1:]  # the first line may be cut
    events = [e for e in (parse_line(line) for line in lines if line.strip()) if e is not None]
    for index in range(len(events) - 1, -1, -1):
        if events[index].get("event") == "start":
            return events[index:], True, offset
    return events, pos == 0, offset


def read_first_start(path: Path, max_bytes: int = 1024 * 1024) -> dict | None:
    """The first ``start`` event near the head of the log (steps_per_epoch, max_epoch)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes)
    except FileNotFoundError:
        return None
    for line in data.splitlines():
        if START_EVENT.search(line):
            event = parse_line(line)
            if event is not None and event.get("event") == "start":
                return event
    return None


class TextTail:
    """The last ``max_lines`` lines of a growing text file, read incrementally.

    A torn last line is held back until its newline arrives; a file that shrank (rotated or
    rewritten) is read again from its start. It starts, and catches up after a burst, at most
    ``initial_bytes`` before the end: it is a tail, not a copy.
    """

    def __init__(self, path: Path, max_lines: int = 500, initial_bytes: int = 256 * 1024) -> None:
        self.path = Path(path)
        self.lines: deque[str] = deque(maxlen=max_lines)
        self.initial_bytes = initial_bytes
        self.offset: int | None = None
        self._partial = b""

    def read_new(self) -> list[str]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if self.offset is None or size < self.offset or size - self.offset > self.initial_bytes:
            self.offset = max(0, size - self.initial_bytes)
            self._partial = b""
            skip_first = self.offset > 0
        else:
            skip_first = False
        if size == self.offset:
            return []
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(size - self.offset)
        self.offset += len(data)
        data = self._partial + data
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        lines = data[:cut].decode("utf-8", errors="replace").split("\n")[:-1]
        if skip_first and lines:
            lines = lines[1:]
        # Progress bars redraw with carriage returns: keep only what the terminal would show.
        lines = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in lines]
        self.lines.extend(lines)
        return lines


@dataclass
class FollowUpdate:
    """What one poll brought: new events and new log lines."""

    events: list[dict] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    restarted: bool = False  # the event log was replaced: the state was rebuilt from it

    def __bool__(self) -> bool:
        return bool(self.events or self.log_lines or self.restarted)


class RunFollower:
    """Everything the monitor shows about one run, kept current by :meth:`poll`."""

    def __init__(self, run_dir: Path, max_points: int = 2000, log_lines: int = 500) -> None:
        self.run_dir = Path(run_dir)
        self.events_path = self.run_dir / "events.jsonl"
        self.state = RunState(max_points=max_points)
        self.log_lines = log_lines
        self.log: TextTail | None = None
        self.history: HistoryScan | None = None
        self.lock = threading.Lock()  # held while the state changes; readers on other threads take it
        self._reader: EventReader | None = None

    def attach(self) -> HistoryScan:
        """Read the whole history once (sampled when huge); later polls read only new bytes."""
        with self.lock:
            self.history = scan_history(self.events_path, self.state)
        self._reader = EventReader(self.events_path, offset=self.history.offset)
        # Events written since the scan; this first read also pins the file's identity, so
        # that a later poll notices a replaced log.
        late = self._reader.read_new()
        with self.lock:
            for event in late:
                self.state.apply(event)
            self._read_log()
        return self.history

    def _read_log(self) -> list[str]:
        """console.log holds everything the job printed (log.txt's lines too, and tracebacks);
        a run started from a script may have only log.txt."""
        if self.log is None:
            for name in ("console.log", "log.txt"):
                if (self.run_dir / name).exists():
                    self.log = TextTail(self.run_dir / name, max_lines=self.log_lines)
                    break
            else:
                return []
        return self.log.read_new()

    @property
    def bad_lines(self) -> int:
        """Event-log lines skipped as malformed (shown, never silently dropped)."""
        history = self.history.bad_lines if self.history else 0
        return history + (self._reader.malformed if self._reader else 0)

    def poll(self) -> FollowUpdate:
        if self._reader is None:
            self.attach()
        update = FollowUpdate()
        restarts = self._reader.restarts
        update.events = self._reader.read_new()
        with self.lock:
            if self._reader.restarts != restarts:
                # The log was replaced or truncated: what was read is the whole new log, so the
                # state starts over instead of counting its checkpoints and points twice.
                self.state = RunState(max_points=self.state.max_points)
                self.history = HistoryScan(offset=0, bad_lines=self.history.bad_lines if self.history else 0)
                update.restarted = True
            for event in update.events:
                self.state.apply(event)
            update.log_lines = self._read_log()  # log.lines is read by the UI thread under the lock
        return update
