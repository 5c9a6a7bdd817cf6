"""``max_update: auto``: the run's length in real optimiser steps, for the schedules that need it.

``cosine``, and ``tri_stage`` with ``phase_ratio``, shape their curve over the whole run. With
``max_update: auto`` (their default) the trainer fills it in once the training sampler is
built, from :func:`run_real_steps`; ``asr-train lr-preview`` and the console's lr preview fill
it in from the data lists through the same function and the same batch plan
(engine.data.selection), so the curve shown before launch is the one the run follows.

The schedules count real steps (``real_step = (micro-batch - 1) // accum_grad + 1``, see
engine.optim_sche.abs), also when ``step_per_update`` > 1 (such an entry updates on every
``step_per_update``-th real step, reading the curve there), so the run's length is
``max_epoch x batches per epoch // accum_grad``; batches per epoch are epoch 1's, equal on every
rank. A resumed run keeps the value its checkpoint holds, even when the data changed since.

No torch here: the console imports it.
"""

from __future__ import annotations

import copy

AUTO = "auto"
# Schedule type -> the conf key that makes it need the run's length (None: it always does).
RUN_LENGTH_SCHEDULES = {"cosine": None, "tri_stage": "phase_ratio"}


def needs_run_length(entry) -> bool:
    """Whether an ``optim_sches`` entry has ``max_update: auto`` (given, or by default) to fill in."""
    if not isinstance(entry, dict) or entry.get("type") not in RUN_LENGTH_SCHEDULES:
        return False
    conf = entry.get("conf") or {}
    condition = RUN_LENGTH_SCHEDULES[entry["type"]]
    if condition is not None and conf.get(condition) is None:
        return False
    return conf.get("max_update", AUTO) == AUTO


def any_needs_run_length(optim_sches) -> bool:
    return isinstance(optim_sches, dict) and any(needs_run_length(e) for e in optim_sches.values())


def run_real_steps(batches_per_epoch: int, max_epoch: int, accum_grad: int) -> int:
    """Real optimiser steps of a whole run: max_epoch x batches per epoch // accum_grad (at least 1)."""
    return max(int(max_epoch) * int(batches_per_epoch) // max(int(accum_grad), 1), 1)


def resolve_max_update(optim_sches: dict, train_conf: dict, batches_per_epoch: int,
                       saved: dict | None = None) -> tuple[dict, dict[str, int], list[str]]:
    """``(optim_sches with auto filled in, {name: max_update filled in}, notes for the log)``.

    ``saved``: the values a checkpoint holds; they win over the data's (a resumed run keeps its
    curve), and a difference is noted.
    """
    resolved = copy.deepcopy(optim_sches)
    values: dict[str, int] = {}
    notes: list[str] = []
    for name, entry in resolved.items():
        if not needs_run_length(entry):
            continue
        if not isinstance(entry.get("conf"), dict):
            entry["conf"] = {}
        conf = entry["conf"]
        accum = conf.get("accum_grad", train_conf.get("accum_grad", 1))
        computed = run_real_steps(batches_per_epoch, int(train_conf.get("max_epoch", 1)), int(accum or 1))
        value = computed
        if saved and str(name) in saved:
            value = int(saved[str(name)])
            if value != computed:
                notes.append(f"optim_sches.{name}.conf.max_update: kept at {value} from the checkpoint "
                             f"(the data now gives {computed}: max_epoch x {batches_per_epoch} batches // {accum})")
        conf["max_update"] = value
        values[str(name)] = value
    return resolved, values, notes
