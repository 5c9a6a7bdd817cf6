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
        """x (B,T,C); mask_pad (B,1,T) True on real frames."""
        x = nn.functional.glu(self.pointwise_conv1(x.transpose(1, 2)), dim=1)
        x = x.masked_fill(~mask_pad, 0.0)
        if self.left_padding:
            x = nn.functional.pad(x, (self.left_padding, 0))
        x = self.depthwise_conv(x)
        if self.use_layer_norm:
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        else:
            x = self.norm(x)
        x = self.pointwise_conv2(self.activation(x))
        return x.masked_fill(~mask_pad, 0.0).transpose(1, 2)
