"""events.index.jsonl (engine/event_index.py): written beside the log, repaired on open, and only
trusted by readers where it describes the log."""

import json
import os

from engine.event_index import index_path, indexed_lines, read_index
from engine.events import EventWriter, read_events

from asr_tui.run_state import RunState
from asr_tui.tailer import find_events, scan_history


def write_run(path, launches=2, steps=30):
    for launch in range(launches):
        with EventWriter(path) as writer:
            writer.write("start", world_size=1, num_params=1, steps_per_epoch=steps, max_epoch=1,
                         resumed_from=None, config={})
            for step in range(1, steps + 1):
                writer.write("train", epoch=1, step=step, loss=1.0, ranks=[])
                if step % 10 == 0:
                    writer.write("valid", epoch=1, step=step, loss=1.0, acc=0.1 * step / 10 + launch)
                    writer.write("checkpoint", path=f"model.pt.ep1.{step}", epoch=1, step=step)


def entries_of_log(path):
    """(offset, event) of every line but train, from the log itself."""
    entries, offset = [], 0
    for line in path.read_bytes().splitlines(keepends=True):
        event = json.loads(line)["event"]
        if event != "train":
            entries.append((offset, event))
        offset += len(line)
    return entries


def test_writer_indexes_every_event_but_train_at_its_offset(tmp_path):
    log = tmp_path / "events.jsonl"
    write_run(log)
    entries = read_index(index_path(log))
    assert entries == entries_of_log(log)
    assert [event for _, event in entries].count("start") == 2
    train_at = len(log.read_bytes().split(b"\n")[0]) + 1  # the line after the first start
    fd = os.open(log, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        assert indexed_lines(fd, size, entries) is not None
        assert indexed_lines(fd, size, [(0, "start"), (train_at, "valid")]) is None  # a train line there
        assert indexed_lines(fd, size, [(0, "start"), (train_at + 1, "train")]) is None  # not a line start
        assert indexed_lines(fd, size, entries[1:]) is None  # not from the log's first line
    finally:
        os.close(fd)


def test_opening_writer_repairs_a_lost_entry_a_missing_index_and_a_stale_one(tmp_path):
    log = tmp_path / "events.jsonl"
    write_run(log, launches=1)
    index = index_path(log)
    index.write_bytes(b"".join(index.read_bytes().splitlines(keepends=True)[:-2]))  # killed before its entries
    EventWriter(log).close()
    assert read_index(index) == entries_of_log(log)
    index.unlink()  # a log written before indexes existed
    EventWriter(log).close()
    assert read_index(index) == entries_of_log(log)
    log.unlink()  # a new run in the same directory: the old index describes another log
    write_run(log, launches=1, steps=10)
    assert read_index(index) == entries_of_log(log)


def test_console_reads_through_the_index_and_falls_back_where_it_does_not_hold(tmp_path, monkeypatch):
    import asr_tui.tailer as tailer

    monkeypatch.setattr(tailer, "FULL_PARSE_BYTES", 1)  # the sampled attach of big logs
    log = tmp_path / "events.jsonl"
    write_run(log)
    events = read_events(log)
    expected = [e for e in events if e["event"] in ("valid", "checkpoint")]

    def scanned():
        state = RunState()
        scan_history(log, state)
        return state.series["valid/acc"].points()[1], len(state.checkpoints)

    want = ([e["acc"] for e in expected if e["event"] == "valid"], 6)
    assert scanned() == want
    assert [e["step"] for e in find_events(log, ("checkpoint",))] == [10, 20, 30] * 2
    index = index_path(log)
    good = index.read_bytes()
    index.write_bytes(b"".join(good.splitlines(keepends=True)[:-3]))  # a writer killed after its lines
    assert scanned() == want
    index.write_bytes(good.replace(b'"event":"valid"', b'"event":"checkpoint"', 1))  # not this log's
    assert scanned() == want
    assert len(find_events(log, ("checkpoint",))) == 6
    other = tmp_path / "other" / "events.jsonl"
    write_run(other, launches=1, steps=50)
    index.write_bytes(good)
    log.write_bytes(other.read_bytes())  # the log replaced (copied over), its old index left beside it
    assert scanned() == ([e["acc"] for e in read_events(other) if e["event"] == "valid"], 5)
    assert [e["step"] for e in find_events(log, ("checkpoint",))] == [10, 20, 30, 40, 50]
