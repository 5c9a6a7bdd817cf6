"""Multi-head attention with absolute, relative (Transformer-XL) or rotary positions.

All variants run through ``torch.nn.functional.scaled_dot_product_attention`` so the fused
kernels are used where the hardware has them; the relative-position term enters as an additive
bias, which SDPA accepts as a float mask.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def apply_rotary(x: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
    """x (B,H,T,d_k), pos_emb (2,T,d_k) of cos/sin -> x rotated by its position."""
    cos, sin = pos_emb[0], pos_emb[1]
    return x * cos + rotate_half(x) * sin


def rel_shift(x: torch.Tensor) -> torch.Tensor:
    """(B,H,T1,2*T1-1) scores against distances T1-1..-(T1-1) -> (B,H,T1,T1) with [i,j] at distance i-j.

    The zero-pad-and-reshape trick of Transformer-XL: no gather, one copy.
    """
    batch, heads, time1, num_distances = x.shape
    padded = torch.cat([x.new_zeros(batch, heads, time1, 1), x], dim=-1)
    padded = padded.view(batch, heads, num_distances + 1, time1)
    return padded[:, :, 1:].reshape(batch, heads, time1, num_distances)[:, :, :, : num_distances // 2 + 1]


class MultiHeadedAttention(nn.Module):
    """Plain multi-head attention; with ``rotary=True`` q and k are rotated by their positions."""

    def __init__(self, n_head: int, n_feat: int, dropout_rate: float, rotary: bool = False):
        super().__init__()
        if n_feat % n_head:
            raise ValueError(f"attention size {n_feat} is not divisible by {n_head} heads")
        self.d_k = n_feat // n_head
        self.h = n_head
        self.rotary = rotary
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k = nn.Linear(n_feat, n_feat)
        self.linear_v = nn.Linear(n_feat, n_feat)
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.dropout_rate = dropout_rate

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1, self.h, self.d_k).transpose(1, 2)

    def attend(self, q, k, v, mask: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """q,k,v (B,H,T,d_k); mask (B,1|T1,T2) bool; bias (B,H,T1,T2) added to the scaled scores."""
        attn_mask = mask.unsqueeze(1)
        if bias is not None:
            attn_mask = bias.masked_fill(~attn_mask, float("-inf"))
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout_rate if self.training else 0.0
        )
        out = out.transpose(1, 2).reshape(q.size(0), -1, self.h * self.d_k)
        return self.linear_out(out)

    def forward(self, query, key, value, mask, pos_emb=None) -> torch.Tensor:
        q = self.split_heads(self.linear_q(query))
        k = self.split_heads(self.linear_k(key))
        v = self.split_heads(self.linear_v(value))
        if self.rotary:
            q = apply_rotary(q, pos_emb)
            k = apply_rotary(k, pos_emb)
        return self.attend(q, k, v, mask)


class RelPositionMultiHeadedAttention(MultiHeadedAttention):
    """Transformer-XL attention with learned biases u, v (``pos_bias_u/v`` as in WeNet and ESPnet).

    score(i,j) = (q_i + u)·k_j + (q_i + v)·W_pos·r_{i-j}, divided by sqrt(d_k).
    """

    def __init__(self, n_head: int, n_feat: int, dropout_rate: float):
        super().__init__(n_head, n_feat, dropout_rate)
        self.linear_pos = nn.Linear(n_feat, n_feat, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(self.h, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(self.h, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    def forward(self, query, key, value, mask, pos_emb=None) -> torch.Tensor:
        q = self.split_heads(self.linear_q(query))
        k = self.split_heads(self.linear_k(key))
        v = self.split_heads(self.linear_v(value))
        p = self.split_heads(self.linear_pos(pos_emb))  # (1,H,2T-1,d_k)
        q_with_bias_u = q + self.pos_bias_u.unsqueeze(1)
        q_with_bias_v = q + self.pos_bias_v.unsqueeze(1)
        matrix_bd = rel_shift(torch.matmul(q_with_bias_v, p.transpose(-2, -1))) / math.sqrt(self.d_k)
        return self.attend(q_with_bias_u, k, v, mask, bias=matrix_bd)
