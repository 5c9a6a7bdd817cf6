"""The step speed-ups: train_conf.compile (and its fallback to eager), the fused optimiser step
chosen by default, and bf16 autocast's correctness on a real (tiny) ASR model.

None of these tests needs a C++ compiler: compiling is exercised through a dynamo backend that
fails (the fallback) or through the eager fallback when no compiler is found.
"""

import math

import pytest
import torch

from engine.config import ConfigError, load_config
from engine.models import build_model
from engine.optim_sche import TrainStep, build_optim_sches
from engine.optim_sche import compile as compile_mod
from engine.optim_sche.abs import fast_step_options
from tests.optim_sche.models import EncDec, data, entry


def test_compile_setting_is_resolved_per_device_type(monkeypatch):
    monkeypatch.setitem(compile_mod.AUTO_COMPILE, "cpu", False)
    assert compile_mod.wanted("auto", "cpu")[0] is False
    assert compile_mod.wanted(True, "cpu") == (True, "compile: true")
    assert compile_mod.wanted(False, "cuda")[0] is False
    monkeypatch.setitem(compile_mod.AUTO_COMPILE, "cpu", True)
    assert compile_mod.wanted("auto", "cpu")[0] is True
    with pytest.raises(ValueError, match="train_conf.compile"):
        compile_mod.wanted("yes", "cpu")


def test_config_takes_auto_true_false_and_names_a_bad_value():
    assert load_config(None, ["++train_data_set_list=[a.jsonl]"])["train_conf"]["compile"] == "auto"
    for value in ("true", "false", "auto"):
        load_config(None, ["++train_data_set_list=[a.jsonl]", f"++train_conf.compile={value}"])
    with pytest.raises(ConfigError, match="train_conf.compile"):
        load_config(None, ["++train_data_set_list=[a.jsonl]", "++train_conf.compile=sometimes"])


def _train_step(train_conf):
    model = EncDec()
    return model, TrainStep(model, build_optim_sches({"main": entry()}, model, train_conf), train_conf, "cpu")


def test_no_compiler_falls_back_to_eager_and_says_why(monkeypatch, caplog):
    monkeypatch.setattr(compile_mod, "compiler_missing", lambda device_type: "no C++ compiler (g++) on PATH")
    x, y = data(8)
    _, step = _train_step({"compile": True})
    result = step.run(lambda m: m(x, y), 1)
    status = step.compile_status
    assert status["requested"] and not status["active"]
    assert "fell back to eager" in status["reason"] and "g++" in status["reason"]
    assert "fell back to eager" in caplog.text
    assert math.isfinite(result.losses["loss"]) and result.updated


def test_a_failing_compile_falls_back_on_the_first_step_and_trains_as_eager(monkeypatch):
    """A backend that fails the way a missing or broken compiler does: the step is repeated eager,
    and the weights end exactly as an eager run's."""

    def broken_backend(graph_module, example_inputs):
        raise RuntimeError("cc1plus: fatal error")

    real_compile = torch.compile
    monkeypatch.setattr(compile_mod, "compiler_missing", lambda device_type: None)
    monkeypatch.setattr(compile_mod.torch, "compile",
                        lambda module, **kwargs: real_compile(module, backend=broken_backend))
    torch._dynamo.reset()
    x, y = data(16)
    compiled_model, compiled = _train_step({"compile": True})
    eager_model, eager = _train_step({"compile": False})
    for step_num in range(1, 4):
        a = compiled.run(lambda m: m(x, y), step_num)
        b = eager.run(lambda m: m(x, y), step_num)
        assert a.losses == b.losses
    assert not compiled.compile_status["active"] and "cc1plus" in compiled.compile_status["reason"]
    for (name, p), q in zip(compiled_model.named_parameters(), eager_model.parameters()):
        assert torch.equal(p, q), name
    torch._dynamo.reset()


def test_model_errors_are_not_mistaken_for_compile_failures(monkeypatch):
    monkeypatch.setattr(compile_mod, "compiler_missing", lambda device_type: None)
    monkeypatch.setattr(compile_mod.torch, "compile", lambda module, **kwargs: module)  # "compiled" = eager
    _, step = _train_step({"compile": True})
    with pytest.raises(RuntimeError):
        step.run(lambda m: m(torch.zeros(4, 5), torch.zeros(4, 3)), 1)  # wrong input width


