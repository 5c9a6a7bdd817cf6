"""Continuous integrate-and-fire (Dong & Xu 2020, "CIF: Continuous Integrate-and-Fire for
End-to-End Speech Recognition") and Paraformer's CIF predictor (FunASR's CifPredictorV2).

The predictor gives every encoder frame a weight alpha in [0, 1] (a convolution over a few
neighbouring frames, then a sigmoid). Integrating the weights along time, a token "fires" each
time the running sum crosses a whole number; its acoustic embedding is the alpha-weighted sum
of the frames since the previous firing, the crossing frame's weight split between the two.
The sum of the weights is the predicted token count. In training the weights are rescaled so
they sum to the true length (the decoder sees as many embeddings as targets); at inference a
``tail_threshold`` weight is added after the last frame so a nearly complete last token fires.

Parameter names are FunASR's (``cif_conv1d``, ``cif_output``).
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.mask import make_non_pad_mask


# A running sum this close below a whole number counts as that number (see cif_fire).
FIRE_TOLERANCE = 1e-4


def cif_fire(alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,T) weights -> (fired (B,T) bool, remainder (B,T)).

    A frame fires when the integer part of the running sum rises there; the remainder is the
    fractional part of the running sum (the weight carried over to the next token). The running
    sum is accumulated in float64 so long utterances do not drift across a whole number.

    A sum within ``FIRE_TOLERANCE`` below a whole number counts as that number. Training rescales
    the weights to sum to the target count, which float32 meets only to rounding: a sum of
    11.999998 for 12 targets left the last token unfired, so the decoder saw a zero embedding in
    its place and the loss moved by 0.05, depending on the CPU's kernels (FunASR's loop, which
    compares ``integrate >= threshold``, has the same flip).
    """
    running = torch.cumsum(alphas, dim=1, dtype=torch.float64)
    whole = torch.floor(running + FIRE_TOLERANCE)
    previous = torch.nn.functional.pad(whole[:, :-1], (1, 0))
    return whole > previous, (running - whole).clamp(min=0.0).to(alphas.dtype)


