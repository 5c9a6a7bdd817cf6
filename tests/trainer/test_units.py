"""The trainer's small parts, without training: run.json merging, the rank error channel, signals,
the train event and log line, resume paths."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from engine.events import read_events, validate_event, EventWriter
from engine.trainer.errors import ErrorChannel
from engine.trainer.resume import Position, resume_path
from engine.trainer.run_record import RunRecord
from engine.trainer.signals import StopRequest
from engine.trainer.train_log import IntervalMeter, funasr_line, rank_rows, train_event_fields


def test_run_record_keeps_the_console_s_fields_and_adds_the_engine_pid(tmp_path):
    console = {"launched_by": "asr-tui", "pid": 123, "pgid": 123, "argv": ["torchrun", "..."],
               "config_path": "exp.yaml", "status": "running"}
    (tmp_path / "run.json").write_text(json.dumps(console))
    record = RunRecord(tmp_path)
    record.start(["--config", "exp.yaml"])
    written = json.loads((tmp_path / "run.json").read_text())
    assert {k: written[k] for k in console} == console and written["engine_pid"] == os.getpid()
    record.finish("stopped", "SIGTERM at step 7")
    written = json.loads((tmp_path / "run.json").read_text())
    assert written["status"] == "stopped" and written["reason"] == "SIGTERM at step 7" and written["pid"] == 123


def test_run_record_of_a_shell_launch_replaces_a_finished_record(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"launched_by": "asr-tui", "pid": 1, "status": "finished"}))
    written = RunRecord(tmp_path).start(["--config", "exp.yaml"])
    assert written["launched_by"] == "cli" and written["pid"] == os.getpid()
    assert written["pgid"] == os.getpgid(0) and written["argv"][-2:] == ["--config", "exp.yaml"]
    assert written["cwd"] == os.getcwd() and written["status"] == "running"


def test_error_of_another_rank_reaches_the_event_log(tmp_path):
    events = EventWriter(tmp_path / "events.jsonl")
    try:
        raise ValueError("bad batch on rank 1")
    except ValueError as exc:
        ErrorChannel(tmp_path, rank=1, write_event=events.write).report(exc)
    assert (tmp_path / "events.rank1.err.json").is_file()
    assert read_events(tmp_path / "events.jsonl") == []  # rank 1 never writes the log itself

    channel = ErrorChannel(tmp_path, rank=0, write_event=events.write, poll_s=0.05, grace_s=0.3)
    timed_out = []
    channel.watch(on_timeout=timed_out.append)
    deadline = time.monotonic() + 5
    while not timed_out and time.monotonic() < deadline:
        time.sleep(0.05)
    channel.stop()
    [error] = read_events(tmp_path / "events.jsonl")
    assert validate_event(error) == [] and error["rank"] == 1
    assert error["message"] == "ValueError: bad batch on rank 1" and "raise ValueError" in error["traceback"]
    assert not (tmp_path / "events.rank1.err.json").exists()
    assert timed_out == ["rank 1 failed: ValueError: bad batch on rank 1"]


def test_error_file_left_by_a_killed_job_is_merged_by_the_next_launch(tmp_path):
    events = EventWriter(tmp_path / "events.jsonl")
    try:
        raise RuntimeError("out of memory")
    except RuntimeError as exc:
        ErrorChannel(tmp_path, rank=3, write_event=events.write).report(exc)
    merged = ErrorChannel(tmp_path, rank=0, write_event=events.write).merge_pending(previous_launch=True)
    assert len(merged) == 1
    [error] = read_events(tmp_path / "events.jsonl")
    assert error["rank"] == 3 and error["previous_launch"] is True


def test_first_signal_requests_a_stop_and_a_second_sigint_aborts():
    stop = StopRequest().install()
    try:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stop.requested and stop.signal_name == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    finally:
        stop.uninstall()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def meter_with(steps: int, loss: float) -> IntervalMeter:
    meter = IntervalMeter()
    batch = {"keys": ["a", "b", "c", "d"], "num_frames_real": 300, "num_frames_padded": 400}
    for _ in range(steps):
        meter.add({"loss": loss, "loss_ctc": 2 * loss, "loss_att": loss / 2, "acc": 0.5}, 3.0, batch,
                  {"data_load": 0.01, "forward": 0.1, "backward": 0.2, "optim": 0.05, "total": 0.4})
    return meter


def test_train_event_averages_ranks_and_keeps_a_row_per_rank():
    rows, names = [], None
    for loss in (1.0, 3.0):
        row, names = meter_with(5, loss).row(__import__("torch").device("cpu"))
        rows.append(row)
    per_rank = rank_rows(rows, names)
    fields = train_event_fields(per_rank, epoch=2, step=50, batch=7, batches_per_epoch=20, lrs={"main": 1e-3},
                                grad_norms={"main": 3.0}, elapsed_s=2.0, frame_shift_ms=10)
    assert validate_event({"event": "train", "time": 0.0, **fields}) == []
    assert fields["loss"] == pytest.approx(2.0) and fields["losses"]["loss_ctc"] == pytest.approx(4.0)
    assert fields["padding_ratio"] == pytest.approx(0.25)
    assert fields["throughput"] == pytest.approx(2 * 5 * 4 / 2.0)  # utterances over both ranks per second
    assert [r["rank"] for r in fields["ranks"]] == [0, 1] and fields["ranks"][1]["loss"] == pytest.approx(3.0)
    line = funasr_line(per_rank[1], loss_avg_rank=fields["loss"], epoch=2, max_epoch=10, batch=7,
                       batches_per_epoch=20, step=50, lr=1e-3, device_type="cpu")
    assert line.startswith("train, rank: 1, epoch: 2/10, step: 7/20, total step: 50, (loss_avg_rank: 2.000), "
                           "(loss_avg_epoch: 3.000), (ppl_avg_epoch: 20.086), (acc_avg_epoch: 0.500), (lr: 1.000e-03), "
                           "[('loss', 3.0), ('loss_att', 1.5), ('loss_ctc', 6.0), ('acc', 0.5), ('batch_size', 4)], "
                           "{'data_load': '0.010', 'forward_time': '0.100', 'backward_time': '0.200', "
                           "'optim_time': '0.050', 'total_time': '0.400'}, CPU, memory: usage: ")


def test_resume_path_prefers_resume_from_and_names_a_missing_one(tmp_path):
    assert resume_path(tmp_path, {"resume": True}) is None
    (tmp_path / "model.pt").write_bytes(b"x")
    assert resume_path(tmp_path, {"resume": True}) == tmp_path / "model.pt"
    assert resume_path(tmp_path, {"resume": False}) is None
    with pytest.raises(FileNotFoundError, match="resume_from: .*model.pt.ep9"):
        resume_path(tmp_path, {"resume": True, "resume_from": str(tmp_path / "model.pt.ep9")})
    assert Position(epoch=3, epoch_done=True).next_epoch == 4 and Position(epoch=3).next_epoch == 3


def test_utterances_skipped_at_load_go_into_a_data_event_and_the_log(tmp_path):
    """Every rank's skipped utterances reach rank 0's ``data`` event, added to the start's counts."""
    from types import SimpleNamespace

    from engine.trainer.trainer import Trainer

    trainer = Trainer.__new__(Trainer)
    writer = EventWriter(tmp_path / "events.jsonl")
    trainer.dist = SimpleNamespace(distributed=False, is_main=True, rank=0)
    trainer.events, trainer.config = writer, {"train_data_set_list": ["train.jsonl"]}
    trainer.pos = Position(epoch=2, step=40)
    trainer.train_data_event = {"split": "train", "lists": ["train.jsonl"], "utterances": 80, "hours": 0.05,
                                "dropped": {"too_long": 2}}
    trainer.pending_skips = [{"reason": "missing_audio", "path": "train.jsonl", "line": 4, "key": "u4", "detail": ""}]
    trainer.load_skips = {}
    trainer.report_skips()
    trainer.report_skips()  # nothing new: no event
    writer.close()
    (event,) = [e for e in read_events(tmp_path / "events.jsonl") if e["event"] == "data"]
    assert validate_event(event) == []
    assert event["dropped"] == {"too_long": 2, "missing_audio": 1} and event["skipped_at_load"] == {"missing_audio": 1}
    assert event["problems"][0]["key"] == "u4" and event["step"] == 40 and trainer.pending_skips == []


def test_a_process_count_other_than_the_config_s_is_named_with_its_effect_on_the_batch():
    from engine.utils.dist import world_size_mismatch

    two = {"distributed": {"nnodes": 1, "nproc_per_node": 2}}
    assert world_size_mismatch(two, 2) is None
    assert world_size_mismatch({"distributed": {"nnodes": 2, "nproc_per_node": 2}}, 4) is None
    alone = world_size_mismatch(two, 1)
    assert "asks for 2 process(es)" in alone and "not under torchrun" in alone and "1/2" in alone
    more = world_size_mismatch({"distributed": {"nnodes": 1, "nproc_per_node": 1}}, 2)
    assert "this run has 2" in more and "2/1" in more
