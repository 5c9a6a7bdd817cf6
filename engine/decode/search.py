"""One entry point for the decoding modes: WeNet's four for CTC/attention models, Paraformer's
one-pass search (engine/decode/modes.py says which a model supports): encode once, then search."""

from __future__ import annotations

import torch

from engine.decode.attention_search import attention_beam_search, attention_rescoring
from engine.decode.ctc_search import ctc_greedy_search, ctc_prefix_beam_search
from engine.decode.modes import MODES
from engine.decode.paraformer_search import paraformer_search


@torch.inference_mode()
def decode_batch(model, speech: torch.Tensor, speech_lengths: torch.Tensor, mode: str, beam_size: int = 10,
                 ctc_weight: float = 0.3, length_penalty: float = 0.0) -> list[list[int]]:
    """Token ids of the best hypothesis for each utterance of a padded feature batch.

    ``ctc_weight`` weighs the CTC score in attention_rescoring; ``length_penalty`` is added per
    token in the attention beam search.
    """
    if mode not in MODES:
        raise ValueError(f"decoding mode {mode!r} is not one of {', '.join(MODES)}")
    if beam_size < 1:
        raise ValueError(f"beam size must be at least 1, got {beam_size}")
    is_paraformer = hasattr(model, "predictor")
    if ((mode == "paraformer") != is_paraformer and not mode.startswith("ctc")) or (
            mode.startswith("ctc") and model.ctc is None):
        raise ValueError(f"decoding mode {mode!r} is not supported by this {type(model).__name__} model")
    encoder_out, encoder_lens = model.encode(speech, speech_lengths)
    if mode == "paraformer":
        return paraformer_search(model, encoder_out, encoder_lens)
    if mode == "attention":
        return attention_beam_search(model, encoder_out, encoder_lens, beam_size, length_penalty)
    log_probs = model.ctc.log_softmax(encoder_out)
    if mode == "ctc_greedy":
        return ctc_greedy_search(log_probs, encoder_lens, model.blank_id)
    results = []
    for index, length in enumerate(encoder_lens.tolist()):
        nbest = ctc_prefix_beam_search(log_probs[index, :length], beam_size, model.blank_id)
        if mode == "ctc_prefix_beam":
            results.append(list(nbest[0][0]))
        else:
            results.append(attention_rescoring(model, encoder_out[index], length, nbest, ctc_weight))
    return results
