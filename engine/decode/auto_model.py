"""FunASR-style Python API: ``AutoModel(model=DIR).generate(input=...)`` -> ``[{"key", "text"}]``."""

from __future__ import annotations

import sys

from engine.decode.inputs import read_inputs
from engine.decode.modes import default_mode
from engine.decode.model_dir import load_asr
from engine.decode.recognizer import Recognizer
from engine.utils.dist import usable_cpus


class AutoModel:
    """Load a run directory, model directory or checkpoint once; decode any number of inputs.

    ``mode``, ``beam_size``, ``batch_size`` and ``ctc_weight`` given here are the defaults for
    :meth:`generate`, which can override them per call. ``mode`` None: the model's own default
    (engine.decode.modes.default_mode: paraformer for a Paraformer, else attention_rescoring).
    """

    def __init__(self, model: str, device: str = "cpu", mode: str | None = None, beam_size: int = 10,
                 batch_size: int = 8, ctc_weight: float = 0.3, num_threads: int | None = None):
        import torch

        torch.set_num_threads(num_threads or usable_cpus())
        self.model, self.frontend, self.tokenizer, self.config = load_asr(model, device)
        self.recognizer = Recognizer(self.model, self.frontend, self.tokenizer, device)
        model_name = self.config.get("model", "conformer")
        self.defaults = {"mode": mode or default_mode(model_name), "beam_size": beam_size, "batch_size": batch_size,
                         "ctc_weight": ctc_weight}

    def generate(self, input, **options) -> list[dict]:
        """``input``: an audio path, a list of audio paths, a jsonl list or a wav.scp.

        Entries that cannot be read are reported on stderr and left out of the result.
        """
        entries, report = read_inputs(input)
        if report.num_dropped:
            print(report.format(), file=sys.stderr)
        recognition = self.recognizer.recognize(entries, **{**self.defaults, **options})
        for failure in recognition.failed:
            print(f"{failure['source']}: key {failure['key']!r} not decoded: {failure['error']}", file=sys.stderr)
        return recognition.results
