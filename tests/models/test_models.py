"""Model shapes, masking, positions, losses and a tiny overfit."""

import pytest
import torch

from engine.models import build_model, num_params
from engine.models.asr_model import add_sos_eos, th_accuracy
from engine.models.attention import rel_shift
from engine.models.convolution import ConvolutionModule
from engine.models.dropout import Dropout, keep_mask
from engine.models.label_smoothing import LabelSmoothingLoss
from engine.models.sanm_attention import fsmn_memory
from engine.models.subsampling import CONV_SHAPES, Conv2dSubsampling

TINY_ENC = dict(output_size=32, attention_heads=2, linear_units=64, num_blocks=2, cnn_module_kernel=5,
                dropout_rate=0.0, positional_dropout_rate=0.0)
TINY_DEC = dict(attention_heads=2, linear_units=64, num_blocks=1, dropout_rate=0.0, positional_dropout_rate=0.0)
VOCAB = 20


def tiny(model="conformer", **encoder_overrides):
    torch.manual_seed(0)
    enc = dict(TINY_ENC, **encoder_overrides)
    if model == "transformer":
        enc.pop("cnn_module_kernel")
    return build_model(model, 16, VOCAB, {"ctc_weight": 0.3, "lsm_weight": 0.1}, enc, dict(TINY_DEC))


def batch(lengths=(60, 45, 30), text_lengths=(5, 4, 2), seed=1):
    gen = torch.Generator().manual_seed(seed)
    speech = torch.zeros(len(lengths), max(lengths), 16)
    for i, n in enumerate(lengths):
        speech[i, :n] = torch.randn(n, 16, generator=gen)
    text = torch.full((len(lengths), max(text_lengths)), -1, dtype=torch.long)
    for i, n in enumerate(text_lengths):
        text[i, :n] = torch.randint(1, VOCAB - 1, (n,), generator=gen)
    return speech, torch.tensor(lengths), text, torch.tensor(text_lengths)


@pytest.mark.parametrize("model", ["conformer", "transformer"])
@pytest.mark.parametrize("pos", ["rel_pos", "abs_pos", "rope", "no_pos"])
def test_forward_backward_shapes(model, pos):
    asr = tiny(model, pos_enc_layer_type=pos)
    out = asr(*batch())
    assert set(out) == {"loss", "loss_ctc", "loss_att", "acc"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    assert all(p.grad is not None for p in asr.parameters()), "every parameter gets a gradient"
    assert [name for name, _ in asr.named_children()][:3] == ["encoder", "decoder", "ctc"]


def test_cpu_dropout_keeps_1_minus_p_and_scales_the_kept():
    """engine/models/dropout.py draws its own mask on a CPU: same law as nn.Dropout, gradient through the mask."""
    torch.manual_seed(0)
    dropout = Dropout(0.25)
    x = torch.ones(400, 500, requires_grad=True)
    y = dropout(x)
    kept = y != 0
    assert kept.float().mean().item() == pytest.approx(0.75, abs=0.005)
    assert torch.allclose(y.detach()[kept], torch.tensor(1 / 0.75))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())
    dropout.eval()
    assert dropout(x) is x


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_cpu_dropout_mask_keeps_1_minus_p_in_every_lane(p):
    """The mask's 16-bit lanes come four to a 64-bit draw: each of the four positions keeps 1 - p
    (a draw with a constant bit would keep a lane always or never), neighbours are independent,
    and the scale makes the mean 1."""
    torch.manual_seed(0)
    mask = keep_mask(torch.Size([1000, 1000]), p)
    kept = (mask != 0).float()
    for lane in range(4):
        assert kept.view(-1, 4)[:, lane].mean().item() == pytest.approx(1 - p, abs=0.004), lane
    pairs = kept.view(-1, 2)
    assert (pairs[:, 0] * pairs[:, 1]).mean().item() == pytest.approx((1 - p) ** 2, abs=0.004)
    assert mask.mean().item() == pytest.approx(1.0, abs=0.01)
    values = mask.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / (1 - p), rel=1e-4)


