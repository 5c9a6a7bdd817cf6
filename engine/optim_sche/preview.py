"""``asr-train lr-preview --config C [--steps N] [++key=value ...]``: every OptimScheduler's lr curve in the terminal.

Only the config's ``optim_sches`` (or FunASR's single form) and ``train_conf`` are read, so a preset
without data lists previews too. The curves come from :func:`lr_curve`, i.e. from the same code
that sets the lr in training.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from engine.optim_sche.conf import OptimConfError, normalise_optim_conf


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="asr-train lr-preview",
        description="Draw each OptimScheduler's learning rate over a run, as training will set it.",
    )
    parser.add_argument("--config", required=True, help="experiment YAML")
    parser.add_argument("--steps", type=int, default=None,
                        help="micro-batches of the run (steps_per_epoch × max_epoch); "
                             "default: enough to show every schedule's shape")
    parser.add_argument("--width", type=int, default=None, help="chart width in cells (default: the terminal's)")
    parser.add_argument("--height", type=int, default=None, help="chart height in cells (default: 20)")
    parser.add_argument("overrides", nargs="*", metavar="++key=value", help="config overrides, as for asr-train")
    return parser.parse_args(argv)


def read_optim_conf(path: str, overrides: list[str]) -> tuple[dict, dict]:
    """``(optim_sches, train_conf)`` of a config file with overrides, defaults filled in;
    ``max_update: auto`` is resolved from the config's training lists (see :func:`with_run_length`)."""
    from engine.config import DEFAULTS, ConfigError, apply_overrides, read_yaml

    user = read_yaml(path)
    try:
        user = apply_overrides(user, overrides)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    user = normalise_optim_conf(user)
    train_conf = {**DEFAULTS["train_conf"], **(user.get("train_conf") or {})}
    optim_sches = user.get("optim_sches") or DEFAULTS["optim_sches"]
    optim_sches, _, _ = with_run_length(user, optim_sches, train_conf)
    return optim_sches, train_conf


