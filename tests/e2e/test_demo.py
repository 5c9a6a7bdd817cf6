"""The demo preset trains on the demo corpus and its averaged model decodes unseen voices to CER <= 0.15.

How long that takes is a speed goal (15 minutes on 2 cores): bench/train.py measures it
(demo_time_to_cer_s); this test prints the training time but does not assert on it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.events import read_events, validate_event
from tests.fixtures.runs import REPO

pytestmark = pytest.mark.slow

CER_GOAL = 0.15


def test_demo_preset_trains_and_decodes_unseen_voices(demo_run, demo_corpus, tmp_path):
    events = read_events(demo_run / "events.jsonl")
    assert all(validate_event(e) == [] for e in events)
    assert events[-1]["event"] == "end" and events[-1]["status"] == "finished"
    average = next(e for e in events if e["event"] == "average")
    averaged = demo_run / average["path"]
    assert averaged.is_file()
    print(f"demo training took {float((demo_run / 'train_seconds.txt').read_text()):.0f} s")

    out = tmp_path / "decode"
    result = subprocess.run(
        [sys.executable, "-m", "engine.decode.cli", "--model", str(averaged), "--input",
         str(demo_corpus / "test.jsonl"), "--mode", "ctc_greedy", "--output", str(out), "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["utterances"] == sum(1 for _ in open(demo_corpus / "test.jsonl", encoding="utf-8"))
    assert summary["cer"] <= CER_GOAL, summary
