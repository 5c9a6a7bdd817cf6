"""The four decoding modes: exactness on small cases, agreement between modes, and a trained toy."""

import itertools
import math

import pytest
import torch

from engine.decode.attention_search import attention_beam_search, attention_rescoring
from engine.decode.ctc_search import ctc_greedy_search, ctc_prefix_beam_search
from engine.decode.scoring import ErrorCounts, error_counts
from engine.decode.modes import supported_modes
from engine.decode.search import decode_batch
from engine.models import build_model

MODES = supported_modes("conformer")


def peaky_log_probs(batch, frames, vocab, seed):
    gen = torch.Generator().manual_seed(seed)
    return (3.0 * torch.randn(batch, frames, vocab, generator=gen)).log_softmax(-1)


def collapse(path, blank=0):
    out = []
    previous = None
    for token in path:
        if token != blank and token != previous:
            out.append(token)
        previous = token
    return tuple(out)


def test_greedy_equals_prefix_beam_of_width_one():
    log_probs = peaky_log_probs(6, 30, 7, seed=0)
    lengths = torch.tensor([30, 28, 20, 11, 5, 1])
    greedy = ctc_greedy_search(log_probs, lengths)
    for i, length in enumerate(lengths.tolist()):
        best, _ = ctc_prefix_beam_search(log_probs[i, :length], beam_size=1)[0]
        assert list(best) == greedy[i]


def test_prefix_beam_search_scores_are_exact_prefix_probabilities():
    """Without pruning, every prefix's score is the log-sum over all CTC paths that collapse to it."""
    frames, vocab = 5, 3
    log_probs = peaky_log_probs(1, frames, vocab, seed=1)[0]
    exact: dict[tuple, float] = {}
    for path in itertools.product(range(vocab), repeat=frames):
        p = sum(log_probs[t, s].item() for t, s in enumerate(path))
        prefix = collapse(path)
        exact[prefix] = math.log(math.exp(exact[prefix]) + math.exp(p)) if prefix in exact else p
    nbest = ctc_prefix_beam_search(log_probs, beam_size=1000)
    assert len(nbest) == len(exact)
    for prefix, score in nbest:
        assert score == pytest.approx(exact[prefix], abs=1e-4)
    assert nbest[0][0] == max(exact, key=exact.get)


def test_repeated_tokens_need_a_blank_between_them():
    # frames: a, blank, a -> "a a"; frames: a, a -> "a"
    probs = torch.tensor([[0.01, 0.98, 0.01], [0.98, 0.01, 0.01], [0.01, 0.98, 0.01]]).log()
    assert ctc_prefix_beam_search(probs, 3)[0][0] == (1, 1)
    assert ctc_greedy_search(probs.unsqueeze(0), torch.tensor([3])) == [[1, 1]]
    probs = torch.tensor([[0.01, 0.98, 0.01], [0.01, 0.98, 0.01]]).log()
    assert ctc_prefix_beam_search(probs, 3)[0][0] == (1,)


@pytest.fixture(scope="module")
def random_model():
    torch.manual_seed(0)
    model = build_model("conformer", 16, 9, {}, dict(output_size=32, attention_heads=2, linear_units=64, num_blocks=1,
                                                     cnn_module_kernel=3, input_layer="linear"),
                        dict(attention_heads=2, linear_units=64, num_blocks=2), sos_eos_id=2)
    return model.eval()


def full_recompute_greedy(model, encoder_out, length, max_len):
    """Attention greedy search re-running the whole decoder each step (no cache)."""
    ys = [model.sos]
    memory = encoder_out[:length].unsqueeze(0)
    mask = torch.ones(1, 1, length, dtype=torch.bool)
    for _ in range(max_len):
        logits = model.decoder(memory, mask, torch.tensor([ys]), torch.tensor([len(ys)]))
        token = int(logits[0, -1].argmax())
        if token == model.eos:
            break
        ys.append(token)
    return ys[1:]


def test_attention_beam_one_equals_greedy_without_cache(random_model):
    speech = torch.randn(3, 12, 16)
    lengths = torch.tensor([12, 9, 6])
    with torch.no_grad():
        encoder_out, encoder_lens = random_model.encode(speech, lengths)
        hyps = attention_beam_search(random_model, encoder_out, encoder_lens, beam_size=1)
        for i in range(3):
            assert hyps[i] == full_recompute_greedy(random_model, encoder_out[i], int(encoder_lens[i]),
                                                    int(encoder_out.size(1)))


