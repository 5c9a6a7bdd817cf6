"""SANM attention (Gao et al. 2020, "SAN-M: memory equipped self-attention"): multi-head
self-attention plus an FSMN memory block, a depthwise 1-D convolution over the value stream.

Parameter names are FunASR's (``linear_q_k_v``, ``linear_out``, ``fsmn_block``; ``linear_q``,
``linear_k_v`` for the decoder's cross-attention) so that Paraformer checkpoints load unchanged.
Masks follow the engine's convention: True on real frames.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.convolution import depthwise_conv_time
from engine.models.dropout import Dropout


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
           dropout: nn.Dropout) -> torch.Tensor:
    """(B,H,T1,dk) x (B,H,T2,dk) -> (B,T1,H*dk); ``mask`` (B,1|T1,T2) True where a key may be seen.

    Fully masked rows give zeros (not NaN): their softmax is filled with 0 after the fact.
    """
    scores = torch.matmul(q * q.size(-1) ** -0.5, k.transpose(-2, -1))
    if mask is not None:
        hidden = ~mask.unsqueeze(1)  # (B,1,T1|1,T2)
        weights = torch.softmax(scores.masked_fill(hidden, float("-inf")), dim=-1).masked_fill(hidden, 0.0)
    else:
        weights = torch.softmax(scores, dim=-1)
    out = torch.matmul(dropout(weights), v)
    return out.transpose(1, 2).reshape(out.size(0), out.size(2), -1)


def fsmn_padding(kernel_size: int, sanm_shfit: int) -> tuple[int, int]:
    """(left, right) context of the memory window: ``sanm_shfit`` (FunASR's spelling) moves it
    towards the past."""
    left = (kernel_size - 1) // 2 + max(sanm_shfit, 0)
    return left, kernel_size - 1 - left


def fsmn_memory(x: torch.Tensor, mask: torch.Tensor | None, conv: nn.Conv1d, padding: tuple[int, int],
                dropout: nn.Dropout) -> torch.Tensor:
    """x + depthwise_conv(x) over time, with padded frames zeroed before and after (they never
    leak into real frames). x (B,T,D); mask (B,T,1) or (B,1,T) True on real frames."""
    if mask is not None:
        mask = mask.reshape(x.size(0), -1, 1).to(x.dtype)
        x = x * mask
    memory = depthwise_conv_time(x, conv, padding)
    out = dropout(memory + x)
    return out * mask if mask is not None else out


class FSMNMemory(nn.Module):
    """The FSMN memory block alone: a depthwise convolution over time (no bias) added to its input.

    The Paraformer decoder uses it in place of self-attention.
    """

    def __init__(self, size: int, kernel_size: int, sanm_shfit: int = 0, dropout_rate: float = 0.0):
        super().__init__()
        self.fsmn_block = nn.Conv1d(size, size, kernel_size, stride=1, padding=0, groups=size, bias=False)
        self.padding = fsmn_padding(kernel_size, sanm_shfit)
        self.dropout = Dropout(dropout_rate)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return fsmn_memory(x, mask, self.fsmn_block, self.padding, self.dropout)


class SANMSelfAttention(nn.Module):
    """Self-attention whose output adds the FSMN memory of the values (encoder side).

    ``in_size`` may differ from ``size`` (the first encoder layer reads the features directly).
    """

    def __init__(self, heads: int, in_size: int, size: int, dropout_rate: float, kernel_size: int,
                 sanm_shfit: int = 0):
        super().__init__()
        if size % heads:
            raise ValueError(f"output_size {size} is not divisible by attention_heads {heads}")
        self.heads = heads
        self.d_k = size // heads
        self.linear_q_k_v = nn.Linear(in_size, 3 * size)
        self.linear_out = nn.Linear(size, size)
        self.dropout = Dropout(dropout_rate)
        # The memory block of the values shares the attention dropout (as in FunASR).
        self.fsmn_block = nn.Conv1d(size, size, kernel_size, stride=1, padding=0, groups=size, bias=False)
        self.padding = fsmn_padding(kernel_size, sanm_shfit)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B,T,in_size), mask (B,1,T) True on real frames -> (B,T,size)."""
        batch, frames, _ = x.shape
        q, k, v = self.linear_q_k_v(x).chunk(3, dim=-1)
        memory = fsmn_memory(v, mask, self.fsmn_block, self.padding, self.dropout)
        split = lambda t: t.reshape(batch, frames, self.heads, self.d_k).transpose(1, 2)  # noqa: E731
        return self.linear_out(attend(split(q), split(k), split(v), mask, self.dropout)) + memory


class CrossAttention(nn.Module):
    """Decoder queries over the encoder output; keys and values from one projection (``linear_k_v``)."""

    def __init__(self, heads: int, size: int, dropout_rate: float, memory_size: int | None = None):
        super().__init__()
        if size % heads:
            raise ValueError(f"attention size {size} is not divisible by attention_heads {heads}")
        self.heads = heads
        self.d_k = size // heads
        self.linear_q = nn.Linear(size, size)
        self.linear_k_v = nn.Linear(memory_size or size, 2 * size)
        self.linear_out = nn.Linear(size, size)
        self.dropout = Dropout(dropout_rate)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        """x (B,L,D), memory (B,T,Dm), memory_mask (B,1,T) True on real frames -> (B,L,D)."""
        batch = x.size(0)
        split = lambda t: t.reshape(batch, -1, self.heads, self.d_k).transpose(1, 2)  # noqa: E731
        k, v = self.linear_k_v(memory).chunk(2, dim=-1)
        return self.linear_out(attend(split(self.linear_q(x)), split(k), split(v), memory_mask, self.dropout))
