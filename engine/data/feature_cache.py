"""Frontend features kept in memory after an utterance's first load (``dataset_conf.feature_cache_mb``).

Kaldi and ESPnet recipes compute fbank once and train on the dump; FunASR computes it at every
load. With the cache, an utterance's features (fbank, LFR and CMVN: everything before
SpecAugment, which stays fresh every epoch) are made on its first load and kept, so later epochs
skip reading the audio and the frontend. On the demo recipe with the loader in the training
process (2-core CPU) that work was a fifth of every step; but there the fixed dither cost test
CER (docs/training.md, "Demo preset: measured figures"), so it is off by default and in the preset.

Training features have dither. With the cache on, an utterance's dither is drawn from a generator
seeded by the run's seed and the utterance's (virtual) index, not from the global one
(:func:`dither_generator`): its features are the same whenever they are made, so a resumed run,
whose cache starts empty, trains on the features the uninterrupted run had cached, and
SpecAugment's draws from the global generator stay in step.

The budget is per loader and per process (each DataLoader worker keeps a cache of its own).
Utterances past it are made at every load, as without the cache, with the same seeded dither;
the first one refused is logged (once) with the cache's count and size.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

MB = 1 << 20

# torch's CPU generator (mt19937) keeps only the low 32 bits of a seed: the run's seed is spread
# over them (by the golden-ratio constant), so that neighbouring seeds give unrelated index ranges.
SEED_SPREAD = 0x9E3779B1


def dither_generator(seed: int, index: int) -> torch.Generator:
    """The generator of utterance ``index``'s dither under the cache: the same for every load."""
    return torch.Generator().manual_seed((int(seed) * SEED_SPREAD + int(index)) & 0xFFFFFFFF)


class FeatureCache:
    """Features by dataset index, up to ``budget_mb`` megabytes (2**20 bytes) of tensor data."""

    def __init__(self, budget_mb: float, name: str = "train"):
        self.budget = int(budget_mb * MB)
        self.name = name
        self.used = 0
        self._features: dict[int, torch.Tensor] = {}
        self._refused: set[int] = set()

    def get(self, index: int) -> torch.Tensor | None:
        """The kept features of ``index`` (never to be changed in place), or None."""
        return self._features.get(index)

    def put(self, index: int, feats: torch.Tensor) -> None:
        """Keep ``feats`` for ``index`` if they fit in the budget (the first that does not is logged)."""
        size = feats.numel() * feats.element_size()
        if self.used + size > self.budget:
            if not self._refused:
                log.warning("feature cache (%s) full at %.1f of %.0f MB with %d utterances: the others are made "
                            "at every load (dataset_conf.feature_cache_mb is per loader and process)",
                            self.name, self.used / MB, self.budget / MB, len(self._features))
            self._refused.add(index)
            return
        self._features[index] = feats
        self.used += size

    def stats(self) -> dict:
        """{"utterances": kept, "mb": their size, "refused": utterances that did not fit}."""
        return {"utterances": len(self._features), "mb": self.used / MB, "refused": len(self._refused)}
