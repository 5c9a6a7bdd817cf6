"""A tiny experiment on the small corpus: seconds per epoch on a CPU, every trainer feature switched on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[2]


def tiny_config(corpus: Path, output_dir: Path, **sections) -> dict:
    """The tiny experiment; ``sections`` are merged over it section by section (train_conf={...})."""
    config = {
        "output_dir": str(output_dir),
        "seed": 3,
        "train_data_set_list": [str(corpus / "train.jsonl")],
        "valid_data_set_list": [str(corpus / "valid.jsonl")],
        "frontend_conf": {"n_mels": 40, "dither": 1.0},
        "specaug_conf": {"num_freq_mask": 1, "freq_mask_width": 5, "num_time_mask": 1, "time_mask_width": 5},
        "model": "conformer",
        "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1},
        "encoder_conf": {"output_size": 32, "attention_heads": 2, "linear_units": 64, "num_blocks": 1,
                         "cnn_module_kernel": 5},
        "decoder_conf": {"attention_heads": 2, "linear_units": 64, "num_blocks": 1},
        "dataset_conf": {"batch_type": "example", "batch_size": 8, "num_workers": 0, "buffer_size": 40},
        "train_conf": {"max_epoch": 2, "log_interval": 2, "validate_interval": 4, "save_checkpoint_interval": 3,
                       "keep_nbest_models": 1, "avg_nbest_model": 3, "deterministic": True},
        "optim_sches": {"main": {"type": "warmuplr", "conf": {"optim_type": "AdamW", "optim_conf": {"lr": 0.002},
                                                              "warmup_steps": 10}}},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def write_config(config: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def events_of(run_dir: Path) -> list[dict]:
    from engine.events import read_events

    return read_events(Path(run_dir) / "events.jsonl")


def run_json(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8"))


def model_weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def engine_env() -> dict:
    """Environment for engine subprocesses: the repository importable, one thread per process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def launch(config_path: Path, *overrides: str, log_path: Path, module: str = "engine.train") -> subprocess.Popen:
    """``python -m engine.train`` in a session of its own (so the test can signal its process group)."""
    handle = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", module, "--config", str(config_path), *overrides],
                            stdout=handle, stderr=subprocess.STDOUT, env=engine_env(), cwd=REPO,
                            start_new_session=True)
