"""Transformer attention decoder (left-to-right), with an incremental step for beam search."""

from __future__ import annotations

import torch
from torch import nn

from engine.models.activation import get_activation
from engine.models.attention import MultiHeadedAttention
from engine.models.dropout import Dropout
from engine.models.embedding import PositionalEncoding
from engine.models.mask import make_non_pad_mask, subsequent_mask
from engine.models.positionwise import PositionwiseFeedForward


class DecoderLayer(nn.Module):
    """Masked self-attention, attention over the encoder output, feed-forward; pre-norm residuals."""

    def __init__(self, size: int, self_attn: nn.Module, src_attn: nn.Module,
                 feed_forward: PositionwiseFeedForward, dropout_rate: float, normalize_before: bool = True):
        super().__init__()
        self.self_attn = self_attn
        self.src_attn = src_attn
        self.feed_forward = feed_forward
        self.norm1 = nn.LayerNorm(size, eps=1e-12)
        self.norm2 = nn.LayerNorm(size, eps=1e-12)
        self.norm3 = nn.LayerNorm(size, eps=1e-12)
        self.dropout = Dropout(dropout_rate)
        self.normalize_before = normalize_before

    def forward(self, tgt, tgt_mask, memory, memory_mask, cache: torch.Tensor | None = None) -> torch.Tensor:
        """With ``cache`` (this layer's outputs for all but the last position) only the last query is
        computed and appended to it: each search step costs one position, not the whole prefix."""
        residual = tgt
        if self.normalize_before:
            tgt = self.norm1(tgt)
        query, query_mask = tgt, tgt_mask
        if cache is not None:
            query, residual, query_mask = tgt[:, -1:], residual[:, -1:], tgt_mask[:, -1:]
        x = residual + self.dropout(self.self_attn(query, tgt, tgt, query_mask))
        if not self.normalize_before:
            x = self.norm1(x)

        residual = x
        if self.normalize_before:
            x = self.norm2(x)
        x = residual + self.dropout(self.src_attn(x, memory, memory, memory_mask))
        if not self.normalize_before:
            x = self.norm2(x)

        residual = x
        if self.normalize_before:
            x = self.norm3(x)
        x = residual + self.dropout(self.feed_forward(x))
        if not self.normalize_before:
            x = self.norm3(x)
        if cache is not None:
            x = torch.cat([cache, x], dim=1)
        return x


class TransformerDecoder(nn.Module):
    """Token embedding + absolute positions, ``num_blocks`` decoder layers, output projection."""

    def __init__(self, vocab_size: int, encoder_output_size: int, attention_heads: int = 4,
                 linear_units: int = 2048, num_blocks: int = 6, dropout_rate: float = 0.1,
                 positional_dropout_rate: float = 0.1, self_attention_dropout_rate: float = 0.0,
                 src_attention_dropout_rate: float = 0.0, normalize_before: bool = True,
                 activation_type: str = "relu"):
        super().__init__()
        size = encoder_output_size
        self.embed = nn.Embedding(vocab_size, size)
        self.pos_enc = PositionalEncoding(size, positional_dropout_rate)
        self.normalize_before = normalize_before
        self.after_norm = nn.LayerNorm(size, eps=1e-12) if normalize_before else None
        self.output_layer = nn.Linear(size, vocab_size)
        self.decoders = nn.ModuleList(
            DecoderLayer(
                size,
                MultiHeadedAttention(attention_heads, size, self_attention_dropout_rate),
                MultiHeadedAttention(attention_heads, size, src_attention_dropout_rate),
                PositionwiseFeedForward(size, linear_units, dropout_rate, get_activation(activation_type)),
                dropout_rate,
                normalize_before,
            )
            for _ in range(num_blocks)
        )

    def forward(self, memory, memory_mask, ys_in_pad, ys_in_lens) -> torch.Tensor:
        """memory (B,T,D), memory_mask (B,1,T), ys_in_pad (B,L) starting with sos -> logits (B,L,V)."""
        length = ys_in_pad.size(1)
        tgt_mask = make_non_pad_mask(ys_in_lens, length).unsqueeze(1) & subsequent_mask(
            length, ys_in_pad.device
        ).unsqueeze(0)
        x, _ = self.pos_enc(self.embed(ys_in_pad))
        for layer in self.decoders:
            x = layer(x, tgt_mask, memory, memory_mask)
        if self.after_norm is not None:
            x = self.after_norm(x)
        return self.output_layer(x)

    def forward_one_step(self, memory, memory_mask, ys: torch.Tensor, cache: list[torch.Tensor] | None):
        """Score the next token after prefixes ``ys`` (N,L) -> (log_probs (N,V), new cache per layer)."""
        length = ys.size(1)
        tgt_mask = subsequent_mask(length, ys.device).unsqueeze(0)
        x, _ = self.pos_enc(self.embed(ys))
        new_cache = []
        for i, layer in enumerate(self.decoders):
            x = layer(x, tgt_mask, memory, memory_mask, cache=None if cache is None else cache[i])
            new_cache.append(x)
        last = x[:, -1]
        if self.after_norm is not None:
            last = self.after_norm(last)
        return torch.log_softmax(self.output_layer(last), dim=-1), new_cache
