"""The event log: writer, incremental reader, and the field table both sides test against."""

import json
import os
import subprocess
import sys
import time

import pytest

from engine.events import EVENT_FIELDS, OPTIONAL_FIELDS, EventReader, EventWriter, read_events, validate_event


def valid_examples() -> dict[str, dict]:
    """One valid example of every event, as the engine writes them."""
    row = {"rank": 0, "loss": 1.5, "batch_size": 8, "data_load_s": 0.01, "forward_s": 0.1,
           "backward_s": 0.2, "optim_s": 0.01, "total_s": 0.32, "memory_mb": 512.0}
    return {
        "start": {"world_size": 2, "num_params": 1000, "steps_per_epoch": 10, "max_epoch": 3,
                  "resumed_from": None, "config": {"output_dir": "exp/x"},
                  "init_param": {"paths": ["m/model.pt"], "loaded": 3, "total": 3, "missing": [], "mismatched": [],
                                 "unexpected": [], "excluded": []},
                  "model_dir": "/models/conformer",
                  "precision": {"dtype": "bfloat16", "reason": "use_bf16: auto, this CPU has amx_bf16"}},
        "data": {"split": "train", "lists": ["data/train.jsonl"], "utterances": 100, "hours": 0.1,
                 "dropped": {"too_long": 2}},
        "train": {"epoch": 1, "step": 50, "lr": {"main": 1e-3}, "loss": 2.0, "acc": 0.5,
                  "grad_norm": {"main": 3.0}, "throughput": 100.0, "padding_ratio": 0.1,
                  "ranks": [row, dict(row, rank=1)]},
        "valid": {"epoch": 1, "step": 50, "loss": 2.5, "acc": None},
        "checkpoint": {"path": "model.pt.ep1", "epoch": 1, "step": 50, "metric": "acc",
                       "metrics": {"acc": 0.5, "loss": 2.5}, "kept": ["model.pt.ep1"], "deleted": []},
        "average": {"path": "model.pt.avg2", "sources": ["model.pt.ep1", "model.pt.ep2"],
                    "metric": "acc"},
        "end": {"status": "finished", "reason": "max_epoch reached"},
        "error": {"rank": 1, "message": "boom", "traceback": "Traceback ..."},
    }


def test_examples_cover_every_event_and_validate(tmp_path):
    examples = valid_examples()
    assert set(examples) == set(EVENT_FIELDS)
    writer = EventWriter(tmp_path / "events.jsonl")
    for name, fields in examples.items():
        writer.write(name, **fields)
    events = read_events(tmp_path / "events.jsonl")
    assert [e["event"] for e in events] == list(examples)
    for event in events:
        assert validate_event(event) == [], event


def test_optional_fields_are_type_checked_when_present():
    example = dict(valid_examples()["start"], event="start", time=1.0)
    assert all(field in example for field in OPTIONAL_FIELDS["start"])
    assert any("model_dir" in p for p in validate_event({**example, "model_dir": 3}))
    assert any("init_param" in p for p in validate_event({**example, "init_param": [1]}))
    assert any("precision" in p for p in validate_event({**example, "precision": "bfloat16"}))
    without = {k: v for k, v in example.items() if k not in OPTIONAL_FIELDS["start"]}
    assert validate_event(without) == []


@pytest.mark.parametrize("name", sorted(EVENT_FIELDS))
def test_validate_reports_each_missing_field(name):
    example = {"event": name, "time": 1.0, **valid_examples()[name]}
    for field in EVENT_FIELDS[name]:
        broken = {k: v for k, v in example.items() if k != field}
        assert any(f"'{field}'" in problem for problem in validate_event(broken)), field


def test_validate_types_and_rank_rows():
    train = {"event": "train", "time": 1.0, **valid_examples()["train"]}
    assert validate_event(dict(train, step="50")) == ["train: field 'step' is str, expected int"]
    assert validate_event(dict(train, loss=True))  # bool is not a number
    assert validate_event(dict(train, ranks=[{"rank": 0}]))[0].startswith("train: ranks[0] missing loss")
    assert validate_event({"event": "end", "time": 1.0, "status": "done", "reason": ""})
    assert validate_event([1, 2]) == ["event is list, not a JSON object"]
    assert validate_event({"event": "future_event", "time": 2}) == []
    assert "missing or non-numeric 'time'" in validate_event({"event": "valid"})


def test_writer_adds_time_and_serialises_engine_values(tmp_path):
    class FakeScalar:  # what a 0-dim tensor / numpy scalar looks like to the writer
        def tolist(self):
            return 0.25

    path = tmp_path / "run" / "events.jsonl"
    before = time.time()
    with EventWriter(path) as writer:
        writer.write("valid", epoch=1, step=2, loss=FakeScalar(), acc=None, where=tmp_path)
    line = path.read_text(encoding="utf-8")
    assert line.endswith("\n") and line.count("\n") == 1
    obj = json.loads(line)
    assert before <= obj["time"] <= time.time()
    assert obj["loss"] == 0.25 and obj["where"] == str(tmp_path)
    with pytest.raises(TypeError, match="object"):
        EventWriter(path).write("valid", bad=object())


