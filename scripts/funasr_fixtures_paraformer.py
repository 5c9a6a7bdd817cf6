"""Build the Paraformer parity fixture with FunASR's own classes (run with FunASR 1.4.16 installed).

    /work/funasr-venv/bin/python scripts/funasr_fixtures_paraformer.py [--demo DIR] [--out DIR]

Writes ``tests/fixtures/funasr/paraformer/``: a tiny, randomly initialised FunASR Paraformer
model directory (config.yaml in FunASR's layout with ``model: Paraformer``, WavFrontend with LFR
7/6 and CMVN as paraformer-zh uses, tokens.json, am.mvn, model.pt, configuration.json), three
demo wavs, and ``expected.pt``: what FunASR computes on them, batched (features after the
frontend, encoder output, predictor alphas and token counts, acoustic embeddings, decoder
log-probs, token ids, text), the losses of one forward pass on their transcripts, and the text
FunASR's ``AutoModel`` decodes from the directory. The engine's tests (tests/models/
test_paraformer_parity.py) rebuild the model with the engine's code and compare.

Not run by CI (CI has no FunASR); rerun it when the fixture must change, and commit the output.

How the random model is made to say something: every parameter is drawn at random (LayerNorm
gains around 1, so a swapped parameter name would change the outputs), and the predictor's
output bias is set so that the CIF fires every few encoder frames (a count of about one token
per 4 frames at the LFR rate, 240 ms) instead of about every other frame (sigmoid(0) = 0.5),
which gives a handful of tokens per utterance and exercises the tail threshold.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
KEYS = ("test_f4_00000", "test_m4_00002", "test_m4_00008")  # English, Chinese, mixed
SEED = 1234

CONFIG = {
    "model": "Paraformer",
    "model_conf": {"ctc_weight": 0.0, "lsm_weight": 0.1, "length_normalized_loss": True, "predictor_weight": 1.0,
                   "predictor_bias": 1, "sampling_ratio": 0.75},
    "encoder": "SANMEncoder",
    "encoder_conf": {"output_size": 32, "attention_heads": 4, "linear_units": 48, "num_blocks": 3, "dropout_rate": 0.1,
                     "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.1, "input_layer": "pe",
                     "pos_enc_class": "SinusoidalPositionEncoder", "normalize_before": True, "kernel_size": 11,
                     "sanm_shfit": 0, "selfattention_layer_type": "sanm"},
    "decoder": "ParaformerSANMDecoder",
    "decoder_conf": {"attention_heads": 4, "linear_units": 48, "num_blocks": 3, "dropout_rate": 0.1,
                     "positional_dropout_rate": 0.1, "self_attention_dropout_rate": 0.1,
                     "src_attention_dropout_rate": 0.1, "att_layer_num": 2, "kernel_size": 11, "sanm_shfit": 0},
    "predictor": "CifPredictorV2",
    "predictor_conf": {"idim": 32, "threshold": 1.0, "l_order": 1, "r_order": 1, "tail_threshold": 0.45},
    "frontend": "WavFrontend",
    "frontend_conf": {"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25, "frame_shift": 10,
                      "lfr_m": 7, "lfr_n": 6, "dither": 0.0},
    "specaug": "SpecAugLFR",
    "specaug_conf": {"apply_freq_mask": True, "freq_mask_width_range": [0, 30], "lfr_rate": 6, "num_freq_mask": 1,
                     "apply_time_mask": True, "time_mask_width_range": [0, 12], "num_time_mask": 1},
    "tokenizer": "CharTokenizer",
    "tokenizer_conf": {"unk_symbol": "<unk>"},
    "input_size": 560,
    "ctc_conf": {"dropout_rate": 0.0, "ctc_type": "builtin", "reduce": True, "ignore_nan_grad": True},
}
CONFIGURATION = {
    "framework": "pytorch", "task": "auto-speech-recognition", "model": {"type": "funasr"},
    "pipeline": {"type": "funasr-pipeline"},
    "file_path_metas": {"init_param": "model.pt", "config": "config.yaml", "tokenizer_conf": {"token_list": "tokens.json"},
                        "frontend_conf": {"cmvn_file": "am.mvn"}},
}
PREDICTOR_BIAS = -1.1  # sigmoid(-1.1) ~ 0.25: one firing about every 4 frames


def read_entries(demo: Path) -> list[dict]:
    entries = {}
    for line in (demo / "test.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        entries[entry["key"]] = entry
    return [entries[key] for key in KEYS]


def token_list(demo: Path) -> list[str]:
    """Chinese characters and English words of the demo training text (FunASR's char units)."""
    seen: dict[str, None] = {}
    for line in (demo / "train.jsonl").read_text(encoding="utf-8").splitlines()[:300]:
        for word in json.loads(line)["target"].split():
            units = [word] if word.isascii() else list(word)
            for unit in units:
                seen.setdefault(unit, None)
    return ["<blank>", "<s>", "</s>", "<unk>", *seen]


def write_am_mvn(path: Path, feats: torch.Tensor) -> None:
    """Kaldi nnet text with <AddShift> = -mean and <Rescale> = 1/std, as FunASR's am.mvn."""
    mean, std = feats.mean(0), feats.std(0).clamp(min=1e-3)
    dim = feats.size(1)
    fmt = lambda v: " ".join(f"{x:.6f}" for x in v.tolist())  # noqa: E731
    path.write_text(
        f"<Nnet>\n<Splice> {dim} {dim}\n[ 0 ]\n<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {fmt(-mean)} ]\n"
        f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {fmt(1.0 / std)} ]\n</Nnet>\n", encoding="utf-8")


def randomize(model: torch.nn.Module) -> None:
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if "norm" in name and name.endswith("weight"):
                param.copy_(1.0 + 0.2 * noise)
            elif name.endswith("bias") or "norm" in name:
                param.copy_(0.1 * noise)
            else:
                fan_in = param[0].numel() if param.dim() > 1 else param.numel()
                param.copy_(noise / fan_in ** 0.5)
        model.predictor.cif_output.bias.fill_(PREDICTOR_BIAS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, default=Path("/work/main/data/demo"))
    parser.add_argument("--out", type=Path, default=REPO / "tests/fixtures/funasr/paraformer")
    args = parser.parse_args()

    import funasr
    from funasr import AutoModel
    from funasr.frontends.wav_frontend import WavFrontend
    from funasr.models.paraformer.model import Paraformer
    from funasr.tokenizer.char_tokenizer import CharTokenizer
    from funasr.utils.load_utils import extract_fbank, load_audio_text_image_video

    assert funasr.__version__ == "1.4.16", funasr.__version__
    torch.manual_seed(SEED)
    out = args.out
    if out.exists():
        shutil.rmtree(out)
    (out / "wav").mkdir(parents=True)

    entries = read_entries(args.demo)
    wavs = []
    for entry in entries:
        target = out / "wav" / Path(entry["source"]).name
        shutil.copyfile(args.demo / entry["source"], target)
        wavs.append(target)
    tokens = token_list(args.demo)
    (out / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    (out / "config.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False, allow_unicode=True), encoding="utf-8")
    (out / "configuration.json").write_text(json.dumps(CONFIGURATION, indent=2) + "\n", encoding="utf-8")

    # CMVN from the LFR features of the three wavs (FunASR's frontend without CMVN).
    audio = [load_audio_text_image_video(str(w), fs=16000) for w in wavs]
    plain = WavFrontend(**CONFIG["frontend_conf"])
    feats, lens = extract_fbank(audio, frontend=plain)
    write_am_mvn(out / "am.mvn", torch.cat([f[:n] for f, n in zip(feats, lens)]))

    frontend = WavFrontend(cmvn_file=str(out / "am.mvn"), **CONFIG["frontend_conf"])
    model_kwargs = {k: CONFIG[k] for k in ("encoder", "encoder_conf", "decoder", "decoder_conf", "predictor",
                                           "predictor_conf", "ctc_conf")}
    model = Paraformer(**model_kwargs, **CONFIG["model_conf"], input_size=CONFIG["input_size"], vocab_size=len(tokens))
    randomize(model)
    model.eval()
    torch.save(model.state_dict(), out / "model.pt")

    tokenizer = CharTokenizer(token_list=tokens, unk_symbol="<unk>")
    speech, speech_lengths = extract_fbank(audio, frontend=frontend)
    with torch.no_grad():
        encoder_out, encoder_lens = model.encode(speech, speech_lengths)
        embeds, token_num, alphas, peaks = model.calc_predictor(encoder_out, encoder_lens)
        token_lens = token_num.round().long()
        log_probs, _ = model.cal_decoder_with_predictor(encoder_out, encoder_lens, embeds, token_lens)
        results, _ = model.inference(speech, speech_lengths, key=list(KEYS), tokenizer=tokenizer,
                                     frontend=frontend, data_type="fbank", device="cpu")
        # One loss evaluation on the transcripts, without the random glancing sampler.
        text_ids = [torch.tensor(tokenizer.encode(e["target"])) for e in entries]
        text = torch.nn.utils.rnn.pad_sequence(text_ids, batch_first=True, padding_value=-1)
        text_lengths = torch.tensor([len(t) for t in text_ids])
        model.sampling_ratio = 0.0
        _, stats, _ = model(speech, speech_lengths, text, text_lengths)
        model.sampling_ratio = CONFIG["model_conf"]["sampling_ratio"]
    token_ids = [log_probs[i, : token_lens[i]].argmax(-1).tolist() for i in range(len(KEYS))]

    auto = AutoModel(model=str(out), disable_update=True, device="cpu", disable_pbar=True, log_level="ERROR")
    auto_texts = [auto.generate(input=str(w))[0]["text"] for w in wavs]
    for key, batched, single in zip(KEYS, results, auto_texts):
        assert batched["text"] == single, (key, batched["text"], single)

    expected = {
        "keys": list(KEYS), "wavs": [f"wav/{w.name}" for w in wavs],
        "speech": speech, "speech_lengths": speech_lengths.long(),
        "encoder_out": encoder_out, "encoder_out_lens": encoder_lens.long(),
        "alphas": alphas, "token_num": token_num, "acoustic_embeds": embeds, "decoder_log_probs": log_probs,
        "token_ids": token_ids, "text": [r["text"] for r in results], "automodel_text": auto_texts,
        "targets": [e["target"] for e in entries], "text_ids": text, "text_lengths": text_lengths,
        "loss": {k: float(stats[k]) for k in ("loss", "loss_att", "loss_pre", "acc")},
        "funasr_version": funasr.__version__, "torch_version": str(torch.__version__),
    }
    torch.save(expected, out / "expected.pt")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({size / 1024:.0f} KiB): token counts {token_lens.tolist()}, texts {expected['text']}")


if __name__ == "__main__":
    main()
