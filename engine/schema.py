"""Declared schemas of the config sections whose keys go straight to a constructor.

``encoder_conf``, ``decoder_conf``, ``model_conf``, ``tokenizer_conf`` and ``specaug_conf`` map
onto constructor arguments (WeNet manner). Checking them by building the model would come after
the run directory is written, and would import torch, which the console must not; so each
component declares its keys here, with types and ranges, in one place, and
``engine.config.check_config`` checks them before anything is written. A test
(tests/reliability/test_schema_sync.py) holds each schema to its constructor's signature, so a
new constructor argument without a schema entry fails there, not in a user's run.

A new component plugs in by adding its schema to ``SECTION_SCHEMAS`` (keyed by the value of the
config key that selects it, e.g. ``model: conformer``); a section or selector without a schema
is left to its constructor's own checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

NONE = type(None)


@dataclass(frozen=True)
class Field:
    """One key: the types it takes and its range (``minimum``/``maximum`` inclusive, ``below`` exclusive)."""

    types: tuple[type, ...]
    minimum: float | None = None
    maximum: float | None = None
    below: float | None = None
    choices: tuple[Any, ...] | None = None

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (None when it is fine)."""
        if not type_ok(value, self.types):
            return f"must be {type_names(self.types)}, got {value!r}"
        if value is None:
            return None
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}, got {value!r}"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                return f"must be a finite number, got {value!r}"
            if self.minimum is not None and value < self.minimum:
                return f"must be at least {self.minimum}, got {value!r}"
            if self.maximum is not None and value > self.maximum:
                return f"must be at most {self.maximum}, got {value!r}"
            if self.below is not None and value >= self.below:
                return f"must be below {self.below}, got {value!r}"
        return None


def type_ok(value: Any, allowed: tuple[type, ...]) -> bool:
    """``isinstance`` with YAML's view of numbers: true/false is not an integer, an integer is a number."""
    if object in allowed:
        return True
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int) and float in allowed:
        return True
    return isinstance(value, allowed)


def type_names(types: tuple[type, ...]) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a mapping", NONE: "null"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def Int(minimum: int | None = None, maximum: int | None = None) -> Field:  # noqa: N802 (reads as a type)
    return Field((int,), minimum=minimum, maximum=maximum)


def Num(minimum: float | None = None, maximum: float | None = None, below: float | None = None) -> Field:  # noqa: N802
    return Field((float,), minimum=minimum, maximum=maximum, below=below)


def Choice(*choices: str) -> Field:  # noqa: N802
    return Field((str,), choices=choices)


BOOL = Field((bool,))
DROPOUT = Num(minimum=0.0, below=1.0)
ACTIVATIONS = ("gelu", "relu", "silu", "swish", "tanh")  # engine/models/activation.py
INPUT_LAYERS = ("conv2d", "conv2d6", "conv2d8", "linear")  # engine/models/subsampling.py
POS_ENC_TYPES = ("abs_pos", "rel_pos", "rope", "rope_pos", "no_pos")  # engine/models/encoder.py

_ENCODER_COMMON = {
    "output_size": Int(1),
    "attention_heads": Int(1),
    "linear_units": Int(1),
    "num_blocks": Int(1),
    "dropout_rate": DROPOUT,
    "positional_dropout_rate": DROPOUT,
    "attention_dropout_rate": DROPOUT,
    "input_layer": Choice(*INPUT_LAYERS),
    "pos_enc_layer_type": Choice(*POS_ENC_TYPES),
    "normalize_before": BOOL,
    "activation_type": Choice(*ACTIVATIONS),
    "causal": BOOL,
}

ENCODER_SCHEMAS: dict[str, dict[str, Field]] = {
    "transformer": dict(_ENCODER_COMMON),
    "conformer": {**_ENCODER_COMMON, "cnn_module_kernel": Int(1), "use_cnn_module": BOOL, "macaron_style": BOOL,
                  "cnn_module_norm": Choice("batch_norm", "layer_norm")},
}

