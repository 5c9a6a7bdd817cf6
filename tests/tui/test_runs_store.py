"""Run discovery, status (running / finished / stopped / failed / crashed) and log following."""

import json
import socket

from asr_tui import tailer
from asr_tui.run_state import RunState
from asr_tui.runs_store import RunsStore, find_run_dirs, process_alive, summarize, _TrackedRun
from asr_tui.tailer import RunFollower, TextTail, read_tail_events, scan_history
from tests.tui.runfactory import RunFactory, crashed_run, dead_pid, finished_run, live_run


def by_name(summaries):
    return {s.name: s for s in summaries}


def test_statuses_progress_and_metrics(tmp_path):
    finished_run(tmp_path)
    crashed_run(tmp_path)
    live, _ = live_run(tmp_path)
    stopped = RunFactory(tmp_path / "stopped")
    stopped.run_json(pid=dead_pid())
    stopped.start()
    stopped.train(50)
    stopped.end("stopped", "SIGTERM")
    runs = by_name(RunsStore(tmp_path).scan())
    assert {n: s.status for n, s in runs.items()} == {
        "finished": "finished", "crashed": "crashed", "live": "running", "stopped": "stopped"}
    assert runs["finished"].progress == 1.0
    assert runs["crashed"].step == 120 and runs["crashed"].total_steps == 400
    assert "CUDA out of memory" in runs["crashed"].reason
    assert runs["stopped"].reason == "SIGTERM"
    assert set(runs["finished"].metrics) == {"loss", "acc", "valid_loss", "valid_acc"}
    live.close()


def test_crash_without_error_event_and_other_host(tmp_path):
    run = RunFactory(tmp_path / "gone")
    run.run_json(pid=dead_pid())
    run.start()
    remote = RunFactory(tmp_path / "remote")
    remote.run_json(pid=1, host=socket.gethostname() + "-elsewhere")
    remote.start()
    runs = by_name(RunsStore(tmp_path).scan())
    assert runs["gone"].status == "crashed"
    assert "without an end event" in runs["gone"].reason
    assert runs["remote"].status == "running"  # fresh events from another host: trusted
    assert process_alive(json.loads((tmp_path / "remote" / "run.json").read_text())) is None


def test_bad_run_json_is_reported_not_fatal(tmp_path):
    run = RunFactory(tmp_path / "bad")
    run.start()
    (tmp_path / "bad" / "run.json").write_text("{not json")
    summary = by_name(RunsStore(tmp_path).scan())["bad"]
    assert "run.json" in summary.reason and "not valid JSON" in summary.reason


