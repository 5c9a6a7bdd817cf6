"""Experiment config: defaults, YAML load/save, ``++a.b=c`` overrides and validation.

One YAML file holds the whole experiment (see docs/contracts.md). Names follow FunASR where
FunASR has one and SpeeChain's ``optim_sches`` for optimisers; FunASR's single-optimiser form
(``optim``, ``optim_conf``, ``scheduler``, ``scheduler_conf``) is read as one OptimScheduler.

This module never imports torch: the console validates its forms with it.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from engine.funasr.config_map import FunASRConfigError
from engine.funasr.model_dir import expand_model_dir, looks_like_path, read_model_dir
from engine.data.speed import check_speed_factors
from engine.provenance import Provenance, key_lines
from engine.optim_sche.conf import (COMPILE_CHOICES, FUNASR_OPTIM_KEYS, WARMUP_FROM_CHOICES, OptimConfError,
                                    entry_kwargs, normalise_optim_conf)
from engine.optim_sche.precision import BF16_CHOICES
from engine.schema import check_section, type_names, type_ok
from engine.utils.fileio import atomic_write_text

DEFAULTS: dict[str, Any] = {
    "output_dir": "exp/run",
    "seed": 0,
    "train_data_set_list": [],
    "valid_data_set_list": [],
    "test_data_set_list": [],
    "frontend_conf": {
        "fs": 16000,
        "n_mels": 80,
        "frame_length": 25,
        "frame_shift": 10,
        "dither": 1.0,
        "window": "hamming",
        "lfr_m": 1,
        "lfr_n": 1,
    },
    "cmvn": "global",
    "specaug_conf": {},
    "tokenizer_conf": {"type": "char"},
    "model": "conformer",
    # Set when the experiment started from a FunASR model directory (``model: DIR``, engine.funasr).
    "model_dir": None,
    "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "length_normalized_loss": False},
    "encoder_conf": {},
    "decoder_conf": {},
    "predictor_conf": {},
    "dataset_conf": {
        "batch_type": "token",
        "batch_size": 20000,
        "num_workers": 2,
        "shuffle": True,
        "buffer_size": 1000,
        "min_source_length": 0,
        "max_source_length": 3000,
        "max_target_length": 200,
        "max_token_length": 3500,
        "pin_memory": True,
        "prefetch_factor": 2,
        "speed_perturb": None,
        "cache_mb": 0,
    },
    "train_conf": {
        "max_epoch": 50,
        "log_interval": 50,
        "resume": True,
        "resume_from": None,
        "validate_interval": 2000,
        "save_checkpoint_interval": 2000,
        "keep_nbest_models": 20,
        "avg_nbest_model": 10,
        "avg_keep_nbest_models_type": "acc",
        "accum_grad": 1,
        "grad_clip": 10.0,
        "grad_norm_type": 2.0,
        "use_fp16": False,
        "use_bf16": "auto",
        "init_param": None,
        "ft_factor": 1.0,
        "warmup_from": "zero",
        "find_unused_parameters": False,
        "deterministic": False,
        "allow_changed_assets": False,
        "patience": 0,
        "compile": "auto",
    },
    "optim_sches": {
        "main": {
            "type": "warmuplr",
            "conf": {
                "optim_type": "AdamW",
                "optim_conf": {"lr": 0.001},
                "optim_loss": "loss",
                "updated_modules": None,
                "step_per_update": 1,
                "warmup_steps": 25000,
            },
        }
    },
    "distributed": {
        "nnodes": 1,
        "nproc_per_node": 1,
        "node_rank": 0,
        "master_addr": "127.0.0.1",
        "master_port": 29500,
        "devices": None,
        "backend": "auto",
    },
}

# Sections whose keys are free (they map straight to a constructor's arguments, which checks them).
OPEN_SECTIONS = {"specaug_conf", "tokenizer_conf", "model_conf", "encoder_conf", "decoder_conf", "predictor_conf",
                 "optim_sches"}

# Keys whose default is null (or whose type the default does not show), with the types they take.
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "train_conf.init_param": (str, list, type(None)),
    "model_dir": (str, type(None)),
    "train_conf.resume_from": (str, type(None)),
    "train_conf.grad_clip": (float, int, type(None)),
    "dataset_conf.max_source_length": (int, type(None)),
    "dataset_conf.max_target_length": (int, type(None)),
    "dataset_conf.max_token_length": (int, type(None)),
    "distributed.devices": (str, int, list, type(None)),
    "cmvn": (str, type(None)),
    "dataset_conf.speed_perturb": (list, type(None)),
    "train_conf.compile": (str, bool),
    "train_conf.use_bf16": (str, bool),
}

CHOICES: dict[str, tuple[str, ...]] = {
    "cmvn": ("global", "none"),
    "model": ("conformer", "transformer", "paraformer"),
    "dataset_conf.batch_type": ("example", "length", "token"),
    "train_conf.avg_keep_nbest_models_type": ("acc", "loss"),
    "train_conf.warmup_from": WARMUP_FROM_CHOICES,
    "train_conf.compile": COMPILE_CHOICES,
    "train_conf.use_bf16": BF16_CHOICES,
    "distributed.backend": ("auto", "nccl", "gloo"),
    "frontend_conf.window": ("hamming", "hanning", "povey", "rectangular", "blackman"),
}

# Numbers that must be at least this value.
MINIMUM: dict[str, float] = {
    "seed": 0,
    "dataset_conf.min_source_length": 0,
    "dataset_conf.max_source_length": 1,
    "dataset_conf.max_target_length": 1,
    "dataset_conf.max_token_length": 1,
    "dataset_conf.prefetch_factor": 1,
    "dataset_conf.cache_mb": 0,
    "frontend_conf.frame_length": 1,
    "frontend_conf.frame_shift": 1,
    "frontend_conf.dither": 0.0,
    "train_conf.max_epoch": 1,
    "train_conf.log_interval": 1,
    "train_conf.validate_interval": 1,
    "train_conf.save_checkpoint_interval": 1,
    "train_conf.keep_nbest_models": 1,
    "train_conf.avg_nbest_model": 0,
    "train_conf.accum_grad": 1,
    "train_conf.patience": 0,
    "dataset_conf.batch_size": 1,
    "dataset_conf.num_workers": 0,
    "dataset_conf.buffer_size": 1,
    "distributed.nnodes": 1,
    "distributed.nproc_per_node": 1,
    "distributed.node_rank": 0,
    "distributed.master_port": 1,
    "frontend_conf.fs": 1,
    "frontend_conf.n_mels": 1,
    "frontend_conf.lfr_m": 1,
    "frontend_conf.lfr_n": 1,
}

# Numbers that must be above zero.
POSITIVE = ("train_conf.ft_factor", "train_conf.grad_norm_type")

LIST_KEYS = ("train_data_set_list", "valid_data_set_list", "test_data_set_list")

# YAML 1.1 reads ``1e-3`` (no dot) as text; FunASR users type it on the command line as a number.
_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ConfigError(ValueError):
    """A config problem; the message names the file (and line) or the override, and the dotted key."""

    def __init__(self, message: str, issues: list | None = None) -> None:
        super().__init__(message)
        self.issues = list(issues or [])


@dataclass(frozen=True)
class ConfigIssue:
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


def deep_merge(base: dict, update: dict) -> dict:
    """A copy of ``base`` with ``update`` merged in, dicts merged key by key."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_override(text: str) -> tuple[list[str], Any]:
    """``++a.b=c`` (FunASR/Hydra) or ``a.b=c`` -> (["a", "b"], value parsed as YAML)."""
    body = text[2:] if text.startswith("++") else text
    if "=" not in body:
        raise ConfigError(f"override {text!r}: expected ++key.path=value")
    key, raw = body.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {exc}") from None
    if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value):
        value = float(value)
    return key.split("."), value


