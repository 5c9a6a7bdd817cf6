"""Conformer and Transformer encoders; constructor arguments are the keys of ``encoder_conf``."""

from __future__ import annotations

import torch
from torch import nn

from engine.models.activation import get_activation
from engine.models.attention import MultiHeadedAttention, RelPositionMultiHeadedAttention
from engine.models.convolution import ConvolutionModule
from engine.models.embedding import (
    NoPositionalEncoding,
    PositionalEncoding,
    RelPositionalEncoding,
    RotaryPositionalEncoding,
)
from engine.models.encoder_layer import ConformerEncoderLayer, TransformerEncoderLayer
from engine.models.mask import make_non_pad_mask, subsequent_mask
from engine.models.positionwise import PositionwiseFeedForward
from engine.models.subsampling import build_input_layer

POS_ENC_TYPES = ("abs_pos", "rel_pos", "rope", "no_pos")
# WeNet's name for rotary positions.
POS_ENC_ALIASES = {"rope_pos": "rope"}


class BaseEncoder(nn.Module):
    """Input layer (subsampling + positions), a stack of blocks, a final LayerNorm when pre-norm."""

    def __init__(self, input_size: int, output_size: int, attention_heads: int,
                 dropout_rate: float, positional_dropout_rate: float, input_layer: str,
                 pos_enc_layer_type: str, normalize_before: bool, causal: bool):
        super().__init__()
        pos_enc_layer_type = POS_ENC_ALIASES.get(pos_enc_layer_type, pos_enc_layer_type)
        if pos_enc_layer_type not in POS_ENC_TYPES:
            raise ValueError(f"pos_enc_layer_type {pos_enc_layer_type!r} is not one of {', '.join(POS_ENC_TYPES)}")
        self._output_size = output_size
        self.pos_enc_layer_type = pos_enc_layer_type
        self.causal = causal
        if pos_enc_layer_type == "abs_pos":
            pos_enc = PositionalEncoding(output_size, positional_dropout_rate)
        elif pos_enc_layer_type == "rel_pos":
            pos_enc = RelPositionalEncoding(output_size, positional_dropout_rate)
        elif pos_enc_layer_type == "rope":
            pos_enc = RotaryPositionalEncoding(output_size, positional_dropout_rate, output_size // attention_heads)
        else:
            pos_enc = NoPositionalEncoding(output_size, positional_dropout_rate)
        self.embed = build_input_layer(input_layer, input_size, output_size, dropout_rate, pos_enc)
        self.normalize_before = normalize_before
        self.after_norm = nn.LayerNorm(output_size, eps=1e-12) if normalize_before else None
        self.encoders = nn.ModuleList()

    def output_size(self) -> int:
        return self._output_size

    def make_attention(self, heads: int, dropout_rate: float) -> nn.Module:
        if self.pos_enc_layer_type == "rel_pos":
            return RelPositionMultiHeadedAttention(heads, self._output_size, dropout_rate)
        return MultiHeadedAttention(heads, self._output_size, dropout_rate, rotary=self.pos_enc_layer_type == "rope")

    def forward(self, xs: torch.Tensor, xs_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """xs (B,T,D), xs_lens (B,) -> (out (B,T',output_size), mask (B,1,T') True on real frames)."""
        xs, pos_emb, lengths = self.embed(xs, xs_lens)
        mask_pad = make_non_pad_mask(lengths, xs.size(1)).unsqueeze(1)  # (B,1,T')
        att_mask = mask_pad
        if self.causal:
            att_mask = mask_pad & subsequent_mask(xs.size(1), xs.device).unsqueeze(0)
        for layer in self.encoders:
            xs = layer(xs, att_mask, pos_emb, mask_pad)
        if self.after_norm is not None:
            xs = self.after_norm(xs)
        return xs, mask_pad


class TransformerEncoder(BaseEncoder):
    def __init__(self, input_size: int, output_size: int = 256, attention_heads: int = 4,
                 linear_units: int = 2048, num_blocks: int = 6, dropout_rate: float = 0.1,
                 positional_dropout_rate: float = 0.1, attention_dropout_rate: float = 0.0,
                 input_layer: str = "conv2d", pos_enc_layer_type: str = "abs_pos",
                 normalize_before: bool = True, activation_type: str = "relu", causal: bool = False):
        super().__init__(input_size, output_size, attention_heads, dropout_rate, positional_dropout_rate,
                         input_layer, pos_enc_layer_type, normalize_before, causal)
        self.encoders = nn.ModuleList(
            TransformerEncoderLayer(
                output_size,
                self.make_attention(attention_heads, attention_dropout_rate),
                PositionwiseFeedForward(output_size, linear_units, dropout_rate, get_activation(activation_type)),
                dropout_rate,
                normalize_before,
            )
            for _ in range(num_blocks)
        )


class ConformerEncoder(BaseEncoder):
    def __init__(self, input_size: int, output_size: int = 256, attention_heads: int = 4,
                 linear_units: int = 2048, num_blocks: int = 6, dropout_rate: float = 0.1,
                 positional_dropout_rate: float = 0.1, attention_dropout_rate: float = 0.0,
                 input_layer: str = "conv2d", pos_enc_layer_type: str = "rel_pos",
                 normalize_before: bool = True, cnn_module_kernel: int = 15,
                 use_cnn_module: bool = True, macaron_style: bool = True,
                 activation_type: str = "swish", causal: bool = False,
                 cnn_module_norm: str = "batch_norm"):
        super().__init__(input_size, output_size, attention_heads, dropout_rate, positional_dropout_rate,
                         input_layer, pos_enc_layer_type, normalize_before, causal)

        def feed_forward():
            return PositionwiseFeedForward(output_size, linear_units, dropout_rate, get_activation(activation_type))

        self.encoders = nn.ModuleList(
            ConformerEncoderLayer(
                output_size,
                self.make_attention(attention_heads, attention_dropout_rate),
                feed_forward(),
                feed_forward() if macaron_style else None,
                ConvolutionModule(output_size, cnn_module_kernel, get_activation(activation_type),
                                  cnn_module_norm, causal) if use_cnn_module else None,
                dropout_rate,
                normalize_before,
            )
            for _ in range(num_blocks)
        )
