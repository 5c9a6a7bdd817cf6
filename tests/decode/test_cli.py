"""asr-decode end to end on the trained toy run: outputs, summary fields, inputs, reported problems."""

import json
import os
import subprocess
import sys

import pytest

from engine.decode.cli import main


def read_summary(out):
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def test_decode_jsonl_writes_text_scores_and_summary(toy_run, tmp_path, capsys):
    out = tmp_path / "decode"
    rc = main(["--model", str(toy_run["run_dir"]), "--input", str(toy_run["train_list"]), "--mode", "ctc_greedy",
               "--output", str(out), "--no-progress", "--num-threads", "1", "--batch-size", "5"])
    assert rc == 0
    summary = read_summary(out)
    lines = toy_run["train_list"].read_text(encoding="utf-8").splitlines()
    assert summary["utterances"] == summary["scored_utterances"] == len(lines)
    for field in ("cer", "wer", "substitutions", "deletions", "insertions", "rtf", "mode", "normalization",
                  "cer_units", "wer_units", "model", "checkpoint"):
        assert field in summary
    assert summary["cer"] <= 0.05 and summary["rtf"] > 0
    assert summary["mode"] == "ctc_greedy"
    assert summary["checkpoint"].endswith("model.pt")
    text_lines = (out / "text").read_text(encoding="utf-8").splitlines()
    assert [line.split(" ", 1)[0] for line in text_lines] == [json.loads(line)["key"] for line in lines]
    rows = [json.loads(line) for line in (out / "utt_scores.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(lines)
    assert sum(r["char"]["errors"] for r in rows) == summary["char_errors"]["errors"]
    assert "CER" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["ctc_prefix_beam", "attention", "attention_rescoring"])
def test_every_mode_through_the_cli(toy_run, tmp_path, mode):
    out = tmp_path / mode
    assert main(["--model", str(toy_run["run_dir"]), "--input", str(toy_run["train_list"]), "--mode", mode,
                 "--beam", "3", "--output", str(out), "--no-progress", "--num-threads", "1"]) == 0
    summary = read_summary(out)
    assert summary["mode"] == mode and summary["beam"] == 3
    assert summary["cer"] <= 0.2


def test_wav_scp_with_references_and_single_wav(toy_run, tmp_path):
    entries = [json.loads(line) for line in toy_run["train_list"].read_text(encoding="utf-8").splitlines()][:4]
    scp = tmp_path / "wav.scp"
    scp.write_text("".join(f"{e['key']} {e['source']}\n" for e in entries), encoding="utf-8")
    text = tmp_path / "text"
    text.write_text("".join(f"{e['key']} {e['target']}\n" for e in entries[:3]), encoding="utf-8")
    out = tmp_path / "scp"
    assert main(["--model", str(toy_run["run_dir"]), "--input", str(scp), "--text", str(text), "--mode",
                 "ctc_greedy", "--output", str(out), "--no-progress", "--num-threads", "1"]) == 0
    summary = read_summary(out)
    assert summary["utterances"] == 4 and summary["scored_utterances"] == 3
    assert summary["input_report"]["notes"] == {f"no reference in {text}": 1}

    single = tmp_path / "single"
    assert main(["--model", str(toy_run["run_dir"]), "--input", entries[0]["source"], "--mode", "ctc_greedy",
                 "--output", str(single), "--no-progress", "--num-threads", "1"]) == 0
    summary = read_summary(single)
    assert summary["utterances"] == 1 and summary["cer"] is None
    assert (single / "text").read_text(encoding="utf-8").startswith(entries[0]["key"] + " ")


def test_bad_entries_are_counted_not_silently_dropped(toy_run, tmp_path, capsys):
    lines = toy_run["train_list"].read_text(encoding="utf-8").splitlines()[:3]
    broken = json.loads(lines[0])
    broken.update(key="ghost", source=str(tmp_path / "missing.wav"))
    listing = tmp_path / "list.jsonl"
    listing.write_text("\n".join(lines + [json.dumps(broken), "{not json"]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["--model", str(toy_run["run_dir"]), "--input", str(listing), "--mode", "ctc_greedy",
                 "--output", str(out), "--no-progress", "--num-threads", "1"]) == 0
    summary = read_summary(out)
    assert summary["utterances"] == 3
    assert summary["input_report"]["dropped"] == {"missing_audio": 1, "malformed_json": 1}
    err = capsys.readouterr().err
    assert "ghost" in err and "missing_audio" in err


def test_normalisation_is_recorded(toy_run, tmp_path):
    out = tmp_path / "norm"
    assert main(["--model", str(toy_run["run_dir"]), "--input", str(toy_run["train_list"]), "--mode", "ctc_greedy",
                 "--normalize", "none", "--output", str(out), "--no-progress", "--num-threads", "1"]) == 0
    assert read_summary(out)["normalization"] == {"lowercase": False, "remove_punctuation": False, "nfkc": False}


def test_missing_model_is_a_clear_error_with_exit_status(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.run([sys.executable, "-m", "engine.decode.cli", "--model", str(tmp_path / "no_run"),
                           "--input", str(tmp_path / "x.jsonl"), "--output", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2  # a user error (HELPERS standard): exit 2, one line
    assert f"{tmp_path / 'no_run'}: no such checkpoint" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()
