"""max_update: auto and early stopping, on one tiny run: the lr preview (as the console computes it
before launch) and the run agree step for step; patience ends the run ``finished`` and averages."""

from __future__ import annotations

import copy

import pytest

from engine.optim_sche.run_length import resolve_max_update, run_real_steps
from engine.train import main
from tests.trainer.tiny import events_of, tiny_config, write_config

COSINE = {"main": {"type": "cosine", "conf": {"optim_type": "AdamW", "optim_conf": {"lr": 1.0e-9},
                                              "warmup_steps": 3}}}


@pytest.fixture(scope="module")
def patient_run(small_corpus, tmp_path_factory):
    """Cosine without max_update; an lr so small that accuracy cannot improve, so patience 3 stops it."""
    run_dir = tmp_path_factory.mktemp("patient_run")
    config = tiny_config(small_corpus, run_dir, optim_sches=COSINE,
                         train_conf={"max_epoch": 3, "log_interval": 1, "validate_interval": 4,
                                     "save_checkpoint_interval": 100, "patience": 3, "keep_nbest_models": 5})
    path = write_config(config, run_dir.parent / f"{run_dir.name}.yaml")
    assert main(["--config", str(path)]) == 0
    return config, run_dir


def test_preview_and_run_agree_step_for_step(patient_run):
    from engine.optim_sche import lr_curve
    from engine.optim_sche.preview import with_run_length

    config, run_dir = patient_run
    events = events_of(run_dir)
    start = next(e for e in events if e["event"] == "start")
    train_conf = {"accum_grad": 1, **config["train_conf"]}
    resolved, values, batches = with_run_length(config, copy.deepcopy(config["optim_sches"]), train_conf)
    assert batches == start["batches_per_epoch"]
    assert values == start["max_update"] == {"main": run_real_steps(batches, 3, 1)}
    preview = lr_curve(resolved, 3 * batches)["main"]
    run_lrs = {e["step"]: e["lr"]["main"] for e in events if e["event"] == "train"}
    assert len(run_lrs) >= 10
    for step, lr in run_lrs.items():
        assert lr == pytest.approx(preview[step - 1], rel=1e-9, abs=0.0)
    assert "max_update: main" in (run_dir / "log.txt").read_text(encoding="utf-8")


def test_patience_ends_the_run_finished_with_the_reason_and_averages(patient_run):
    config, run_dir = patient_run
    events = events_of(run_dir)
    valids = [e for e in events if e["event"] == "valid"]
    end = events[-1]
    assert end["event"] == "end" and end["status"] == "finished"
    assert end["reason"].startswith("early stopping: validation acc has not improved for 3 validations")
    assert len(valids) == 4  # the best, then three without improvement
    last_step = max(e["step"] for e in events if e["event"] == "train")
    assert last_step < 3 * next(e for e in events if e["event"] == "start")["batches_per_epoch"]
    assert any(e["event"] == "average" for e in events)


def test_resume_keeps_the_checkpoints_max_update_and_says_so():
    sches = {"a": {"type": "cosine", "conf": {"optim_conf": {"lr": 0.1}}},
             "b": {"type": "tri_stage", "conf": {"optim_conf": {"lr": 0.1}, "phase_ratio": [0.1, 0.4, 0.5]}},
             "c": {"type": "tri_stage", "conf": {"optim_conf": {"lr": 0.1}, "warmup_steps": 1, "hold_steps": 1,
                                                 "decay_steps": 1}},
             "d": {"type": "cosine", "conf": {"optim_conf": {"lr": 0.1}, "max_update": 77, "accum_grad": 2}}}
    resolved, values, notes = resolve_max_update(sches, {"max_epoch": 4, "accum_grad": 2}, 101)
    assert values == {"a": 202, "b": 202}
    assert resolved["a"]["conf"]["max_update"] == 202 and "max_update" not in resolved["c"]["conf"]
    assert resolved["d"]["conf"]["max_update"] == 77 and not notes
    _, values, notes = resolve_max_update(sches, {"max_epoch": 4, "accum_grad": 2}, 120, saved={"a": 202, "b": 202})
    assert values == {"a": 202, "b": 202}
    assert len(notes) == 2 and "kept at 202 from the checkpoint (the data now gives 240" in notes[0]


def test_auto_without_data_is_a_clear_error():
    from engine.optim_sche.build import build_one
    from engine.optim_sche.conf import OptimConfError

    with pytest.raises(OptimConfError, match=r"optim_sches\.main\.conf\.max_update: auto is the run's length"):
        build_one("main", COSINE["main"], None, {})