def test_fused_step_is_the_default_where_it_was_measured_faster(monkeypatch):
    params = [torch.nn.Parameter(torch.zeros(3))]
    monkeypatch.setitem(__import__("engine.optim_sche.abs", fromlist=["FAST_STEP"]).FAST_STEP, "cpu", True)
    assert fast_step_options(torch.optim.AdamW, {}, params) == {"fused": True}
    assert fast_step_options(torch.optim.AdamW, {"foreach": True}, params) == {}
    assert fast_step_options(torch.optim.AdamW, {"fused": False}, params) == {}
    assert fast_step_options(torch.optim.Adadelta, {}, params) == {}  # no fused kernel
    model = EncDec()
    optim_sche = build_optim_sches({"main": entry(optim_type="AdamW", lr=1e-3)}, model, {})["main"]
    assert optim_sche.optimizer.defaults["fused"] is True


def test_fused_and_plain_adam_take_the_same_steps():
    x, y = data(16)
    weights = []
    for optim_conf in ({"lr": 1e-2, "fused": True}, {"lr": 1e-2, "foreach": False}):
        model = EncDec()
        conf = {"main": {"type": "warmuplr", "conf": {"optim_type": "Adam", "optim_conf": optim_conf,
                                                      "warmup_steps": 2}}}
        step = TrainStep(model, build_optim_sches(conf, model, {"grad_clip": 1.0}), {"grad_clip": 1.0}, "cpu")
        for step_num in range(1, 6):
            step.run(lambda m: m(x, y), step_num)
        weights.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    assert torch.allclose(weights[0], weights[1], atol=1e-5)


def _tiny_asr():
    torch.manual_seed(0)
    return build_model("conformer", 20, 12, {"ctc_weight": 0.3, "lsm_weight": 0.1},
                       {"output_size": 32, "attention_heads": 2, "linear_units": 64, "num_blocks": 1,
                        "input_layer": "conv2d", "cnn_module_kernel": 5},
                       {"attention_heads": 2, "linear_units": 64, "num_blocks": 1}, sos_eos_id=2)


def _asr_batch():
    generator = torch.Generator().manual_seed(3)
    lengths = torch.tensor([40, 36, 30, 25])
    speech = torch.randn(4, 40, 20, generator=generator)
    text = torch.randint(4, 12, (4, 6), generator=generator)
    text_lengths = torch.tensor([6, 5, 4, 3])
    text[torch.arange(6).unsqueeze(0) >= text_lengths.unsqueeze(1)] = -1
    return speech, lengths, text, text_lengths


def test_bf16_autocast_trains_the_asr_model_like_float32():
    """Losses finite, within bf16's precision of float32's, and falling the same way; accuracy comparable."""
    batch = _asr_batch()
    runs = {}
    for use_bf16 in (False, True):
        model = _tiny_asr()
        conf = {"main": {"type": "warmuplr", "conf": {"optim_type": "Adam", "optim_conf": {"lr": 3e-3},
                                                      "warmup_steps": 2}}}
        step = TrainStep(model, build_optim_sches(conf, model, {}), {"use_bf16": use_bf16}, "cpu")
        runs[use_bf16] = [step.run(lambda m: m(*batch), n).losses for n in range(1, 9)]
    for fp32, bf16 in zip(runs[False], runs[True]):
        assert all(math.isfinite(v) for v in bf16.values())
        assert bf16["loss"] == pytest.approx(fp32["loss"], rel=0.08)
    # Falling the same way: 8 steps take both about 30% off (0.70-0.71 with either dropout's draws;
    # a fixed 0.7 bound measured the draws more than bf16).
    falls = {use_bf16: losses[-1]["loss"] / losses[0]["loss"] for use_bf16, losses in runs.items()}
    assert falls[True] < 0.8 and falls[True] == pytest.approx(falls[False], abs=0.05)
    assert abs(runs[True][-1]["acc"] - runs[False][-1]["acc"]) <= 0.25


def test_the_asr_model_traces_without_host_syncs():
    """The only graph breaks are at the CTC loss (aten._ctc_loss sizes its buffers from the
    lengths' values): no .item(), no per-utterance loops, no data-dependent shapes elsewhere, so
    the encoder and the decoder with its loss compile whole. Tracing needs no C++ compiler."""
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(_tiny_asr())(*_asr_batch())
    torch._dynamo.reset()
    places = {(frame.filename.rsplit("/", 1)[-1], frame.name) for b in explanation.break_reasons
              for frame in b.user_stack[-1:]}
    assert places <= {("ctc.py", "forward")}, [str(b.reason).splitlines()[0] for b in explanation.break_reasons]
    assert explanation.graph_count <= 4
