"""The parts of issue 15 below the commands: the run lock, the declared schemas, file modes."""

from __future__ import annotations

import inspect
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from engine.trainer.run_lock import LOCK_FILE, RunLock, RunLockedError, lock_holder


def test_stale_lock_of_a_dead_pid_is_taken_over_with_a_note(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "since": 0}))
    with RunLock(tmp_path) as lock:
        assert f"took over the lock of pid {pid} on {socket.gethostname()}, which is no longer running" in lock.note
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert lock_holder(tmp_path) is None


def test_lock_is_exclusive_and_released(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunLockedError, match=rf"pid {os.getpid()} on {socket.gethostname()}"):
            RunLock(tmp_path).acquire()  # a second open file description: refused as another job is
    with RunLock(tmp_path):
        pass  # released: the next job takes it


def test_console_shows_the_lock_holder(tmp_path):
    from asr_tui.run_state import RunState
    from asr_tui.runs_store import summarize

    (tmp_path / "events.jsonl").write_text("")
    with RunLock(tmp_path):
        assert summarize(tmp_path, RunState()).lock_holder == f"pid {os.getpid()} on {socket.gethostname()}"
    assert summarize(tmp_path, RunState()).lock_holder == ""


def test_console_modules_stay_torch_free():
    """The config check (schemas, provenance), run lock and runs store serve the console: no torch."""
    code = ("import sys, engine.config, engine.schema, engine.provenance, engine.trainer.run_lock, "
            "engine.trainer.preflight, asr_tui.runs_store; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PYTHONPATH=os.getcwd()))


@pytest.mark.parametrize("section, component", [("encoder_conf", "conformer"), ("encoder_conf", "transformer"),
                                                ("decoder_conf", "conformer"), ("model_conf", "conformer"),
                                                ("specaug_conf", ""), ("encoder_conf", "paraformer"),
                                                ("decoder_conf", "paraformer"), ("predictor_conf", "paraformer"),
                                                ("model_conf", "paraformer")])
def test_declared_schema_matches_the_constructor(section, component):
    """Each declared schema names exactly its constructor's arguments (a new argument needs an entry)."""
    from engine.data.specaug import SpecAugment
    from engine.models import ENCODERS, TransformerDecoder
    from engine.models.asr_model import ASRModel
    from engine.models.cif_predictor import CifPredictorV2
    from engine.models.paraformer import Paraformer
    from engine.models.paraformer_decoder import ParaformerSANMDecoder
    from engine.models.sanm_encoder import SANMEncoder
    from engine.schema import SECTION_SCHEMAS

    if component == "paraformer":
        constructor, reserved = {
            "encoder_conf": (SANMEncoder, {"input_size"}),
            "decoder_conf": (ParaformerSANMDecoder, {"vocab_size", "encoder_output_size"}),
            "predictor_conf": (CifPredictorV2, set()),
            "model_conf": (Paraformer, {"vocab_size", "encoder", "decoder", "predictor"}),
        }[section]
    else:
        constructor, reserved = {
            "encoder_conf": (ENCODERS.get(component), {"input_size"}),
            "decoder_conf": (TransformerDecoder, {"vocab_size", "encoder_output_size"}),
            "model_conf": (ASRModel, {"vocab_size", "encoder", "decoder", "ctc", "sos_eos_id", "ignore_id"}),
            "specaug_conf": (SpecAugment, set()),
        }[section]
    parameters = inspect.signature(constructor).parameters
    accepted = {name for name in parameters if name not in reserved | {"self"}}
    schema = SECTION_SCHEMAS[section][1][component]
    assert set(schema) == accepted
    for name in accepted:  # every default is a value its schema accepts
        default = parameters[name].default
        if default is inspect.Parameter.empty:  # required (predictor_conf.idim: FunASR writes it; the
            continue                            # engine fills in the encoder's size)
        assert schema[name].problem(default) is None, (name, default)


def test_schema_checks_reach_the_console_form():
    """check_config (what the setup form calls) reports constructor keys by dotted key, without torch."""
    from engine.config import DEFAULTS, check_config, deep_merge

    config = deep_merge(DEFAULTS, {"train_data_set_list": ["x.jsonl"],
                                   "encoder_conf": {"output_size": "abc", "dropout_rate": 1.5},
                                   "decoder_conf": {"num_layers": 2}})
    issues = {issue.key: issue.message for issue in check_config(config)}
    assert issues["encoder_conf.output_size"] == "must be an integer, got 'abc'"
    assert issues["encoder_conf.dropout_rate"] == "must be below 1.0, got 1.5"
    assert issues["decoder_conf.num_layers"].startswith("unknown key for model conformer")


def test_paraformer_sections_are_checked_before_anything_is_written():
    """A Paraformer's four FunASR sections are held to their schemas too, not left to the model's build
    (which comes after the run directory, am.mvn and tokens exist)."""
    from engine.config import DEFAULTS, check_config, deep_merge

    config = deep_merge(DEFAULTS, {"train_data_set_list": ["x.jsonl"], "model": "paraformer",
                                   "encoder_conf": {"output_size": 64, "kernel_size": "abc"},
                                   "decoder_conf": {"att_layer_num": 0, "concat_after": True},
                                   "predictor_conf": {"tail_threshold": -1.0, "l_order": 1},
                                   "model_conf": {"sampling_ratio": 1.5, "predictor_bias": 2}})
    issues = {issue.key: issue.message for issue in check_config(config)}
    assert issues["encoder_conf.kernel_size"] == "must be an integer, got 'abc'"
    assert issues["decoder_conf.att_layer_num"] == "must be at least 1, got 0"
    assert issues["decoder_conf.concat_after"] == "must be one of False, got True"
    assert issues["predictor_conf.tail_threshold"] == "must be at least 0.0, got -1.0"
    assert issues["model_conf.sampling_ratio"] == "must be at most 1.0, got 1.5"
    assert issues["model_conf.predictor_bias"] == "must be one of 0, 1, got 2"
    assert "predictor_conf.l_order" not in issues and "encoder_conf.output_size" not in issues


def test_provenance_names_file_line_and_override(tmp_path):
    from engine.config import ConfigError, load_config

    config = tmp_path / "x.yaml"
    config.write_text("train_data_set_list: [a.jsonl]\ntrain_conf:\n  max_epoch: 0\n  log_interval: 5\n")
    with pytest.raises(ConfigError, match=rf"^{config}:3: train_conf\.max_epoch: must be at least 1, got 0$"):
        load_config(config)
    with pytest.raises(ConfigError, match=r"^\+\+train_conf\.log_interval=0: train_conf\.log_interval: must be"):
        load_config(config, ["++train_conf.max_epoch=2", "++train_conf.log_interval=0"])


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_atomic_writes_respect_the_umask(tmp_path, umask, mode):
    from engine.utils.fileio import atomic_write_text

    previous = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
    finally:
        os.umask(previous)
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == mode
    os.chmod(tmp_path / "new.txt", 0o600)
    atomic_write_text(tmp_path / "new.txt", "y")  # a replaced file keeps its own mode
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o600


def test_decode_output_folder_respects_the_umask(tmp_path):
    from engine.decode.cli import write_output_dir

    previous = os.umask(0o027)
    try:
        write_output_dir(tmp_path / "out", {"text": "a b\n", "summary.json": "{}"})
        (tmp_path / "out" / "decode.log").write_text("the console's log\n")
        write_output_dir(tmp_path / "out", {"text": "c d\n"})  # replaces its own files, keeps others'
    finally:
        os.umask(previous)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "out" / "text").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "out" / "text").read_text() == "c d\n"
    assert (tmp_path / "out" / "decode.log").read_text() == "the console's log\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left


