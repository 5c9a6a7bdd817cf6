"""Loading a trained model for decoding, and exporting it as a FunASR-style model directory.

``load_asr`` accepts three kinds of path:

* a run directory: the newest ``model.pt.avg*`` if averaging has run, else ``model.pt``;
* a model directory: its ``model.pt`` (with ``config.yaml``, ``tokens.txt``/``bpe.model``, ``am.mvn``,
  ``configuration.json``), as :func:`export_model_dir` writes it;
* a checkpoint file inside a run directory (``model.pt.ep3``, ``model.pt.avg5``, ...).

Mismatches between checkpoint, tokenizer and frontend are errors that name both sides.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch

from engine.checkpoint.assets import ASSETS_KEY, AssetMismatchError, check_assets, fingerprint
from engine.checkpoint.storage import CheckpointError, CheckpointNotFoundError, load_checkpoint
from engine.config import DEFAULTS, read_yaml
from engine.data.frontend import WavFrontend
from engine.data.tokenizer import BPE_FILE, TOKENS_FILE, load_tokenizer
from engine.models import build_model
from engine.models.subsampling import CONV_SHAPES
from engine.utils.fileio import atomic_directory, atomic_torch_save, atomic_write_bytes, atomic_write_text

CONFIG_FILE = "config.yaml"
CMVN_FILE = "am.mvn"
MODEL_FILE = "model.pt"
CONFIGURATION_FILE = "configuration.json"
# Files only a run directory has (a run directory holds configuration.json too).
RUN_RECORDS = ("events.jsonl", "run.json")
# Feature dimensions searched when telling the user which ones a checkpoint's input layer takes.
MAX_FEATURE_DIM = 4096


class ModelLoadError(ValueError):
    """A model that cannot be loaded; the message names the file and what does not fit."""


def resolve_checkpoint(path) -> Path:
    """The checkpoint file ``path`` designates (a file, or a run/model directory)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise ModelLoadError(f"{path}: no such checkpoint, run directory or model directory")
    is_model_dir = (path / CONFIGURATION_FILE).is_file() and not any(
        (path / name).exists() for name in RUN_RECORDS)
    if is_model_dir and (path / MODEL_FILE).is_file():
        return path / MODEL_FILE  # a model directory holds exactly one model
    averaged = [p for p in path.glob(f"{MODEL_FILE}.avg*") if p.is_file() and not p.name.endswith(".tmp")]
    if averaged:
        return max(averaged, key=lambda p: (p.stat().st_mtime, p.name))
    if (path / MODEL_FILE).is_file():
        return path / MODEL_FILE
    raise ModelLoadError(f"{path}: no checkpoint in this directory (looked for {MODEL_FILE}.avg* and {MODEL_FILE})")


def load_state_dict(checkpoint: Path) -> tuple[dict, dict]:
    """(model state_dict, the checkpoint's other entries) of a saved checkpoint."""
    try:
        saved = load_checkpoint(checkpoint)
    except CheckpointNotFoundError:
        raise ModelLoadError(f"{checkpoint}: checkpoint not found") from None
    except CheckpointError as error:
        raise ModelLoadError(str(error)) from error
    if not isinstance(saved, dict):
        raise ModelLoadError(f"{checkpoint}: not a checkpoint (a {type(saved).__name__}, expected a dict)")
    state = saved.get("model", saved)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{checkpoint}: no model state_dict in it (keys: {', '.join(map(str, saved)) or 'none'})")
    if all(key.startswith("module.") for key in state):  # saved from a DDP wrapper
        state = {key[len("module."):]: value for key, value in state.items()}
    meta = {key: value for key, value in saved.items() if key != "model"} if "model" in saved else {}
    return state, meta


def read_model_config(directory: Path) -> dict:
    """The resolved config.yaml of a run or model directory, with defaults for absent sections."""
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise ModelLoadError(f"{path}: config.yaml not found (needed to build the model)")
    config = read_yaml(path)
    for section in ("model", "model_conf", "encoder_conf", "decoder_conf", "predictor_conf", "frontend_conf", "cmvn"):
        config.setdefault(section, DEFAULTS[section])
    return config


