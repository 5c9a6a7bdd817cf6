"""Paraformer pieces: integrate-and-fire, the tail threshold, the glancing sampler, the loss
terms, config errors, and a few training steps."""

from __future__ import annotations

import pytest
import torch

from engine.decode.modes import default_mode, supported_modes
from engine.decode.search import decode_batch
from engine.models import build_model
from engine.models.cif_predictor import CifPredictorV2, cif, cif_fire
from engine.models.paraformer import glancing_mask

TINY = {
    "encoder_conf": {"output_size": 16, "attention_heads": 2, "linear_units": 24, "num_blocks": 2, "kernel_size": 5},
    "decoder_conf": {"attention_heads": 2, "linear_units": 24, "num_blocks": 2, "att_layer_num": 1, "kernel_size": 5},
    "predictor_conf": {"l_order": 1, "r_order": 1, "tail_threshold": 0.45},
}


def tiny(vocab: int = 12, **model_conf):
    torch.manual_seed(0)
    return build_model("paraformer", 8, vocab, model_conf, TINY["encoder_conf"], TINY["decoder_conf"],
                       sos_eos_id=2, predictor_conf=TINY["predictor_conf"])


# Integrate-and-fire -------------------------------------------------------------------------------

def test_cif_fires_at_whole_numbers_and_splits_the_crossing_frame():
    hidden = torch.eye(5).unsqueeze(0)  # frame t is the unit vector e_t: embeddings show the weights
    alphas = torch.tensor([[0.4, 0.4, 0.4, 0.4, 0.4]])  # running sum 0.4 0.8 1.2 1.6 2.0
    embeds, counts, fired = cif(hidden, alphas)
    assert fired.tolist() == [[False, False, True, False, True]]
    assert counts.tolist() == [2]
    torch.testing.assert_close(embeds[0], torch.tensor([[0.4, 0.4, 0.2, 0.0, 0.0],
                                                        [0.0, 0.0, 0.2, 0.4, 0.4]]))


def test_cif_drops_the_unfinished_token_and_pads_to_the_rounded_sum():
    hidden = torch.eye(4).unsqueeze(0).repeat(2, 1, 1)
    alphas = torch.tensor([[0.6, 0.6, 0.3, 0.0],    # 1.5: one firing, round(1.5) = 2 rows
                           [0.3, 0.3, 0.3, 0.0]])   # 0.9: no firing
    embeds, counts, _ = cif(hidden, alphas)
    assert counts.tolist() == [1, 0]
    assert embeds.shape == (2, 2, 4)
    torch.testing.assert_close(embeds[0, 0], torch.tensor([0.6, 0.4, 0.0, 0.0]))
    assert embeds[0, 1].abs().sum() == 0 and embeds[1].abs().sum() == 0  # the 0.5 left over makes no token


def test_cif_weight_above_one_fires_once_per_frame():
    """Training rescales weights; a frame crossing two whole numbers still fires once (FunASR's rule)."""
    embeds, counts, fired = cif(torch.ones(1, 2, 1), torch.tensor([[2.5, 0.5]]))
    assert fired.tolist() == [[True, True]] and counts.tolist() == [2]
    torch.testing.assert_close(embeds[0, :, 0], torch.tensor([2.0, 1.0, 0.0]))  # round(3.0) rows


def test_cif_gradient_reaches_weights_and_frames():
    hidden = torch.randn(1, 6, 3, requires_grad=True)
    alphas = torch.full((1, 6), 0.45, requires_grad=True)
    embeds, _, _ = cif(hidden, alphas)
    embeds.sum().backward()
    assert hidden.grad.abs().sum() > 0 and alphas.grad.abs().sum() > 0


def test_cif_fires_the_last_token_when_rescaled_weights_sum_a_rounding_below_the_count():
    """Weights rescaled to 12 targets summed to 11.999998 on one CPU and 12.0 on another: the
    twelfth token must fire on both, or the decoder sees a zero embedding for it."""
    hidden = torch.randn(1, 20, 4)
    alphas = torch.full((1, 20), 0.6)
    alphas[0, -1] -= 2e-6  # the running sum ends at 12 - 2e-6
    embeds, counts, fired = cif(hidden, alphas)
    assert counts.tolist() == [12] and bool(fired[0, -1])
    assert embeds.shape[1] == 12 and embeds[0, -1].abs().sum() > 0
    # the weight left over is nothing, not a negative rounding
    _, remainder = cif_fire(alphas)
    assert remainder[0, -1] == 0.0
    # a sum clearly short of a whole number still leaves its token unfired
    alphas[0, -1] -= 0.01
    assert cif(hidden, alphas)[1].tolist() == [11]


