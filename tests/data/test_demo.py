import json
import time

import soundfile

from engine.data.demo import STAMP, TEST_VARIANTS, TRAIN_VARIANTS, make_demo_corpus, plan_corpus
from engine.data.demo_text import script_segments


def test_small_corpus_layout_voices_and_audio(small_corpus):
    for split in ("train", "valid", "test"):
        rows = [json.loads(line) for line in (small_corpus / f"{split}.jsonl").read_text().splitlines()]
        assert rows and (small_corpus / split / "wav.scp").is_file() and (small_corpus / split / "text").is_file()
        variants = {row["key"].split("_")[1] for row in rows}
        assert variants <= set(TEST_VARIANTS if split == "test" else TRAIN_VARIANTS)
        info = soundfile.info(str(small_corpus / rows[0]["source"]))
        assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        durations = [row["source_len"] / 100 for row in rows]
        assert 0.8 < min(durations) and max(durations) < 7.0


def test_plan_is_deterministic_and_has_code_switching():
    plan = plan_corpus(300, seed=4)
    assert plan == plan_corpus(300, seed=4)
    assert plan != plan_corpus(300, seed=5)
    kinds = {item["kind"] for item in plan}
    assert kinds == {"zh", "en", "mixed"}
    mixed = next(item["text"] for item in plan if item["kind"] == "mixed")
    assert {language for language, _ in script_segments(mixed)} == {"zh", "en"}
    assert not set(TEST_VARIANTS) & set(TRAIN_VARIANTS)


def test_script_segments_split_mandarin_and_english():
    assert script_segments("所有只要处理 data 不管你是做 machine learning") == [
        ("zh", "所有只要处理"), ("en", "data"), ("zh", "不管你是做"), ("en", "machine learning")]


def test_rerun_is_instant_and_incomplete_corpus_is_rebuilt(tmp_path):
    make_demo_corpus(tmp_path, num_train=6, seed=1, progress=False)
    first = (tmp_path / "train.jsonl").read_text()
    wav = sorted((tmp_path / "train" / "wav").iterdir())[0]
    audio = wav.read_bytes()
    start = time.monotonic()
    make_demo_corpus(tmp_path, num_train=6, seed=1, progress=False)
    assert time.monotonic() - start < 0.5
    (tmp_path / STAMP).unlink()
    wav.unlink()
    make_demo_corpus(tmp_path, num_train=6, seed=1, progress=False)
    assert (tmp_path / "train.jsonl").read_text() == first
    assert wav.read_bytes() == audio  # espeak-ng through the library, sharded: same bytes


def test_asr_data_demo_command_reuses_a_complete_corpus(small_corpus, capsys):
    from engine.data.cli import main

    before = (small_corpus / STAMP).stat().st_mtime_ns
    assert main(["demo", "--out", str(small_corpus), "--num-train", "80", "--seed", "0"]) == 0
    assert "demo corpus ready" in capsys.readouterr().out
    assert (small_corpus / STAMP).stat().st_mtime_ns == before
