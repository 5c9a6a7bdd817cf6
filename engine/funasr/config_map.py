"""FunASR config.yaml <-> engine config, and the registry of FunASR architectures the engine builds.

No torch import: the console reads model directories with it.

A FunASR config names classes (``model: Conformer``, ``encoder: ConformerEncoder``,
``frontend: WavFrontend``, ``tokenizer: CharTokenizer``) and gives their constructor arguments in
the matching ``*_conf`` sections. The engine's models follow the same shape (ESPnet/WeNet lineage),
so the mapping is mostly a check that every FunASR argument has an engine equivalent: keys are
filled with FunASR's own defaults (which differ from the engine's: FunASR's ConformerEncoder
defaults to ``macaron_style: false``, ``cnn_module_kernel: 31``, ``rel_pos_type: legacy``), then
translated; a value the engine cannot reproduce exactly is an error naming the key, never a
silent approximation.

One registry entry per FunASR model class (:data:`ARCHITECTURES`). Paraformer plugs in as an
identity entry: its engine conf keys are FunASR's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


class FunASRConfigError(ValueError):
    """A FunASR config the engine cannot build or write; the message names the key."""


# FunASR 1.4.16 constructor defaults (funasr/models/conformer/encoder.py, transformer/encoder.py,
# transformer/decoder.py, transformer/model.py): a key absent from config.yaml takes these values.
FUNASR_CONFORMER_ENCODER = {
    "output_size": 256, "attention_heads": 4, "linear_units": 2048, "num_blocks": 6, "dropout_rate": 0.1,
    "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.0, "input_layer": "conv2d",
    "normalize_before": True, "concat_after": False, "positionwise_layer_type": "linear",
    "positionwise_conv_kernel_size": 3, "macaron_style": False, "rel_pos_type": "legacy",
    "pos_enc_layer_type": "rel_pos", "selfattention_layer_type": "rel_selfattn", "activation_type": "swish",
    "use_cnn_module": True, "zero_triu": False, "cnn_module_kernel": 31, "padding_idx": -1,
    "interctc_layer_idx": [], "interctc_use_conditioning": False, "stochastic_depth_rate": 0.0,
}
FUNASR_TRANSFORMER_ENCODER = {
    "output_size": 256, "attention_heads": 4, "linear_units": 2048, "num_blocks": 6, "dropout_rate": 0.1,
    "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.0, "input_layer": "conv2d",
    "normalize_before": True, "concat_after": False, "positionwise_layer_type": "linear",
    "positionwise_conv_kernel_size": 1, "padding_idx": -1, "interctc_layer_idx": [],
    "interctc_use_conditioning": False,
}
FUNASR_TRANSFORMER_DECODER = {
    "attention_heads": 4, "linear_units": 2048, "num_blocks": 6, "dropout_rate": 0.1,
    "positional_dropout_rate": 0.1, "self_attention_dropout_rate": 0.0, "src_attention_dropout_rate": 0.0,
    "input_layer": "embed", "use_output_layer": True, "normalize_before": True, "concat_after": False,
}
FUNASR_MODEL_CONF = {
    "ctc_weight": 0.5, "interctc_weight": 0.0, "ignore_id": -1, "blank_id": 0, "sos": 1, "eos": 2,
    "lsm_weight": 0.0, "length_normalized_loss": False, "share_embedding": False,
}
# model_conf keys that only change what FunASR's trainer reports, not the model.
FUNASR_REPORT_ONLY = ("report_cer", "report_wer", "sym_space", "sym_blank")
FUNASR_WAV_FRONTEND = {
    "fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25, "frame_shift": 10,
    "filter_length_min": -1, "filter_length_max": -1, "lfr_m": 1, "lfr_n": 1, "dither": 1.0,
    "snip_edges": True, "upsacle_samples": True,
}
FUNASR_CTC_CONF = {"dropout_rate": 0.0, "ctc_type": "builtin", "reduce": True, "ignore_nan_grad": True}

ENCODER_SHARED = ("output_size", "attention_heads", "linear_units", "num_blocks", "dropout_rate",
                  "positional_dropout_rate", "attention_dropout_rate", "input_layer", "normalize_before")
CONFORMER_ONLY = ("macaron_style", "activation_type", "use_cnn_module", "cnn_module_kernel")
DECODER_SHARED = ("attention_heads", "linear_units", "num_blocks", "dropout_rate", "positional_dropout_rate",
                  "self_attention_dropout_rate", "src_attention_dropout_rate", "normalize_before")
INPUT_LAYERS = ("conv2d", "conv2d6", "conv2d8")


@dataclass(frozen=True)
class Architecture:
    """One FunASR model class the engine builds.

    ``to_engine(funasr_config, where)`` -> engine sections {model, model_conf, encoder_conf,
    decoder_conf, ...}; ``to_funasr(engine_config, where)`` -> FunASR sections. ``rename`` lists
    (FunASR prefix, engine prefix) pairs of state-dict keys that differ (empty: identical names).
    """

    funasr_model: str
    engine_model: str
    encoder: str
    decoder: str | None
    to_engine: Callable[[dict, str], dict]
    to_funasr: Callable[[dict, str], dict]
    rename: tuple[tuple[str, str], ...] = ()
    extra_sections: tuple[str, ...] = field(default=())


def _section(config: dict, name: str, where: str) -> dict:
    value = config.get(name) or {}
    if not isinstance(value, dict):
        raise FunASRConfigError(f"{where}: {name} must be a mapping, got {value!r}")
    return dict(value)


def _filled(conf: dict, defaults: dict, section: str, where: str) -> dict:
    unknown = sorted(set(conf) - set(defaults))
    if unknown:
        raise FunASRConfigError(f"{where}: {section}.{unknown[0]} is not an argument FunASR's class takes here "
                                f"(known: {', '.join(defaults)})")
    return {**defaults, **conf}


def _require(conf: dict, key: str, allowed, section: str, where: str, why: str = "") -> None:
    allowed = allowed if isinstance(allowed, (tuple, list)) else (allowed,)
    if conf.get(key) not in allowed:
        shown = " or ".join(repr(a) for a in allowed)
        raise FunASRConfigError(f"{where}: {section}.{key} = {conf.get(key)!r} is not supported by the engine "
                                f"(it builds {shown}){': ' + why if why else ''}")


def _model_conf_to_engine(funasr_config: dict, where: str) -> dict:
    raw = _section(funasr_config, "model_conf", where)
    for key in FUNASR_REPORT_ONLY:
        raw.pop(key, None)
    conf = _filled(raw, FUNASR_MODEL_CONF, "model_conf", where)
    _require(conf, "interctc_weight", (0, 0.0), "model_conf", where)
    _require(conf, "ignore_id", -1, "model_conf", where)
    _require(conf, "blank_id", 0, "model_conf", where)
    _require(conf, "share_embedding", False, "model_conf", where)
    ctc = _filled(_section(funasr_config, "ctc_conf", where), FUNASR_CTC_CONF, "ctc_conf", where)
    _require(ctc, "ctc_type", "builtin", "ctc_conf", where)
    _require(ctc, "dropout_rate", (0, 0.0), "ctc_conf", where)
    return {"ctc_weight": conf["ctc_weight"], "lsm_weight": conf["lsm_weight"],
            "length_normalized_loss": conf["length_normalized_loss"], "sos": conf["sos"], "eos": conf["eos"]}


def _model_conf_to_funasr(engine_config: dict) -> dict:
    conf = dict(engine_config.get("model_conf") or {})
    return {"ctc_weight": conf.get("ctc_weight", 0.5), "lsm_weight": conf.get("lsm_weight", 0.0),
            "length_normalized_loss": conf.get("length_normalized_loss", False),
            "sos": conf["sos"], "eos": conf["eos"]}


def _encoder_to_engine(conf: dict, conformer: bool, where: str) -> dict:
    section = "encoder_conf"
    _require(conf, "input_layer", INPUT_LAYERS, section, where)
    _require(conf, "concat_after", False, section, where)
    _require(conf, "positionwise_layer_type", "linear", section, where)
    _require(conf, "interctc_layer_idx", ([],), section, where)
    _require(conf, "interctc_use_conditioning", False, section, where)
    out = {key: conf[key] for key in ENCODER_SHARED}
    if conformer:
        _require(conf, "zero_triu", False, section, where)
        _require(conf, "stochastic_depth_rate", (0, 0.0), section, where)
        attention = (conf["pos_enc_layer_type"], conf["selfattention_layer_type"])
        if attention == ("abs_pos", "selfattn"):
            out["pos_enc_layer_type"] = "abs_pos"
        elif attention == ("rel_pos", "rel_selfattn"):
            _require(conf, "rel_pos_type", "latest", section, where,
                     "the legacy relative positions (ESPnet before PR 2816) are not implemented")
            out["pos_enc_layer_type"] = "rel_pos"
        else:
            raise FunASRConfigError(
                f"{where}: encoder_conf.pos_enc_layer_type/selfattention_layer_type = {attention[0]}/{attention[1]} "
                "is not supported (the engine builds rel_pos/rel_selfattn with rel_pos_type latest, or abs_pos/selfattn)")
        out.update({key: conf[key] for key in CONFORMER_ONLY})
        out["cnn_module_norm"] = "batch_norm"
    else:
        out["pos_enc_layer_type"] = "abs_pos"
        out["activation_type"] = "relu"
        # FunASR's TransformerEncoder gives its conv input layer's positional encoding dropout_rate.
        out["positional_dropout_rate"] = conf["dropout_rate"]
    return out


def _decoder_to_engine(conf: dict, where: str) -> dict:
    section = "decoder_conf"
    _require(conf, "input_layer", "embed", section, where)
    _require(conf, "use_output_layer", True, section, where)
    _require(conf, "concat_after", False, section, where)
    out = {key: conf[key] for key in DECODER_SHARED}
    out["activation_type"] = "relu"
    return out


def _hybrid_to_engine(conformer: bool):
    encoder_class = "ConformerEncoder" if conformer else "TransformerEncoder"
    encoder_defaults = FUNASR_CONFORMER_ENCODER if conformer else FUNASR_TRANSFORMER_ENCODER

    def to_engine(funasr_config: dict, where: str) -> dict:
        encoder = funasr_config.get("encoder", encoder_class)
        if encoder != encoder_class:
            raise FunASRConfigError(f"{where}: encoder {encoder!r} with model {funasr_config.get('model')} "
                                    f"is not supported (the engine builds {encoder_class})")
        decoder = funasr_config.get("decoder", "TransformerDecoder")
        if decoder != "TransformerDecoder":
            raise FunASRConfigError(f"{where}: decoder {decoder!r} is not supported (the engine builds TransformerDecoder)")
        encoder_conf = _filled(_section(funasr_config, "encoder_conf", where), encoder_defaults, "encoder_conf", where)
        decoder_conf = _filled(_section(funasr_config, "decoder_conf", where), FUNASR_TRANSFORMER_DECODER,
                               "decoder_conf", where)
        return {"model": "conformer" if conformer else "transformer",
                "model_conf": _model_conf_to_engine(funasr_config, where),
                "encoder_conf": _encoder_to_engine(encoder_conf, conformer, where),
                "decoder_conf": _decoder_to_engine(decoder_conf, where)}

    return to_engine


ENGINE_ENCODER_DEFAULTS = {
    # engine.models.encoder defaults, for configs that leave keys out.
    "conformer": {"output_size": 256, "attention_heads": 4, "linear_units": 2048, "num_blocks": 6,
                  "dropout_rate": 0.1, "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.0,
                  "input_layer": "conv2d", "pos_enc_layer_type": "rel_pos", "normalize_before": True,
                  "cnn_module_kernel": 15, "use_cnn_module": True, "macaron_style": True,
                  "activation_type": "swish", "causal": False, "cnn_module_norm": "batch_norm"},
    "transformer": {"output_size": 256, "attention_heads": 4, "linear_units": 2048, "num_blocks": 6,
                    "dropout_rate": 0.1, "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.0,
                    "input_layer": "conv2d", "pos_enc_layer_type": "abs_pos", "normalize_before": True,
                    "activation_type": "relu", "causal": False},
}
ENGINE_DECODER_DEFAULTS = {
    "attention_heads": 4, "linear_units": 2048, "num_blocks": 6, "dropout_rate": 0.1,
    "positional_dropout_rate": 0.1, "self_attention_dropout_rate": 0.0, "src_attention_dropout_rate": 0.0,
    "normalize_before": True, "activation_type": "relu",
}


def _not_exportable(key: str, value, why: str) -> FunASRConfigError:
    return FunASRConfigError(f"cannot write a FunASR model directory: {key} = {value!r} {why}")


def _hybrid_to_funasr(conformer: bool):
    def to_funasr(engine_config: dict, where: str) -> dict:
        name = "conformer" if conformer else "transformer"
        enc = {**ENGINE_ENCODER_DEFAULTS[name], **(engine_config.get("encoder_conf") or {})}
        dec = {**ENGINE_DECODER_DEFAULTS, **(engine_config.get("decoder_conf") or {})}
        if enc["causal"]:
            raise _not_exportable("encoder_conf.causal", True, "has no FunASR ConformerEncoder equivalent")
        if enc["input_layer"] not in INPUT_LAYERS:
            raise _not_exportable("encoder_conf.input_layer", enc["input_layer"],
                                  f"differs from FunASR's (exportable: {', '.join(INPUT_LAYERS)})")
        if dec["activation_type"] != "relu":
            raise _not_exportable("decoder_conf.activation_type", dec["activation_type"],
                                  "(FunASR's TransformerDecoder uses relu)")
        encoder_conf = {key: enc[key] for key in ENCODER_SHARED}
        if conformer:
            if enc["pos_enc_layer_type"] == "rel_pos":
                encoder_conf.update(pos_enc_layer_type="rel_pos", selfattention_layer_type="rel_selfattn",
                                    rel_pos_type="latest")
            elif enc["pos_enc_layer_type"] == "abs_pos":
                encoder_conf.update(pos_enc_layer_type="abs_pos", selfattention_layer_type="selfattn",
                                    rel_pos_type="latest")
            else:
                raise _not_exportable("encoder_conf.pos_enc_layer_type", enc["pos_enc_layer_type"],
                                      "has no FunASR ConformerEncoder equivalent (rel_pos, abs_pos have)")
            if enc["cnn_module_norm"] != "batch_norm":
                raise _not_exportable("encoder_conf.cnn_module_norm", enc["cnn_module_norm"],
                                      "(FunASR's ConvolutionModule uses batch_norm)")
            encoder_conf.update({key: enc[key] for key in CONFORMER_ONLY})
        else:
            if enc["pos_enc_layer_type"] != "abs_pos" or enc["activation_type"] != "relu":
                raise _not_exportable("encoder_conf.pos_enc_layer_type/activation_type",
                                      f"{enc['pos_enc_layer_type']}/{enc['activation_type']}",
                                      "(FunASR's TransformerEncoder is abs_pos/relu)")
        return {"model": "Conformer" if conformer else "Transformer", "model_conf": _model_conf_to_funasr(engine_config),
                "encoder": "ConformerEncoder" if conformer else "TransformerEncoder", "encoder_conf": encoder_conf,
                "decoder": "TransformerDecoder", "decoder_conf": {key: dec[key] for key in DECODER_SHARED},
                "ctc_conf": {"dropout_rate": 0.0, "ctc_type": "builtin", "reduce": True, "ignore_nan_grad": True}}

    return to_funasr


# (FunASR prefix, engine prefix): the only parameter names that differ. FunASR wraps the input
# layer's projection and the decoder's embedding in nn.Sequential with the positional encoding.
HYBRID_RENAME = (("encoder.embed.out.0.", "encoder.embed.out."), ("decoder.embed.0.", "decoder.embed."))


def _identity_to_engine(engine_model: str, sections: tuple[str, ...]):
    def to_engine(funasr_config: dict, where: str) -> dict:
        out = {"model": engine_model}
        for name in sections:
            out[name] = _section(funasr_config, name, where)
        return out
    return to_engine


def _identity_to_funasr(funasr_model: str, classes: dict[str, str], sections: tuple[str, ...]):
    def to_funasr(engine_config: dict, where: str) -> dict:
        out = {"model": funasr_model, **classes}
        for name in sections:
            out[name] = dict(engine_config.get(name) or {})
        return out
    return to_funasr


PARAFORMER_SECTIONS = ("model_conf", "encoder_conf", "decoder_conf", "predictor_conf")
PARAFORMER_CLASSES = {"encoder": "SANMEncoder", "decoder": "ParaformerSANMDecoder", "predictor": "CifPredictorV2"}

ARCHITECTURES: dict[str, Architecture] = {
    "Conformer": Architecture("Conformer", "conformer", "ConformerEncoder", "TransformerDecoder",
                              _hybrid_to_engine(True), _hybrid_to_funasr(True), HYBRID_RENAME),
    "Transformer": Architecture("Transformer", "transformer", "TransformerEncoder", "TransformerDecoder",
                                _hybrid_to_engine(False), _hybrid_to_funasr(False), HYBRID_RENAME),
    # Paraformer's engine conf keys and parameter names are FunASR's (engine.models.paraformer).
    "Paraformer": Architecture("Paraformer", "paraformer", "SANMEncoder", "ParaformerSANMDecoder",
                               _identity_to_engine("paraformer", PARAFORMER_SECTIONS),
                               _identity_to_funasr("Paraformer", PARAFORMER_CLASSES, PARAFORMER_SECTIONS),
                               extra_sections=("predictor_conf",)),
}
BY_ENGINE_MODEL = {arch.engine_model: arch for arch in ARCHITECTURES.values()}


def architecture(funasr_model, where: str = "config.yaml") -> Architecture:
    """The registry entry of a FunASR ``model:`` name; an unknown one lists the supported ones."""
    if funasr_model not in ARCHITECTURES:
        raise FunASRConfigError(f"{where}: model {funasr_model!r} is not a FunASR architecture the engine builds "
                                f"(supported: {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[funasr_model]


def engine_architecture(engine_model: str) -> Architecture:
    if engine_model not in BY_ENGINE_MODEL:
        raise FunASRConfigError(f"cannot write a FunASR model directory for model {engine_model!r} "
                                f"(exportable: {', '.join(BY_ENGINE_MODEL)})")
    return BY_ENGINE_MODEL[engine_model]


def is_funasr_config(config: dict) -> bool:
    """True for a FunASR config.yaml (class names), False for an engine config (lower-case model)."""
    model = config.get("model")
    return isinstance(model, str) and (model in ARCHITECTURES or "encoder" in config or "frontend" in config)


def frontend_to_engine(funasr_config: dict, where: str) -> tuple[dict, bool]:
    """(engine frontend_conf, whether a global CMVN file is named) of FunASR's WavFrontend."""
    frontend = funasr_config.get("frontend", "WavFrontend")
    if frontend != "WavFrontend":
        raise FunASRConfigError(f"{where}: frontend {frontend!r} is not supported (the engine computes WavFrontend)")
    conf = _section(funasr_config, "frontend_conf", where)
    has_cmvn = bool(conf.pop("cmvn_file", None))
    conf = _filled(conf, FUNASR_WAV_FRONTEND, "frontend_conf", where)
    for key, value in (("snip_edges", True), ("upsacle_samples", True), ("filter_length_min", -1),
                       ("filter_length_max", -1)):
        _require(conf, key, value, "frontend_conf", where)
    keys = ("fs", "n_mels", "frame_length", "frame_shift", "dither", "window", "lfr_m", "lfr_n")
    return {key: conf[key] for key in keys}, has_cmvn