def test_cpu_dropout_mask_in_bfloat16_keeps_the_same_elements_with_the_rounded_scale():
    """A bf16 input gets its mask written in bf16: the same draws keep the same elements as in
    float32 (the law does not depend on the dtype), scaled by the bf16 nearest 1 / (1 - p)."""
    shape = torch.Size([64, 333])
    torch.manual_seed(3)
    wide = keep_mask(shape, 0.1)
    torch.manual_seed(3)
    narrow = keep_mask(shape, 0.1, torch.bfloat16)
    assert narrow.dtype == torch.bfloat16
    assert torch.equal(narrow != 0, wide != 0)
    assert set(narrow.unique().tolist()) == {0.0, torch.tensor(1 / (1 - 0.1)).bfloat16().item()}
    x = torch.randn(shape, dtype=torch.bfloat16)
    torch.manual_seed(3)
    y = Dropout(0.1).train()(x)
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, x * narrow)


@pytest.mark.parametrize("input_layer", sorted(CONV_SHAPES))
def test_channels_last_subsampling_is_the_plain_convolution_stack(input_layer):
    """The input layer's fast path (engine/models/subsampling.py) against its modules run one by one."""
    torch.manual_seed(0)
    layer = Conv2dSubsampling(40, 16, CONV_SHAPES[input_layer], torch.nn.Identity())
    layer.pos_enc.forward = lambda x: (x, None)
    x = torch.randn(3, 61, 40)
    fast, _, _ = layer(x, torch.tensor([61, 50, 30]))
    fast_grads = torch.autograd.grad(fast.square().sum(), list(layer.parameters()))
    plain = layer.conv(x.unsqueeze(1))
    batch, channels, time, freq = plain.shape
    plain = layer.out(plain.transpose(1, 2).reshape(batch, time, channels * freq))
    plain_grads = torch.autograd.grad(plain.square().sum(), list(layer.parameters()))
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    for got, expected in zip(fast_grads, plain_grads):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def plain_convolution_module(module: ConvolutionModule, x: torch.Tensor, mask_pad: torch.Tensor) -> torch.Tensor:
    """The Conformer convolution module as its modules run in turn on (B,C,T)."""
    h = torch.nn.functional.glu(module.pointwise_conv1(x.transpose(1, 2)), dim=1).masked_fill(~mask_pad, 0.0)
    h = module.depthwise_conv(torch.nn.functional.pad(h, (module.left_padding, 0)))
    h = module.norm(h.transpose(1, 2)).transpose(1, 2) if module.use_layer_norm else module.norm(h)
    h = module.pointwise_conv2(module.activation(h))
    return h.masked_fill(~mask_pad, 0.0).transpose(1, 2)


