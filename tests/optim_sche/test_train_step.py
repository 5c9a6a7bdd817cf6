"""TrainStep + build_optim_sches on one process: accumulation, multi-optimiser, AMP, resume."""

import io

import pytest
import torch

from engine.optim_sche import OptimConfError, TrainStep, build_optim_sches, init_real_step, lr_curve
from tests.optim_sche.models import EncDec, data, entry, params_of


def train(model, conf, train_conf, batches, start_step=1, state=None):
    optim_sches = build_optim_sches(conf, model, train_conf)
    ts = TrainStep(model, optim_sches, train_conf, "cpu")
    if state is not None:
        ts.load_state_dict(state)
    results = []
    for offset, (x, y) in enumerate(batches):
        results.append(ts.run(lambda m, x=x, y=y: m(x, y), start_step + offset))
    return ts, results


def micro_batches(x, y, size):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def test_accum_grad_equals_one_larger_batch():
    x, y = data(64)
    conf = {"main": entry("warmuplr", lr=1e-2, optim_type="AdamW", warmup_steps=3)}
    big, _ = train(EncDec(), conf, {"accum_grad": 1, "grad_clip": 1.0}, micro_batches(x, y, 32))
    accum, results = train(EncDec(), conf, {"accum_grad": 4, "grad_clip": 1.0}, micro_batches(x, y, 8))
    assert [r.updated for r in results] == [False, False, False, True] * 2
    for name, value in params_of(big.module).items():
        torch.testing.assert_close(params_of(accum.module)[name], value, rtol=1e-5, atol=1e-6)
    assert results[-1].lrs["main"] == pytest.approx(1e-2 * 3**0.5 * 2 * 3**-1.5)  # real step 2, not 8


def test_step_per_update_two_updates_every_other_real_step():
    x, y = data(12)
    model = EncDec()
    ts = TrainStep(model, build_optim_sches({"main": entry(step_per_update=2)}, model, {}), {}, "cpu")
    changed = []
    for step, (bx, by) in enumerate(micro_batches(x, y, 2), start=1):
        before = params_of(model)
        res = ts.run(lambda m: m(bx, by), step)
        changed.append(any(not torch.equal(before[n], p) for n, p in model.named_parameters()))
        assert res.updated == changed[-1]
        assert model.decoder.weight.grad is None  # no gradient is left over between updates
    assert changed == [False, True, False, True, False, True]


def test_two_optim_sches_on_two_losses_each_follow_their_own_loss():
    x, y = data(16)
    model = EncDec()
    start = params_of(model)
    conf = {
        "enc": entry(lr=0.1, optim_loss="loss_enc", updated_modules="encoder"),
        "dec": entry(lr=0.2, optim_loss="loss_dec", updated_modules=["decoder"]),
    }
    ts = TrainStep(model, build_optim_sches(conf, model, {}), {}, "cpu")
    res = ts.run(lambda m: m(x, y), 1)
    assert set(res.grad_norms) == {"enc", "dec"}

    # Expected: plain SGD of each module on its own loss alone (encoder ignores loss_dec's gradient).
    reference = EncDec()
    out = reference(x, y)
    enc_params = list(reference.encoder.parameters())
    enc_grads = torch.autograd.grad(out["loss_enc"], enc_params, retain_graph=True)
    dec_grads = torch.autograd.grad(out["loss_dec"], list(reference.decoder.parameters()))
    for (name, param), grad in zip(reference.encoder.named_parameters(), enc_grads):
        torch.testing.assert_close(model.get_parameter(f"encoder.{name}"), start[f"encoder.{name}"] - 0.1 * grad)
    for (name, param), grad in zip(reference.decoder.named_parameters(), dec_grads):
        torch.testing.assert_close(model.get_parameter(f"decoder.{name}"), start[f"decoder.{name}"] - 0.2 * grad)


def test_decoder_only_optimiser_leaves_the_encoder_untouched():
    x, y = data(8)
    model = EncDec()
    start = params_of(model)
    ts = TrainStep(model, build_optim_sches({"dec": entry(updated_modules="decoder")}, model, {}), {}, "cpu")
    ts.run(lambda m: m(x, y), 1)
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(torch.equal(start[n], p) for n, p in model.named_parameters() if n.startswith("encoder."))
    assert not torch.equal(start["decoder.weight"], model.decoder.weight)


def test_overlapping_optim_sches_are_an_error_naming_the_overlap():
    conf = {"all": entry(), "dec": entry(updated_modules="decoder")}
    with pytest.raises(OptimConfError, match=r"optim_sches.all and optim_sches.dec both update 2 .*decoder.weight"):
        build_optim_sches(conf, EncDec(), {})
    with pytest.raises(OptimConfError, match=r"updated_modules: 'decoderr' is not a top-level module .*encoder, decoder"):
        build_optim_sches({"main": entry(updated_modules="decoderr")}, EncDec(), {})