def frontend_to_funasr(frontend_conf: dict, cmvn_file: str | None) -> dict:
    keys = ("fs", "window", "n_mels", "frame_length", "frame_shift", "lfr_m", "lfr_n", "dither")
    conf = {key: frontend_conf[key] for key in keys if key in frontend_conf}
    conf = {**{k: FUNASR_WAV_FRONTEND[k] for k in keys}, **conf}
    if cmvn_file:
        conf["cmvn_file"] = cmvn_file
    return conf


def tokenizer_to_engine(funasr_config: dict, where: str) -> dict:
    """Engine tokenizer_conf of FunASR's tokenizer section (the token list itself is a file)."""
    tokenizer = funasr_config.get("tokenizer", "CharTokenizer")
    conf = _section(funasr_config, "tokenizer_conf", where)
    if tokenizer == "CharTokenizer":
        unk = conf.get("unk_symbol", "<unk>")
        if unk != "<unk>":
            raise FunASRConfigError(f"{where}: tokenizer_conf.unk_symbol {unk!r} is not supported (only <unk>)")
        if conf.get("seg_dict"):
            raise FunASRConfigError(f"{where}: tokenizer_conf.seg_dict (word segmentation) is not supported")
        return {"type": "char"}
    if tokenizer == "SentencepiecesTokenizer":
        return {"type": "bpe"}
    raise FunASRConfigError(f"{where}: tokenizer {tokenizer!r} is not supported "
                            "(supported: CharTokenizer, SentencepiecesTokenizer)")