def test_debug_environment_variable_shows_traceback(tmp_path, monkeypatch):
    from tests.reliability.conftest import run_tool

    monkeypatch.setenv("ASR_TUI_DEBUG", "1")
    config = tmp_path / "x.yaml"
    config.write_text("train_data_set_list: [a.jsonl]\ntrain_conf:\n  max_epoch: 0\n")
    result = run_tool("asr-train", ["--config", config])
    assert result.code == 2
    assert "Traceback (most recent call last)" in result.err
    assert f"{config}:3: train_conf.max_epoch" in result.err


def test_lock_race_lets_exactly_one_of_many_jobs_in(tmp_path):
    """Eight processes start together and try the lock many times each: never two holders at once."""
    code = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from engine.trainer.run_lock import RunLock, RunLockedError\n"
        "run, go = Path(sys.argv[1]), float(sys.argv[2])\n"
        "while time.time() < go: pass\n"
        "won = 0\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        lock = RunLock(run).acquire()\n"
        "    except RunLockedError:\n"
        "        continue\n"
        "    marker = run / 'holder'\n"
        "    assert not marker.exists(), 'two holders at once'\n"
        "    marker.write_text(str(os.getpid()))\n"
        "    marker.unlink()\n"
        "    lock.release()\n"
        "    won += 1\n"
        "print(won)\n"
    )
    import time

    go = time.time() + 2.0
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(8)]
    results = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in results]
    assert sum(int(out) for out, _ in results) > 0
