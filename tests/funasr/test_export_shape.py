"""The export stays what FunASR 1.4.16 accepted.

tests/fixtures/funasr/engine_export/model was written by the engine (asr-average --export-only, from
a run with random weights) and checked with FunASR by scripts/funasr_check_export.py, which
recorded in funasr_accepted.json the files, config.yaml, configuration.json and state-dict keys
FunASR's AutoModel loaded, the texts it decoded and asr-decode's texts (``engine_*``: as FunASR's,
exactly; ``engine_spaced_*``: ``--text-style engine``). Exporting again, from that directory and
from a run directory holding the same model, must give the same layout, and the engine must still
decode FunASR's texts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from engine.data.audio import load_audio
from engine.decode.cli import main as asr_decode
from engine.decode.model_dir import export_model_dir, load_asr, load_state_dict
from engine.decode.search import decode_batch
from engine.funasr.model_dir import read_model_dir
from engine.utils.fileio import atomic_torch_save

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "funasr"
EXPORT = FIXTURES / "engine_export" / "model"
WAVS = FIXTURES / "conformer" / "wav"


@pytest.fixture(scope="module")
def accepted():
    record = json.loads((FIXTURES / "engine_export" / "funasr_accepted.json").read_text(encoding="utf-8"))
    assert record["funasr_version"] == "1.4.16" and record["all_same"]
    return record


def assert_funasr_shaped(out: Path, accepted: dict) -> None:
    assert sorted(p.name for p in out.iterdir()) == accepted["files"]
    assert yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8")) == accepted["config"]
    assert json.loads((out / "configuration.json").read_text(encoding="utf-8")) == accepted["configuration"]
    state = torch.load(out / "model.pt", map_location="cpu", weights_only=True)["state_dict"]
    assert {key: list(value.shape) for key, value in state.items()} == accepted["state_dict"]


def test_reexport_of_the_accepted_directory_is_identical(tmp_path, accepted):
    out = export_model_dir(EXPORT, tmp_path / "again")
    assert_funasr_shaped(out, accepted)
    for name in ("tokens.json", "am.mvn"):
        assert (out / name).read_bytes() == (EXPORT / name).read_bytes()


def test_export_from_a_run_directory_is_funasr_shaped(tmp_path, accepted):
    """A run directory (engine names, engine config, tokens.txt) holding the accepted model."""
    model, _, tokenizer, _ = load_asr(EXPORT)
    engine = read_model_dir(EXPORT).engine
    run = tmp_path / "run"
    run.mkdir()
    config = {**engine, "model_conf": {k: v for k, v in engine["model_conf"].items() if k not in ("sos", "eos")},
              "frontend_conf": {**engine["frontend_conf"], "dither": 1.0}}
    (run / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    (run / "tokens.txt").write_text("".join(t + "\n" for t in tokenizer.token_list), encoding="utf-8")
    (run / "am.mvn").write_bytes((EXPORT / "am.mvn").read_bytes())
    atomic_torch_save({"model": model.state_dict(), "step": 0}, run / "model.pt")
    out = export_model_dir(run, tmp_path / "export")
    assert_funasr_shaped(out, accepted)
    exported, _ = load_state_dict(out / "model.pt")
    original, _ = load_state_dict(EXPORT / "model.pt")
    assert all(torch.equal(exported[key], original[key]) for key in original)


@pytest.mark.parametrize("mode", ["ctc_greedy", "attention"])
def test_engine_decodes_what_funasr_decoded(accepted, mode):
    """The export decodes to FunASR's text exactly; asked for the engine's style, to the run's text."""
    model, frontend, funasr_style, config = load_asr(EXPORT)
    engine_style = load_asr(EXPORT, text_style="engine")[2]
    assert config["text_style"] == "funasr"
    for key, texts in accepted["texts"].items():
        feats = frontend(load_audio(WAVS / f"{key}.wav"), training=False)
        with torch.no_grad():
            ids = decode_batch(model, feats.unsqueeze(0), torch.tensor([feats.size(0)]), mode, beam_size=10)[0]
        assert funasr_style.decode(ids) == texts[f"funasr_{mode}"] == texts[f"engine_{mode}"], key
        assert engine_style.decode(ids) == texts[f"engine_spaced_{mode}"], key


def test_asr_decode_writes_funasr_text_for_the_export_and_scores_both_styles_alike(accepted, tmp_path):
    """asr-decode on the export writes what FunASR's AutoModel wrote; --text-style engine the run's
    spaced text. CER and WER are the same for both (CER ignores spaces, WER splits CJK off words)."""
    listing = tmp_path / "test.jsonl"
    listing.write_text("".join(json.dumps({"key": key, "source": str(WAVS / f"{key}.wav"),
                                           "target": texts["engine_spaced_attention"]}, ensure_ascii=False) + "\n"
                               for key, texts in accepted["texts"].items()), encoding="utf-8")
    summaries = {}
    for style in ("auto", "engine"):
        out = tmp_path / style
        assert asr_decode(["--model", str(EXPORT), "--input", str(listing), "--output", str(out), "--mode",
                           "ctc_greedy", "--text-style", style, "--no-progress", "--num-threads", "1"]) == 0
        lines = dict(line.split(" ", 1) for line in (out / "text").read_text(encoding="utf-8").splitlines())
        recorded = "funasr" if style == "auto" else "engine_spaced"
        assert lines == {key: texts[f"{recorded}_ctc_greedy"] for key, texts in accepted["texts"].items()}
        summaries[style] = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (summaries["auto"]["text_style"], summaries["engine"]["text_style"]) == ("funasr", "engine")
    for rate in ("cer", "wer"):
        assert summaries["auto"][rate] == summaries["engine"][rate] > 0