def apply_overrides(config: dict, overrides: Iterable[str]) -> dict:
    """A copy of ``config`` with each ``++a.b=c`` set; intermediate sections are created."""
    result = copy.deepcopy(config)
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return result


def _allowed_types(key: str, default: Any) -> tuple[type, ...]:
    if key in FIELD_TYPES:
        return FIELD_TYPES[key]
    if default is None:
        return (object,)
    if isinstance(default, bool):
        return (bool,)
    if isinstance(default, float):
        return (float, int)
    return (type(default),)


def _check_value(key: str, value: Any, default: Any, issues: list[ConfigIssue]) -> None:
    allowed = _allowed_types(key, default)
    if not type_ok(value, allowed):
        issues.append(ConfigIssue(key, f"must be {type_names(allowed)}, got {value!r}"))
        return
    if key in CHOICES and value is not None and value not in CHOICES[key]:
        choices = ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in CHOICES[key])
        issues.append(ConfigIssue(key, f"must be one of {choices}, got {value!r}"))
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key in MINIMUM and is_number and value < MINIMUM[key]:
        issues.append(ConfigIssue(key, f"must be at least {MINIMUM[key]}, got {value}"))
    if key in POSITIVE and is_number and value <= 0:
        issues.append(ConfigIssue(key, f"must be above 0, got {value}"))


