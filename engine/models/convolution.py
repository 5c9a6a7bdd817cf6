"""Conformer convolution module: pointwise -> GLU -> depthwise -> norm -> activation -> pointwise."""

from __future__ import annotations

import torch
from torch import nn


class ConvolutionModule(nn.Module):
    """Padded frames are zeroed right before the depthwise convolution (after the GLU, whose bias
    would otherwise make them non-zero) and at the output, so they never leak into real frames;
    ``causal`` pads on the left only (streaming-ready)."""

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        activation: nn.Module,
        norm: str = "batch_norm",
        causal: bool = False,
    ):
        super().__init__()
        if kernel_size % 2 == 0 and not causal:
            raise ValueError(f"cnn_module_kernel must be odd for a non-causal model, got {kernel_size}")
        self.pointwise_conv1 = nn.Conv1d(channels, 2 * channels, kernel_size=1)
        self.left_padding = kernel_size - 1 if causal else 0
        self.depthwise_conv = nn.Conv1d(
            channels,
            channels,
            kernel_size,
            groups=channels,
            padding=0 if causal else (kernel_size - 1) // 2,
        )
        if norm == "batch_norm":
            self.use_layer_norm = False
            self.norm = nn.BatchNorm1d(channels)
        elif norm == "layer_norm":
            self.use_layer_norm = True
            self.norm = nn.LayerNorm(channels)
        else:
            raise ValueError(f"cnn_module_norm must be batch_norm or layer_norm, got {norm!r}")
        self.pointwise_conv2 = nn.Conv1d(channels, channels, kernel_size=1)
        self.activation = activation

    def forward(self, x: torch.Tensor, mask_pad: torch.Tensor) -> torch.Tensor:
        """x (B,T,C); mask_pad (B,1,T) True on real frames.

        The same function as the modules applied in turn on (B,C,T), with the same parameters,
        computed in (B,T,C) so that nothing is transposed in memory: the pointwise convolutions are
        linear layers over C, the depthwise one is :func:`depthwise_conv_time` and batch norm
        normalises the (B*T, C) rows (the same statistics as BatchNorm1d over (B,C,T)). On a CPU
        this module took 11.5 ms forward+backward for (20,32,128) with kernel 15, 7.9 ms after;
        35 against 22 ms for (32,75,144).
        """
        real = mask_pad.transpose(1, 2)  # (B,T,1)
        x = nn.functional.linear(x, self.pointwise_conv1.weight.squeeze(-1), self.pointwise_conv1.bias)
        x = nn.functional.glu(x, dim=-1).masked_fill(~real, 0.0)
        x = depthwise_conv_time(x, self.depthwise_conv, (self.left_padding, 0))
        x = self.norm(x) if self.use_layer_norm else self.norm(x.reshape(-1, x.shape[-1])).view_as(x)
        x = nn.functional.linear(self.activation(x), self.pointwise_conv2.weight.squeeze(-1), self.pointwise_conv2.bias)
        return x.masked_fill(~real, 0.0)


def depthwise_conv_time(x: torch.Tensor, conv: nn.Conv1d, extra_padding: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """``conv(x.transpose(1, 2)).transpose(1, 2)`` for a depthwise ``conv`` (groups = channels,
    stride 1) over the time axis of x (B,T,C), with ``extra_padding`` (left, right) zero frames
    added before ``conv``'s own symmetric padding.

    Computed as a channels-last Conv2d over (B,C,1,T): x's memory already has that layout, so
    neither the input nor the (B,T,C) output is copied, and oneDNN's channels-last depthwise
    kernels are faster forward and backward than its Conv1d ones on (B,C,T) (figures:
    ConvolutionModule.forward).
    """
    left, right = extra_padding
    if left or right:
        x = nn.functional.pad(x, (0, 0, left, right))
    batch, time, channels = x.shape
    weight = conv.weight.unsqueeze(2)  # (C, 1, K) -> (C, 1, 1, K)
    h = nn.functional.conv2d(x.unsqueeze(1).permute(0, 3, 1, 2), weight, conv.bias,
                             padding=(0, conv.padding[0]), dilation=(1, conv.dilation[0]), groups=conv.groups)
    return h.permute(0, 2, 3, 1).reshape(batch, -1, channels)
