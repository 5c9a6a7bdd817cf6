"""CTC searches over the CTC head's log-probabilities: greedy and prefix beam search.

The prefix beam search is written here because the library alternative,
torchaudio.models.decoder.ctc_decoder, needs the flashlight-text package (not a dependency of
this project) and attention rescoring needs every n-best prefix with its exact CTC score.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch

NEG_INF = float("-inf")


def ctc_greedy_search(log_probs: torch.Tensor, lengths: torch.Tensor, blank_id: int = 0) -> list[list[int]]:
    """(B,T,V) log-probs -> best token per frame, repeats merged, blanks removed."""
    best = log_probs.argmax(dim=-1)  # (B,T)
    previous = torch.nn.functional.pad(best[:, :-1], (1, 0), value=blank_id)
    valid = torch.arange(best.size(1), device=best.device).unsqueeze(0) < lengths.unsqueeze(1)
    keep = (best != blank_id) & (best != previous) & valid
    return [row[mask].tolist() for row, mask in zip(best.cpu(), keep.cpu())]


def log_add(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    high, low = (a, b) if a > b else (b, a)
    return high + math.log1p(math.exp(low - high))


def ctc_prefix_beam_search(log_probs: torch.Tensor, beam_size: int, blank_id: int = 0) -> list[tuple[tuple[int, ...], float]]:
    """(T,V) log-probs of one utterance -> n-best ``(prefix, log P(prefix))``, best first.

    Each prefix keeps two scores: paths ending in blank and paths ending in its last token, so
    that "a a" (separated by blank) and "a" (repeated frames) stay distinct. Per frame only the
    ``beam_size`` most likely tokens are expanded (as WeNet does).
    """
    log_probs = log_probs.float().cpu()
    top_values, top_indices = log_probs.topk(min(beam_size, log_probs.size(-1)), dim=-1)
    top_values, top_indices = top_values.tolist(), top_indices.tolist()
    # prefix -> (log P ending in blank, log P ending in non-blank)
    beams: list[tuple[tuple[int, ...], tuple[float, float]]] = [((), (0.0, NEG_INF))]
    for frame_values, frame_tokens in zip(top_values, top_indices):
        next_beams: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [NEG_INF, NEG_INF])
        for prob, token in zip(frame_values, frame_tokens):
            for prefix, (p_blank, p_non_blank) in beams:
                if token == blank_id:
                    entry = next_beams[prefix]
                    entry[0] = log_add(entry[0], log_add(p_blank, p_non_blank) + prob)
                elif prefix and token == prefix[-1]:
                    # Repeating the last token: stays the same prefix unless a blank separated them.
                    same = next_beams[prefix]
                    same[1] = log_add(same[1], p_non_blank + prob)
                    extended = next_beams[prefix + (token,)]
                    extended[1] = log_add(extended[1], p_blank + prob)
                else:
                    extended = next_beams[prefix + (token,)]
                    extended[1] = log_add(extended[1], log_add(p_blank, p_non_blank) + prob)
        # A repeat after a prefix with no blank-ending path leaves an impossible (-inf) entry: drop it.
        scored = [(log_add(*scores), prefix, scores) for prefix, scores in next_beams.items()]
        ranked = sorted((item for item in scored if item[0] > NEG_INF), key=lambda item: item[0], reverse=True)
        beams = [(prefix, (scores[0], scores[1])) for _, prefix, scores in ranked[:beam_size]]
    return [(prefix, log_add(*scores)) for prefix, scores in beams]
