"""Input layers: frame-rate reduction by strided 2-D convolutions (x4, x6, x8) or a plain linear layer.

Convolutions use no padding, so every output frame is computed from real input frames only and
the output length follows from the input length exactly (``output_lengths``).
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.dropout import Dropout

# (kernel, stride) of each convolution, per input_layer name.
CONV_SHAPES = {
    "conv2d": [(3, 2), (3, 2)],
    "conv2d6": [(3, 2), (5, 3)],
    "conv2d8": [(3, 2), (3, 2), (3, 2)],
}


class Conv2dSubsampling(nn.Module):
    """Stacked Conv2d+ReLU over (time, feature), then a linear projection to ``odim``."""

    def __init__(self, idim: int, odim: int, shapes: list[tuple[int, int]], pos_enc: nn.Module):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels, freq = 1, idim
        for kernel, stride in shapes:
            layers += [nn.Conv2d(in_channels, odim, kernel, stride), nn.ReLU()]
            in_channels = odim
            freq = (freq - kernel) // stride + 1
        if freq < 1:
            raise ValueError(f"input dimension {idim} is too small for {len(shapes)} subsampling convolutions")
        self.shapes = shapes
        self.conv = nn.Sequential(*layers)
        self.out = nn.Linear(odim * freq, odim)
        self.pos_enc = pos_enc
        self.subsampling_rate = 1
        for _, stride in shapes:
            self.subsampling_rate *= stride

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for kernel, stride in self.shapes:
            lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        return lengths.clamp(min=0)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        """x (B,T,idim) -> (x (B,T',odim), pos_emb, lengths (B,)).

        The same function as ``self.out(flatten(self.conv(x)))`` with the same parameters, computed
        channels-last: on a CPU this input layer was half of a Conformer 4x144 training step, and
        oneDNN's kernels for it are slow in two places. The first convolution has one input
        channel (9 multiply-adds an output), which oneDNN runs at a few GFLOP/s; as one matrix
        product over the unfolded patches it is memory-bound instead. Its (B,T,F,C) output is the
        channels-last layout the next convolution wants, and the projection takes the last one
        as (T, F*C) with its weight's columns reordered, so no tensor is transposed in memory.
        Measured on (32,191,80) batches with odim 144: 0.84 s forward+backward before, 0.56 s after.
        """
        (kernel, stride), *rest = self.shapes
        first = self.conv[0]
        patches = x.unfold(1, kernel, stride).unfold(2, kernel, stride)  # (B, T1, F1, k, k)
        batch, time, freq = patches.shape[:3]
        h = torch.addmm(first.bias, patches.reshape(-1, kernel * kernel), first.weight.view(-1, kernel * kernel).t())
        h = torch.relu_(h).view(batch, time, freq, -1).permute(0, 3, 1, 2)  # (B, C, T1, F1), channels-last strides
        for index, (kernel, stride) in enumerate(rest, start=1):
            conv = self.conv[2 * index]
            weight = conv.weight.contiguous(memory_format=torch.channels_last)
            h = torch.relu_(nn.functional.conv2d(h, weight, conv.bias, stride))
        batch, channels, time, freq = h.shape
        # out.weight's columns are (channel, freq); the (B,T,F,C) memory is read as (freq, channel).
        weight = self.out.weight.view(-1, channels, freq).transpose(1, 2).reshape(-1, freq * channels)
        x = nn.functional.linear(h.permute(0, 2, 3, 1).reshape(batch, time, freq * channels), weight, self.out.bias)
        x, pos_emb = self.pos_enc(x)
        return x, pos_emb, self.output_lengths(lengths)


class LinearNoSubsampling(nn.Module):
    """``linear``: Linear -> LayerNorm -> Dropout, keeping the frame rate."""

    subsampling_rate = 1

    def __init__(self, idim: int, odim: int, dropout_rate: float, pos_enc: nn.Module):
        super().__init__()
        self.out = nn.Sequential(nn.Linear(idim, odim), nn.LayerNorm(odim), Dropout(dropout_rate))
        self.pos_enc = pos_enc

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        x, pos_emb = self.pos_enc(self.out(x))
        return x, pos_emb, lengths


def build_input_layer(input_layer: str, idim: int, odim: int, dropout_rate: float, pos_enc: nn.Module) -> nn.Module:
    if input_layer in CONV_SHAPES:
        return Conv2dSubsampling(idim, odim, CONV_SHAPES[input_layer], pos_enc)
    if input_layer == "linear":
        return LinearNoSubsampling(idim, odim, dropout_rate, pos_enc)
    raise ValueError(
        f"input_layer {input_layer!r} is not one of {', '.join([*CONV_SHAPES, 'linear'])}"
    )
