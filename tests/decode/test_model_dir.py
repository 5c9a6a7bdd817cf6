"""load_asr on run directories, checkpoints and model directories; export round trip; clear errors."""

import json
import shutil

import pytest
import torch
import yaml

from engine.decode import AutoModel
from engine.decode.model_dir import ModelLoadError, export_model_dir, load_asr, resolve_checkpoint
from engine.utils.fileio import atomic_torch_save


@pytest.fixture
def run_copy(toy_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "tokens.txt", "am.mvn", "model.pt"):
        shutil.copy(toy_run["run_dir"] / name, run / name)
    return run


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_load_run_dir_and_checkpoint(toy_run, run_copy):
    model, frontend, tokenizer, config = load_asr(run_copy)
    assert not model.training
    assert same_weights(model, toy_run["model"])
    assert frontend.output_dim == 40 and frontend.cmvn is not None
    assert tokenizer.vocab_size == 12 and model.sos == tokenizer.sos_eos_id
    assert config["checkpoint"] == str(run_copy / "model.pt")
    model_ep, _, _, _ = load_asr(run_copy / "model.pt")
    assert same_weights(model_ep, model)


def test_run_dir_prefers_newest_average(run_copy):
    state = torch.load(run_copy / "model.pt", weights_only=True)["model"]
    older = {k: v.clone() for k, v in state.items()}
    newer = {k: (v * 0.5 if v.is_floating_point() else v) for k, v in state.items()}
    atomic_torch_save({"model": older}, run_copy / "model.pt.avg3")
    atomic_torch_save({"model": newer}, run_copy / "model.pt.avg5")
    import os
    os.utime(run_copy / "model.pt.avg3", (1, 1))
    assert resolve_checkpoint(run_copy) == run_copy / "model.pt.avg5"
    model, _, _, config = load_asr(run_copy)
    assert config["checkpoint"].endswith("model.pt.avg5")
    assert torch.equal(model.ctc.ctc_lo.weight, newer["ctc.ctc_lo.weight"])


def test_export_round_trip(run_copy, tmp_path, toy_run):
    out = export_model_dir(run_copy, tmp_path / "exported")
    assert sorted(p.name for p in out.iterdir()) == ["am.mvn", "config.yaml", "configuration.json", "model.pt",
                                                      "tokens.json"]
    configuration = json.loads((out / "configuration.json").read_text())
    assert configuration["framework"] == "pytorch" and configuration["task"] == "auto-speech-recognition"
    assert configuration["file_path_metas"] == {"init_param": "model.pt", "config": "config.yaml",
                                                "tokenizer_conf": {"token_list": "tokens.json"},
                                                "frontend_conf": {"cmvn_file": "am.mvn"}}
    config = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    assert (config["model"], config["encoder"], config["decoder"]) == ("Conformer", "ConformerEncoder",
                                                                       "TransformerDecoder")
    assert config["frontend"] == "WavFrontend" and config["frontend_conf"]["cmvn_file"] == "am.mvn"
    assert json.loads((out / "tokens.json").read_text(encoding="utf-8")) == toy_run["tokenizer"].token_list
    saved = torch.load(out / "model.pt", weights_only=True)
    assert set(saved) == {"state_dict", "input_dim", "vocab_size", "source", "assets"}  # FunASR's form, no optimiser state
    assert "decoder.embed.0.weight" in saved["state_dict"] and "encoder.embed.out.0.weight" in saved["state_dict"]
    model, _, _, _ = load_asr(out)
    assert same_weights(model, toy_run["model"])
    # The exported directory decodes exactly as the run does.
    wavs = sorted((toy_run["run_dir"] / "data" / "wav").glob("train00*.wav"))[:3]
    from_run = AutoModel(model=str(run_copy), mode="attention_rescoring", num_threads=1).generate(input=[str(w) for w in wavs])
    from_dir = AutoModel(model=str(out), mode="attention_rescoring", num_threads=1).generate(input=[str(w) for w in wavs])
    assert from_run == from_dir
    assert [r["key"] for r in from_dir] == [w.stem for w in wavs]


def test_export_of_a_chosen_checkpoint(run_copy, tmp_path):
    state = torch.load(run_copy / "model.pt", weights_only=True)["model"]
    atomic_torch_save({"model": {k: v * 2 if v.is_floating_point() else v for k, v in state.items()}},
                      run_copy / "model.pt.ep2")
    out = export_model_dir(run_copy, tmp_path / "ep2", checkpoint=run_copy / "model.pt.ep2")
    saved = torch.load(out / "model.pt", weights_only=True)
    assert torch.equal(saved["state_dict"]["ctc.ctc_lo.weight"], state["ctc.ctc_lo.weight"] * 2)
    assert saved["source"].endswith("model.pt.ep2")


def test_auto_model_inputs(toy_run):
    model = AutoModel(model=str(toy_run["run_dir"]), mode="ctc_greedy", num_threads=1)
    lines = [json.loads(line) for line in toy_run["train_list"].read_text(encoding="utf-8").splitlines()]
    one = model.generate(input=lines[0]["source"])
    assert one == [{"key": lines[0]["key"], "text": lines[0]["target"]}]
    listed = model.generate(input=str(toy_run["train_list"]))
    assert [r["key"] for r in listed] == [line["key"] for line in lines]
    assert sum(r["text"] == line["target"] for r, line in zip(listed, lines)) >= len(lines) - 1


def test_missing_checkpoint_is_named(tmp_path, run_copy):
    with pytest.raises(ModelLoadError, match=str(tmp_path / "nowhere")):
        load_asr(tmp_path / "nowhere")
    (run_copy / "model.pt").unlink()
    with pytest.raises(ModelLoadError, match=rf"{run_copy}: no checkpoint"):
        load_asr(run_copy)


def test_torn_checkpoint_is_named(run_copy):
    (run_copy / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match="model.pt is unreadable") as error:
        load_asr(run_copy)
    assert "weights_only" not in str(error.value)  # torch's advice is wrong for a torn file


def test_vocabulary_mismatch_names_both_sizes(run_copy):
    tokens = run_copy / "tokens.txt"
    tokens.write_text(tokens.read_text(encoding="utf-8") + "九\n十\n", encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"model.pt has 12 output tokens, .*tokens.txt has 14"):
        load_asr(run_copy)


def test_feature_dimension_mismatch_names_both(run_copy, tmp_path):
    config = yaml.safe_load((run_copy / "config.yaml").read_text(encoding="utf-8"))
    config["frontend_conf"]["n_mels"] = 80
    config["cmvn"] = None
    (run_copy / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"model.pt expects 39..42, the frontend .* gives 80"):
        load_asr(run_copy)


def test_feature_dimension_mismatch_in_model_dir_is_exact(run_copy, tmp_path):
    out = export_model_dir(run_copy, tmp_path / "exported")
    config = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    config["frontend_conf"]["n_mels"] = 41  # same width after subsampling: only the recorded input_dim can tell
    config["frontend_conf"].pop("cmvn_file")
    (out / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"model.pt expects 40, the frontend .* gives 41"):
        load_asr(out)