def build_frontend(config: dict, directory: Path) -> WavFrontend:
    conf = dict(config["frontend_conf"] or {})
    conf.pop("cmvn_file", None)  # FunASR keeps the CMVN path here; ours is am.mvn beside the config
    accepted = set(inspect.signature(WavFrontend).parameters) - {"cmvn_file"}
    unknown = sorted(set(conf) - accepted)
    if unknown:
        raise ModelLoadError(f"{directory / CONFIG_FILE}: unknown frontend_conf key(s): {', '.join(unknown)}")
    cmvn_file = None
    if config.get("cmvn") not in (None, False, "none"):
        cmvn_file = directory / CMVN_FILE
        if not cmvn_file.is_file():
            raise ModelLoadError(f"{cmvn_file}: not found, but {directory / CONFIG_FILE} says cmvn: {config['cmvn']}")
    return WavFrontend(**conf, cmvn_file=cmvn_file)


def checkpoint_feature_dims(state: dict, input_layer: str) -> range | None:
    """Feature dimensions the checkpoint's input layer accepts (None: cannot tell from the weights).

    A strided convolution maps neighbouring dimensions to the same width (80 and 81 both give
    19 bins after two stride-2 convolutions), hence a range.
    """
    if "encoder.embed.out.0.weight" in state:  # linear input layer
        width = state["encoder.embed.out.0.weight"].shape[1]
        return range(width, width + 1)
    if input_layer not in CONV_SHAPES or "encoder.embed.out.weight" not in state:
        return None
    channels = state["encoder.embed.conv.0.weight"].shape[0]
    bins = state["encoder.embed.out.weight"].shape[1] // channels
    dims = []
    for dim in range(1, MAX_FEATURE_DIM + 1):
        width = dim
        for kernel, stride in CONV_SHAPES[input_layer]:
            width = (width - kernel) // stride + 1
        if width == bins:
            dims.append(dim)
    return range(dims[0], dims[-1] + 1) if dims else None


def check_compatible(checkpoint: Path, state: dict, meta: dict, config: dict, tokenizer, tokenizer_path: Path,
                     frontend: WavFrontend) -> None:
    """Raise ModelLoadError naming both sides when checkpoint, tokenizer and frontend disagree."""
    if "ctc.ctc_lo.weight" in state:
        ckpt_vocab = state["ctc.ctc_lo.weight"].shape[0]
        if ckpt_vocab != tokenizer.vocab_size:
            raise ModelLoadError(
                f"vocabulary mismatch: {checkpoint} has {ckpt_vocab} output tokens, "
                f"{tokenizer_path} has {tokenizer.vocab_size}"
            )
    frontend_desc = (f"the frontend of {checkpoint.parent / CONFIG_FILE} gives {frontend.output_dim} "
                     f"(n_mels {frontend.n_mels} x lfr_m {frontend.lfr_m})")
    if "input_dim" in meta:
        if int(meta["input_dim"]) != frontend.output_dim:
            raise ModelLoadError(f"feature dimension mismatch: {checkpoint} expects {int(meta['input_dim'])}, "
                                 f"{frontend_desc}")
        return
    dims = checkpoint_feature_dims(state, config["encoder_conf"].get("input_layer", "conv2d"))
    if dims is not None and frontend.output_dim not in dims:
        expected = str(dims.start) if len(dims) == 1 else f"{dims.start}..{dims.stop - 1}"
        raise ModelLoadError(f"feature dimension mismatch: {checkpoint} expects {expected}, {frontend_desc}")


def tokenizer_file(directory: Path) -> Path:
    for name in (BPE_FILE, TOKENS_FILE):
        if (directory / name).is_file():
            return directory / name
    raise ModelLoadError(f"{directory}: no {BPE_FILE} or {TOKENS_FILE} (the tokenizer the model was trained with)")


def load_asr(path, device: str | torch.device = "cpu", run_dir=None, allow_changed_assets: bool = False):
    """Load a run directory, model directory or checkpoint -> (model, frontend, tokenizer, config).

    The model is in eval mode on ``device``; ``config["checkpoint"]`` names the file loaded.
    A checkpoint saved outside its run (``asr-average --out``) takes its config, tokenizer and
    CMVN from ``run_dir``. A token list or CMVN other than the ones the checkpoint was trained
    with is an error naming both, unless ``allow_changed_assets``.
    """
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device} requested but CUDA is not available here")
    checkpoint = resolve_checkpoint(path)
    directory = Path(run_dir) if run_dir is not None else checkpoint.parent
    config = read_model_config(directory)
    tokenizer_path = tokenizer_file(directory)
    tokenizer = load_tokenizer(tokenizer_path)
    frontend = build_frontend(config, directory)
    state, meta = load_state_dict(checkpoint)
    check_compatible(checkpoint, state, meta, config, tokenizer, tokenizer_path, frontend)
    if not allow_changed_assets:
        try:
            check_assets(meta.get(ASSETS_KEY), fingerprint(tokenizer_path, frontend.cmvn_file), checkpoint,
                         {"tokens": tokenizer_path, "cmvn": frontend.cmvn_file}, "pass --allow-changed-assets")
        except AssetMismatchError as error:
            raise ModelLoadError(str(error)) from None
    try:
        model = build_model(config["model"], frontend.output_dim, tokenizer.vocab_size, config["model_conf"],
                            config["encoder_conf"], config["decoder_conf"], sos_eos_id=tokenizer.sos_eos_id,
                            predictor_conf=config["predictor_conf"])
    except ValueError as error:
        raise ModelLoadError(f"{directory / CONFIG_FILE}: {error}") from error
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ModelLoadError(
            f"{checkpoint} does not fit the model of {directory / CONFIG_FILE}: "
            f"missing {result.missing_keys[:5]} ({len(result.missing_keys)}), "
            f"unexpected {result.unexpected_keys[:5]} ({len(result.unexpected_keys)})"
        )
    config = dict(config, checkpoint=str(checkpoint))
    return model.to(device).eval(), frontend, tokenizer, config


def configuration_json(config: dict, tokenizer_name: str, has_cmvn: bool) -> dict:
    """FunASR's configuration.json: the framework, task and the files of the directory."""
    tokenizer_key = "bpemodel" if tokenizer_name == BPE_FILE else "token_list"
    metas = {"init_param": MODEL_FILE, "config": CONFIG_FILE, "tokenizer_conf": {tokenizer_key: tokenizer_name}}
    if has_cmvn:
        metas["frontend_conf"] = {"cmvn_file": CMVN_FILE}
    return {
        "framework": "pytorch",
        "task": "auto-speech-recognition",
        "model": {"type": "asr-tui", "architecture": config["model"]},
        "file_path_metas": metas,
    }


def export_model_dir(run_dir_or_checkpoint, out_dir, checkpoint=None) -> Path:
    """Write a loadable model directory from a run (its newest average or model.pt, or ``checkpoint``).

    model.pt holds only ``{"model": state_dict, "input_dim", "vocab_size", "source"}``: no
    optimiser state. The export is loaded back before returning, so a broken one is never left
    looking valid.
    """
    source = Path(checkpoint) if checkpoint is not None else resolve_checkpoint(run_dir_or_checkpoint)
    if not source.is_file():
        raise ModelLoadError(f"{source}: checkpoint not found")
    directory = Path(run_dir_or_checkpoint) if Path(run_dir_or_checkpoint).is_dir() else source.parent
    model, frontend, tokenizer, config = load_asr(source, run_dir=directory)
    out_dir = Path(out_dir)
    if out_dir.resolve() == directory.resolve():
        raise ModelLoadError(f"{out_dir}: export directory must differ from the run directory")
    tokenizer_name = tokenizer_file(directory).name
    has_cmvn = frontend.cmvn_file is not None
    copies = [CONFIG_FILE, tokenizer_name] + ([CMVN_FILE] if has_cmvn else [])
    _, meta = load_state_dict(source)
    assets = {ASSETS_KEY: meta[ASSETS_KEY]} if isinstance(meta.get(ASSETS_KEY), dict) else {}
    with atomic_directory(out_dir) as tmp:  # the folder appears whole, checked, or not at all
        for name in copies:
            atomic_write_bytes(tmp / name, (directory / name).read_bytes())
        atomic_torch_save({"model": model.state_dict(), "input_dim": frontend.output_dim,
                           "vocab_size": tokenizer.vocab_size, "source": str(source.resolve()), **assets},
                          tmp / MODEL_FILE)
        atomic_write_text(tmp / CONFIGURATION_FILE,
                          json.dumps(configuration_json(config, tokenizer_name, has_cmvn), indent=2) + "\n")
        load_asr(tmp)
    return out_dir
