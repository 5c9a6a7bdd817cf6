"""SANM encoder (Paraformer's): LFR features scaled by sqrt(output_size) plus sinusoidal
positions, then SAN-M blocks (self-attention with an FSMN memory block, feed-forward).

The constructor arguments are the keys of FunASR's ``SANMEncoder`` ``encoder_conf``, and the
parameter names are FunASR's (``encoders0`` is the first block, which reads the features
directly; ``encoders`` the others), so a FunASR Paraformer's encoder loads unchanged. Only the
forms FunASR's Paraformer models use are accepted; the others are errors that name the key.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from engine.models.encoder_layer import TransformerEncoderLayer
from engine.models.mask import make_non_pad_mask
from engine.models.positionwise import PositionwiseFeedForward
from engine.models.sanm_attention import SANMSelfAttention

INPUT_LAYERS = ("pe", None)
POS_ENC_CLASSES = ("SinusoidalPositionEncoder",)


def sinusoidal_encoding(length: int, depth: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(length, depth) table for positions 1..length: sines in the first half, cosines in the
    second, timescales spaced geometrically from 1 to 10000 over depth/2 - 1 steps (FunASR's
    SinusoidalPositionEncoder, a tensor2tensor layout)."""
    half = depth // 2
    increment = math.log(10000.0) / (half - 1)
    inv_timescales = torch.exp(torch.arange(half, device=device, dtype=dtype) * -increment)
    scaled = torch.arange(1, length + 1, device=device, dtype=dtype).unsqueeze(1) * inv_timescales.unsqueeze(0)
    return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=1)


class SANMEncoderLayer(TransformerEncoderLayer):
    """x + dropout(SANM(norm1(x))), then x + dropout(FFN(norm2(x))) (pre-norm); the first block
    changes the width (features -> output_size) and has no residual there."""

    def attend(self, x, mask, pos_emb) -> torch.Tensor:
        return self.self_attn(x, mask)


class SANMEncoder(nn.Module):
    def __init__(self, input_size: int, output_size: int = 256, attention_heads: int = 4,
                 linear_units: int = 2048, num_blocks: int = 6, dropout_rate: float = 0.1,
                 positional_dropout_rate: float = 0.1, attention_dropout_rate: float = 0.0,
                 input_layer: str | None = "pe", pos_enc_class: str = "SinusoidalPositionEncoder",
                 normalize_before: bool = True, kernel_size: int = 11, sanm_shfit: int = 0,
                 selfattention_layer_type: str = "sanm", concat_after: bool = False,
                 positionwise_layer_type: str = "linear"):
        super().__init__()
        checks = (("input_layer", input_layer, INPUT_LAYERS), ("pos_enc_class", pos_enc_class, POS_ENC_CLASSES),
                  ("selfattention_layer_type", selfattention_layer_type, ("sanm",)),
                  ("concat_after", concat_after, (False,)), ("positionwise_layer_type", positionwise_layer_type, ("linear",)))
        for key, value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"encoder_conf.{key}: {value!r} is not supported by the SANM encoder "
                                 f"(supported: {', '.join(map(repr, allowed))})")
        if num_blocks < 1:
            raise ValueError(f"encoder_conf.num_blocks must be at least 1, got {num_blocks}")
        self._output_size = output_size
        # positional_dropout_rate is accepted for FunASR's configs: its SinusoidalPositionEncoder has no dropout.
        self.input_layer = input_layer
        # input_layer null with different widths: a projection (FunASR's ``embed`` Linear).
        self.embed = nn.Linear(input_size, output_size) if input_layer is None and input_size != output_size else None

        def block(in_size: int) -> SANMEncoderLayer:
            return SANMEncoderLayer(
                output_size,
                SANMSelfAttention(attention_heads, in_size, output_size, attention_dropout_rate, kernel_size, sanm_shfit),
                PositionwiseFeedForward(output_size, linear_units, dropout_rate, nn.ReLU()),
                dropout_rate, normalize_before, in_size=in_size)

        first_size = output_size if self.embed is not None else input_size
        self.encoders0 = nn.ModuleList([block(first_size)])
        self.encoders = nn.ModuleList(block(output_size) for _ in range(num_blocks - 1))
        self.normalize_before = normalize_before
        self.after_norm = nn.LayerNorm(output_size, eps=1e-12) if normalize_before else None

    def output_size(self) -> int:
        return self._output_size

    def forward(self, xs: torch.Tensor, xs_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """xs (B,T,D), xs_lens (B,) -> (out (B,T,output_size), mask (B,1,T) True on real frames)."""
        mask = make_non_pad_mask(xs_lens, xs.size(1)).unsqueeze(1)
        xs = xs * self._output_size ** 0.5
        if self.input_layer == "pe":
            xs = xs + sinusoidal_encoding(xs.size(1), xs.size(2), xs.device, xs.dtype).unsqueeze(0)
        elif self.embed is not None:
            xs = self.embed(xs)
        for layer in (*self.encoders0, *self.encoders):
            xs = layer(xs, mask, None, mask)
        if self.after_norm is not None:
            xs = self.after_norm(xs)
        return xs, mask
