"""Which named checkpoints are the best: the order keep-n-best and averaging use. No torch import:
the console marks the same n-best files the engine will average (asr_tui.checkpoint_list)."""

from __future__ import annotations

import math

METRICS = ("acc", "loss")  # higher acc is better, lower loss is better


def metric_value(entry: dict, metric: str) -> float | None:
    value = (entry.get("metrics") or {}).get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def chronological_key(entry: dict) -> tuple:
    return (entry.get("time") or 0.0, entry.get("epoch") or 0, entry.get("step") or 0)


def rank_entries(entries: list[dict], metric: str) -> list[dict]:
    """Best first: by ``metric`` recorded at save time, newest first among equals; entries saved
    without that metric (no validation data) follow, newest first.

    An entry is a ``checkpoints.json`` entry: ``metrics`` {acc, loss}, ``time`` (save time),
    ``epoch``, ``step``.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
    newest_first = sorted(entries, key=chronological_key, reverse=True)
    scored = [e for e in newest_first if metric_value(e, metric) is not None]
    unscored = [e for e in newest_first if metric_value(e, metric) is None]
    sign = -1.0 if metric == "acc" else 1.0
    scored.sort(key=lambda e: sign * metric_value(e, metric))  # stable: ties stay newest first
    return scored + unscored
