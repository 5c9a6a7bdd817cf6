"""ASR models: Conformer / Transformer encoders, attention decoder, CTC, the hybrid model;
Paraformer (SANM encoder, CIF predictor, SANM decoder).

``build_model`` maps the config's ``model_conf``, ``encoder_conf``, ``decoder_conf`` (and, for
Paraformer, ``predictor_conf``) keys directly to constructor arguments; an unknown key is an
error that names its section. For Paraformer these keys are exactly FunASR's config.yaml keys
(SANMEncoder, ParaformerSANMDecoder, CifPredictorV2, Paraformer).
"""

from __future__ import annotations

import inspect

from torch import nn

from engine.models.asr_model import ASRModel
from engine.models.ctc import CTC
from engine.models.decoder import TransformerDecoder
from engine.models.cif_predictor import CifPredictorV2
from engine.models.encoder import ConformerEncoder, TransformerEncoder
from engine.models.paraformer import Paraformer
from engine.models.paraformer_decoder import ParaformerSANMDecoder
from engine.models.sanm_encoder import SANMEncoder

ENCODERS = {"conformer": ConformerEncoder, "transformer": TransformerEncoder}
MODELS = (*ENCODERS, "paraformer")


def _check_keys(section: str, cls, conf: dict, reserved: tuple[str, ...]) -> None:
    accepted = [name for name in inspect.signature(cls).parameters if name not in reserved]
    unknown = sorted(set(conf) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown key(s) in {section}: {', '.join(unknown)} (accepted: {', '.join(accepted)})"
        )


def build_model(model: str, input_dim: int, vocab_size: int, model_conf: dict | None = None,
                encoder_conf: dict | None = None, decoder_conf: dict | None = None,
                sos_eos_id: int | None = None, predictor_conf: dict | None = None) -> nn.Module:
    """Build the model named ``model``: the hybrid CTC/attention model (conformer | transformer)
    or paraformer."""
    model_conf, encoder_conf, decoder_conf = dict(model_conf or {}), dict(encoder_conf or {}), dict(decoder_conf or {})
    if model == "paraformer":
        return build_paraformer(input_dim, vocab_size, model_conf, encoder_conf, decoder_conf,
                                dict(predictor_conf or {}), sos_eos_id)
    if model not in ENCODERS:
        raise ValueError(f"model {model!r} is not one of {', '.join(MODELS)}")
    if predictor_conf:
        raise ValueError(f"predictor_conf is only for model paraformer, not {model}")
    encoder_cls = ENCODERS[model]
    _check_keys("encoder_conf", encoder_cls, encoder_conf, ("input_size",))
    _check_keys("decoder_conf", TransformerDecoder, decoder_conf, ("vocab_size", "encoder_output_size"))
    _check_keys("model_conf", ASRModel, model_conf, ("vocab_size", "encoder", "decoder", "ctc", "sos_eos_id", "ignore_id"))
    encoder = encoder_cls(input_dim, **encoder_conf)
    decoder = TransformerDecoder(vocab_size, encoder.output_size(), **decoder_conf)
    ctc = CTC(vocab_size, encoder.output_size())
    return ASRModel(vocab_size, encoder, decoder, ctc, sos_eos_id=sos_eos_id, **model_conf)


def build_paraformer(input_dim: int, vocab_size: int, model_conf: dict, encoder_conf: dict, decoder_conf: dict,
                     predictor_conf: dict, sos_eos_id: int | None = None) -> Paraformer:
    """Paraformer from FunASR's four sections. ``predictor_conf.idim`` (FunASR writes it) must
    equal the encoder's output size; eos defaults to the tokenizer's ``sos_eos_id``."""
    _check_keys("encoder_conf", SANMEncoder, encoder_conf, ("input_size",))
    _check_keys("decoder_conf", ParaformerSANMDecoder, decoder_conf, ("vocab_size", "encoder_output_size"))
    _check_keys("predictor_conf", CifPredictorV2, predictor_conf, ())
    _check_keys("model_conf", Paraformer, model_conf, ("vocab_size", "encoder", "decoder", "predictor"))
    encoder = SANMEncoder(input_dim, **encoder_conf)
    idim = predictor_conf.pop("idim", encoder.output_size())
    if idim != encoder.output_size():
        raise ValueError(f"predictor_conf.idim ({idim}) must equal encoder_conf.output_size ({encoder.output_size()})")
    decoder = ParaformerSANMDecoder(vocab_size, encoder.output_size(), **decoder_conf)
    predictor = CifPredictorV2(idim, **predictor_conf)
    if sos_eos_id is not None:
        model_conf.setdefault("eos", sos_eos_id)
    return Paraformer(vocab_size, encoder, decoder, predictor, **model_conf)


def num_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = ["ASRModel", "Paraformer", "build_model", "num_params", "ConformerEncoder", "TransformerEncoder", "TransformerDecoder", "CTC"]
