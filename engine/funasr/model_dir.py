"""Reading a FunASR model directory without torch: its files, its config, the engine config it gives.

A FunASR model directory (what ``AutoModel(model=DIR)`` and ``funasr-train ++model=DIR`` take)
holds ``config.yaml``, ``model.pt``, the token list (``tokens.json`` or ``tokens.txt``; plus
``bpe.model`` for a sentencepiece tokenizer), ``am.mvn`` when the frontend names a CMVN file,
and optionally ``configuration.json``. The console and the config loader use this module before
any training starts, so every problem is found before anything is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from engine.funasr.config_map import FunASRConfigError, architecture, funasr_to_engine, is_funasr_config

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.pt"
CMVN_FILE = "am.mvn"
CONFIGURATION_FILE = "configuration.json"
TOKEN_FILES = ("tokens.json", "tokens.txt")
BPE_FILE = "bpe.model"


class ModelDirError(FunASRConfigError):
    """A model directory that cannot be used; the message names the file."""


@dataclass
class ModelDir:
    path: Path
    funasr_config: dict          # config.yaml as written
    engine: dict                 # engine sections (model, model_conf, encoder_conf, ..., tokenizer_conf)
    token_file: Path
    token_list: list[str]
    bpe_model: Path | None
    cmvn_file: Path | None
    model_file: Path
    configuration: dict | None

    @property
    def funasr_model(self) -> str:
        return self.funasr_config["model"]

    @property
    def vocab_size(self) -> int:
        return len(self.token_list)

    @property
    def input_dim(self) -> int:
        conf = self.engine["frontend_conf"]
        return int(conf["n_mels"]) * int(conf["lfr_m"])


def read_token_list(path: Path) -> list[str]:
    """FunASR's token list: tokens.json (a JSON list) or tokens.txt (one token a line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ModelDirError(f"{path}: token list is not UTF-8: {error}") from None
    except OSError as error:
        raise ModelDirError(f"{path}: cannot read the token list: {error}") from None
    if path.suffix == ".json":
        try:
            tokens = json.loads(text)
        except json.JSONDecodeError as error:
            raise ModelDirError(f"{path}: line {error.lineno}: not JSON: {error.msg}") from None
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ModelDirError(f"{path}: expected a JSON list of token strings")
        return tokens
    return [line.strip() for line in text.splitlines() if line.strip()]


def is_model_dir(path) -> bool:
    """A directory with a FunASR-style config.yaml and no run records (a run directory has events.jsonl)."""
    path = Path(path)
    if not path.is_dir() or (path / "events.jsonl").exists() or (path / "run.json").exists():
        return False
    config = path / CONFIG_FILE
    if not config.is_file():
        return False
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and is_funasr_config(data)