def _check_optim_sches(sches: Any, train_conf: Any, issues: list[ConfigIssue]) -> None:
    if not isinstance(sches, dict) or not sches:
        issues.append(ConfigIssue("optim_sches", "must be a mapping of at least one named OptimScheduler"))
        return
    for name, entry in sches.items():
        try:
            _, kwargs = entry_kwargs(name, entry, train_conf if isinstance(train_conf, dict) else {})
        except OptimConfError as exc:
            key, _, message = str(exc).partition(": ")
            issues.append(ConfigIssue(key, message))
            continue
        step_per_update = kwargs.get("step_per_update", 1)
        if isinstance(step_per_update, bool) or not isinstance(step_per_update, int) or step_per_update < 1:
            issues.append(ConfigIssue(f"optim_sches.{name}.conf.step_per_update",
                                      f"must be an integer ≥ 1, got {step_per_update!r}"))


def check_config(config: dict) -> list[ConfigIssue]:
    """Every problem in an already-merged config, each with its dotted key (the console shows them by field)."""
    issues: list[ConfigIssue] = []
    for key, value in config.items():
        if key not in DEFAULTS:
            issues.append(ConfigIssue(key, "unknown key"))
            continue
        if key == "model" and looks_like_path(value):  # a FunASR model directory
            try:
                read_model_dir(value)
            except FunASRConfigError as exc:
                issues.append(ConfigIssue("model", str(exc)))
            continue
        default = DEFAULTS[key]
        if key == "optim_sches":
            _check_optim_sches(value, config.get("train_conf"), issues)
        elif isinstance(default, dict):
            if not isinstance(value, dict):
                issues.append(ConfigIssue(key, f"must be a mapping, got {value!r}"))
            elif key in OPEN_SECTIONS:
                issues.extend(ConfigIssue(dotted, problem) for dotted, problem in check_section(config, key))
            else:
                for sub, sub_value in value.items():
                    dotted = f"{key}.{sub}"
                    if sub not in default:
                        issues.append(ConfigIssue(dotted, "unknown key"))
                    else:
                        _check_value(dotted, sub_value, default[sub], issues)
        elif key in LIST_KEYS:
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                issues.append(ConfigIssue(key, f"must be a list of paths, got {value!r}"))
        else:
            _check_value(key, value, default, issues)
    speed = (config.get("dataset_conf") or {}).get("speed_perturb") if isinstance(config.get("dataset_conf"), dict) else None
    if isinstance(speed, list):
        try:
            check_speed_factors(speed)
        except ValueError as exc:
            issues.append(ConfigIssue("dataset_conf.speed_perturb", str(exc).partition(": ")[2]))
    train_conf = config.get("train_conf", {})
    if isinstance(train_conf, dict) and train_conf.get("use_fp16") is True and train_conf.get("use_bf16") is True:
        issues.append(ConfigIssue("train_conf.use_bf16", "use_fp16 and use_bf16 are exclusive"))
    dist = config.get("distributed", {})
    if isinstance(dist, dict):
        nnodes, node_rank = dist.get("nnodes", 1), dist.get("node_rank", 0)
        if isinstance(nnodes, int) and isinstance(node_rank, int) and node_rank >= nnodes:
            issues.append(ConfigIssue("distributed.node_rank", f"must be below nnodes ({nnodes}), got {node_rank}"))
        port = dist.get("master_port", 29500)
        if isinstance(port, int) and port > 65535:
            issues.append(ConfigIssue("distributed.master_port", f"must be at most 65535, got {port}"))
    if config.get("predictor_conf") and config.get("model") != "paraformer":
        issues.append(ConfigIssue("predictor_conf", f"only model paraformer has a predictor, not {config.get('model')}"))
    dataset = config.get("dataset_conf", {})
    if isinstance(dataset, dict):
        low, high = dataset.get("min_source_length"), dataset.get("max_source_length")
        if isinstance(low, int) and isinstance(high, int) and 1 <= high < low:
            issues.append(ConfigIssue("dataset_conf.max_source_length",
                                      f"must be at least min_source_length ({low}), got {high}"))
    if not config.get("train_data_set_list"):
        issues.append(ConfigIssue("train_data_set_list", "at least one training list is needed"))
    from engine.config_rules import cross_field_issues  # it imports ConfigIssue from here

    issues.extend(cross_field_issues(config))
    return issues