DECODER_SCHEMA: dict[str, Field] = {
    "attention_heads": Int(1),
    "linear_units": Int(1),
    "num_blocks": Int(1),
    "dropout_rate": DROPOUT,
    "positional_dropout_rate": DROPOUT,
    "self_attention_dropout_rate": DROPOUT,
    "src_attention_dropout_rate": DROPOUT,
    "normalize_before": BOOL,
    "activation_type": Choice(*ACTIVATIONS),
}

MODEL_CONF_SCHEMA: dict[str, Field] = {
    "ctc_weight": Num(0.0, 1.0),
    "lsm_weight": Num(minimum=0.0, below=1.0),
    "length_normalized_loss": BOOL,
    # FunASR's names: the start and end token ids (a model directory's config.yaml sets them;
    # unset, the tokenizer's </s> serves as both)
    "sos": Field((int, NONE), minimum=0),
    "eos": Field((int, NONE), minimum=0),
}

TOKENIZER_SCHEMAS: dict[str, dict[str, Field]] = {
    "char": {"type": Choice("char", "bpe"), "english": Choice("word", "letter")},
    "bpe": {"type": Choice("char", "bpe"), "vocab_size": Int(5), "character_coverage": Num(minimum=0.9, maximum=1.0)},
}

SPECAUG_SCHEMA: dict[str, Field] = {
    "num_freq_mask": Int(0),
    "freq_mask_width": Int(0),
    "num_time_mask": Int(0),
    "time_mask_width": Field((int, NONE), minimum=0),
    "time_mask_width_ratio": Field((float, NONE), minimum=0.0, maximum=1.0),
    "time_warp_window": Int(0),
}

# Paraformer: FunASR's section keys (SANMEncoder, ParaformerSANMDecoder, CifPredictorV2, Paraformer),
# with the values engine/models/ supports.
def Only(*values: Any) -> Field:  # noqa: N802
    """A setting FunASR has that the engine supports at these values alone (None: may be null)."""
    types = {NONE if value is None else type(value) for value in values}
    if float in types:
        types.add(int)
    return Field(tuple(types), choices=tuple(value for value in values if value is not None))


SANM_ENCODER_SCHEMA: dict[str, Field] = {
    "output_size": Int(1), "attention_heads": Int(1), "linear_units": Int(1), "num_blocks": Int(1),
    "dropout_rate": DROPOUT, "positional_dropout_rate": DROPOUT, "attention_dropout_rate": DROPOUT,
    "input_layer": Only("pe", None), "pos_enc_class": Only("SinusoidalPositionEncoder"),
    "normalize_before": BOOL, "kernel_size": Int(1), "sanm_shfit": Int(0),
    "selfattention_layer_type": Only("sanm"), "concat_after": Only(False), "positionwise_layer_type": Only("linear"),
}
PARAFORMER_DECODER_SCHEMA: dict[str, Field] = {
    "attention_heads": Int(1), "linear_units": Int(1), "num_blocks": Int(1), "dropout_rate": DROPOUT,
    "positional_dropout_rate": DROPOUT, "self_attention_dropout_rate": DROPOUT, "src_attention_dropout_rate": DROPOUT,
    "att_layer_num": Int(1), "kernel_size": Int(1), "sanm_shfit": Field((int, NONE), minimum=0),
    "normalize_before": Only(True), "input_layer": Only("embed"), "use_output_layer": Only(True),
    "concat_after": Only(False),
}
CIF_PREDICTOR_SCHEMA: dict[str, Field] = {
    "idim": Int(1), "l_order": Int(0), "r_order": Int(0), "threshold": Only(1.0), "dropout": DROPOUT,
    "smooth_factor": Num(minimum=0.0), "noise_threshold": Num(minimum=0.0), "tail_threshold": Num(minimum=0.0),
    "tail_mask": BOOL,
}
PARAFORMER_MODEL_CONF_SCHEMA: dict[str, Field] = {
    "ctc_weight": Num(minimum=0.0, below=1.0), "lsm_weight": Num(minimum=0.0, below=1.0),
    "length_normalized_loss": BOOL, "predictor_weight": Num(minimum=0.0), "predictor_bias": Only(0, 1),
    "sampling_ratio": Num(0.0, 1.0), "sos": Field((int, NONE), minimum=0), "eos": Field((int, NONE), minimum=0),
    "blank_id": Int(0), "ignore_id": Only(-1), "share_embedding": Only(False), "use_1st_decoder_loss": Only(False),
}

