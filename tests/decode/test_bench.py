"""bench/decode.py prints an RTF for every mode (run on the trained toy so it stays quick)."""

import runpy
import sys
from pathlib import Path

import pytest

from engine.decode.modes import supported_modes

MODES = supported_modes("conformer")

BENCH = Path(__file__).resolve().parents[2] / "bench" / "decode.py"


def test_bench_prints_rtf_for_every_mode(toy_run, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["decode.py", "--model", str(toy_run["run_dir"]), "--list",
                                      str(toy_run["train_list"]), "--limit", "6", "--beam", "3", "--threads", "1"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(BENCH), run_name="__main__")
    assert exit_info.value.code == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["model"].startswith("trained")
    for mode in MODES:
        assert float(lines[f"rtf_{mode}"]) > 0
        assert float(lines[f"cer_{mode}"]) <= 0.2
