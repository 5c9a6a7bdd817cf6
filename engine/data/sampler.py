"""BatchSampler: the torch face of :class:`engine.data.batching.BatchPlan` (see there for the rules).

The plan itself is torch-free so that the console's lr preview counts the run's batches with the
very same code the DataLoader uses.
"""

from __future__ import annotations

import torch

from engine.data.batching import BATCH_TYPES, TARGET_TOKEN_WEIGHT, BatchPlan  # noqa: F401


class BatchSampler(BatchPlan, torch.utils.data.Sampler):
    """Yields lists of dataset indices; one instance per rank."""
