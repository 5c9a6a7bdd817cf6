"""Fingerprints of what a model's numbers mean: its token list and its CMVN statistics.

A checkpoint records the sha256 of the tokenizer file (tokens.txt or bpe.model) and of am.mvn it
was trained with. A token list of the same size in another order, or other statistics, fit the
weights' shapes and still give garbage without an error; so decoding or resuming with files
whose fingerprint differs is an error naming both files, unless the change is asked for
explicitly (``asr-decode --allow-changed-assets``, ``++train_conf.allow_changed_assets=true``).
No torch here.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

ASSETS_KEY = "assets"
TOKENIZER_NAMES = ("bpe.model", "tokens.txt")
CMVN_NAME = "am.mvn"


class AssetMismatchError(ValueError):
    """A checkpoint's token list or CMVN differs from the files it is used with."""


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(tokenizer_file: str | os.PathLike, cmvn_file: str | os.PathLike | None) -> dict:
    """``{"tokens": {"file", "sha256"}, "cmvn": {"file", "sha256"} | None}`` for a checkpoint."""
    tokens = {"file": Path(tokenizer_file).name, "sha256": file_sha256(tokenizer_file)}
    cmvn = {"file": Path(cmvn_file).name, "sha256": file_sha256(cmvn_file)} if cmvn_file else None
    return {"tokens": tokens, "cmvn": cmvn}


def check_assets(recorded: dict | None, current: dict, checkpoint: str | os.PathLike,
                 files: dict[str, str | os.PathLike | None], flag: str) -> list[str]:
    """Raise AssetMismatchError when ``current`` differs from what ``checkpoint`` recorded.

    ``files`` names the files in use ({"tokens": path, "cmvn": path}); ``flag`` is how to accept
    the change. A checkpoint saved before fingerprints existed is not checked (returns a note)."""
    if not isinstance(recorded, dict):
        return [f"{checkpoint} records no token-list/CMVN fingerprint (an older checkpoint): not checked"]
    problems = []
    for what, label in (("tokens", "token list"), ("cmvn", "CMVN")):
        before, now = recorded.get(what), current.get(what)
        before_hash = before.get("sha256") if isinstance(before, dict) else None
        now_hash = now.get("sha256") if isinstance(now, dict) else None
        if before_hash != now_hash:
            used = files.get(what) or "none"
            problems.append(f"the {label} {used} (sha256 {str(now_hash)[:12]}) is not the one {checkpoint} was "
                            f"trained with ({before.get('file') if isinstance(before, dict) else 'none'}, "
                            f"sha256 {str(before_hash)[:12]})")
    if problems:
        raise AssetMismatchError("; ".join(problems) + f"; {flag} if the change is intended")
    return []
