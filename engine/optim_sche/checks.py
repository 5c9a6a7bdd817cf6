"""Config value checks shared by the OptimScheduler and its schedules; errors name the dotted key."""

from __future__ import annotations

import math

from engine.optim_sche.conf import OptimConfError


def int_at_least(key: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OptimConfError(f"{key}: must be an integer ≥ {minimum}, got {value!r}")
    return value


def yaml_float_hint(value) -> str:
    """PyYAML reads ``1e-3`` (no dot) as text: say so, since the value looks right to the user."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return f" (YAML reads {value} as text: write it with a dot, e.g. 1.0e-3)"
    return ""


def number(key: str, value, minimum: float | None = None, above: float | None = None,
           maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OptimConfError(f"{key}: must be a finite number, got {value!r}{yaml_float_hint(value)}")
    if minimum is not None and value < minimum:
        raise OptimConfError(f"{key}: must be ≥ {minimum}, got {value!r}")
    if above is not None and value <= above:
        raise OptimConfError(f"{key}: must be > {above}, got {value!r}")
    if maximum is not None and value > maximum:
        raise OptimConfError(f"{key}: must be ≤ {maximum}, got {value!r}")
    return float(value)


def unresolved_auto(key: str, value):
    """``max_update: auto`` left unresolved: only a trainer or preview that knows the data fills it in."""
    if value == "auto":
        raise OptimConfError(f"{key}: auto is the run's length, known once the training lists are read "
                             f"(the trainer and lr-preview with readable lists fill it in); give a number to preview without them")
    return value