@pytest.mark.parametrize("norm,causal", [("batch_norm", False), ("layer_norm", False), ("batch_norm", True)])
def test_convolution_module_in_time_major_layout_is_the_plain_module_stack(norm, causal):
    """engine/models/convolution.py computes in (B,T,C); the same outputs, gradients and batch-norm
    running statistics as its Conv1d/norm modules applied on (B,C,T)."""
    torch.manual_seed(0)
    fast = ConvolutionModule(24, 7, torch.nn.SiLU(), norm=norm, causal=causal).train()
    plain = ConvolutionModule(24, 7, torch.nn.SiLU(), norm=norm, causal=causal).train()
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(3, 41, 24)
    mask_pad = (torch.arange(41) < torch.tensor([41, 30, 9]).unsqueeze(1)).unsqueeze(1)
    got = fast(x, mask_pad)
    expected = plain_convolution_module(plain, x, mask_pad)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    got_grads = torch.autograd.grad(got.square().sum(), list(fast.parameters()))
    expected_grads = torch.autograd.grad(expected.square().sum(), list(plain.parameters()))
    # Under batch norm the depthwise bias's gradient is zero up to the rounding of sums of
    # gradients of size ~50, so the tolerance is taken relative to the largest gradient.
    scale = max(g.abs().max().item() for g in expected_grads)
    for a, b in zip(got_grads, expected_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=5e-5 * scale)
    for a, b in zip(fast.buffers(), plain.buffers()):
        torch.testing.assert_close(a, b)
    fast.eval(), plain.eval()
    torch.testing.assert_close(fast(x, mask_pad), plain_convolution_module(plain, x, mask_pad), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding", [(3, 3), (5, 1), (0, 6)])
def test_fsmn_memory_is_the_plain_depthwise_convolution(padding):
    """The Paraformer FSMN block's depthwise convolution, computed channels-last, against Conv1d on (B,C,T)."""
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(16, 16, 7, groups=16, bias=False)
    x = torch.randn(2, 23, 16, requires_grad=True)
    mask = (torch.arange(23) < torch.tensor([23, 12]).unsqueeze(1)).unsqueeze(-1)
    got = fsmn_memory(x, mask, conv, padding, torch.nn.Identity())
    h = x * mask
    expected = (conv(torch.nn.functional.pad(h.transpose(1, 2), padding)).transpose(1, 2) + h) * mask
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    got_grads = torch.autograd.grad(got.square().sum(), [x, conv.weight])
    for a, b in zip(got_grads, torch.autograd.grad(expected.square().sum(), [x, conv.weight])):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("input_layer,expected", [
    ("conv2d", [14, 10, 6]), ("conv2d6", [9, 6, 4]), ("conv2d8", [6, 4, 2]), ("linear", [60, 45, 30]),
])
def test_encode_lengths_follow_subsampling(input_layer, expected):
    asr = tiny(input_layer=input_layer)
    speech, speech_lengths, _, _ = batch()
    out, out_lens = asr.encode(speech, speech_lengths)
    assert out_lens.tolist() == expected
    assert out.shape == (3, expected[0], 32)


@pytest.mark.parametrize("model", ["conformer", "transformer"])
@pytest.mark.parametrize("pos", ["rel_pos", "rope", "abs_pos"])
def test_padding_does_not_change_other_utterances(model, pos):
    asr = tiny(model, pos_enc_layer_type=pos).eval()
    speech, speech_lengths, text, text_lengths = batch()
    with torch.no_grad():
        together, lens = asr.encode(speech, speech_lengths)
        for i in range(3):
            n = int(speech_lengths[i])
            alone, alone_lens = asr.encode(speech[i:i + 1, :n], speech_lengths[i:i + 1])
            assert alone_lens.item() == lens[i].item()
            torch.testing.assert_close(alone[0], together[i, :lens[i]], atol=1e-5, rtol=1e-4)
        # The decoder too: utterance 2 (2 tokens) decoded alone or in the padded batch.
        ys_in, _ = add_sos_eos(text, asr.sos, asr.eos)
        mask = torch.arange(together.size(1)).unsqueeze(0) < lens.unsqueeze(1)
        logits = asr.decoder(together, mask.unsqueeze(1), ys_in, text_lengths + 1)
        alone_logits = asr.decoder(together[2:, :lens[2]], mask[2:, :lens[2]].unsqueeze(1),
                                   ys_in[2:, :3], text_lengths[2:] + 1)
        torch.testing.assert_close(alone_logits[0], logits[2, :3], atol=1e-5, rtol=1e-4)


def test_causal_encoder_ignores_the_future():
    asr = tiny(causal=True).eval()
    speech, speech_lengths, _, _ = batch(lengths=(60,), text_lengths=(3,))
    changed = speech.clone()
    changed[0, 40:] += 5.0
    with torch.no_grad():
        a, _ = asr.encode(speech, speech_lengths)
        b, _ = asr.encode(changed, speech_lengths)
    # Output frame t of conv2d x4 sees input frames up to 4t+6: frames 0..7 end before input 40.
    torch.testing.assert_close(a[0, :8], b[0, :8])
    assert not torch.allclose(a[0, -1], b[0, -1])


def test_rel_shift_reads_the_distance_i_minus_j():
    time = 5
    # scores[i, k] = distance encoded by column k (T-1-k), the same on every row.
    distances = torch.arange(time - 1, -time, -1).float()
    scores = distances.expand(1, 1, time, 2 * time - 1).contiguous()
    shifted = rel_shift(scores)[0, 0]
    expected = torch.arange(time).unsqueeze(1) - torch.arange(time).unsqueeze(0)
    assert torch.equal(shifted, expected.float())


def test_label_smoothing_matches_its_definition():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5)
    target = torch.tensor([[1, 2, -1], [4, -1, -1]])
    loss = LabelSmoothingLoss(5, -1, 0.1, normalize_length=True)(logits, target)
    log_probs = logits.log_softmax(-1)
    total, count = 0.0, 0
    for b in range(2):
        for t in range(3):
            if target[b, t] < 0:
                continue
            q = torch.full((5,), 0.1 / 4)
            q[target[b, t]] = 0.9
            total += (q * (q.log() - log_probs[b, t])).sum()
            count += 1
    torch.testing.assert_close(loss, total / count)
    no_smoothing = LabelSmoothingLoss(5, -1, 0.0, normalize_length=False)(logits, target)
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 5), target.reshape(-1), ignore_index=-1,
                                           reduction="sum") / 2
    torch.testing.assert_close(no_smoothing, ce)


