"""Every decoding mode on the trained demo run (the trainer's ``demo_run`` fixture), unseen-voice test split."""

import json

import pytest

from engine.decode.cli import main
from engine.decode.modes import supported_modes

MODES = supported_modes("conformer")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_summaries(demo_run, demo_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_decode")
    summaries = {}
    for mode in MODES:
        assert main(["--model", str(demo_run), "--input", str(demo_corpus / "test.jsonl"), "--mode", mode,
                     "--beam", "10", "--output", str(out / mode), "--no-progress"]) == 0
        summaries[mode] = json.loads((out / mode / "summary.json").read_text(encoding="utf-8"))
    return summaries


def test_every_mode_decodes_the_demo_test_split(demo_summaries, demo_corpus):
    utterances = sum(1 for line in open(demo_corpus / "test.jsonl", encoding="utf-8") if line.strip())
    for mode, summary in demo_summaries.items():
        assert summary["utterances"] == summary["scored_utterances"] == utterances, mode
        assert summary["checkpoint"].split("/")[-1].startswith("model.pt.avg"), "a run directory decodes its average"
        assert summary["cer"] <= 0.25, (mode, summary["cer"])


def test_attention_rescoring_no_worse_than_ctc_greedy(demo_summaries):
    assert demo_summaries["attention_rescoring"]["cer"] <= demo_summaries["ctc_greedy"]["cer"]
    assert demo_summaries["ctc_prefix_beam"]["cer"] <= demo_summaries["ctc_greedy"]["cer"] + 0.005
