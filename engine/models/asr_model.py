"""Hybrid CTC/attention ASR model (WeNet/ESPnet): loss = ctc_weight·ctc + (1-ctc_weight)·att."""

from __future__ import annotations

import torch
from torch import nn

from engine.models.ctc import CTC
from engine.models.decoder import TransformerDecoder
from engine.models.label_smoothing import LabelSmoothingLoss

IGNORE_ID = -1


def add_sos_eos(ys_pad: torch.Tensor, sos: int, eos: int, ignore_id: int = IGNORE_ID):
    """(B,L) padded targets -> decoder input [sos, y...] padded with eos, and output [y..., eos]
    padded with ignore_id, both (B, L+1).

    Whole-tensor operations, no loop over utterances: no host sync and no data-dependent shapes,
    so torch.compile traces it as one graph.
    """
    pad = ys_pad == ignore_id
    lengths = (~pad).sum(dim=1, keepdim=True)
    ys_in = torch.cat([ys_pad.new_full((ys_pad.size(0), 1), sos), ys_pad.masked_fill(pad, eos)], dim=1)
    ys_out = torch.cat([ys_pad, ys_pad.new_full((ys_pad.size(0), 1), ignore_id)], dim=1)
    ys_out = ys_out.scatter(1, lengths, eos)
    return ys_in, ys_out


def th_accuracy(logits: torch.Tensor, targets: torch.Tensor, ignore_label: int = IGNORE_ID) -> torch.Tensor:
    """Token accuracy over non-ignored positions (FunASR/ESPnet th_accuracy)."""
    mask = targets != ignore_label
    correct = (logits.argmax(dim=-1) == targets) & mask
    return correct.sum().float() / mask.sum().clamp(min=1).float()


class ASRModel(nn.Module):
    """Encoder + CTC head + attention decoder. blank = 0; sos/eos = model_conf ``sos``/``eos``, else
    ``sos_eos_id`` (default vocab_size-1)."""

    def __init__(self, vocab_size: int, encoder: nn.Module, decoder: TransformerDecoder, ctc: CTC,
                 ctc_weight: float = 0.5, lsm_weight: float = 0.0, length_normalized_loss: bool = False,
                 sos_eos_id: int | None = None, ignore_id: int = IGNORE_ID, sos: int | None = None,
                 eos: int | None = None):
        super().__init__()
        if not 0.0 <= ctc_weight <= 1.0:
            raise ValueError(f"model_conf.ctc_weight must be in [0, 1], got {ctc_weight}")
        self.vocab_size = vocab_size
        # FunASR's model_conf names sos and eos apart (FunASR models start with <s> and end with
        # </s>); the engine's own token lists use </s> for both (``sos_eos_id``).
        default = vocab_size - 1 if sos_eos_id is None else sos_eos_id
        self.sos = default if sos is None else int(sos)
        self.eos = default if eos is None else int(eos)
        for name, value in (("sos", self.sos), ("eos", self.eos)):
            if not 0 <= value < vocab_size:
                raise ValueError(f"model_conf.{name} {value} is outside the vocabulary of {vocab_size} tokens")
        self.blank_id = ctc.blank_id
        self.ignore_id = ignore_id
        self.ctc_weight = ctc_weight
        self.encoder = encoder
        self.decoder = decoder
        self.ctc = ctc
        self.criterion_att = LabelSmoothingLoss(vocab_size, ignore_id, lsm_weight, length_normalized_loss)

    def encode(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,T,D) features -> (encoder_out (B,T',D'), encoder_out_lens (B,))."""
        encoder_out, mask = self.encoder(speech, speech_lengths)
        return encoder_out, mask.squeeze(1).sum(dim=1)

    def forward(self, speech, speech_lengths, text, text_lengths) -> dict[str, torch.Tensor]:
        """Both branches are always computed (even at ctc_weight 0 or 1) so every parameter gets a
        gradient under DDP and the reported terms are always comparable."""
        encoder_out, encoder_mask = self.encoder(speech, speech_lengths)
        encoder_out_lens = encoder_mask.squeeze(1).sum(dim=1)
        loss_ctc = self.ctc(encoder_out, encoder_out_lens, text, text_lengths)
        ys_in, ys_out = add_sos_eos(text, self.sos, self.eos, self.ignore_id)
        decoder_out = self.decoder(encoder_out, encoder_mask, ys_in, text_lengths + 1)
        loss_att = self.criterion_att(decoder_out, ys_out)
        acc = th_accuracy(decoder_out.detach(), ys_out, self.ignore_id)
        loss = self.ctc_weight * loss_ctc + (1.0 - self.ctc_weight) * loss_att
        # The terms keep their graphs: an OptimScheduler may optimise one of them (optim_loss: loss_ctc).
        return {"loss": loss, "loss_ctc": loss_ctc, "loss_att": loss_att, "acc": acc}
