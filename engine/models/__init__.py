"""ASR models: Conformer / Transformer encoders, attention decoder, CTC, the hybrid model.

``build_model`` maps the config's ``model_conf``, ``encoder_conf`` and ``decoder_conf`` keys
directly to constructor arguments; an unknown key is an error that names it.
"""

from __future__ import annotations

import inspect

from torch import nn

from engine.models.asr_model import ASRModel
from engine.models.ctc import CTC
from engine.models.decoder import TransformerDecoder
from engine.models.encoder import ConformerEncoder, TransformerEncoder

ENCODERS = {"conformer": ConformerEncoder, "transformer": TransformerEncoder}


def _check_keys(section: str, cls, conf: dict, reserved: tuple[str, ...]) -> None:
    accepted = [name for name in inspect.signature(cls).parameters if name not in reserved]
    unknown = sorted(set(conf) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown key(s) in {section}: {', '.join(unknown)} (accepted: {', '.join(accepted)})"
        )


def build_model(model: str, input_dim: int, vocab_size: int, model_conf: dict | None = None,
                encoder_conf: dict | None = None, decoder_conf: dict | None = None,
                sos_eos_id: int | None = None) -> ASRModel:
    """Build the hybrid CTC/attention model named ``model`` (conformer | transformer)."""
    model_conf, encoder_conf, decoder_conf = dict(model_conf or {}), dict(encoder_conf or {}), dict(decoder_conf or {})
    if model not in ENCODERS:
        raise ValueError(f"model {model!r} is not one of {', '.join(ENCODERS)}")
    encoder_cls = ENCODERS[model]
    _check_keys("encoder_conf", encoder_cls, encoder_conf, ("input_size",))
    _check_keys("decoder_conf", TransformerDecoder, decoder_conf, ("vocab_size", "encoder_output_size"))
    _check_keys("model_conf", ASRModel, model_conf, ("vocab_size", "encoder", "decoder", "ctc", "sos_eos_id", "ignore_id"))
    encoder = encoder_cls(input_dim, **encoder_conf)
    decoder = TransformerDecoder(vocab_size, encoder.output_size(), **decoder_conf)
    ctc = CTC(vocab_size, encoder.output_size())
    return ASRModel(vocab_size, encoder, decoder, ctc, sos_eos_id=sos_eos_id, **model_conf)


def num_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = ["ASRModel", "build_model", "num_params", "ConformerEncoder", "TransformerEncoder", "TransformerDecoder", "CTC"]
