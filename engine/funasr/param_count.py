"""Parameter count of a hybrid CTC/attention model from its config alone (no torch).

The console shows it when a model directory is chosen, before anything is built; a test checks
it against ``sum(p.numel() for p in build_model(...).parameters())``.
"""

from __future__ import annotations

from engine.funasr.config_map import ENGINE_DECODER_DEFAULTS, ENGINE_ENCODER_DEFAULTS

# (kernel, stride) per subsampling input layer, as engine.models.subsampling.CONV_SHAPES.
CONV_SHAPES = {"conv2d": [(3, 2), (3, 2)], "conv2d6": [(3, 2), (5, 3)], "conv2d8": [(3, 2), (3, 2), (3, 2)]}


def _linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def _attention(d: int, rel_pos: bool) -> int:
    return 4 * _linear(d, d) + ((d * d + 2 * d) if rel_pos else 0)  # linear_pos (no bias), pos_bias_u/v


def _feed_forward(d: int, units: int) -> int:
    return _linear(d, units) + _linear(units, d)


def _input_layer(kind: str, idim: int, d: int) -> int:
    if kind == "linear":
        return _linear(idim, d) + 2 * d
    total, channels, freq = 0, 1, idim
    for kernel, stride in CONV_SHAPES[kind]:
        total += channels * d * kernel * kernel + d
        channels = d
        freq = (freq - kernel) // stride + 1
    return total + _linear(d * freq, d)


def count_params(engine: dict, input_dim: int, vocab_size: int) -> int | None:
    """Parameters of the engine model ``engine["model"]`` (conformer | transformer); None for others."""
    model = engine.get("model")
    if model not in ENGINE_ENCODER_DEFAULTS:
        return None
    enc = {**ENGINE_ENCODER_DEFAULTS[model], **(engine.get("encoder_conf") or {})}
    dec = {**ENGINE_DECODER_DEFAULTS, **(engine.get("decoder_conf") or {})}
    d = int(enc["output_size"])
    rel_pos = enc["pos_enc_layer_type"] == "rel_pos"
    layer = _attention(d, rel_pos) + _feed_forward(d, int(enc["linear_units"])) + 4 * d  # two LayerNorms
    if model == "conformer":
        if enc["macaron_style"]:
            layer += _feed_forward(d, int(enc["linear_units"])) + 2 * d
        if enc["use_cnn_module"]:
            kernel = int(enc["cnn_module_kernel"])
            layer += _linear(d, 2 * d) + (d * kernel + d) + 2 * d + _linear(d, d) + 4 * d  # + norm_conv, norm_final
    encoder = _input_layer(enc["input_layer"], input_dim, d) + int(enc["num_blocks"]) * layer
    encoder += 2 * d if enc["normalize_before"] else 0
    dec_layer = 2 * _attention(d, False) + _feed_forward(d, int(dec["linear_units"])) + 6 * d
    decoder = vocab_size * d + int(dec["num_blocks"]) * dec_layer + _linear(d, vocab_size)
    decoder += 2 * d if dec["normalize_before"] else 0
    return encoder + decoder + _linear(d, vocab_size)
