"""What the loader can reuse exactly, kept in memory after an utterance's first load (``dataset_conf.cache_mb``).

The cache changes how fast a run trains, never what it trains on: a run with it makes the same
batches, and ends with the same parameters, as one without (tests/data/test_cache.py,
tests/trainer/test_resume.py). So it keeps, by dataset index (the virtual one under speed
perturbation, whose factor is fixed by the index):

- **features** (fbank, LFR and CMVN: everything before SpecAugment, which stays fresh every
  epoch) where they are the same at every load: validation, and training with ``dither: 0``;
- **the audio** (decoded, resampled and speed-perturbed) where training draws fresh dither at
  every load: the frontend then runs again on it, with dither from the global generator exactly
  as without the cache, so resumed runs stay exact and SpecAugment's draws stay in step.

Kaldi and ESPnet dump features once, dither included; that dither then never changes, and on the
demo preset that cost test CER (docs/training.md, "Demo preset: measured figures"), which is why
dithered features are not kept.

The budget is per loader and per process (each DataLoader worker keeps a cache of its own).
Utterances past it are loaded as without the cache; the first one refused is logged (once) with
the cache's count and size.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

MB = 1 << 20


class LoadCache:
    """Tensors by dataset index, up to ``budget_mb`` megabytes (2**20 bytes) of tensor data."""

    def __init__(self, budget_mb: float, name: str = "train"):
        self.budget = int(budget_mb * MB)
        self.name = name
        self.used = 0
        self._kept: dict[int, torch.Tensor] = {}
        self._refused: set[int] = set()

    def get(self, index: int) -> torch.Tensor | None:
        """The tensor kept for ``index`` (never to be changed in place), or None."""
        return self._kept.get(index)

    def put(self, index: int, tensor: torch.Tensor) -> None:
        """Keep ``tensor`` for ``index`` if it fits in the budget (the first that does not is logged)."""
        size = tensor.numel() * tensor.element_size()
        if self.used + size > self.budget:
            if not self._refused:
                log.warning("load cache (%s) full at %.1f of %.0f MB with %d utterances: the others are loaded "
                            "as without it (dataset_conf.cache_mb is per loader and process)",
                            self.name, self.used / MB, self.budget / MB, len(self._kept))
            self._refused.add(index)
            return
        self._kept[index] = tensor
        self.used += size

    def stats(self) -> dict:
        """{"utterances": kept, "mb": their size, "refused": utterances that did not fit}."""
        return {"utterances": len(self._kept), "mb": self.used / MB, "refused": len(self._refused)}
