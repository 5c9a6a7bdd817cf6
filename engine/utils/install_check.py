"""The install check: torch and torchaudio load together and compute what the engine needs.

torchaudio's compiled library is built against one torch ABI. A mismatched pair installs
cleanly and then fails on first import (``undefined symbol: ...``), and in a worker pool that
failure surfaces far from its cause. ``python -m engine.utils.install_check`` (run by
scripts/setup.sh before anything else uses torch) imports both, computes one Kaldi fbank and
one resample, and on failure prints the installed and the pinned versions and what to do.
Exit status 0 when the install works, 1 when it does not.
"""

from __future__ import annotations

import re
import sys
import traceback
from dataclasses import dataclass, field
from importlib import metadata

DISTRIBUTION = "asr-tui"
COMPILED = ("torch", "torchaudio")


def installed_version(name: str) -> str | None:
    """The installed distribution's version, read without importing it (works when import fails)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def pinned_versions() -> dict[str, str]:
    """{"torch": "2.14.1", ...}: the exact pins of the compiled pair in asr-tui's metadata."""
    pins = {}
    try:
        requirements = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return pins
    for requirement in requirements:
        match = re.match(r"^\s*(torch|torchaudio)\s*==\s*([\w.+]+)\s*(?:;.*)?$", requirement)
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


@dataclass
class InstallCheck:
    ok: bool
    versions: dict[str, str | None]
    pins: dict[str, str]
    error: str = ""            # "importing torchaudio: OSError: ..." when not ok
    details: list[str] = field(default_factory=list)

    def fix_hint(self) -> str:
        if self.pins:
            pair = " ".join(f"{name}=={self.pins[name]}" for name in COMPILED if name in self.pins)
            return (f"reinstall the pinned pair: {sys.executable} -m pip install --force-reinstall --no-deps {pair} "
                    "(or delete .venv and run scripts/setup.sh again)")
        return "install torch and torchaudio versions built for each other (see README, Set-up)"

    def lines(self) -> list[str]:
        versions = ", ".join(f"{name} {self.versions.get(name) or 'not installed'}" for name in COMPILED)
        if self.ok:
            return [f"install check passed: {versions}; " + "; ".join(self.details)]
        pins = ", ".join(f"{name}=={version}" for name, version in self.pins.items()) or "none found"
        return [f"install check failed: {self.error}",
                f"  installed: {versions}; asr-tui pins: {pins}",
                f"  to fix: {self.fix_hint()}"]


def check_install() -> InstallCheck:
    """Import torch and torchaudio, compute one fbank and one resample; never raises."""
    check = InstallCheck(ok=False, versions={name: installed_version(name) for name in COMPILED},
                         pins=pinned_versions())
    step = "importing torch"
    try:
        import torch

        step = "importing torchaudio"
        import torchaudio
        import torchaudio.compliance.kaldi

        step = "computing a Kaldi fbank"
        wave = torch.sin(torch.arange(16000, dtype=torch.float32) * 0.05).unsqueeze(0) * 8000.0
        feats = torchaudio.compliance.kaldi.fbank(wave, num_mel_bins=80, sample_frequency=16000.0, dither=0.0)
        if feats.shape != (98, 80) or not torch.isfinite(feats).all():
            raise RuntimeError(f"fbank of 1 s at 16 kHz gave {tuple(feats.shape)}, expected (98, 80) finite")
        step = "resampling 8 kHz to 16 kHz"
        resampled = torchaudio.functional.resample(wave[:, :8000], 8000, 16000)
        if resampled.shape[-1] != 16000:
            raise RuntimeError(f"resample gave {resampled.shape[-1]} samples, expected 16000")
    except BaseException as exc:  # an ABI mismatch raises OSError, others ImportError; report any
        check.error = f"{step}: {type(exc).__name__}: {exc}"
        check.details.append(traceback.format_exc())
        return check
    check.ok = True
    check.details = [f"fbank {tuple(feats.shape)}", f"resample 8000 -> {resampled.shape[-1]} samples"]
    return check


def main(argv: list[str] | None = None) -> int:
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    check = check_install()
    out = sys.stdout if check.ok else sys.stderr
    for line in check.lines():
        print(line, file=out)
    if debug and not check.ok:
        print(check.details[-1], file=sys.stderr)
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(main())
