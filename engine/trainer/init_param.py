"""``train_conf.init_param``: start from another model's weights, and say exactly what was taken.

FunASR loads what matches and logs little; a fine-tuning run that silently keeps a freshly
initialised decoder (renamed keys, a different vocabulary) is a classic lost week. Every key is
accounted for: loaded, missing (left as initialised), mismatched (shape differs: left as
initialised), unexpected (in the file but not in the model: ignored) or excluded (left out by
the entry's key filter).

Each entry is ``PATH[:SRC[:DST[:EXCLUDE,...]]]`` as ESPnet's ``--init_param``: keys of the file
starting with ``SRC.`` are taken with that prefix replaced by ``DST.`` (empty: the whole file,
into the model's root); keys starting with an EXCLUDE prefix (the file's names) are left out.
``model.pt:encoder:encoder`` takes only the encoder; ``model.pt:::decoder.output_layer,ctc.ctc_lo``
takes everything but the output layers (re-initialised, e.g. for a new vocabulary).
Files in FunASR's form (``{"state_dict": ...}``, optimiser states beside it) and FunASR's
parameter names are read as such.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from engine.checkpoint import load_checkpoint
from engine.funasr.config_map import looks_funasr_keys, rename_keys
from engine.optim_sche import init_real_step
from engine.trainer.init_spec import InitSpec, init_specs  # noqa: F401  (InitSpec: re-exported)


def model_weights(checkpoint: dict, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model state dict inside a checkpoint: the engine's ({"model": ...}), FunASR's
    ({"state_dict": ...} beside optimiser states) or a bare state dict."""
    weights = None
    if isinstance(checkpoint, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(checkpoint.get(key), dict):
                weights = checkpoint[key]
                break
        else:
            weights = checkpoint
    if not isinstance(weights, dict) or not weights or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise ValueError(f"{path}: no model weights found (expected a state dict, or a 'model' or 'state_dict' entry)")
    return {key.removeprefix("module."): value for key, value in weights.items()}


def select(weights: dict[str, torch.Tensor], spec: InitSpec, rename) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(weights under the model's names, keys of the file left out by the filter)."""
    excluded, taken = [], {}
    for key, value in weights.items():
        if any(key == e or key.startswith(e + ".") for e in spec.exclude):
            excluded.append(key)
            continue
        if spec.src:
            if not key.startswith(spec.src + "."):
                excluded.append(key)
                continue
            key = key[len(spec.src) + 1:]
        taken[f"{spec.dst}.{key}" if spec.dst else key] = value
    if rename and looks_funasr_keys(taken):
        names = rename_keys(taken, rename, to_engine=True)
        taken = {names[key]: value for key, value in taken.items()}
    return taken, excluded


def load_init_param(model: torch.nn.Module, paths, rename=()) -> tuple[dict, int | None]:
    """Copy matching weights from ``paths`` (later entries win) into ``model``.

    ``rename``: the architecture's (FunASR prefix, engine prefix) pairs, applied to files that use
    FunASR's names. Returns the report and the optimizer step the (last) checkpoint had reached, if
    it holds the engine's optimizer state: ``warmup_from: init`` schedules continue from there.
    """
    specs = init_specs(paths)
    target = model.state_dict()
    source: dict[str, torch.Tensor] = {}
    excluded: list[str] = []
    init_step = None
    for spec in specs:
        if not Path(spec.path).is_file():
            raise FileNotFoundError(f"train_conf.init_param: {spec.path}: no such checkpoint file")
        checkpoint = load_checkpoint(spec.path)
        taken, left_out = select(model_weights(checkpoint, spec.path), spec, rename)
        source.update(taken)
        excluded.extend(left_out)
        init_step = init_real_step(checkpoint.get("train_step")) if isinstance(checkpoint, dict) else None
    loaded, mismatched, unexpected = [], [], []
    usable = {}
    for key, value in source.items():
        if key not in target:
            unexpected.append(key)
        elif tuple(value.shape) != tuple(target[key].shape):
            mismatched.append({"key": key, "checkpoint": list(value.shape), "model": list(target[key].shape)})
        else:
            usable[key] = value
            loaded.append(key)
    missing = [key for key in target if key not in source]
    model.load_state_dict(usable, strict=False)
    report = {"paths": [spec.describe() for spec in specs], "loaded": len(loaded), "total": len(target),
              "missing": missing, "mismatched": mismatched, "unexpected": unexpected, "excluded": excluded}
    return report, init_step


def describe(report: dict) -> str:
    """One log line per problem class, so a partial load is impossible to miss."""
    lines = [f"init_param {', '.join(report['paths'])}: loaded {report['loaded']}/{report['total']} tensors, "
             f"missing {len(report['missing'])}, shape-mismatched {len(report['mismatched'])}, "
             f"unexpected {len(report['unexpected'])}, excluded by the filter {len(report.get('excluded', []))}"]
    if report["missing"]:
        lines.append(f"  missing (kept initialised) {len(report['missing'])}: {', '.join(report['missing'][:20])}"
                     + (" ..." if len(report["missing"]) > 20 else ""))
    for item in report["mismatched"][:20]:
        lines.append(f"  shape mismatch (kept initialised) {item['key']}: checkpoint {item['checkpoint']} "
                     f"vs model {item['model']}")
    if report["unexpected"]:
        lines.append(f"  unexpected (ignored) {len(report['unexpected'])}: {', '.join(report['unexpected'][:20])}"
                     + (" ..." if len(report["unexpected"]) > 20 else ""))
    if report.get("excluded"):
        lines.append(f"  excluded by the key filter {len(report['excluded'])}: {', '.join(report['excluded'][:20])}"
                     + (" ..." if len(report["excluded"]) > 20 else ""))
    return "\n".join(lines)