def read_model_dir(path) -> ModelDir:
    """Check and read a FunASR model directory; ModelDirError names the missing or bad file."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ModelDirError(f"{path}: no such model directory")
    for name in (CONFIG_FILE, MODEL_FILE):
        if not (path / name).is_file():
            raise ModelDirError(f"{path}: no {name} in this model directory (a FunASR model directory holds "
                                f"{CONFIG_FILE}, {MODEL_FILE}, {' or '.join(TOKEN_FILES)} and am.mvn)")
    config_path = path / CONFIG_FILE
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ModelDirError(f"{config_path}:{where} invalid YAML: {getattr(error, 'problem', error)}") from None
    if not isinstance(config, dict):
        raise ModelDirError(f"{config_path}: not a mapping")
    if "model" not in config:
        raise ModelDirError(f"{config_path}: no 'model' key (the FunASR architecture)")
    architecture(config["model"], str(config_path))
    engine = funasr_to_engine(config, str(config_path))
    token_file = next((path / name for name in TOKEN_FILES if (path / name).is_file()), None)
    if token_file is None:
        raise ModelDirError(f"{path}: no {' or '.join(TOKEN_FILES)} (the model's token list)")
    token_list = read_token_list(token_file)
    if "<unk>" not in token_list:
        raise ModelDirError(f"{token_file}: no <unk> token in the list")
    bpe_model = None
    if engine["tokenizer_conf"]["type"] == "bpe":
        bpe_model = path / BPE_FILE
        if not bpe_model.is_file():
            raise ModelDirError(f"{path}: no {BPE_FILE}, but {config_path} names SentencepiecesTokenizer")
    cmvn_file = None
    if engine["cmvn"] == "global":
        cmvn_file = path / CMVN_FILE
        if not cmvn_file.is_file():
            raise ModelDirError(f"{path}: no {CMVN_FILE}, but {config_path} names frontend_conf.cmvn_file")
    configuration = None
    if (path / CONFIGURATION_FILE).is_file():
        try:
            configuration = json.loads((path / CONFIGURATION_FILE).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ModelDirError(f"{path / CONFIGURATION_FILE}: not JSON: {error}") from None
    model_conf = engine.get("model_conf", {})
    if "sos" in model_conf and not (0 <= model_conf["sos"] < len(token_list) and 0 <= model_conf["eos"] < len(token_list)):
        raise ModelDirError(f"{config_path}: model_conf sos {model_conf['sos']} / eos {model_conf['eos']} "
                            f"outside the {len(token_list)} tokens of {token_file.name}")
    return ModelDir(path=path, funasr_config=config, engine=engine, token_file=token_file, token_list=token_list,
                    bpe_model=bpe_model, cmvn_file=cmvn_file, model_file=path / MODEL_FILE,
                    configuration=configuration)


# Sections a model directory decides (the architecture, its features and tokens); the experiment
# may still set their training-only keys (dropout rates, ctc_weight, lsm_weight).
ARCHITECTURE_SECTIONS = ("model", "model_conf", "encoder_conf", "decoder_conf", "predictor_conf",
                         "frontend_conf", "cmvn", "tokenizer_conf")
# Keys the experiment may change without changing a parameter's shape or meaning.
TRAINING_KEYS = {
    "model_conf": {"ctc_weight", "lsm_weight", "length_normalized_loss", "predictor_weight",
                   "predictor_bias"},
    "encoder_conf": {"dropout_rate", "positional_dropout_rate", "attention_dropout_rate"},
    "decoder_conf": {"dropout_rate", "positional_dropout_rate", "self_attention_dropout_rate",
                     "src_attention_dropout_rate"},
    "frontend_conf": {"dither"},
}


def expand_model_dir(user: dict, source: str) -> dict:
    """An experiment config with ``model: DIR`` -> the same with the directory's architecture filled in.

    ``model`` becomes the engine architecture and ``model_dir`` records DIR; model_conf /
    encoder_conf / decoder_conf / frontend_conf / cmvn / tokenizer_conf come from DIR/config.yaml
    (the experiment may change only their training keys: dropout rates, loss weights, dither);
    ``train_conf.init_param`` defaults to DIR/model.pt. The tokenizer and am.mvn are copied into
    the run directory when the run starts (engine.trainer.assets).
    """
    directory = read_model_dir(user["model"])
    out = {key: value for key, value in user.items() if key != "model"}
    train_conf = dict(out.get("train_conf") or {})
    new_vocabulary = "tokenizer_conf" in user and user["tokenizer_conf"] != directory.engine["tokenizer_conf"]
    if new_vocabulary:
        # A tokenizer built from the experiment's data: the output layers cannot carry over.
        excluded = _excluded_prefixes(train_conf.get("init_param"))
        if not all(any(layer == e or layer.startswith(e + ".") for e in excluded) for layer in OUTPUT_LAYERS):
            raise ModelDirError(
                f"{source}: tokenizer_conf {user['tokenizer_conf']} differs from the model directory's "
                f"({directory.engine['tokenizer_conf']}, {directory.vocab_size} tokens in {directory.token_file.name}): "
                f"a new vocabulary re-initialises the output layers; say so with train_conf.init_param: "
                f"'{directory.model_file}:::{','.join(OUTPUT_LAYERS)}' (or keep the model's tokenizer)")
    for section in ARCHITECTURE_SECTIONS:
        if section not in directory.engine or (section == "tokenizer_conf" and new_vocabulary):
            continue
        base = directory.engine[section]
        given = user.get(section)
        if isinstance(base, dict) and isinstance(given, dict):
            changed = sorted(k for k, v in given.items()
                             if k not in TRAINING_KEYS.get(section, ()) and base.get(k, object()) != v)
            if changed:
                raise ModelDirError(
                    f"{source}: {section}.{changed[0]} is set by the model directory {directory.path} "
                    f"({base.get(changed[0])!r}); the experiment may change only "
                    f"{', '.join(sorted(TRAINING_KEYS.get(section, ()))) or 'nothing'} there")
            out[section] = {**base, **given}
        else:
            if section in user and given != base and section != "model":
                raise ModelDirError(f"{source}: {section} is set by the model directory {directory.path} "
                                    f"({base!r}), the experiment says {given!r}")
            out[section] = base
    out["model_dir"] = str(directory.path.resolve())
    if not train_conf.get("init_param"):
        train_conf["init_param"] = str(directory.model_file.resolve())
    out["train_conf"] = train_conf
    return out


# The layers whose shape follows the vocabulary (FunASR's names; the engine maps them).
OUTPUT_LAYERS = ("decoder.embed", "decoder.output_layer", "ctc.ctc_lo")


def _excluded_prefixes(init_param) -> list[str]:
    """EXCLUDE prefixes of ``PATH:SRC:DST:EXCLUDE`` init_param entries (engine.trainer.init_spec)."""
    from engine.trainer.init_spec import init_specs

    if not init_param:
        return []
    try:
        return [prefix for spec in init_specs(init_param) for prefix in spec.exclude]
    except ValueError:
        return []  # the malformed entry is reported where it is loaded


def looks_like_path(value) -> bool:
    """``model:`` names a directory rather than an engine architecture (conformer, transformer, ...)."""
    from engine.funasr.config_map import BY_ENGINE_MODEL

    return isinstance(value, str) and value not in BY_ENGINE_MODEL and (
        "/" in value or value.startswith((".", "~")) or Path(value).expanduser().is_dir())