def with_run_length(config: dict, optim_sches: dict, train_conf: dict) -> tuple[dict, dict[str, int], int | None]:
    """``(optim_sches with max_update: auto filled in, {name: value}, batches per epoch or None)``.

    The batches are counted from the config's training lists with the training sampler's own plan
    (engine.data.selection), so the preview's curve is the one the run follows. Nothing is read
    when no schedule needs the run's length.
    """
    from engine.optim_sche.run_length import any_needs_run_length, needs_run_length, resolve_max_update

    if not any_needs_run_length(optim_sches):
        return optim_sches, {}, None
    first = next(str(name) for name, entry in optim_sches.items() if needs_run_length(entry))
    key = f"optim_sches.{first}.conf.max_update"  # errors name the field the console shows them beside
    from engine.config import DEFAULTS, deep_merge
    from engine.data.selection import config_batches_per_epoch

    merged = deep_merge(DEFAULTS, {k: v for k, v in config.items() if k != "optim_sches"})
    lists = merged.get("train_data_set_list")
    merged["train_data_set_list"] = [lists] if isinstance(lists, str) else list(lists or [])
    if not merged["train_data_set_list"]:
        raise OptimConfError(f"{key}: auto is the run's length: give train_data_set_list (or a number)")
    try:
        batches, _ = config_batches_per_epoch(merged)
    except (ValueError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise OptimConfError(f"{key}: auto: cannot count the run's batches ({reason}); give a number") from None
    resolved, values, _ = resolve_max_update(optim_sches, {**merged["train_conf"], **train_conf}, batches)
    return resolved, values, batches


def horizon(schedule) -> int:
    """Real steps that show a schedule's whole shape (duck-typed on its phase fields)."""
    if getattr(schedule, "max_update", None):
        return int(schedule.max_update * 1.2)
    phases = sum(getattr(schedule, name, 0) or 0 for name in ("warmup_steps", "hold_steps", "decay_steps"))
    if getattr(schedule, "hold_steps", None) is not None:
        return max(10, int(phases * 1.2))
    if getattr(schedule, "decay_steps", None):
        return max(10, phases + 20 * schedule.decay_steps)
    return max(10, 5 * phases) if phases else 1000


def default_steps(optim_sches: dict, train_conf: dict) -> int:
    from engine.optim_sche.build import build_one

    steps = 0
    for name, entry in optim_sches.items():
        schedule = build_one(str(name), entry, None, train_conf)
        steps = max(steps, horizon(schedule) * schedule.accum_grad)
    return steps


def sample(values: list[float], count: int) -> list[int]:
    """About ``count`` evenly spaced indices of ``values``, always with the first, last and peak."""
    if len(values) <= count:
        return list(range(len(values)))
    stride = len(values) / count
    picked = {int(i * stride) for i in range(count)} | {0, len(values) - 1, max(range(len(values)), key=values.__getitem__)}
    return sorted(picked)


def short_count(value: float) -> str:
    """12000 -> '12k', 1500000 -> '1.5M': tick labels that fit."""
    for divisor, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= divisor:
            return f"{value / divisor:.3g}{suffix}"
    return f"{value:.0f}"


def render(curves: dict[str, list[float]], steps_of: dict[str, int], width: int, height: int, color: bool) -> str:
    import plotext as plt

    figure = plt.figure
    figure.clear()
    figure.plot_size(width, height)
    figure.theme("simple" if color else "colorless")
    last_step = 1
    for name, lrs in curves.items():
        if not lrs:
            continue
        indices = sample(lrs, 2 * width)
        signal = figure.signal([(i + 1) * steps_of[name] for i in indices], [lrs[i] for i in indices], marker="braille")
        signal.lines()
        signal.label(name)
        figure.draw(signal)
        last_step = max(last_step, len(lrs) * steps_of[name])
    figure.legend(True, x=last_step, y=0, ha="right", va="bottom", relative=True)
    ticks = [round(last_step * k / 4) for k in range(5)]
    figure.ruler("x").ticks(ticks, [short_count(t) for t in ticks])
    figure.title("learning rate per micro-batch step")
    text = figure.build().string()
    return text if color else plt.uncolorize(text)


def summary(curves: dict[str, list[float]], optim_sches: dict, steps_of: dict[str, int]) -> str:
    lines = [f"{'optim_sche':<14} {'type':<12} {'updates':>8} {'first lr':>10} {'peak lr':>10} {'at step':>9} {'last lr':>10}"]
    for name, lrs in curves.items():
        sche_type = str(optim_sches[name].get("type", ""))
        if not lrs:
            lines.append(f"{name:<14} {sche_type:<12} {0:>8}  (no update within the steps shown)")
            continue
        peak = max(range(len(lrs)), key=lrs.__getitem__)
        lines.append(f"{name:<14} {sche_type:<12} {len(lrs):>8} {lrs[0]:>10.3e} {lrs[peak]:>10.3e} "
                     f"{(peak + 1) * steps_of[name]:>9} {lrs[-1]:>10.3e}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    from engine.config import ConfigError
    from engine.optim_sche.build import build_one
    from engine.optim_sche.curve import lr_curve

    try:
        optim_sches, train_conf = read_optim_conf(args.config, args.overrides)
        steps = args.steps if args.steps is not None else default_steps(optim_sches, train_conf)
        if steps < 1:
            raise OptimConfError(f"--steps: must be at least 1, got {steps}")
        curves = lr_curve(optim_sches, steps, accum_grad=train_conf.get("accum_grad", 1),
                          ft_factor=train_conf.get("ft_factor", 1.0))
        # micro-batches between two updates of each OptimScheduler: the x axis is shared
        steps_of = {}
        for name, entry in optim_sches.items():
            schedule = build_one(str(name), entry, None, train_conf)
            steps_of[str(name)] = schedule.accum_grad * schedule.step_per_update
    except (ConfigError, OptimConfError) as exc:
        print(f"asr-train lr-preview: {args.config}: {exc}" if not str(exc).startswith(args.config) else
              f"asr-train lr-preview: {exc}", file=sys.stderr)
        return 2
    terminal = shutil.get_terminal_size((100, 30))
    width = args.width or max(40, terminal.columns)
    height = args.height or 20
    print(render(curves, steps_of, width, height, color=sys.stdout.isatty()))
    print(f"{steps} micro-batch steps, accum_grad {train_conf.get('accum_grad', 1)}, ft_factor {train_conf.get('ft_factor', 1.0)}")
    print(summary(curves, optim_sches, steps_of))
    return 0