def cif(hidden: torch.Tensor, alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integrate-and-fire with threshold 1.

    hidden (B,T,D), alphas (B,T) -> (embeddings (B,N,D), counts (B,) tokens fired, fired (B,T)),
    N = round(max over the batch of sum(alphas)); rows beyond an utterance's count are zero.
    Frame t adds weight alpha_t to the token being integrated, except on a firing frame, which
    adds alpha_t - remainder_t to the token that fires and remainder_t to the next one. A
    frame whose weight crosses two whole numbers fires once (weights above 1 only occur when
    training rescales them). Weight left after the last firing makes no token.
    """
    batch, frames, dim = hidden.shape
    fired, remainder = cif_fire(alphas)
    counts = fired.sum(dim=1)
    # Token each frame's weight goes to: the number of firings strictly before it.
    token = torch.cumsum(fired.long(), dim=1) - fired.long()
    here = torch.where(fired, alphas - remainder, alphas)
    carried = torch.where(fired, remainder, torch.zeros_like(remainder))
    length = int(torch.round(alphas.sum(dim=1)).max().item()) if frames else 0
    slots = max(length, int(counts.max().item()) if batch else 0) + 1  # +1: the unfinished token
    # float32 weights with bf16 hidden (autocast): the sums in the weights' precision
    out = hidden.new_zeros(batch * slots, dim, dtype=torch.promote_types(hidden.dtype, alphas.dtype))
    base = (torch.arange(batch, device=hidden.device) * slots).unsqueeze(1)
    flat_hidden = hidden.reshape(batch * frames, dim)
    out = out.index_add(0, (base + token).reshape(-1), flat_hidden * here.reshape(-1, 1))
    out = out.index_add(0, (base + token + 1).clamp(max=base + slots - 1).reshape(-1),
                        flat_hidden * carried.reshape(-1, 1))
    out = out.view(batch, slots, dim)
    keep = make_non_pad_mask(counts, slots).unsqueeze(-1)
    return (out * keep)[:, :length], counts, fired


class CifPredictorV2(nn.Module):
    """Frame weights from a convolution over ``l_order`` past and ``r_order`` future frames.

    Constructor arguments are the keys of FunASR's ``predictor_conf`` for CifPredictorV2.
    ``threshold`` must be 1.0 (the integration fires at whole numbers, as FunASR's does);
    ``dropout`` is accepted for FunASR's configs, which set it, but FunASR's V2 predictor
    applies no dropout and neither does this one.
    """

    def __init__(self, idim: int, l_order: int = 1, r_order: int = 1, threshold: float = 1.0, dropout: float = 0.1,
                 smooth_factor: float = 1.0, noise_threshold: float = 0.0, tail_threshold: float = 0.0,
                 tail_mask: bool = True):
        super().__init__()
        if threshold != 1.0:
            raise ValueError(f"predictor_conf.threshold: only 1.0 is supported, got {threshold}")
        if l_order < 0 or r_order < 0:
            raise ValueError(f"predictor_conf.l_order/r_order must be >= 0, got {l_order}, {r_order}")
        self.padding = (l_order, r_order)
        self.cif_conv1d = nn.Conv1d(idim, idim, l_order + r_order + 1)
        self.cif_output = nn.Linear(idim, 1)
        self.threshold = threshold
        self.dropout_rate = dropout
        self.smooth_factor = smooth_factor
        self.noise_threshold = noise_threshold
        self.tail_threshold = tail_threshold
        self.tail_mask = tail_mask

    def frame_weights(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """hidden (B,T,D), mask (B,T) True on real frames -> alphas (B,T), zero on padding."""
        context = nn.functional.pad(hidden.transpose(1, 2), self.padding)
        # float32 from here on, under bf16/fp16 autocast too: weights rounded to 8 bits, rescaled to
        # the target count, summed up to a tenth away from it (32.96 for 33) and left the last unfired.
        scores = self.cif_output(torch.relu(self.cif_conv1d(context)).transpose(1, 2)).squeeze(-1).float()
        alphas = torch.relu(torch.sigmoid(scores) * self.smooth_factor - self.noise_threshold)
        return alphas * mask.to(alphas.dtype)

    def add_tail(self, hidden: torch.Tensor, alphas: torch.Tensor, lengths: torch.Tensor):
        """One extra zero frame after each utterance with weight ``tail_threshold`` (right after
        its last real frame; with ``tail_mask`` false, after the padded end)."""
        batch, frames, dim = hidden.shape
        alphas = nn.functional.pad(alphas, (0, 1))
        hidden = torch.cat([hidden, hidden.new_zeros(batch, 1, dim)], dim=1)
        where = lengths if self.tail_mask else torch.full_like(lengths, frames)
        tail = nn.functional.one_hot(where.long(), frames + 1).to(alphas.dtype) * self.tail_threshold
        return hidden, alphas + tail

    def forward(self, hidden: torch.Tensor, hidden_lengths: torch.Tensor, target_lengths: torch.Tensor | None = None):
        """-> (acoustic_embeds (B,N,D), token_num (B,), alphas, fired).

        With ``target_lengths`` (training) the weights are rescaled to sum to them and
        ``token_num`` is the unscaled sum (what the MAE loss compares with the targets). Without
        (inference), the tail weight is added and ``token_num`` is floor(sum of weights); the
        embeddings are cut to the longest count.
        """
        mask = make_non_pad_mask(hidden_lengths, hidden.size(1))
        alphas = self.frame_weights(hidden, mask)
        token_num = alphas.sum(dim=-1)
        if target_lengths is not None:
            alphas = alphas * (target_lengths.to(alphas.dtype) / token_num).unsqueeze(1)
        elif self.tail_threshold > 0.0:
            hidden, alphas = self.add_tail(hidden, alphas, hidden_lengths)
            token_num = torch.floor(alphas.sum(dim=-1))
        embeds, _, fired = cif(hidden, alphas)
        if target_lengths is None and self.tail_threshold > 0.0:
            embeds = embeds[:, : int(token_num.max().item())]
        return embeds, token_num, alphas, fired
