"""Which decoding modes a model supports, without importing torch (the console asks here).

The hybrid CTC/attention models (conformer, transformer) have the four WeNet modes; Paraformer
has its one-pass non-autoregressive search (``paraformer``) and, when it was trained with a
CTC head (``model_conf.ctc_weight`` > 0), the two CTC searches over that head.
"""

from __future__ import annotations

CTC_MODES = ("ctc_greedy", "ctc_prefix_beam")
ATTENTION_MODES = ("attention", "attention_rescoring")
PARAFORMER_MODES = ("paraformer",)
MODES = (*CTC_MODES, *ATTENTION_MODES, *PARAFORMER_MODES)

# The mode each kind of model decodes with when none is asked for.
DEFAULT_MODES = {"paraformer": "paraformer"}
DEFAULT_MODE = "attention_rescoring"


def supported_modes(model_name: str, config: dict | None = None) -> tuple[str, ...]:
    """Modes the model ``model_name`` (config.yaml's ``model``) supports, given its config."""
    if model_name == "paraformer":
        model_conf = (config or {}).get("model_conf") or {}
        has_ctc = float(model_conf.get("ctc_weight", 0.0) or 0.0) > 0.0
        return (*PARAFORMER_MODES, *(CTC_MODES if has_ctc else ()))
    return (*CTC_MODES, *ATTENTION_MODES)


def default_mode(model_name: str) -> str:
    return DEFAULT_MODES.get(model_name, DEFAULT_MODE)