def funasr_to_engine(funasr_config: dict, where: str = "config.yaml") -> dict:
    """Engine sections of a FunASR config.yaml: model, model_conf, encoder_conf, decoder_conf
    (+ the architecture's extra sections), frontend_conf, cmvn, tokenizer_conf."""
    arch = architecture(funasr_config.get("model"), where)
    normalize = funasr_config.get("normalize")
    if normalize not in (None, "none"):
        raise FunASRConfigError(f"{where}: normalize {normalize!r} is not supported (CMVN goes in "
                                "frontend_conf.cmvn_file, as FunASR's WavFrontend reads it)")
    sections = arch.to_engine(funasr_config, where)
    frontend_conf, has_cmvn = frontend_to_engine(funasr_config, where)
    sections.update(frontend_conf=frontend_conf, cmvn="global" if has_cmvn else "none",
                    tokenizer_conf=tokenizer_to_engine(funasr_config, where))
    return sections


def engine_to_funasr(engine_config: dict, *, token_list_file: str, bpe_model: str | None = None,
                     cmvn_file: str | None = "am.mvn") -> dict:
    """A FunASR config.yaml for an engine config (model_conf must carry ``sos``/``eos``)."""
    arch = engine_architecture(engine_config.get("model", "conformer"))
    out = arch.to_funasr(engine_config, "config")
    out["frontend"] = "WavFrontend"
    out["frontend_conf"] = frontend_to_funasr(engine_config.get("frontend_conf") or {}, cmvn_file)
    out["specaug"] = None
    out["normalize"] = None
    if bpe_model:
        out["tokenizer"] = "SentencepiecesTokenizer"
        out["tokenizer_conf"] = {"bpemodel": bpe_model, "token_list": token_list_file, "unk_symbol": "<unk>"}
    else:
        out["tokenizer"] = "CharTokenizer"
        out["tokenizer_conf"] = {"token_list": token_list_file, "unk_symbol": "<unk>"}
    return out


def rename_keys(keys, rename: tuple[tuple[str, str], ...], to_engine: bool) -> dict[str, str]:
    """{original key: renamed key} for state-dict keys moving FunASR -> engine (or back)."""
    out = {}
    for key in keys:
        new = key
        for funasr_prefix, engine_prefix in rename:
            src, dst = (funasr_prefix, engine_prefix) if to_engine else (engine_prefix, funasr_prefix)
            if key.startswith(src):
                new = dst + key[len(src):]
                break
        out[key] = new
    return out


def looks_funasr_keys(keys) -> bool:
    """True when a state dict uses FunASR's names for the hybrid models' renamed modules."""
    return any(key.startswith(prefix) for key in keys for prefix, _ in HYBRID_RENAME)
