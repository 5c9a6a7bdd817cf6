"""Paraformer's non-autoregressive SANM decoder (FunASR's ParaformerSANMDecoder).

Its input is one acoustic embedding per output token (from the CIF predictor, or partly the
target embeddings under the glancing sampler), so all tokens are predicted at once. Each block:
feed-forward with a LayerNorm inside, an FSMN memory block in place of self-attention, then
cross-attention over the encoder output. ``att_layer_num`` blocks have cross-attention; the
remaining ``num_blocks - att_layer_num`` have memory only; a last feed-forward-only block
(``decoders3``) precedes the final LayerNorm and the output projection.

Constructor arguments are FunASR's ``decoder_conf`` keys; parameter names are FunASR's.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.dropout import Dropout
from engine.models.mask import make_non_pad_mask
from engine.models.sanm_attention import CrossAttention, FSMNMemory


class FeedForwardSANM(nn.Module):
    """Linear -> ReLU -> dropout -> LayerNorm -> Linear without bias (FunASR's
    PositionwiseFeedForwardDecoderSANM)."""

    def __init__(self, size: int, hidden_units: int, dropout_rate: float):
        super().__init__()
        self.w_1 = nn.Linear(size, hidden_units)
        self.w_2 = nn.Linear(hidden_units, size, bias=False)
        self.norm = nn.LayerNorm(hidden_units, eps=1e-12)
        self.dropout = Dropout(dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.norm(self.dropout(torch.relu(self.w_1(x)))))


class DecoderLayerSANM(nn.Module):
    """x -> FFN(norm1(x)) -> memory(norm2(.)) + x -> cross-attention(norm3(.)) + residual.

    The residual of the first half skips both the feed-forward and the memory block (the memory
    block adds its own input back). A block without memory is the feed-forward alone.
    """

    def __init__(self, size: int, self_attn: FSMNMemory | None, src_attn: CrossAttention | None,
                 feed_forward: FeedForwardSANM, dropout_rate: float, normalize_before: bool = True):
        super().__init__()
        if not normalize_before:
            raise ValueError("decoder_conf.normalize_before: only true is supported by the Paraformer decoder")
        self.self_attn = self_attn
        self.src_attn = src_attn
        self.feed_forward = feed_forward
        self.norm1 = nn.LayerNorm(size, eps=1e-12)
        self.norm2 = nn.LayerNorm(size, eps=1e-12) if self_attn is not None else None
        self.norm3 = nn.LayerNorm(size, eps=1e-12) if src_attn is not None else None
        self.dropout = Dropout(dropout_rate)

    def forward(self, x: torch.Tensor, tgt_mask: torch.Tensor, memory: torch.Tensor,
                memory_mask: torch.Tensor) -> torch.Tensor:
        residual = x
        x = self.feed_forward(self.norm1(x))
        if self.self_attn is not None:
            x = residual + self.dropout(self.self_attn(self.norm2(x), tgt_mask))
        if self.src_attn is not None:
            x = x + self.dropout(self.src_attn(self.norm3(x), memory, memory_mask))
        return x


class ParaformerSANMDecoder(nn.Module):
    def __init__(self, vocab_size: int, encoder_output_size: int, attention_heads: int = 4,
                 linear_units: int = 2048, num_blocks: int = 6, dropout_rate: float = 0.1,
                 positional_dropout_rate: float = 0.1, self_attention_dropout_rate: float = 0.0,
                 src_attention_dropout_rate: float = 0.0, att_layer_num: int = 6, kernel_size: int = 21,
                 sanm_shfit: int | None = 0, normalize_before: bool = True, input_layer: str = "embed",
                 use_output_layer: bool = True, concat_after: bool = False):
        super().__init__()
        for key, value, allowed in (("input_layer", input_layer, ("embed",)), ("use_output_layer", use_output_layer, (True,)),
                                    ("concat_after", concat_after, (False,))):
            if value not in allowed:
                raise ValueError(f"decoder_conf.{key}: {value!r} is not supported by the Paraformer decoder "
                                 f"(supported: {', '.join(map(repr, allowed))})")
        if not 1 <= att_layer_num <= num_blocks:
            raise ValueError(f"decoder_conf.att_layer_num must be in 1..num_blocks ({num_blocks}), got {att_layer_num}")
        size = encoder_output_size
        if sanm_shfit is None:
            sanm_shfit = (kernel_size - 1) // 2
        # positional_dropout_rate is accepted for FunASR's configs: this decoder has no positions.
        # The token embedding is used only by the glancing sampler (FunASR's ``embed.0``).
        self.embed = nn.Sequential(nn.Embedding(vocab_size, size))

        def layer(with_src: bool, shift: int) -> DecoderLayerSANM:
            return DecoderLayerSANM(
                size, FSMNMemory(size, kernel_size, shift, self_attention_dropout_rate),
                CrossAttention(attention_heads, size, src_attention_dropout_rate) if with_src else None,
                FeedForwardSANM(size, linear_units, dropout_rate), dropout_rate, normalize_before)

        self.decoders = nn.ModuleList(layer(True, sanm_shfit) for _ in range(att_layer_num))
        self.decoders2 = (nn.ModuleList(layer(False, 0) for _ in range(num_blocks - att_layer_num))
                          if num_blocks > att_layer_num else None)
        self.decoders3 = nn.ModuleList([DecoderLayerSANM(size, None, None, FeedForwardSANM(size, linear_units, dropout_rate),
                                                         dropout_rate, normalize_before)])
        self.after_norm = nn.LayerNorm(size, eps=1e-12)
        self.output_layer = nn.Linear(size, vocab_size)

    def forward(self, memory: torch.Tensor, memory_lens: torch.Tensor, embeds: torch.Tensor,
                embed_lens: torch.Tensor) -> torch.Tensor:
        """memory (B,T,D) with lengths, one embedding per token (B,L,D) with lengths -> logits (B,L,V)."""
        tgt_mask = make_non_pad_mask(embed_lens, embeds.size(1)).unsqueeze(-1)  # (B,L,1)
        memory_mask = make_non_pad_mask(memory_lens, memory.size(1)).unsqueeze(1)  # (B,1,T)
        x = embeds
        for block in (*self.decoders, *(self.decoders2 or ()), *self.decoders3):
            x = block(x, tgt_mask, memory, memory_mask)
        return self.output_layer(self.after_norm(x))
