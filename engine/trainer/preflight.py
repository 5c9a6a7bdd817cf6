"""Checks of the paths a run needs, made before anything is written (no torch here).

The config check (engine/config.py) knows keys and values; this knows the filesystem: every
data list exists, is readable and has a line, the output_dir can be a directory we write into,
and the checkpoints named by resume_from / init_param exist. A failure is a ConfigError naming
the key, where its value came from and the path, so asr-train exits 2 with nothing written.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.config import LIST_KEYS, ConfigError, ConfigIssue, format_issues
from engine.provenance import Provenance
from engine.trainer.init_spec import init_specs

# How far into a list to look for its first non-blank line (an empty-looking list of blank lines).
FIRST_LINE_BYTES = 1 << 20


def _list_problem(path: Path) -> str | None:
    if not path.exists():
        return f"{path}: no such data list"
    if not path.is_file():
        return f"{path}: not a file"
    try:
        with open(path, "rb") as handle:
            head = handle.read(FIRST_LINE_BYTES)
    except OSError as error:
        return f"{path}: cannot read ({error.strerror})"
    if not head.strip():
        return f"{path}: the list is empty"
    return None


def _writable_dir_problem(path: Path) -> str | None:
    if path.exists():
        if not path.is_dir():
            return f"{path}: exists and is not a directory"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"{path}: directory is not writable"
        return None
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{path}: cannot be made ({parent} is not a directory)"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{path}: cannot be made ({parent} is not writable)"
    return None


def path_issues(config: dict) -> list[ConfigIssue]:
    issues = []
    for key in LIST_KEYS[:2]:  # the test lists are decoded later, not read by training
        for index, name in enumerate(config.get(key) or []):
            problem = _list_problem(Path(name))
            if problem and key == "valid_data_set_list" and problem.endswith("is empty"):
                problem += " (leave valid_data_set_list out to train without validation)"
            if problem:
                issues.append(ConfigIssue(key, problem))
    problem = _writable_dir_problem(Path(config["output_dir"]))
    if problem:
        issues.append(ConfigIssue("output_dir", problem))
    train_conf = config.get("train_conf") or {}
    if train_conf.get("resume_from") and not Path(train_conf["resume_from"]).is_file():
        issues.append(ConfigIssue("train_conf.resume_from", f"{train_conf['resume_from']}: no such checkpoint file"))
    init_param = train_conf.get("init_param")
    if init_param:
        try:  # entries may carry a key filter: PATH:SRC:DST:EXCLUDE
            specs = init_specs(init_param)
        except ValueError as error:
            issues.append(ConfigIssue("train_conf.init_param", str(error).removeprefix("train_conf.init_param: ")))
            specs = []
        for spec in specs:
            path = Path(spec.path.strip())
            if not path.is_file():
                issues.append(ConfigIssue("train_conf.init_param", f"{path}: no such checkpoint file"))
    return issues


def check_paths(config: dict, provenance: Provenance | None = None) -> None:
    """Raise ConfigError (one line, every problem) when a path the run needs is not usable."""
    issues = path_issues(config)
    if issues:
        raise ConfigError(format_issues(issues, provenance or Provenance()), issues)
