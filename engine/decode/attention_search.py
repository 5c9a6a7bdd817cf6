"""Attention decoder searches: batched beam search, and rescoring of CTC n-best lists."""

from __future__ import annotations

import torch

from engine.models.mask import make_non_pad_mask

NEG_INF = float("-inf")


@torch.inference_mode()
def attention_beam_search(model, encoder_out: torch.Tensor, encoder_lens: torch.Tensor, beam_size: int,
                          length_penalty: float = 0.0) -> list[list[int]]:
    """Left-to-right beam search of the attention decoder, all utterances of the batch at once.

    Hypotheses are (B*beam) rows of one decoder batch with incremental per-layer caches; a
    finished row (ended with eos) only extends with eos at no cost. The search stops when every
    row has ended or after as many steps as encoder frames. The final score is the sum of token
    log-probabilities plus ``length_penalty`` per token.
    """
    batch, frames, dim = encoder_out.shape
    device = encoder_out.device
    beam_size = min(beam_size, model.vocab_size)
    rows = batch * beam_size
    memory = encoder_out.unsqueeze(1).expand(batch, beam_size, frames, dim).reshape(rows, frames, dim)
    memory_mask = make_non_pad_mask(encoder_lens, frames).unsqueeze(1)
    memory_mask = memory_mask.unsqueeze(1).expand(batch, beam_size, 1, frames).reshape(rows, 1, frames)
    sos, eos = model.sos, model.eos
    hyps = torch.full((rows, 1), sos, dtype=torch.long, device=device)
    # Only the first row of each utterance is live at the start, so the first expansion is not beam copies.
    scores = torch.tensor([0.0] + [NEG_INF] * (beam_size - 1), device=device).repeat(batch).unsqueeze(1)
    ended = torch.zeros(rows, 1, dtype=torch.bool, device=device)
    cache = None
    batch_offset = (torch.arange(batch, device=device) * beam_size).unsqueeze(1)
    for _ in range(max(frames, 1)):
        if ended.all():
            break
        log_probs, cache = model.decoder.forward_one_step(memory, memory_mask, hyps, cache)
        top_logp, top_tokens = log_probs.topk(beam_size, dim=-1)  # (rows, beam)
        # A finished row offers one continuation, eos at log-prob 0, so its score is kept unchanged.
        finished_logp = torch.full_like(top_logp, NEG_INF)
        finished_logp[:, 0] = 0.0
        top_logp = torch.where(ended, finished_logp, top_logp)
        top_tokens = torch.where(ended, torch.full_like(top_tokens, eos), top_tokens)
        candidate = (scores + top_logp).view(batch, beam_size * beam_size)
        scores, best = candidate.topk(beam_size, dim=-1)  # (B, beam)
        scores = scores.view(rows, 1)
        source_rows = (best // beam_size + batch_offset).view(-1)
        tokens = top_tokens.view(batch, beam_size * beam_size).gather(1, best).view(rows, 1)
        hyps = torch.cat([hyps.index_select(0, source_rows), tokens], dim=1)
        cache = [layer.index_select(0, source_rows) for layer in cache]
        ended = tokens == eos
    lengths = ((hyps[:, 1:] != eos).sum(dim=1, keepdim=True)).float()
    final = (scores + length_penalty * lengths).view(batch, beam_size)
    best_rows = final.argmax(dim=-1) + batch_offset.squeeze(1)
    results = []
    for row in hyps.index_select(0, best_rows).tolist():
        tokens = row[1:]
        results.append(tokens[: tokens.index(eos)] if eos in tokens else tokens)
    return results


@torch.inference_mode()
def attention_rescoring(model, encoder_out: torch.Tensor, encoder_len: int,
                        nbest: list[tuple[tuple[int, ...], float]], ctc_weight: float) -> list[int]:
    """Pick the n-best hypothesis with the highest attention score + ctc_weight * CTC score.

    The attention score is log P(hyp, eos | speech) from one teacher-forced decoder pass over all
    n-best hypotheses of the utterance (WeNet's attention_rescoring).
    """
    if not nbest:
        return []
    device = encoder_out.device
    count = len(nbest)
    sos, eos = model.sos, model.eos
    lengths = torch.tensor([len(prefix) for prefix, _ in nbest], device=device)
    longest = int(lengths.max())
    ys_in = torch.full((count, longest + 1), eos, dtype=torch.long, device=device)
    ys_out = torch.full((count, longest + 1), eos, dtype=torch.long, device=device)
    ys_in[:, 0] = sos
    for row, (prefix, _) in enumerate(nbest):
        if prefix:
            ys_in[row, 1:len(prefix) + 1] = torch.tensor(prefix, device=device)
            ys_out[row, :len(prefix)] = torch.tensor(prefix, device=device)
    memory = encoder_out[:encoder_len].unsqueeze(0).expand(count, encoder_len, encoder_out.size(-1))
    memory_mask = torch.ones(count, 1, encoder_len, dtype=torch.bool, device=device)
    logits = model.decoder(memory, memory_mask, ys_in, lengths + 1)
    token_logp = logits.log_softmax(dim=-1).gather(2, ys_out.unsqueeze(2)).squeeze(2)
    counted = torch.arange(longest + 1, device=device).unsqueeze(0) <= lengths.unsqueeze(1)  # tokens and eos
    att_scores = token_logp.masked_fill(~counted, 0.0).sum(dim=1)
    ctc_scores = torch.tensor([score for _, score in nbest], device=device)
    best = int((att_scores + ctc_weight * ctc_scores).argmax())
    return list(nbest[best][0])
