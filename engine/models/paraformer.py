"""Paraformer (Gao et al. 2022, "Paraformer: Fast and Accurate Parallel Transformer for
Non-autoregressive End-to-End Speech Recognition"): SANM encoder, CIF predictor, SANM decoder
that predicts every token at once from one acoustic embedding per token.

Training (``forward``): the predictor's weights are rescaled to the true length, so the
decoder sees as many embeddings as targets. The glancing sampler (``sampling_ratio``) first
decodes the acoustic embeddings without gradient, then replaces a random
``sampling_ratio * (number of wrong tokens)`` of them by the target tokens' embeddings, and
the decoder learns from that mixture. Loss = ctc_weight·CTC + (1-ctc_weight)·attention CE
(label smoothing) + predictor_weight·MAE(predicted count, true count). ``acc`` is the accuracy
of the first, unglanced pass (what inference does).

With ``predictor_bias`` 1 the targets end with eos, which the predictor must count as a token
(paraformer-zh does this); inference drops eos, sos and blank from the output.

``model_conf`` keys are FunASR's Paraformer arguments; parameter names are FunASR's.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.asr_model import IGNORE_ID, th_accuracy
from engine.models.cif_predictor import CifPredictorV2
from engine.models.ctc import CTC
from engine.models.label_smoothing import LabelSmoothingLoss
from engine.models.mask import make_non_pad_mask
from engine.models.paraformer_decoder import ParaformerSANMDecoder
from engine.models.sanm_encoder import SANMEncoder


def glancing_mask(correct: torch.Tensor, valid: torch.Tensor, sampling_ratio: float) -> torch.Tensor:
    """Positions whose input becomes the target embedding: per utterance,
    floor(sampling_ratio * wrong tokens) of its real positions, drawn uniformly without
    replacement (the k smallest of uniform random keys). correct, valid: (B,L) bool."""
    wrong = (valid & ~correct).sum(dim=1)
    count = torch.floor(wrong.to(torch.float32) * sampling_ratio).long()
    keys = torch.rand(valid.shape, device=valid.device).masked_fill(~valid, 2.0)
    rank = keys.argsort(dim=1).argsort(dim=1)
    return (rank < count.unsqueeze(1)) & valid


class Paraformer(nn.Module):
    def __init__(self, vocab_size: int, encoder: SANMEncoder, decoder: ParaformerSANMDecoder,
                 predictor: CifPredictorV2, ctc_weight: float = 0.0, lsm_weight: float = 0.0,
                 length_normalized_loss: bool = False, predictor_weight: float = 1.0, predictor_bias: int = 0,
                 sampling_ratio: float = 0.2, sos: int = 1, eos: int = 2, blank_id: int = 0,
                 ignore_id: int = IGNORE_ID, share_embedding: bool = False, use_1st_decoder_loss: bool = False):
        super().__init__()
        if not 0.0 <= ctc_weight < 1.0:
            raise ValueError(f"model_conf.ctc_weight must be in [0, 1) for paraformer, got {ctc_weight}")
        if predictor_bias not in (0, 1):
            raise ValueError(f"model_conf.predictor_bias must be 0 or 1, got {predictor_bias}")
        if not 0.0 <= sampling_ratio <= 1.0:
            raise ValueError(f"model_conf.sampling_ratio must be in [0, 1], got {sampling_ratio}")
        if ignore_id != IGNORE_ID:
            raise ValueError(f"model_conf.ignore_id: the data pipeline pads targets with {IGNORE_ID}, got {ignore_id}")
        for key, value in (("share_embedding", share_embedding), ("use_1st_decoder_loss", use_1st_decoder_loss)):
            if value:
                raise ValueError(f"model_conf.{key}: only false is supported")
        self.vocab_size = vocab_size
        self.sos, self.eos, self.blank_id, self.ignore_id = sos, eos, blank_id, ignore_id
        self.ctc_weight = ctc_weight
        self.predictor_weight = predictor_weight
        self.predictor_bias = predictor_bias
        self.sampling_ratio = sampling_ratio
        self.length_normalized_loss = length_normalized_loss
        self.encoder = encoder
        self.decoder = decoder
        self.predictor = predictor
        # FunASR builds the CTC head only when it is weighted; so does this (same state_dict keys).
        self.ctc = CTC(vocab_size, encoder.output_size(), blank_id=blank_id) if ctc_weight > 0.0 else None
        self.criterion_att = LabelSmoothingLoss(vocab_size, ignore_id, lsm_weight, length_normalized_loss)

    def encode(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,T,D) features -> (encoder_out (B,T,D'), encoder_out_lens (B,))."""
        encoder_out, mask = self.encoder(speech, speech_lengths)
        return encoder_out, mask.squeeze(1).sum(dim=1)

    def predict_tokens(self, encoder_out: torch.Tensor, encoder_lens: torch.Tensor):
        """Inference predictor: (acoustic_embeds (B,N,D), token_num (B,), alphas, fired)."""
        return self.predictor(encoder_out, encoder_lens)

    def decode_embeddings(self, encoder_out, encoder_lens, embeds, token_lens) -> torch.Tensor:
        """Decoder log-probabilities (B,N,V) for one embedding per token."""
        return torch.log_softmax(self.decoder(encoder_out, encoder_lens, embeds, token_lens), dim=-1)

    def targets(self, text: torch.Tensor, text_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,L) targets padded with ignore_id and their lengths, eos appended when predictor_bias is 1."""
        if self.predictor_bias == 0:
            return text[:, : int(text_lengths.max())], text_lengths
        rows = [torch.cat([row[: int(n)], row.new_full((1,), self.eos)]) for row, n in zip(text, text_lengths)]
        ys = nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=self.ignore_id)
        return ys, text_lengths + 1

    def glance(self, encoder_out, encoder_lens, ys, ys_lens, acoustic) -> tuple[torch.Tensor, torch.Tensor]:
        """(decoder input: acoustic embeddings with glanced positions replaced by the targets'
        embeddings, the unglanced pass's logits for accuracy (None without a first pass))."""
        valid = make_non_pad_mask(ys_lens, ys.size(1))
        target_embeds = self.decoder.embed(ys.masked_fill(~valid, 0))
        first = None
        glanced = torch.zeros_like(valid)
        if self.sampling_ratio > 0.0:
            with torch.no_grad():
                first = self.decoder(encoder_out, encoder_lens, acoustic, ys_lens)
                glanced = glancing_mask(first.argmax(dim=-1) == ys, valid, self.sampling_ratio)
        # The blend is built even when nothing is glanced, so the embedding is always in the graph (DDP).
        mixed = torch.where(glanced.unsqueeze(-1), target_embeds, acoustic)
        return mixed * valid.unsqueeze(-1).to(mixed.dtype), first

    def forward(self, speech, speech_lengths, text, text_lengths) -> dict[str, torch.Tensor]:
        encoder_out, encoder_mask = self.encoder(speech, speech_lengths)
        encoder_lens = encoder_mask.squeeze(1).sum(dim=1)
        ys, ys_lens = self.targets(text, text_lengths)
        acoustic, token_num, _, _ = self.predictor(encoder_out, encoder_lens, ys_lens)
        decoder_in, first = self.glance(encoder_out, encoder_lens, ys, ys_lens, acoustic)
        logits = self.decoder(encoder_out, encoder_lens, decoder_in, ys_lens)
        loss_att = self.criterion_att(logits, ys)
        acc = th_accuracy((first if first is not None else logits).detach(), ys, self.ignore_id)
        # MAE of the token count: summed, divided by the batch size (or the target tokens).
        normalizer = ys_lens.sum().to(token_num.dtype) if self.length_normalized_loss else ys.size(0)
        loss_pre = (ys_lens.to(token_num.dtype) - token_num).abs().sum() / normalizer
        out = {"loss_att": loss_att, "loss_pre": loss_pre, "acc": acc}
        loss = loss_att + self.predictor_weight * loss_pre
        if self.ctc is not None:
            loss_ctc = self.ctc(encoder_out, encoder_lens, text, text_lengths)
            loss = self.ctc_weight * loss_ctc + (1.0 - self.ctc_weight) * loss_att + self.predictor_weight * loss_pre
            out["loss_ctc"] = loss_ctc
        return {"loss": loss, **out}
