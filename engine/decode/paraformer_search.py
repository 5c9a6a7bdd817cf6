"""Paraformer's one-pass non-autoregressive search: the predictor counts the tokens and gives
one acoustic embedding each, the decoder scores all positions at once, the best token is taken
at every position (FunASR's greedy path, beam size 1). eos, sos and blank are dropped from the
result (with ``predictor_bias`` 1 the model ends each utterance with eos)."""

from __future__ import annotations

import torch


@torch.inference_mode()
def paraformer_search(model, encoder_out: torch.Tensor, encoder_lens: torch.Tensor) -> list[list[int]]:
    embeds, token_num, _, _ = model.predict_tokens(encoder_out, encoder_lens)
    token_lens = token_num.round().long()
    batch = encoder_out.size(0)
    if batch == 0 or int(token_lens.max()) < 1:
        return [[] for _ in range(batch)]
    best = model.decode_embeddings(encoder_out, encoder_lens, embeds, token_lens).argmax(dim=-1).cpu()
    dropped = {model.eos, model.sos, model.blank_id}
    return [[t for t in row[:n].tolist() if t not in dropped] for row, n in zip(best, token_lens.tolist())]
