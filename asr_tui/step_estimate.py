"""How many training steps a run will take, for the setup form's lr preview.

From the training list's size when it has been read (utterances for ``batch_type: example``,
frames for length/token batches); otherwise ``None``, and the lr preview falls back to the
engine's own horizon (``engine.optim_sche.preview.default_steps``, what ``asr-train
lr-preview`` draws without ``--steps``), so the form and the CLI show the same span.
"""

from __future__ import annotations

import math

from asr_tui.command import distributed_conf


def estimate_steps(config: dict, train_stats: dict | None) -> tuple[int | None, str]:
    """(training steps per rank for the whole run, where the number comes from).

    Batches are estimated from the list's utterances (batch_type example) or frames (length /
    token: seconds / frame_shift / lfr_n), split over every rank, times max_epoch. Without
    list statistics: ``(None, why)``.
    """
    if not train_stats or not train_stats.get("utterances"):
        return None, "the schedules' shape, as asr-train lr-preview"
    train = config.get("train_conf") or {}
    data = config.get("dataset_conf") or {}
    frontend = config.get("frontend_conf") or {}
    batch_size = max(int(data.get("batch_size") or 1), 1)
    if data.get("batch_type") == "example":
        per_epoch = train_stats["utterances"] / batch_size
    else:
        frames = train_stats.get("seconds", 0.0) * 1000.0 / float(frontend.get("frame_shift") or 10)
        per_epoch = frames / max(int(frontend.get("lfr_n") or 1), 1) / batch_size
    dist = distributed_conf(config)
    world = max(int(dist["nnodes"]) * int(dist["nproc_per_node"]), 1)
    steps = max(math.ceil(per_epoch / world), 1) * max(int(train.get("max_epoch") or 1), 1)
    return steps, "estimated from the train list"
