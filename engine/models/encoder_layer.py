"""One block of each encoder: Transformer (attention + feed-forward) and Conformer (macaron sandwich)."""

from __future__ import annotations

import torch
from torch import nn

from engine.models.convolution import ConvolutionModule
from engine.models.dropout import Dropout
from engine.models.positionwise import PositionwiseFeedForward


class TransformerEncoderLayer(nn.Module):
    """x + SelfAttn(LN(x)), then x + FF(LN(x)) (pre-norm; post-norm with normalize_before=False).

    ``in_size`` (default ``size``): a first block that changes the width has no residual around
    its attention (the SANM encoder's first block reads the features directly).
    """

    def __init__(self, size: int, self_attn: nn.Module, feed_forward: PositionwiseFeedForward,
                 dropout_rate: float, normalize_before: bool = True, in_size: int | None = None):
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.norm1 = nn.LayerNorm(in_size or size, eps=1e-12)
        self.norm2 = nn.LayerNorm(size, eps=1e-12)
        self.dropout = Dropout(dropout_rate)
        self.normalize_before = normalize_before
        self.attention_residual = (in_size or size) == size

    def attend(self, x, mask, pos_emb) -> torch.Tensor:
        return self.self_attn(x, x, x, mask, pos_emb)

    def forward(self, x, mask, pos_emb, mask_pad) -> torch.Tensor:
        residual = x
        if self.normalize_before:
            x = self.norm1(x)
        x = self.dropout(self.attend(x, mask, pos_emb))
        if self.attention_residual:
            x = residual + x
        if not self.normalize_before:
            x = self.norm1(x)
        residual = x
        if self.normalize_before:
            x = self.norm2(x)
        x = residual + self.dropout(self.feed_forward(x))
        if not self.normalize_before:
            x = self.norm2(x)
        return x


class ConformerEncoderLayer(nn.Module):
    """½FF -> MHSA -> Conv -> ½FF -> LN (Gulati et al.); the halves only with macaron style."""

    def __init__(self, size: int, self_attn: nn.Module, feed_forward: PositionwiseFeedForward,
                 feed_forward_macaron: PositionwiseFeedForward | None,
                 conv_module: ConvolutionModule | None, dropout_rate: float,
                 normalize_before: bool = True):
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.feed_forward_macaron = feed_forward_macaron
        self.conv_module = conv_module
        self.norm_ff = nn.LayerNorm(size, eps=1e-12)
        self.norm_mha = nn.LayerNorm(size, eps=1e-12)
        if feed_forward_macaron is not None:
            self.norm_ff_macaron = nn.LayerNorm(size, eps=1e-12)
        self.ff_scale = 0.5 if feed_forward_macaron is not None else 1.0
        if conv_module is not None:
            self.norm_conv = nn.LayerNorm(size, eps=1e-12)
            self.norm_final = nn.LayerNorm(size, eps=1e-12)
        self.dropout = Dropout(dropout_rate)
        self.normalize_before = normalize_before

    def residual(self, x: torch.Tensor, norm: nn.Module, module, scale: float = 1.0) -> torch.Tensor:
        """x + scale·dropout(module(norm(x))), the norm before or after as configured."""
        out = module(norm(x) if self.normalize_before else x)
        x = x + scale * self.dropout(out)
        return x if self.normalize_before else norm(x)

    def forward(self, x, mask, pos_emb, mask_pad) -> torch.Tensor:
        if self.feed_forward_macaron is not None:
            x = self.residual(x, self.norm_ff_macaron, self.feed_forward_macaron, self.ff_scale)
        x = self.residual(x, self.norm_mha, lambda h: self.self_attn(h, h, h, mask, pos_emb))
        if self.conv_module is not None:
            x = self.residual(x, self.norm_conv, lambda h: self.conv_module(h, mask_pad))
        x = self.residual(x, self.norm_ff, self.feed_forward, self.ff_scale)
        if self.conv_module is not None:
            x = self.norm_final(x)
        return x
