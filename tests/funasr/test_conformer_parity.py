"""The engine builds FunASR's Conformer from its model directory and computes what FunASR computed.

Fixture: tests/fixtures/funasr/conformer, written by scripts/funasr_fixtures_conformer.py with
FunASR 1.4.16's own classes (a tiny random model, three demo wavs, FunASR's recorded outputs).
"""

import json
from pathlib import Path

import pytest
import torch

from engine.data.audio import load_audio
from engine.decode.model_dir import load_asr, load_state_dict
from engine.decode.search import decode_batch
from engine.funasr.config_map import rename_keys
from engine.models import build_model

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "funasr" / "conformer"
TOL = 1e-4


@pytest.fixture(scope="module")
def loaded():
    return load_asr(FIXTURE / "model")


@pytest.fixture(scope="module")
def recorded():
    return torch.load(FIXTURE / "outputs.pt", weights_only=True)


def test_every_funasr_key_loads(loaded):
    model, _, _, config = loaded
    state, _ = load_state_dict(FIXTURE / "model" / "model.pt")
    names = rename_keys(state, (("encoder.embed.out.0.", "encoder.embed.out."), ("decoder.embed.0.", "decoder.embed.")),
                        to_engine=True)
    assert set(names.values()) == set(model.state_dict())  # no missing, no unexpected key
    for key, value in state.items():
        assert torch.equal(model.state_dict()[names[key]], value), key
    assert config["model"] == "conformer" and (model.sos, model.eos) == (1, 2)  # FunASR's defaults


@pytest.mark.parametrize("key", ["test_f4_00000", "test_m4_00001", "test_m4_00008"])
def test_outputs_match_funasr(loaded, recorded, key):
    model, frontend, _, _ = loaded
    expected = recorded[key]
    feats = frontend(load_audio(FIXTURE / "wav" / f"{key}.wav"), training=False)
    torch.testing.assert_close(feats, expected["feats"], atol=TOL, rtol=TOL)
    with torch.no_grad():
        speech, lengths = expected["feats"].unsqueeze(0), torch.tensor([expected["feats"].size(0)])
        encoder_out, encoder_lens = model.encode(speech, lengths)
        torch.testing.assert_close(encoder_out[0], expected["encoder_out"], atol=TOL, rtol=TOL)
        torch.testing.assert_close(model.ctc.log_softmax(encoder_out)[0], expected["ctc_logprobs"], atol=TOL, rtol=TOL)
        prefix = expected["prefix"].unsqueeze(0)
        mask = torch.ones(1, 1, encoder_out.size(1), dtype=torch.bool)
        logits = model.decoder(encoder_out, mask, prefix, torch.tensor([prefix.size(1)]))
        torch.testing.assert_close(torch.log_softmax(logits[0], -1), expected["decoder_logprobs"], atol=TOL, rtol=TOL)
        ids = decode_batch(model, speech, lengths, "ctc_greedy")[0]
    assert ids == expected["ctc_greedy_ids"].tolist()


def funasr_spacing(text: str) -> str:
    """FunASR's sentence_postprocess writes no space between a Chinese character and a Latin word;
    the engine does (as the demo's references do). Everything else must be identical."""
    return text.replace(" ", "")


@pytest.mark.parametrize("mode,recorded_as", [("ctc_greedy", "ctc_greedy"), ("attention", "attention")])
def test_decoded_text_matches_funasr_auto_model(loaded, mode, recorded_as):
    model, frontend, tokenizer, _ = loaded
    texts = json.loads((FIXTURE / "texts.json").read_text(encoding="utf-8"))
    for key, funasr in texts.items():
        feats = frontend(load_audio(FIXTURE / "wav" / f"{key}.wav"), training=False)
        with torch.no_grad():
            ids = decode_batch(model, feats.unsqueeze(0), torch.tensor([feats.size(0)]), mode, beam_size=10)[0]
        assert funasr_spacing(tokenizer.decode(ids)) == funasr_spacing(funasr[recorded_as]["text"]), key
        if funasr[recorded_as]["token"]:
            assert [tokenizer.token_list[i] for i in ids] == funasr[recorded_as]["token"], key


def test_engine_model_built_from_mapped_config_has_funasr_param_count(loaded):
    from engine.funasr.model_dir import read_model_dir
    from engine.funasr.param_count import count_params

    model, frontend, tokenizer, config = loaded
    md = read_model_dir(FIXTURE / "model")
    rebuilt = build_model(config["model"], frontend.output_dim, tokenizer.vocab_size, config["model_conf"],
                          config["encoder_conf"], config["decoder_conf"])
    total = sum(p.numel() for p in rebuilt.parameters())
    assert total == sum(v.numel() for k, v in model.named_parameters())
    assert count_params(md.engine, md.input_dim, md.vocab_size) == total
