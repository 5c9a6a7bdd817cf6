"""Write the FunASR Conformer parity fixture with FunASR's own classes (not run by CI).

Run in the FunASR reference virtualenv (funasr==1.4.16), from the repository root:

    /work/funasr-venv/bin/python scripts/funasr_fixtures_conformer.py [--demo DIR] [--out DIR]

It builds a tiny, randomly initialised FunASR Conformer (funasr.models.conformer.model.Conformer)
and writes it as a FunASR model directory (config.yaml, model.pt in FunASR's checkpoint form
{"state_dict": ...}, am.mvn, tokens.json, configuration.json) with three demo wavs. It then
records FunASR's outputs on each wav, one utterance at a time: the features (WavFrontend with
the CMVN), the encoder output, the CTC log-probs, the attention decoder's log-probs for a fixed
prefix, and the text FunASR's AutoModel decodes (CTC greedy: generate(batch_size>1); attention
beam search: decoding_ctc_weight 0; and AutoModel's default joint CTC/attention beam search).
tests/models/test_funasr_parity.py checks the engine against these files without FunASR.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
import yaml

WAVS = ("test_f4_00000", "test_m4_00001", "test_m4_00008")  # English, Chinese, mixed
SEED = 2026
PREFIX_LEN = 4


def token_list(demo: Path) -> list[str]:
    """FunASR's layout: <blank> <s> </s>, the units, <unk> last (FunASR's CharTokenizer lists)."""
    units: list[str] = []
    for line in (demo / "test.jsonl").read_text(encoding="utf-8").splitlines()[:40]:
        for word in json.loads(line)["target"].split():
            for unit in ([word] if word.isascii() else list(word)):
                if unit not in units:
                    units.append(unit)
    return ["<blank>", "<s>", "</s>", *units, "<unk>"]


def config(num_mels: int = 80) -> dict:
    return {
        "model": "Conformer",
        "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "length_normalized_loss": False},
        "encoder": "ConformerEncoder",
        "encoder_conf": {"output_size": 64, "attention_heads": 4, "linear_units": 128, "num_blocks": 2,
                         "dropout_rate": 0.1, "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.0,
                         "input_layer": "conv2d", "normalize_before": True, "macaron_style": True,
                         "rel_pos_type": "latest", "pos_enc_layer_type": "rel_pos",
                         "selfattention_layer_type": "rel_selfattn", "activation_type": "swish",
                         "use_cnn_module": True, "cnn_module_kernel": 15},
        "decoder": "TransformerDecoder",
        "decoder_conf": {"attention_heads": 4, "linear_units": 128, "num_blocks": 2, "dropout_rate": 0.1,
                         "positional_dropout_rate": 0.1, "self_attention_dropout_rate": 0.0,
                         "src_attention_dropout_rate": 0.0},
        "ctc_conf": {"dropout_rate": 0.0},
        "frontend": "WavFrontend",
        "frontend_conf": {"fs": 16000, "window": "hamming", "n_mels": num_mels, "frame_length": 25,
                          "frame_shift": 10, "lfr_m": 1, "lfr_n": 1, "dither": 0.0, "cmvn_file": "am.mvn"},
        "specaug": None,
        "normalize": None,
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>", "token_list": "tokens.json"},
    }


def write_am_mvn(path: Path, means: torch.Tensor, stds: torch.Tensor) -> None:
    """Kaldi nnet text, as FunASR's model directories ship it (AddShift -mean, Rescale 1/std)."""
    def vec(v):
        return "[ " + " ".join(f"{x:.8g}" for x in v.tolist()) + " ]"
    dim = means.numel()
    path.write_text(f"<Nnet>\n<Splice> {dim} {dim}\n[ 0 ]\n<AddShift> {dim} {dim}\n<LearnRateCoef> 0 {vec(-means)}\n"
                    f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 {vec(1.0 / stds)}\n</Nnet>\n", encoding="utf-8")


def features(frontend, wav: Path):
    from funasr.utils.load_utils import extract_fbank, load_audio_text_image_video
    audio = load_audio_text_image_video(str(wav), fs=frontend.fs)
    return extract_fbank([audio], data_type="sound", frontend=frontend)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("/work/main/data/demo"))
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/funasr/conformer"))
    args = parser.parse_args(argv)

    from funasr import AutoModel
    from funasr.frontends.wav_frontend import WavFrontend
    from funasr.models.conformer.model import Conformer

    torch.manual_seed(SEED)
    out = args.out
    if out.exists():
        shutil.rmtree(out)
    model_dir, wav_dir = out / "model", out / "wav"
    model_dir.mkdir(parents=True)
    wav_dir.mkdir()
    wavs = []
    for key in WAVS:
        source = next((args.demo / "test" / "wav").glob(f"{key}.wav"))
        shutil.copyfile(source, wav_dir / source.name)
        wavs.append(wav_dir / source.name)

    conf = config()
    tokens = token_list(args.demo)
    (model_dir / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    # am.mvn: statistics of the three wavs' fbank, computed by FunASR's own frontend.
    plain = WavFrontend(**{k: v for k, v in conf["frontend_conf"].items() if k != "cmvn_file"})
    frames = torch.cat([features(plain, wav)[0][0] for wav in wavs])
    write_am_mvn(model_dir / "am.mvn", frames.mean(0).double(), frames.std(0).double().clamp(min=1e-3))
    (model_dir / "config.yaml").write_text(yaml.safe_dump(conf, sort_keys=False, allow_unicode=True), encoding="utf-8")
    (model_dir / "configuration.json").write_text(json.dumps({
        "framework": "pytorch", "task": "auto-speech-recognition",
        "model": {"type": "funasr"},
        "file_path_metas": {"init_param": "model.pt", "config": "config.yaml",
                            "tokenizer_conf": {"token_list": "tokens.json"},
                            "frontend_conf": {"cmvn_file": "am.mvn"}}}, indent=2) + "\n", encoding="utf-8")

    frontend = WavFrontend(**{**conf["frontend_conf"], "cmvn_file": str(model_dir / "am.mvn")})
    model = Conformer(specaug=None, normalize=None, encoder=conf["encoder"], encoder_conf=conf["encoder_conf"],
                      decoder=conf["decoder"], decoder_conf=conf["decoder_conf"], ctc_conf=conf["ctc_conf"],
                      input_size=frontend.output_size(), vocab_size=len(tokens), **conf["model_conf"])
    # Non-trivial BatchNorm statistics, so a test notices if they are not carried over.
    for name, buffer in model.named_buffers():
        if name.endswith("running_mean"):
            buffer.copy_(torch.randn_like(buffer) * 0.1)
        elif name.endswith("running_var"):
            buffer.copy_(torch.rand_like(buffer) + 0.5)
    model.eval()
    torch.save({"state_dict": model.state_dict(), "optimizer": None, "epoch": 0}, model_dir / "model.pt")

    records = {}
    with torch.no_grad():
        for wav in wavs:
            speech, lengths = features(frontend, wav)
            encoder_out, encoder_out_lens = model.encode(speech, lengths)
            ctc_logprobs = model.ctc.log_softmax(encoder_out)
            greedy = torch.unique_consecutive(ctc_logprobs[0].argmax(-1))
            prefix = torch.tensor([[model.sos, *range(3, 3 + PREFIX_LEN - 1)]])
            decoder_out, _ = model.decoder(encoder_out, encoder_out_lens, prefix, torch.tensor([prefix.size(1)]))
            records[wav.stem] = {
                "feats": speech[0].clone(), "encoder_out": encoder_out[0].clone(),
                "ctc_logprobs": ctc_logprobs[0].clone(), "prefix": prefix[0].clone(),
                "decoder_logprobs": torch.log_softmax(decoder_out[0], dim=-1).clone(),
                "ctc_greedy_ids": greedy[greedy != 0].clone(),
            }
    torch.save(records, out / "outputs.pt")

    auto = AutoModel(model=str(model_dir), device="cpu", disable_update=True, disable_pbar=True, log_level="ERROR")
    texts = {}
    inputs = [str(w) for w in wavs]
    for name, kwargs in (("ctc_greedy", {"batch_size": 2}),
                         ("attention", {"decoding_ctc_weight": 0.0}),
                         ("joint", {})):
        # One utterance per call: FunASR's convolution module lets padding leak into real frames,
        # so a padded batch gives other outputs than the utterance alone. batch_size > 1 selects
        # FunASR's CTC greedy path even for one input.
        results = [auto.generate(input=path, **kwargs)[0] for path in inputs]
        auto.model.beam_search = None  # rebuilt with the next call's weights
        for wav, result in zip(wavs, results):
            texts.setdefault(wav.stem, {})[name] = {"text": result["text"], "token": result.get("token")}
    (out / "texts.json").write_text(json.dumps(texts, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(texts, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