def test_module_lr_scales_make_param_groups():
    model = EncDec()
    conf = {"main": entry("constant", lr=0.1, module_lr_scales={"decoder": 0.5, "encoder.2": 0.1})}
    optim_sche = build_optim_sches(conf, model, {})["main"]
    ts = TrainStep(model, {"main": optim_sche}, {}, "cpu")
    x, y = data(4)
    ts.run(lambda m: m(x, y), 1)
    lr_of = {id(p): g["lr"] for g in optim_sche.optimizer.param_groups for p in g["params"]}
    assert lr_of[id(model.decoder.weight)] == pytest.approx(0.05)
    assert lr_of[id(model.encoder[2].weight)] == pytest.approx(0.01)
    assert lr_of[id(model.encoder[0].weight)] == pytest.approx(0.1)
    with pytest.raises(OptimConfError, match="module_lr_scales.decodr: matches none"):
        build_optim_sches({"main": entry(module_lr_scales={"decodr": 0.5})}, EncDec(), {})


def test_lr_curve_matches_the_lrs_training_sets():
    conf = {
        "enc": entry("warmuplr", optim_loss="loss_enc", updated_modules="encoder", warmup_steps=3, step_per_update=2),
        "dec": entry("tri_stage", optim_loss="loss_dec", updated_modules="decoder", phase_ratio=[0.3, 0.2, 0.5],
                     max_update=10, ft_factor=0.5),
    }
    x, y = data(4)
    model = EncDec()
    ts = TrainStep(model, build_optim_sches(conf, model, {"accum_grad": 2}), {}, "cpu")
    seen = {"enc": [], "dec": []}
    for step in range(1, 25):
        res = ts.run(lambda m: m(x, y), step)
        for name in res.grad_norms:
            seen[name].append(res.lrs[name])
            group_lrs = {g["lr"] for g in ts.optim_sches[name].optimizer.param_groups}
            assert group_lrs == {res.lrs[name]}
    assert lr_curve(conf, 24, accum_grad=2) == seen
    assert len(seen["enc"]) == 6 and len(seen["dec"]) == 12


def roundtrip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("precision", [{}, {"use_fp16": True}])
def test_state_dict_round_trip_continues_exactly(precision):
    x, y = data(48)
    batches = micro_batches(x, y, 4)
    conf = {"main": entry("warmuplr", lr=1e-2, optim_type="AdamW", warmup_steps=4, module_lr_scales={"decoder": 0.3})}
    train_conf = {"accum_grad": 2, "grad_clip": 5.0, "ft_factor": 0.1, **precision}
    straight, straight_results = train(EncDec(), conf, train_conf, batches)

    first, _ = train(EncDec(), conf, train_conf, batches[:6])
    saved = roundtrip({"model": first.module.state_dict(), "train_step": first.state_dict()})
    model = EncDec(seed=5)
    model.load_state_dict(saved["model"])
    resumed, resumed_results = train(model, conf, train_conf, batches[6:], start_step=7, state=saved["train_step"])
    for name, value in params_of(straight.module).items():
        assert torch.equal(params_of(resumed.module)[name], value), name
    assert [r.lrs for r in resumed_results] == [r.lrs for r in straight_results[6:]]
    # ft_factor applies once: lr = 0.1 * warmuplr(real step), not 0.01 * after the resume
    assert resumed_results[-1].lrs["main"] == pytest.approx(0.1 * 1e-2 * 4**0.5 * 6**-0.5)
    if precision:
        assert resumed.scaler.get_scale() == straight.scaler.get_scale()


def test_resume_with_a_reset_step_counter_is_refused():
    x, y = data(4)
    ts, _ = train(EncDec(), {"main": entry()}, {}, [(x, y)] * 3)
    other, _ = train(EncDec(), {"main": entry()}, {}, [], state=ts.state_dict())
    with pytest.raises(ValueError, match="step_num 1 after 3"):
        other.run(lambda m: m(x, y), 1)


def test_warmup_from_init_continues_the_schedule_and_zero_restarts_it():
    conf = {"main": entry("warmuplr", lr=1e-3, warmup_steps=1000)}
    pretrained, _ = train(EncDec(), conf, {}, [data(4)] * 5)
    init_step = init_real_step(roundtrip(pretrained.state_dict()))
    assert init_step == 5
    x, y = data(4)
    for warmup_from, expected_real_step in (("init", 6), ("zero", 1)):
        model = EncDec()
        ts = TrainStep(model, build_optim_sches(conf, model, {"warmup_from": warmup_from, "ft_factor": 0.5}), {}, "cpu")
        ts.set_init_step(init_step)
        res = ts.run(lambda m: m(x, y), 1)
        assert res.lrs["main"] == pytest.approx(0.5 * 1e-3 * expected_real_step / 1000)
    model = EncDec()
    ts = TrainStep(model, build_optim_sches(conf, model, {"warmup_from": "init"}), {}, "cpu")
    with pytest.raises(ValueError, match="warmup_from: 'init' continues the schedule from the step recorded"):
        ts.set_init_step(None)


