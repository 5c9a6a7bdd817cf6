"""Exact resume: a run continued from a checkpoint ends with the same parameters as one never interrupted."""

from __future__ import annotations

import pytest
import torch

from engine.train import main
from tests.trainer.tiny import events_of, model_weights, tiny_config, write_config


def train(corpus, run_dir, tmp_path, *overrides, **sections):
    config = tiny_config(corpus, run_dir, **sections)
    path = write_config(config, tmp_path / f"{run_dir.name}.yaml")
    assert main(["--config", str(path), *overrides]) == 0
    return run_dir


def losses_by_step(run_dir):
    return {e["step"]: e["losses"] for e in events_of(run_dir) if e["event"] == "train"}


def resume_sections(accum_grad: int = 1, cache_mb: float = 0) -> dict:
    return {"train_conf": {"max_epoch": 2, "log_interval": 1, "validate_interval": 4,
                           "save_checkpoint_interval": 3, "keep_nbest_models": 20, "avg_nbest_model": 0,
                           "accum_grad": accum_grad, "deterministic": True},
            "dataset_conf": {"cache_mb": cache_mb}}


def assert_same_parameters(a, b):
    final_a, final_b = model_weights(a / "model.pt"), model_weights(b / "model.pt")
    assert final_a.keys() == final_b.keys()
    for name in final_a:
        assert torch.equal(final_a[name], final_b[name]), name


@pytest.mark.parametrize(("accum_grad", "resume_name", "cache_mb"),
                         [(1, "model.pt.ep1.3", 0), (3, "model.pt.ep1", 0), (1, "model.pt.ep1.3", 64)],
                         ids=["mid-epoch", "epoch-end-with-pending-gradients", "mid-epoch-load-cache"])
def test_resumed_run_ends_with_identical_parameters(small_corpus, tmp_path, accum_grad, resume_name, cache_mb):
    # With the load cache the resumed process starts with an empty one: it loads again the audio the
    # uninterrupted run had kept from before the checkpoint, and must train on the same features.
    sections = resume_sections(accum_grad, cache_mb)
    whole = train(small_corpus, tmp_path / "whole", tmp_path, **sections)
    checkpoint = whole / resume_name
    assert checkpoint.is_file()
    resumed_step = torch.load(checkpoint, map_location="cpu", weights_only=True)["step"]

    resumed = train(small_corpus, tmp_path / "resumed", tmp_path, f"++train_conf.resume_from={checkpoint}",
                    **sections)
    start = next(e for e in events_of(resumed) if e["event"] == "start")
    assert start["resumed_from"] == str(checkpoint) and start["step"] == resumed_step

    assert_same_parameters(whole, resumed)
    curve_whole, curve_resumed = losses_by_step(whole), losses_by_step(resumed)
    assert min(curve_resumed) == resumed_step + 1
    # With pending gradients, the first update after the resume also used a batch trained before the
    # checkpoint, whose loss the resumed run's log cannot average in; from the next update on, equal.
    first_equal = resumed_step + (2 if accum_grad > 1 else 1)
    assert {s: v for s, v in curve_whole.items() if s >= first_equal} == \
        {s: v for s, v in curve_resumed.items() if s >= first_equal}


def test_the_load_cache_changes_no_parameter(small_corpus, tmp_path):
    plain = train(small_corpus, tmp_path / "plain", tmp_path, **resume_sections())
    cached = train(small_corpus, tmp_path / "cached", tmp_path, **resume_sections(cache_mb=64))
    assert_same_parameters(plain, cached)
    assert losses_by_step(plain) == losses_by_step(cached)


def test_resume_from_a_missing_checkpoint_names_it(small_corpus, tmp_path, capsys):
    config = write_config(tiny_config(small_corpus, tmp_path / "run"), tmp_path / "run.yaml")
    missing = tmp_path / "nowhere" / "model.pt.ep3"
    assert main(["--config", str(config), f"++train_conf.resume_from={missing}"]) == 2  # checked before writing
    err = capsys.readouterr().err
    assert f"train_conf.resume_from: {missing}: no such checkpoint file" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