def test_tail_threshold_completes_the_last_token_after_each_utterance():
    predictor = CifPredictorV2(4, 1, 1, tail_threshold=0.45)
    hidden = torch.randn(2, 6, 4)
    lengths = torch.tensor([6, 4])
    alphas = torch.tensor([[0.5] * 6 + [0.0], [0.65] * 4 + [0.0] * 3])
    tailed_hidden, tailed = predictor.add_tail(torch.cat([hidden, torch.zeros(2, 1, 4)], 1)[:, :6], alphas[:, :6], lengths)
    assert tailed[0, 6] == pytest.approx(0.45) and tailed[1, 4] == pytest.approx(0.45)
    assert tailed[1, 5:].abs().sum() == 0 and tailed_hidden[:, 6].abs().sum() == 0
    # 3.0 + 0.45 -> 3 tokens; 2.6 + 0.45 = 3.05 -> 3 tokens (the tail completes the third).
    assert torch.floor(tailed.sum(-1)).tolist() == [3.0, 3.0]


def test_predictor_training_weights_sum_to_the_target_length():
    predictor = CifPredictorV2(4, 1, 1, tail_threshold=0.45)
    hidden = torch.randn(2, 9, 4)
    embeds, token_num, alphas, _ = predictor(hidden, torch.tensor([9, 5]), torch.tensor([4, 2]))
    torch.testing.assert_close(alphas.sum(-1), torch.tensor([4.0, 2.0]))
    assert alphas[1, 5:].abs().sum() == 0  # padding has no weight
    assert embeds.shape[1] == 4 and token_num.shape == (2,)


def test_predictor_fires_every_target_token_under_bf16_autocast():
    """Under bf16 autocast the weights are float32: rescaled in bfloat16 they summed up to a tenth
    away from the target count, and the last token of three utterances of these eight went unfired."""
    torch.manual_seed(0)
    predictor = CifPredictorV2(64, 1, 1, tail_threshold=0.45)
    hidden = torch.randn(8, 200, 64)
    targets = torch.arange(33, 41)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        embeds, _, alphas, _ = predictor(hidden, torch.full((8,), 200), targets)
        counts = cif(hidden, alphas)[1]
    assert alphas.dtype == torch.float32
    assert counts.tolist() == targets.tolist() and embeds.shape[1] == 40


def test_predictor_threshold_other_than_one_is_an_error():
    with pytest.raises(ValueError, match="predictor_conf.threshold"):
        CifPredictorV2(4, 1, 1, threshold=0.9)


# Glancing sampler ---------------------------------------------------------------------------------

def test_glancing_samples_ratio_of_wrong_tokens_among_real_positions():
    torch.manual_seed(0)
    valid = torch.tensor([[True] * 10, [True] * 6 + [False] * 4, [True] * 10])
    correct = torch.zeros(3, 10, dtype=torch.bool)
    correct[2] = True  # all right: nothing to glance
    correct[0, :4] = True  # 6 wrong
    for _ in range(50):
        mask = glancing_mask(correct, valid, 0.5)
        assert mask.sum(1).tolist() == [3, 3, 0]
        assert not (mask & ~valid).any()
    assert not glancing_mask(correct, valid, 0.0).any()


def test_glancing_draws_different_positions():
    torch.manual_seed(1)
    valid = torch.ones(1, 12, dtype=torch.bool)
    correct = torch.zeros(1, 12, dtype=torch.bool)
    draws = {tuple(glancing_mask(correct, valid, 0.25)[0].nonzero().flatten().tolist()) for _ in range(20)}
    assert len(draws) > 5


# Losses -------------------------------------------------------------------------------------------

def batch(vocab: int = 12):
    torch.manual_seed(3)
    speech = torch.randn(2, 30, 8)
    lengths = torch.tensor([30, 22])
    text = torch.tensor([[5, 6, 7, 8], [9, 4, -1, -1]])
    return speech, lengths, text, torch.tensor([4, 2])


def test_loss_terms_and_weights():
    model = tiny(predictor_weight=2.0, sampling_ratio=0.0, lsm_weight=0.1).eval()
    out = model(*batch())
    assert set(out) == {"loss", "loss_att", "loss_pre", "acc"}
    assert float(out["loss"]) == pytest.approx(float(out["loss_att"] + 2.0 * out["loss_pre"]), rel=1e-6)
    speech, lengths, text, text_lengths = batch()
    with torch.no_grad():
        encoder_out, encoder_lens = model.encode(speech, lengths)
        _, token_num, _, _ = model.predictor(encoder_out, encoder_lens, text_lengths)
    mae = (text_lengths - token_num).abs().sum() / 2  # summed, over the batch size
    assert float(out["loss_pre"]) == pytest.approx(float(mae), rel=1e-5)


def test_predictor_bias_counts_eos_as_a_token():
    model = tiny(predictor_bias=1)
    ys, ys_lens = model.targets(batch()[2], batch()[3])
    assert ys.tolist() == [[5, 6, 7, 8, 2], [9, 4, 2, -1, -1]] and ys_lens.tolist() == [5, 3]