@pytest.mark.parametrize("mode", MODES)
def test_batched_decoding_equals_one_by_one(random_model, mode):
    speech = torch.randn(3, 14, 16)
    lengths = torch.tensor([14, 10, 7])
    together = decode_batch(random_model, speech, lengths, mode, beam_size=3)
    for i in range(3):
        alone = decode_batch(random_model, speech[i:i + 1, :lengths[i]], lengths[i:i + 1], mode, beam_size=3)
        assert alone[0] == together[i]


def test_attention_beam_search_never_scores_below_its_greedy(random_model):
    """The beam-4 result has a total log-probability at least that of beam 1 (the beam holds it)."""
    speech = torch.randn(2, 14, 16)
    lengths = torch.tensor([14, 11])
    with torch.no_grad():
        encoder_out, encoder_lens = random_model.encode(speech, lengths)
        for beam in (1, 4):
            hyps = attention_beam_search(random_model, encoder_out, encoder_lens, beam)
            scores = [sequence_log_prob(random_model, encoder_out[i], int(encoder_lens[i]), h) for i, h in enumerate(hyps)]
            if beam == 1:
                greedy_scores = scores
        assert all(s >= g - 1e-4 for s, g in zip(scores, greedy_scores))


def sequence_log_prob(model, encoder_out, length, tokens):
    ys_in = torch.tensor([[model.sos] + tokens])
    logits = model.decoder(encoder_out[:length].unsqueeze(0), torch.ones(1, 1, length, dtype=torch.bool), ys_in,
                           torch.tensor([len(tokens) + 1]))
    targets = torch.tensor(tokens + [model.eos])
    return logits[0].log_softmax(-1).gather(1, targets.unsqueeze(1)).sum().item()


def test_rescoring_picks_best_weighted_sum(random_model):
    speech = torch.randn(1, 10, 16)
    with torch.no_grad():
        encoder_out, encoder_lens = random_model.encode(speech, torch.tensor([10]))
        length = int(encoder_lens[0])
        nbest = [((3, 4), -1.0), ((5,), -2.0), ((), -3.0), ((6, 6, 7), -0.5)]
        att = [sequence_log_prob(random_model, encoder_out[0], length, list(p)) for p, _ in nbest]
        for weight in (0.0, 0.5, 100.0):
            expected = max(range(4), key=lambda i: att[i] + weight * nbest[i][1])
            chosen = attention_rescoring(random_model, encoder_out[0], length, nbest, weight)
            assert tuple(chosen) == nbest[expected][0]


def test_bad_mode_and_beam_are_errors(random_model):
    speech, lengths = torch.randn(1, 5, 16), torch.tensor([5])
    with pytest.raises(ValueError, match="decoding mode 'beam'"):
        decode_batch(random_model, speech, lengths, "beam")
    with pytest.raises(ValueError, match="beam size"):
        decode_batch(random_model, speech, lengths, "attention", beam_size=0)


def corpus_cer(toy, mode, batch, beam=4):
    tokenizer = toy["tokenizer"]
    speech, speech_lengths, text, _ = batch
    hyps = decode_batch(toy["model"], speech, speech_lengths, mode, beam_size=beam)
    total = ErrorCounts()
    for row, hyp in zip(text.tolist(), hyps):
        total = total + error_counts(tokenizer.decode([i for i in row if i >= 0]), tokenizer.decode(hyp))
    return total.rate


def test_every_mode_decodes_the_trained_toy(toy_run):
    rates = {mode: corpus_cer(toy_run, mode, toy_run["train_batch"]) for mode in MODES}
    assert rates["ctc_greedy"] <= 0.05
    assert rates["ctc_prefix_beam"] <= rates["ctc_greedy"] + 1e-9
    assert rates["attention"] <= 0.2
    assert rates["attention_rescoring"] <= rates["ctc_greedy"] + 1e-9


def test_ctc_generalises_to_unseen_tone_sequences(toy_run):
    assert corpus_cer(toy_run, "ctc_greedy", toy_run["test_batch"]) <= 0.1