def test_nonfinite_values_are_strict_json_and_listed(tmp_path):
    path = tmp_path / "events.jsonl"
    EventWriter(path).write("train", loss=float("nan"), lr={"main": float("inf")},
                            ranks=[{"loss": float("-inf")}], acc=0.5)
    text = path.read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text
    event = json.loads(text)
    assert event["loss"] is None and event["lr"] == {"main": None} and event["acc"] == 0.5
    assert event["nonfinite"] == ["loss", "lr.main", "ranks.0.loss"]


def test_reader_accepts_nan_from_foreign_writers(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"event":"valid","time":1,"loss":NaN}\n', encoding="utf-8")
    (event,) = read_events(path)
    assert event["loss"] != event["loss"]


def test_disabled_writer_creates_nothing(tmp_path):
    writer = EventWriter(tmp_path / "events.jsonl", enabled=False)
    assert writer.write("end", status="finished", reason="") is None
    assert not (tmp_path / "events.jsonl").exists()


def test_writer_appends_and_ends_a_torn_line_left_by_a_killed_writer(tmp_path):
    path = tmp_path / "events.jsonl"
    EventWriter(path).write("valid", epoch=1, step=1, loss=1.0, acc=0.1)
    with open(path, "ab") as handle:
        handle.write(b'{"event":"train","ep')  # killed mid-line
    reader = EventReader(path)
    assert [e["step"] for e in reader.read_new()] == [1]
    EventWriter(path).write("valid", epoch=1, step=2, loss=1.0, acc=0.1)
    assert [e["step"] for e in reader.read_new()] == [2]
    assert reader.malformed == 1 and "not JSON" in reader.last_problem


def test_reader_waits_for_a_torn_last_line(tmp_path):
    path = tmp_path / "events.jsonl"
    reader = EventReader(path)
    assert reader.read_new() == []  # no file yet
    line = json.dumps({"event": "valid", "time": 1.0, "step": 7}).encode()
    path.write_bytes(line[:10])
    assert reader.read_new() == [] and reader.offset == 0
    with open(path, "ab") as handle:
        handle.write(line[10:])
    assert reader.read_new() == []  # complete JSON but no newline yet: still torn
    with open(path, "ab") as handle:
        handle.write(b"\n")
    assert [e["step"] for e in reader.read_new()] == [7]
    assert reader.malformed == 0 and reader.offset == len(line) + 1
    assert reader.read_new() == []


def test_reader_can_start_at_an_offset(tmp_path):
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    writer.write("valid", step=1)
    offset = path.stat().st_size
    writer.write("valid", step=2)
    assert [e["step"] for e in EventReader(path, offset=offset).read_new()] == [2]


def test_reader_skips_and_counts_malformed_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"event":"a","time":1}\nnot json\n[1,2]\n{"no_event":1}\n\xff\xfe\n\n'
                     b'{"event":"b","time":2}\n')
    reader = EventReader(path)
    assert [e["event"] for e in reader.read_new()] == ["a", "b"]
    assert reader.malformed == 4
    assert str(path) in reader.last_problem


def test_reader_starts_over_after_truncation_or_replacement(tmp_path):
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    for step in range(3):
        writer.write("valid", step=step)
    reader = EventReader(path)
    assert len(reader.read_new()) == 3
    writer.close()
    path.write_bytes(b'{"event":"start","time":1}\n')  # truncated and rewritten: shorter
    assert [e["event"] for e in reader.read_new()] == ["start"]
    assert reader.restarts == 1
    replacement = tmp_path / "new.jsonl"
    replacement.write_bytes(b'{"event":"start","time":1}\n{"event":"end","time":2}\n' * 2)
    os.replace(replacement, path)  # a new file, longer than the offset
    assert [e["event"] for e in reader.read_new()] == ["start", "end", "start", "end"]
    assert reader.restarts == 2
    with open(path, "r+b") as handle:  # rewritten in place, same file, longer than before
        handle.write(b'{"event":"start","time":1,"pad":"xx"}\n' * 3)
    assert [e["event"] for e in reader.read_new()] == ["start"] * 3
    assert reader.restarts == 3


def test_reader_handles_lines_across_chunk_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(EventReader, "CHUNK_BYTES", 7)
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    for step in range(20):
        writer.write("valid", step=step, text="语音" * step)
    reader = EventReader(path)
    assert [e["step"] for e in reader.read_new()] == list(range(20))
    assert reader.malformed == 0 and reader.offset == path.stat().st_size


def test_concurrent_writers_never_interleave_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    script = (
        "import sys; from engine.events import EventWriter\n"
        "w = EventWriter(sys.argv[1])\n"
        "for i in range(2000): w.write('train', who=sys.argv[2], i=i, pad='x' * 300)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), who]) for who in "ab"]
    reader = EventReader(path)
    seen = []
    while any(p.poll() is None for p in procs):
        seen += reader.read_new()
    seen += reader.read_new()
    assert all(p.returncode == 0 for p in procs)
    assert reader.malformed == 0
    for who in "ab":
        assert [e["i"] for e in seen if e["who"] == who] == list(range(2000))


def test_reader_does_not_import_torch():
    code = "import sys, engine.events; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