def test_ctc_branch_only_when_weighted():
    assert tiny().ctc is None and not any(k.startswith("ctc.") for k in tiny().state_dict())
    model = tiny(ctc_weight=0.3, sampling_ratio=0.0).eval()
    out = model(*batch())
    expected = 0.3 * out["loss_ctc"] + 0.7 * out["loss_att"] + out["loss_pre"]
    assert float(out["loss"]) == pytest.approx(float(expected), rel=1e-6)
    assert supported_modes("paraformer", {"model_conf": {"ctc_weight": 0.3}}) == ("paraformer", "ctc_greedy",
                                                                                   "ctc_prefix_beam")
    speech, lengths, _, _ = batch()
    assert len(decode_batch(model, speech, lengths, "ctc_greedy")) == 2


def test_every_parameter_gets_a_gradient_with_or_without_glancing():
    """DDP without find_unused_parameters needs every parameter in the graph."""
    for ratio in (0.0, 0.75):
        model = tiny(sampling_ratio=ratio, ctc_weight=0.2).train()
        model(*batch())["loss"].backward()
        missing = [name for name, p in model.named_parameters() if p.grad is None]
        assert missing == [], (ratio, missing)


def test_the_paraformer_trains_under_bf16_autocast_like_float32():
    """use_bf16 (auto on AMX CPUs): the float32 CIF weights integrate bf16 frames without a dtype
    error (index_add_ refused to add float32 into bfloat16), and the losses stay float32's to
    bf16 precision."""
    model = tiny(sampling_ratio=0.75, ctc_weight=0.2).train()
    torch.manual_seed(0)
    reference = model(*batch())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.manual_seed(0)
        out = model(*batch())
    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    for name in ("loss", "loss_att", "loss_pre", "loss_ctc"):
        assert float(out[name]) == pytest.approx(float(reference[name]), rel=0.05), name


# Config errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("section, conf, message", [
    ("predictor_conf", {"tail_treshold": 0.4}, "unknown key(s) in predictor_conf: tail_treshold"),
    ("encoder_conf", {"macaron_style": True}, "unknown key(s) in encoder_conf: macaron_style"),
    ("decoder_conf", {"att_layer_num": 5}, "decoder_conf.att_layer_num"),
    ("model_conf", {"ctc_weigth": 0.1}, "unknown key(s) in model_conf: ctc_weigth"),
    ("encoder_conf", {"input_layer": "conv2d"}, "encoder_conf.input_layer"),
    ("predictor_conf", {"idim": 99}, "predictor_conf.idim"),
])
def test_bad_keys_name_section_and_key(section, conf, message):
    confs = {k: dict(v) for k, v in TINY.items()}
    confs["model_conf"] = {}
    confs[section] = {**confs[section], **conf}
    with pytest.raises(ValueError) as error:
        build_model("paraformer", 8, 12, confs["model_conf"], confs["encoder_conf"], confs["decoder_conf"],
                    predictor_conf=confs["predictor_conf"])
    assert message in str(error.value)


def test_predictor_conf_is_only_for_paraformer():
    with pytest.raises(ValueError, match="predictor_conf is only for model paraformer"):
        build_model("conformer", 8, 12, predictor_conf={"l_order": 1})


def test_modes_per_model():
    assert supported_modes("paraformer", {"model_conf": {"ctc_weight": 0.0}}) == ("paraformer",)
    assert "paraformer" not in supported_modes("conformer")
    assert default_mode("paraformer") == "paraformer" and default_mode("conformer") == "attention_rescoring"
    speech, lengths, _, _ = batch()
    with pytest.raises(ValueError, match="not supported"):
        decode_batch(tiny(), speech, lengths, "attention")
    with pytest.raises(ValueError, match="not supported"):
        decode_batch(build_model("conformer", 8, 12, encoder_conf={"output_size": 16, "num_blocks": 1,
                                                                     "linear_units": 16, "input_layer": "linear"},
                                 decoder_conf={"num_blocks": 1, "linear_units": 16}),
                     speech, lengths, "paraformer")


# Training -----------------------------------------------------------------------------------------

def test_a_few_training_steps_lower_the_loss():
    model = tiny(sampling_ratio=0.5, lsm_weight=0.1, predictor_bias=1).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        out = model(*batch())
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(float(out["loss"]))
        assert all(torch.isfinite(v).all() for v in out.values())
    assert sum(losses[-3:]) / 3 < 0.3 * sum(losses[:3]) / 3
    speech, lengths, _, _ = batch()
    hyps = decode_batch(model.eval(), speech, lengths, "paraformer")
    assert len(hyps) == 2 and all(2 not in row for row in hyps)  # eos is never in the output


def test_paraformer_demo_preset_builds():
    from pathlib import Path

    from engine.config import load_config

    config = load_config(Path(__file__).resolve().parents[2] / "presets" / "paraformer-demo.yaml")
    model = build_model(config["model"], 80 * 7, 500, config["model_conf"], config["encoder_conf"],
                        config["decoder_conf"], sos_eos_id=2, predictor_conf=config["predictor_conf"])
    assert model.ctc is not None and len(model.encoder.encoders) + 1 == config["encoder_conf"]["num_blocks"]
