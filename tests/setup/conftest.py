"""An environment whose torchaudio fails to load, for the install check and the doctor."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ABI_ERROR = "/venv/torchaudio/lib/libtorchaudio.so: undefined symbol: torch_exception_get_what_without_backtrace"


@pytest.fixture
def broken_torchaudio(tmp_path):
    """An environment whose torchaudio fails to load as a mismatched build does (OSError at import)."""
    package = tmp_path / "shadow" / "torchaudio"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"raise OSError({ABI_ERROR!r})\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "shadow"), str(ROOT), env.get("PYTHONPATH", "")])
    return env