def test_find_run_dirs_skips_decode_and_nests(tmp_path):
    finished_run(tmp_path / "group", name="a")
    (tmp_path / "group" / "a" / "decode" / "x").mkdir(parents=True)
    (tmp_path / "group" / "a" / "decode" / "x" / "run.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    assert find_run_dirs(tmp_path) == [tmp_path / "group" / "a"]
    assert find_run_dirs(tmp_path / "missing") == []


def test_store_reads_only_what_was_appended(tmp_path):
    run, _ = live_run(tmp_path)
    tracked = _TrackedRun(run.run_dir)
    assert tracked.update().step == 60
    offset = tracked.reader.offset
    run.train(20)
    state = tracked.update()
    assert state.step == 80 and tracked.reader.offset > offset
    run.end("finished")
    assert summarize(run.run_dir, tracked.update()).status == "finished"
    run.close()


def test_tail_read_finds_last_launch(tmp_path):
    run = RunFactory(tmp_path / "r")
    run.start()
    run.train(100)
    run.end("stopped", "SIGTERM")
    run.start(resumed_from="model.pt")
    run.train(30)
    run.close()
    events, complete, offset = read_tail_events(run.run_dir / "events.jsonl")
    assert complete and events[0]["event"] == "start" and events[0]["resumed_from"] == "model.pt"
    assert offset == (run.run_dir / "events.jsonl").stat().st_size
    assert not any(e["event"] == "end" for e in events)


def test_sampled_attach_matches_full_parse(tmp_path, monkeypatch):
    run = RunFactory(tmp_path / "big", steps_per_epoch=5000, max_epoch=1)
    run.start()
    run.train(5000, log_interval=1, valid_every=500, checkpoint_every=1000)
    run.error("boom")
    with open(run.run_dir / "events.jsonl", "ab") as handle:
        handle.write(b'{"event":"train","time":1,"step":99999')  # torn last line
    full = RunState(max_points=200)
    full_scan = scan_history(run.run_dir / "events.jsonl", full)
    monkeypatch.setattr(tailer, "FULL_PARSE_BYTES", 1024)
    monkeypatch.setattr(tailer, "SCAN_CHUNK_BYTES", 100)  # lines longer than the buffer, lines cut
    sampled = RunState(max_points=200)
    sampled_scan = scan_history(run.run_dir / "events.jsonl", sampled, train_samples=400)
    assert sampled_scan.offset == full_scan.offset  # both stop before the torn line
    assert 300 <= sampled_scan.sampled_train <= 401
    assert sampled.step == full.step == 5000
    assert len(sampled.checkpoints) == len(full.checkpoints) == 5
    assert sampled.series["valid/acc"].total_points == full.series["valid/acc"].total_points == 10
    assert sampled.errors and sampled.errors[0]["message"] == "boom"
    assert sampled.last_train["ranks"] == full.last_train["ranks"]
    first_x = sampled.series["train/loss"].points()[0][0]
    assert first_x < 100  # the history starts at the beginning, not at the attach point
    run.close()


def test_sampled_attach_reads_lines_longer_than_its_read_window(tmp_path, monkeypatch):
    run = RunFactory(tmp_path / "wide", world_size=64, steps_per_epoch=400, max_epoch=1)  # ~11 KB lines
    run.start()
    run.train(400, log_interval=1, valid_every=100, checkpoint_every=200)
    run.close()
    full = RunState(max_points=100)
    scan_history(run.run_dir / "events.jsonl", full)
    monkeypatch.setattr(tailer, "FULL_PARSE_BYTES", 1024)
    sampled = RunState(max_points=100)
    scan = scan_history(run.run_dir / "events.jsonl", sampled, train_samples=50)
    assert scan.bad_lines == 0 and 40 <= scan.sampled_train <= 51
    assert sampled.step == full.step == 400
    assert len(sampled.last_train["ranks"]) == 64
    assert sampled.series["valid/acc"].total_points == full.series["valid/acc"].total_points == 4


def test_follower_waits_for_torn_line_then_reads_it(tmp_path):
    run, _ = live_run(tmp_path)
    follower = RunFollower(run.run_dir)
    follower.attach()
    assert follower.state.step == 60
    path = run.run_dir / "events.jsonl"
    line = json.dumps({"event": "valid", "time": 1.0, "epoch": 1, "step": 60, "loss": 1.0, "acc": 0.5})
    with open(path, "a") as handle:
        handle.write(line[:20])
    assert follower.poll().events == []
    with open(path, "a") as handle:
        handle.write(line[20:] + "\n")
    update = follower.poll()
    assert [e["event"] for e in update.events] == ["valid"]
    assert follower.state.last_valid["acc"] == 0.5
    run.close()


def test_text_tail_keeps_last_lines_and_handles_truncation(tmp_path):
    path = tmp_path / "console.log"
    path.write_text("".join(f"line {i}\n" for i in range(1000)))
    tail = TextTail(path, max_lines=10)
    tail.read_new()
    assert list(tail.lines)[-1] == "line 999" and len(tail.lines) == 10
    with open(path, "a") as handle:
        handle.write("progress 10%\rprogress 50%\rdone\npartial")
    assert tail.read_new() == ["done"]
    path.write_text("new file\n")
    assert tail.read_new() == ["new file"]


def test_text_tail_jumps_over_a_burst(tmp_path):
    path = tmp_path / "console.log"
    path.write_text("first\n")
    tail = TextTail(path, max_lines=100, initial_bytes=200)
    assert tail.read_new() == ["first"]
    with open(path, "a") as handle:
        handle.write("".join(f"burst line {i:05d}\n" for i in range(10_000)))
    lines = tail.read_new()
    assert lines[-1] == "burst line 09999" and len(lines) <= 200 // 17
    assert all(line.startswith("burst line ") for line in lines)  # no cut line at the head
