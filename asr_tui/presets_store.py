"""Experiment presets: the shipped ones in ``presets/`` and the user's own folder.

A preset is an experiment config in YAML (``engine.config`` schema, usually partial: the
defaults fill the rest). Loading validates it, so a bad file is a :class:`PresetError` naming
the file and key instead of a half-filled form; saving writes the form's whole config atomically.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import ConfigError, dump_config, flatten, read_yaml, validate_config
from engine.utils.fileio import atomic_write_text

PRESET_SUFFIXES = (".yaml", ".yml")
MODEL_KEYS = ("model", "model_conf", "encoder_conf", "decoder_conf", "predictor_conf")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


MISSING: Any = _Missing()


def short_value(value, width: int = 40) -> str:
    """A diff cell: the value's repr (``(absent)`` for a missing key), cut to ``width``."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 1] + "…"


class PresetError(ValueError):
    """A preset that cannot be read, parsed or validated; the message names the file and key."""


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path
    source: str  # "shipped" or "user"


def user_presets_dir() -> Path:
    """``$XDG_CONFIG_HOME/asr-tui/presets`` (``~/.config/asr-tui/presets`` by default)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "asr-tui" / "presets"


def shipped_presets_dirs() -> list[Path]:
    """``presets/`` next to the package (a source checkout or editable install), then installed data."""
    candidates = [
        Path(__file__).resolve().parent.parent / "presets",
        Path(sys.prefix) / "share" / "asr-tui" / "presets",
    ]
    found: list[Path] = []
    for path in candidates:
        if path.is_dir() and path.resolve() not in found:
            found.append(path.resolve())
    return found


def _presets_in(directory: Path, source: str) -> list[Preset]:
    try:
        files = sorted(p for p in directory.iterdir() if p.suffix in PRESET_SUFFIXES and p.is_file())
    except OSError:
        return []
    return [Preset(p.stem, p, source) for p in files]


def list_presets(user_dir: Path | None = None) -> list[Preset]:
    """Every shipped preset, then every user preset, each group sorted by name."""
    presets: list[Preset] = []
    for directory in shipped_presets_dirs():
        presets.extend(_presets_in(directory, "shipped"))
    presets.extend(_presets_in(user_dir or user_presets_dir(), "user"))
    return presets


def load_preset(path: str | os.PathLike) -> dict:
    """The full config a preset describes (defaults filled in); :class:`PresetError` if it is bad.

    A preset may leave the training lists empty (a model-only preset): the form fills them, and
    the launch checks them.
    """
    path = Path(path)
    try:
        user = read_yaml(path)
        if user.get("train_data_set_list"):
            return validate_config(user, str(path))
        # validate_config insists on a training list; a preset need not name one.
        config = validate_config({**user, "train_data_set_list": ["-"]}, str(path))
        config["train_data_set_list"] = []
        return config
    except ConfigError as exc:
        raise PresetError(str(exc)) from None
    except OSError as exc:
        raise PresetError(f"{path}: cannot read ({exc.strerror or exc})") from None


def model_section(config: dict) -> dict:
    """The model part of a config (what the Setup screen's "model preset" copies)."""
    return {key: config[key] for key in MODEL_KEYS if key in config}


def preset_path_for(name: str, user_dir: Path | None = None) -> Path:
    """Where a user preset called ``name`` is saved; :class:`PresetError` for an unsafe name."""
    stem = name[:-5] if name.endswith(".yaml") else name
    if not _NAME_RE.match(stem):
        raise PresetError(f"preset name {name!r}: use letters, digits, '.', '_' and '-' only")
    return (user_dir or user_presets_dir()) / f"{stem}.yaml"


def save_preset(config: dict, path: str | os.PathLike) -> Path:
    """Write ``config`` as YAML (``yaml.safe_dump``) atomically; returns the path."""
    path = Path(path)
    atomic_write_text(path, dump_config(config))
    return path


def config_diff(base: dict, current: dict) -> list[tuple[str, Any, Any]]:
    """``(dotted_key, base_value, current_value)`` for every leaf that differs, sorted by key.

    A key missing on one side shows as :data:`MISSING` there.
    """
    flat_base, flat_current = flatten(base), flatten(current)
    rows = []
    for key in sorted(set(flat_base) | set(flat_current)):
        old, new = flat_base.get(key, MISSING), flat_current.get(key, MISSING)
        if old != new:
            rows.append((key, old, new))
    return rows