def test_non_finite_gradient_skips_the_update_counts_it_and_goes_on(caplog):
    x, y = data(8)
    model = EncDec()
    ts = TrainStep(model, build_optim_sches({"main": entry(grad_clip=1.0)}, model, {}), {}, "cpu")
    before = params_of(model)
    bad = y.clone()
    bad[0, 0] = float("inf")
    res = ts.run(lambda m: m(x, bad), 1)
    assert res.updated and res.skipped == {"main": 1}
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    assert "update skipped" in caplog.text
    res = ts.run(lambda m: m(x, y), 2)
    assert res.skipped == {"main": 1} and res.grad_norms["main"] > 0
    assert not torch.equal(before["decoder.weight"], model.decoder.weight)


def test_fp16_shared_scaler_counts_skips_and_backs_off():
    x, y = data(8)
    model = EncDec()
    conf = {"enc": entry(optim_loss="loss_enc", updated_modules="encoder"), "dec": entry(optim_loss="loss_dec", updated_modules="decoder")}
    ts = TrainStep(model, build_optim_sches(conf, model, {}), {"use_fp16": True}, "cpu")
    assert ts.scaler is not None and ts.scaler.get_scale() == 65536.0
    bad = y.clone()
    bad[0, 0] = float("nan")
    res = ts.run(lambda m: m(x, bad), 1)
    assert res.skipped == {"enc": 0, "dec": 1}
    assert ts.scaler.get_scale() == 32768.0
    res = ts.run(lambda m: m(x, y), 2)
    assert res.skipped == {"enc": 0, "dec": 1} and all(v > 0 for v in res.grad_norms.values())


def test_bf16_autocast_on_cpu_trains():
    x, y = data(8)
    model = EncDec()
    ts = TrainStep(model, build_optim_sches({"main": entry()}, model, {}), {"use_bf16": True}, "cpu")
    assert ts.scaler is None
    seen = {}

    def batch_fn(m):
        seen["dtype"] = m.encoder(x).dtype
        return m(x, y)

    first = ts.run(batch_fn, 1)
    for step in range(2, 6):
        last = ts.run(batch_fn, step)
    assert seen["dtype"] == torch.bfloat16
    assert model.decoder.weight.dtype == torch.float32
    assert last.losses["loss"] < first.losses["loss"]


def test_missing_loss_and_bad_precision_are_clear_errors():
    x, y = data(4)
    model = EncDec()
    ts = TrainStep(model, build_optim_sches({"main": entry(optim_loss="loss_ctc")}, model, {}), {}, "cpu")
    with pytest.raises(KeyError, match=r"optim_loss: the model returned no scalar loss 'loss_ctc' \(it returned: loss, loss_dec, loss_enc\)"):
        ts.run(lambda m: m(x, y), 1)
    with pytest.raises(ValueError, match="use_fp16 and use_bf16 are exclusive"):
        TrainStep(model, ts.optim_sches, {"use_fp16": True, "use_bf16": True}, "cpu")


def test_reports_losses_lrs_and_timings():
    x, y = data(4)
    model = EncDec()
    ts = TrainStep(model, build_optim_sches({"main": entry("constant", lr=0.01)}, model, {"accum_grad": 2}), {}, "cpu")
    res = ts.run(lambda m: m(x, y), 1)
    assert set(res.losses) == {"loss", "loss_dec", "loss_enc", "batch_size"} and res.losses["batch_size"] == 4.0
    assert not res.updated and res.grad_norms == {} and res.lrs == {"main": 0.01}
    assert res.forward_s > 0 and res.backward_s > 0 and res.optim_s >= 0
    assert "ConstantLr[main](optim=SGD(lr=0.01)" in repr(ts.optim_sches["main"])


def test_speechain_one_call_step_matches_train_step():
    x, y = data(16)
    conf = {"main": entry("warmuplr", lr=1e-2, optim_type="AdamW", warmup_steps=2)}
    via_train_step, _ = train(EncDec(), conf, {"accum_grad": 2}, micro_batches(x, y, 4))
    model = EncDec()
    optim_sche = build_optim_sches(conf, model, {"accum_grad": 2})["main"]
    losses = None
    updated = []
    for step, (bx, by) in enumerate(micro_batches(x, y, 4), start=1):
        losses = model(bx, by)
        loss_before = losses["loss"]
        updated.append(optim_sche.step(losses, step))
        assert losses["loss"] is loss_before  # the caller's dict is not changed
    assert updated == [False, True, False, True]
    for name, value in params_of(via_train_step.module).items():
        assert torch.equal(params_of(model)[name], value), name