def deep_issues(config: dict) -> list[ConfigIssue]:
    """The checks that need torch, none of which builds the model: each OptimScheduler's schedule
    keys and values, and its optimiser's keyword arguments (engine/optim_sche/build.py).
    The console runs this in a worker, never at start."""
    from engine.optim_sche.build import check_optim_sches

    train_conf = config.get("train_conf") if isinstance(config.get("train_conf"), dict) else {}
    return [ConfigIssue(key, message) for key, message in check_optim_sches(config["optim_sches"], train_conf)]


def _with_default_optim_sches(user: dict) -> dict:
    """FunASR's ``++optim_conf.lr=...`` or ``++optim_sches.main.conf.warmup_steps=...`` on a config that
    names no optimiser changes the default one, rather than starting an empty entry."""
    sches = user.get("optim_sches")
    if sches is None and any(key in user for key in FUNASR_OPTIM_KEYS):
        return {**user, "optim_sches": copy.deepcopy(DEFAULTS["optim_sches"])}
    if isinstance(sches, dict):
        merged = {name: deep_merge(DEFAULTS["optim_sches"][name], entry)
                  if name in DEFAULTS["optim_sches"] and isinstance(entry, dict) and "type" not in entry else entry
                  for name, entry in sches.items()}
        return {**user, "optim_sches": merged}
    return user


def format_issues(issues: list[ConfigIssue], provenance: Provenance) -> str:
    """One line: ``origin: key: problem`` per issue, the origin being ``file:line`` or ``++key=value``."""
    return "; ".join(f"{provenance.where(issue.key)}: {issue}" for issue in issues)


def validate_config(user: dict, source: str = "<config>", provenance: Provenance | None = None,
                    deep: bool = False) -> dict:
    """Defaults + the user's config, FunASR forms normalised, validated; raises :class:`ConfigError`.

    ``deep`` adds :func:`deep_issues` (imports torch; asr-train and ``asr-train --check`` use it)."""
    provenance = provenance or Provenance(source)
    if not isinstance(user, dict):
        raise ConfigError(f"{source}: the config must be a mapping at the top level")
    user = copy.deepcopy(user)
    for key in LIST_KEYS:
        if isinstance(user.get(key), str):
            user[key] = [user[key]]
    user = _with_default_optim_sches(user)
    try:
        user = normalise_optim_conf(user)
    except OptimConfError as exc:
        key, _, message = str(exc).partition(": ")
        issue = ConfigIssue(key, message)
        raise ConfigError(format_issues([issue], provenance), [issue]) from None
    if looks_like_path(user.get("model")):
        try:  # ``model: DIR``: a FunASR model directory gives the architecture, tokens, CMVN and weights
            user = expand_model_dir(user, source)
        except FunASRConfigError as exc:
            raise ConfigError(str(exc), [ConfigIssue("model", str(exc))]) from None
    config = deep_merge(DEFAULTS, {k: v for k, v in user.items() if k != "optim_sches"})
    if "optim_sches" in user:
        config["optim_sches"] = user["optim_sches"]
    issues = check_config(config)
    if deep and not any(issue.key.split(".")[0] in ("optim_sches", "train_conf") for issue in issues):
        issues += deep_issues(config)
    if issues:
        raise ConfigError(format_issues(issues, provenance), issues)
    return config


def read_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping with ``yaml.safe_load``; errors name the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping at the top level")
    return data


def load_config(path: str | os.PathLike | None, overrides: Iterable[str] = (), deep: bool = False) -> dict:
    """Read ``path`` (or start from defaults), apply ``++a.b=c`` overrides, resolve and validate.

    Every error names the key and where its value came from (``file:line`` or the override)."""
    return load_config_traced(path, overrides, deep)[0]


def load_config_traced(path: str | os.PathLike | None, overrides: Iterable[str] = (),
                       deep: bool = False) -> tuple[dict, Provenance]:
    """:func:`load_config` and the :class:`Provenance` of its values (for later checks' messages)."""
    user = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "<overrides>"
    provenance = Provenance(source)
    if path is not None:
        provenance.add_file(path, key_lines(Path(path).read_text(encoding="utf-8")))
    overrides = list(overrides)
    for text in overrides:
        parts, _ = parse_override(text)
        provenance.add_override(".".join(parts), text)
    user = apply_overrides(user, overrides)
    return validate_config(user, source, provenance=provenance, deep=deep), provenance


def dump_config(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True, default_flow_style=False)


def save_config(config: dict, path: str | os.PathLike) -> None:
    """Write the config as YAML atomically (readers never see half a file)."""
    atomic_write_text(path, dump_config(config))


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: used to show what differs between two configs."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat
