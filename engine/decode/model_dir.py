"""Loading a trained model for decoding, and exporting it as a FunASR-style model directory.

``load_asr`` accepts three kinds of path:

* a run directory: the newest ``model.pt.avg*`` if averaging has run, else ``model.pt``;
* a FunASR model directory (``config.yaml`` naming a FunASR architecture, ``model.pt``,
  ``tokens.json``/``tokens.txt``, ``am.mvn``, ``configuration.json``): FunASR's own, or one
  :func:`export_model_dir` wrote (engine.funasr maps names both ways);
* a checkpoint file inside a run directory (``model.pt.ep3``, ``model.pt.avg5``, ...).

Mismatches between checkpoint, tokenizer and frontend are errors that name both sides.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch
import yaml

from engine.checkpoint.assets import ASSETS_KEY, AssetMismatchError, check_assets, fingerprint
from engine.checkpoint.storage import CheckpointError, CheckpointNotFoundError, load_checkpoint
from engine.config import DEFAULTS, read_yaml
from engine.data.frontend import WavFrontend
from engine.data.tokenizer import BPE_FILE, TOKENS_FILE, load_tokenizer
from engine.funasr.config_map import FunASRConfigError, engine_architecture, engine_to_funasr, rename_keys
from engine.funasr.model_dir import (
    CMVN_FILE, CONFIG_FILE, CONFIGURATION_FILE, MODEL_FILE, ModelDir, is_model_dir, read_model_dir,
)
from engine.models import build_model
from engine.models.subsampling import CONV_SHAPES
from engine.utils.fileio import atomic_directory, atomic_torch_save, atomic_write_bytes, atomic_write_text

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
    model_dir = is_model_dir(path) or ((path / CONFIGURATION_FILE).is_file() and not any(
        (path / name).exists() for name in RUN_RECORDS))
    if model_dir and (path / MODEL_FILE).is_file():
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
    entry = next((key for key in ("model", "state_dict") if isinstance(saved.get(key), dict)), None)
    state = saved[entry] if entry else saved  # the engine's {"model": ...}, FunASR's {"state_dict": ...}, or bare
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{checkpoint}: no model state_dict in it (keys: {', '.join(map(str, saved)) or 'none'})")
    if all(key.startswith("module.") for key in state):  # saved from a DDP wrapper
        state = {key[len("module."):]: value for key, value in state.items()}
    meta = {key: value for key, value in saved.items() if key != entry} if entry else {}
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


def read_funasr_dir(directory: Path) -> tuple[ModelDir, dict]:
    """(the FunASR model directory, its engine config with defaults for absent sections)."""
    try:
        model_dir = read_model_dir(directory)
    except FunASRConfigError as error:
        raise ModelLoadError(str(error)) from None
    config = {section: DEFAULTS[section] for section in ("model_conf", "encoder_conf", "decoder_conf", "predictor_conf")
              if section in DEFAULTS}
    config.update(model_dir.engine)
    return model_dir, config


def load_asr(path, device: str | torch.device = "cpu", run_dir=None, allow_changed_assets: bool = False):
    """Load a run directory, model directory or checkpoint -> (model, frontend, tokenizer, config).

    The model is in eval mode on ``device``; ``config["checkpoint"]`` names the file loaded.
    A checkpoint saved outside its run (``asr-average --out``) takes its config, tokenizer and
    CMVN from ``run_dir``. A FunASR model directory is built from its config.yaml, with FunASR's
    parameter names mapped onto the engine's. A token list or CMVN other than the ones the
    checkpoint was trained with is an error naming both, unless ``allow_changed_assets``.
    """
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device} requested but CUDA is not available here")
    checkpoint = resolve_checkpoint(path)
    directory = Path(run_dir) if run_dir is not None else checkpoint.parent
    state, meta = load_state_dict(checkpoint)
    if is_model_dir(directory):
        model_dir, config = read_funasr_dir(directory)
        tokenizer_path = model_dir.bpe_model or model_dir.token_file
        tokenizer = load_tokenizer(tokenizer_path)
        try:
            frontend = WavFrontend(**config["frontend_conf"], cmvn_file=model_dir.cmvn_file)
        except ValueError as error:
            raise ModelLoadError(f"{directory / CONFIG_FILE}: {error}") from None
        rename = engine_architecture(config["model"]).rename
        names = rename_keys(state, rename, to_engine=True)
        state = {names[key]: value for key, value in state.items()}
    else:
        config = read_model_config(directory)
        tokenizer_path = tokenizer_file(directory)
        tokenizer = load_tokenizer(tokenizer_path)
        frontend = build_frontend(config, directory)
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
                            predictor_conf=config.get("predictor_conf"))
    except ValueError as error:
        raise ModelLoadError(f"{directory / CONFIG_FILE}: {error}") from error
    result = model.load_state_dict(state, strict=False)
    mismatched = [key for key, value in state.items()
                  if key in model.state_dict() and tuple(value.shape) != tuple(model.state_dict()[key].shape)]
    if result.missing_keys or result.unexpected_keys or mismatched:
        raise ModelLoadError(
            f"{checkpoint} does not fit the model of {directory / CONFIG_FILE}: "
            f"missing {result.missing_keys[:5]} ({len(result.missing_keys)}), "
            f"unexpected {result.unexpected_keys[:5]} ({len(result.unexpected_keys)}), "
            f"shape-mismatched {mismatched[:5]} ({len(mismatched)})"
        )
    config = dict(config, checkpoint=str(checkpoint))
    return model.to(device).eval(), frontend, tokenizer, config


def configuration_json(token_file: str, has_cmvn: bool, bpe_model: str | None) -> dict:
    """FunASR's configuration.json: framework, task, and the files AutoModel resolves in the directory."""
    tokenizer_conf = {"token_list": token_file}
    if bpe_model:
        tokenizer_conf["bpemodel"] = bpe_model
    metas = {"init_param": MODEL_FILE, "config": CONFIG_FILE, "tokenizer_conf": tokenizer_conf}
    if has_cmvn:
        metas["frontend_conf"] = {"cmvn_file": CMVN_FILE}
    return {"framework": "pytorch", "task": "auto-speech-recognition",
            "model": {"type": "funasr"}, "file_path_metas": metas}


def funasr_config_of(model, frontend: WavFrontend, tokenizer, config: dict, has_cmvn: bool) -> dict:
    """FunASR config.yaml of a loaded engine model (sos/eos from the model itself)."""
    engine = {key: config.get(key) for key in ("model", "model_conf", "encoder_conf", "decoder_conf",
                                               "predictor_conf") if config.get(key) is not None}
    engine["model_conf"] = dict(engine.get("model_conf") or {})
    for name in ("sos", "eos"):  # the ids the model really uses (FunASR's defaults are 1 and 2)
        if getattr(model, name, None) is not None:
            engine["model_conf"][name] = int(getattr(model, name))
    # FunASR's WavFrontend dithers at inference too: an inference directory says 0.0.
    engine["frontend_conf"] = {"fs": frontend.fs, "window": frontend.window, "n_mels": frontend.n_mels,
                               "frame_length": frontend.frame_length, "frame_shift": frontend.frame_shift,
                               "lfr_m": frontend.lfr_m, "lfr_n": frontend.lfr_n, "dither": 0.0}
    bpe = BPE_FILE if getattr(tokenizer, "kind", "char") == "bpe" else None
    return engine_to_funasr(engine, token_list_file=TOKENS_JSON, bpe_model=bpe,
                            cmvn_file=CMVN_FILE if has_cmvn else None)


TOKENS_JSON = "tokens.json"


def export_model_dir(run_dir_or_checkpoint, out_dir, checkpoint=None) -> Path:
    """Write a FunASR model directory from a run (its newest average or model.pt, or ``checkpoint``).

    The layout and names are FunASR 1.4.16's, so ``funasr.AutoModel(model=DIR)`` decodes it:
    config.yaml (``model: Conformer`` ..., WavFrontend with ``cmvn_file: am.mvn``, CharTokenizer
    with ``token_list: tokens.json``), model.pt as ``{"state_dict": ...}`` with FunASR's parameter
    names (plus ``input_dim``/``vocab_size``/``source``, which FunASR ignores; no optimiser
    state), am.mvn, tokens.json (and bpe.model), configuration.json. Everything is checked before
    the first file is written, and the export is loaded back before returning.
    """
    source = Path(checkpoint) if checkpoint is not None else resolve_checkpoint(run_dir_or_checkpoint)
    if not source.is_file():
        raise ModelLoadError(f"{source}: checkpoint not found")
    directory = Path(run_dir_or_checkpoint) if Path(run_dir_or_checkpoint).is_dir() else source.parent
    model, frontend, tokenizer, config = load_asr(source, run_dir=directory)
    out_dir = Path(out_dir)
    if out_dir.resolve() == directory.resolve():
        raise ModelLoadError(f"{out_dir}: export directory must differ from the run directory")
    has_cmvn = frontend.cmvn_file is not None
    try:
        funasr_config = funasr_config_of(model, frontend, tokenizer, config, has_cmvn)
        rename = engine_architecture(config["model"]).rename
    except FunASRConfigError as error:
        raise ModelLoadError(str(error)) from None
    state = model.state_dict()
    names = rename_keys(state, rename, to_engine=False)
    with atomic_directory(out_dir) as tmp:  # the folder appears whole, checked, or not at all
        if has_cmvn:
            atomic_write_bytes(tmp / CMVN_FILE, Path(frontend.cmvn_file).read_bytes())
        if funasr_config["tokenizer"] == "SentencepiecesTokenizer":
            atomic_write_bytes(tmp / BPE_FILE, (directory / BPE_FILE).read_bytes())
        atomic_write_text(tmp / TOKENS_JSON,
                          json.dumps(list(tokenizer.token_list), ensure_ascii=False, indent=1) + "\n")
        atomic_write_text(tmp / CONFIG_FILE, yaml.safe_dump(funasr_config, sort_keys=False, allow_unicode=True))
        # The fingerprint of the files written here: the same tokens and statistics as the run's,
        # now in FunASR's tokens.json (asr-decode on the export checks them as on a run).
        tokens_for_fingerprint = tmp / (BPE_FILE if (tmp / BPE_FILE).is_file() else TOKENS_JSON)
        assets = fingerprint(tokens_for_fingerprint, tmp / CMVN_FILE if has_cmvn else None)
        atomic_torch_save({"state_dict": {names[key]: value for key, value in state.items()},
                           "input_dim": frontend.output_dim, "vocab_size": tokenizer.vocab_size,
                           "source": str(source.resolve()), ASSETS_KEY: assets}, tmp / MODEL_FILE)
        atomic_write_text(tmp / CONFIGURATION_FILE, json.dumps(
            configuration_json(TOKENS_JSON, has_cmvn, funasr_config["tokenizer_conf"].get("bpemodel")), indent=2)
            + "\n")
        load_asr(tmp)
    return out_dir