def test_hybrid_loss_weights_and_accuracy():
    asr = tiny()
    out = asr(*batch())
    torch.testing.assert_close(out["loss"], 0.3 * out["loss_ctc"] + 0.7 * out["loss_att"])
    # Each term can drive its own OptimScheduler (SpeeChain's optim_loss): it keeps its graph.
    assert out["loss_ctc"].requires_grad and out["loss_att"].requires_grad and not out["acc"].requires_grad
    out["loss_ctc"].backward()
    assert asr.ctc.ctc_lo.weight.grad is not None and asr.decoder.output_layer.weight.grad is None
    logits = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]])
    assert th_accuracy(logits, torch.tensor([[1, 1, -1]])).item() == pytest.approx(0.5)


def test_sos_eos_framing():
    ys_in, ys_out = add_sos_eos(torch.tensor([[3, 4, 5], [6, -1, -1]]), sos=9, eos=9)
    assert ys_in.tolist() == [[9, 3, 4, 5], [9, 6, 9, 9]]
    assert ys_out.tolist() == [[3, 4, 5, 9], [6, 9, -1, -1]]


def test_tiny_batch_overfits():
    asr = tiny()
    optimizer = torch.optim.Adam(asr.parameters(), lr=3e-3)
    data = batch()
    losses = []
    for _ in range(40):
        out = asr(*data)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.3 * losses[0]
    assert out["acc"].item() > 0.8


def test_deterministic_given_seed():
    a, b = tiny(), tiny()
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)
    a.train(), b.train()
    torch.manual_seed(3)
    la = a(*batch())["loss"]
    torch.manual_seed(3)
    lb = b(*batch())["loss"]
    assert torch.equal(la, lb)


def test_unknown_config_key_is_named():
    with pytest.raises(ValueError, match="encoder_conf: num_block"):
        build_model("conformer", 80, 10, {}, {"num_block": 3}, {})
    with pytest.raises(ValueError, match="model_conf: ctc_wieght"):
        build_model("conformer", 80, 10, {"ctc_wieght": 0.3}, {}, {})
    with pytest.raises(ValueError, match="model 'lstm'"):
        build_model("lstm", 80, 10, {}, {}, {})


def test_small_shape_parameter_count():
    """WeNet's AISHELL conformer shape (256 dim, 4 heads, 2048 units, 12+6 blocks, 4233 tokens)."""
    asr = build_model("conformer", 80, 4233, {}, dict(output_size=256, attention_heads=4, linear_units=2048,
                                                      num_blocks=12, cnn_module_kernel=15),
                      dict(attention_heads=4, linear_units=2048, num_blocks=6))
    assert 45e6 < num_params(asr) < 47.5e6
    assert 32e6 < num_params(asr.encoder) < 35e6
