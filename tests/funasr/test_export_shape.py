"""The export stays what FunASR 1.4.16 accepted.

tests/fixtures/funasr/engine_export/model was written by the engine (asr-average --export-only, from
a run with random weights) and checked with FunASR by scripts/funasr_check_export.py, which
recorded in funasr_accepted.json the files, config.yaml, configuration.json and state-dict keys
FunASR's AutoModel loaded, and the texts it decoded. Exporting again, from that directory and
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
    model, frontend, tokenizer, _ = load_asr(EXPORT)
    for key, texts in accepted["texts"].items():
        feats = frontend(load_audio(WAVS / f"{key}.wav"), training=False)
        with torch.no_grad():
            ids = decode_batch(model, feats.unsqueeze(0), torch.tensor([feats.size(0)]), mode, beam_size=10)[0]
        text = tokenizer.decode(ids)
        assert text == texts[f"engine_{mode}"], key
        # FunASR writes no space between a Chinese character and a Latin word (docs/funasr.md)
        assert text.replace(" ", "") == texts[f"funasr_{mode}"].replace(" ", ""), key