# section -> (the top-level key that selects the component, or None) -> {selector value: schema}.
SECTION_SCHEMAS: dict[str, tuple[str | None, dict[str, dict[str, Field]]]] = {
    "encoder_conf": ("model", {**ENCODER_SCHEMAS, "paraformer": SANM_ENCODER_SCHEMA}),
    "decoder_conf": ("model", {"conformer": DECODER_SCHEMA, "transformer": DECODER_SCHEMA,
                               "paraformer": PARAFORMER_DECODER_SCHEMA}),
    "model_conf": ("model", {"conformer": MODEL_CONF_SCHEMA, "transformer": MODEL_CONF_SCHEMA,
                             "paraformer": PARAFORMER_MODEL_CONF_SCHEMA}),
    "predictor_conf": ("model", {"paraformer": CIF_PREDICTOR_SCHEMA}),
    "tokenizer_conf": ("tokenizer_conf.type", TOKENIZER_SCHEMAS),
    "specaug_conf": (None, {"": SPECAUG_SCHEMA}),
}


def _selector_value(config: dict, selector: str | None) -> str:
    if selector is None:
        return ""
    node: Any = config
    for part in selector.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return "char" if selector == "tokenizer_conf.type" and node is None else str(node)


def check_section(config: dict, section: str) -> list[tuple[str, str]]:
    """(dotted key, problem) for every key of ``section`` its declared schema rejects."""
    if section not in SECTION_SCHEMAS or not isinstance(config.get(section), dict):
        return []
    selector, schemas = SECTION_SCHEMAS[section]
    schema = schemas.get(_selector_value(config, selector))
    if schema is None:
        return []  # a component without a declared schema: its constructor checks its keys
    problems = []
    for key, value in config[section].items():
        dotted = f"{section}.{key}"
        field = schema.get(str(key))
        if field is None:
            what = f" for {selector} {_selector_value(config, selector)}" if selector else ""
            problems.append((dotted, f"unknown key{what} (accepted: {', '.join(schema)})"))
            continue
        problem = field.problem(value)
        if problem:
            problems.append((dotted, problem))
    return problems + _cross_checks(config, section)


def _cross_checks(config: dict, section: str) -> list[tuple[str, str]]:
    conf = config[section]
    if section == "encoder_conf":
        size, heads = conf.get("output_size", 256), conf.get("attention_heads", 4)
        if _positive_ints(size, heads) and size % heads:
            return [("encoder_conf.attention_heads", f"must divide output_size ({size}), got {heads}")]
        kernel = conf.get("cnn_module_kernel")
        if config.get("model") == "conformer" and _positive_ints(kernel) and kernel % 2 == 0 \
                and conf.get("causal") is not True:
            return [("encoder_conf.cnn_module_kernel", f"must be odd for a non-causal model, got {kernel}")]
    if section == "decoder_conf":
        encoder = config.get("encoder_conf") if isinstance(config.get("encoder_conf"), dict) else {}
        size, heads = encoder.get("output_size", 256), conf.get("attention_heads", 4)
        if _positive_ints(size, heads) and size % heads:
            return [("decoder_conf.attention_heads", f"must divide encoder_conf.output_size ({size}), got {heads}")]
    if section == "tokenizer_conf" and conf.get("type") == "bpe" and "vocab_size" not in conf:
        return [("tokenizer_conf.vocab_size", "is required for type bpe")]
    if section == "specaug_conf" and conf and conf.get("time_mask_width") is None \
            and "time_mask_width_ratio" in conf and conf["time_mask_width_ratio"] is None:
        return [("specaug_conf.time_mask_width", "give time_mask_width or time_mask_width_ratio")]
    return []


def _positive_ints(*values: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)
