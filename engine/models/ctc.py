"""CTC head: projection to the vocabulary and the CTC loss (blank = 0)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CTC(nn.Module):
    def __init__(self, vocab_size: int, encoder_output_size: int, dropout_rate: float = 0.0, blank_id: int = 0):
        super().__init__()
        self.ctc_lo = nn.Linear(encoder_output_size, vocab_size)
        self.dropout_rate = dropout_rate
        self.blank_id = blank_id

    def forward(self, hs_pad, hlens, ys_pad, ys_lens) -> torch.Tensor:
        """Summed over utterances, divided by the batch size (as WeNet and ESPnet).

        ``zero_infinity``: an utterance too short for its transcript contributes zero loss instead
        of inf/nan gradients; the data pipeline counts and reports such utterances.
        """
        logits = self.ctc_lo(F.dropout(hs_pad, p=self.dropout_rate, training=self.training))
        log_probs = logits.transpose(0, 1).log_softmax(dim=-1).float()
        # Padded (B, S) targets: ctc_loss reads each row up to its length, and no boolean
        # selection means no data-dependent shape (torch.compile keeps one graph).
        targets = ys_pad.clamp(min=0)
        loss = F.ctc_loss(log_probs, targets, hlens, ys_lens, blank=self.blank_id,
                          reduction="sum", zero_infinity=True)
        return loss / hs_pad.size(0)

    def log_softmax(self, hs_pad: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.ctc_lo(hs_pad), dim=-1)
