"""The install check that scripts/setup.sh runs before anything uses torch, and the demo
corpus's worker pool when torchaudio cannot load (a torch/torchaudio ABI mismatch)."""

import subprocess
import sys

from engine.utils.install_check import check_install, pinned_versions
from tests.setup.conftest import ABI_ERROR


def test_the_installed_pair_passes_and_is_the_pinned_one():
    check = check_install()
    assert check.ok, check.lines()
    assert check.details == ["fbank (98, 80)", "resample 8000 -> 16000 samples"]
    pins = pinned_versions()
    assert set(pins) == {"torch", "torchaudio"}
    # the exact pins of pyproject.toml are what is installed
    for name, version in pins.items():
        assert check.versions[name] == version, (name, check.versions, pins)


def test_a_broken_torchaudio_fails_the_check_with_both_versions_and_the_fix(broken_torchaudio):
    done = subprocess.run([sys.executable, "-m", "engine.utils.install_check"], env=broken_torchaudio,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[0] == f"install check failed: importing torchaudio: OSError: {ABI_ERROR}"
    assert "installed: torch " in lines[1] and "torchaudio " in lines[1] and "asr-tui pins: torch==" in lines[1]
    assert "pip install --force-reinstall" in lines[2]
    assert "Traceback" not in done.stderr


def test_demo_workers_report_the_import_error_not_eof(broken_torchaudio, tmp_path):
    done = subprocess.run([sys.executable, "-m", "engine.data.cli", "demo", "--out", str(tmp_path / "demo"),
                           "--num-train", "20"], env=broken_torchaudio, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert "EOFError" not in done.stderr and "Traceback" not in done.stderr
    assert f"importing torchaudio failed: OSError: {ABI_ERROR}" in done.stderr.splitlines()[-1]
