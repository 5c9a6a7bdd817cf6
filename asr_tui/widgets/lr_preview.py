"""Live plotext preview of every OptimScheduler's learning-rate curve.

The curves come from ``engine.optim_sche.lr_curve``, which imports torch: it is imported only
inside a thread worker, after a short debounce, so the console's first frame never waits on
torch and a burst of keystrokes computes one curve, not one per key.
"""

from __future__ import annotations

import copy
from functools import partial

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Static
from textual.worker import get_current_worker

DEBOUNCE_S = 0.4
# lr_curve evaluates every step in Python (~0.6 µs each): beyond this the preview shows the start only.
MAX_PREVIEW_STEPS = 2_000_000
FALLBACK_STEPS = 100_000  # the span when the schedules' own horizon cannot be worked out
# Points per curve handed to plotext: braille gives 2 dots per cell, more points add nothing.
POINTS_PER_CELL = 2


def short_count(value: float) -> str:
    """25000 -> "25k", 1200000 -> "1.2M" (x-axis ticks that fit a narrow terminal)."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.0f}"


def downsample(values: list[float], points: int) -> tuple[list[int], list[float]]:
    """(update numbers, lrs): at most ``points`` evenly spaced samples, the last one always kept."""
    count = len(values)
    if count <= points:
        return list(range(1, count + 1)), list(values)
    stride = count / points
    index = sorted({min(int(i * stride), count - 1) for i in range(points)} | {count - 1})
    return [i + 1 for i in index], [values[i] for i in index]


def render_lr_chart(curves: dict[str, list[float]], width: int, height: int) -> str:
    """plotext line chart of every curve, ``width`` x ``height`` cells, as ANSI text."""
    import plotext as plt

    figure = plt.figure
    figure.clear()
    figure.plot_size(width, height)
    figure.theme("simple")
    longest = 1
    for name, lrs in curves.items():
        if not lrs:
            continue
        xs, ys = downsample(lrs, width * POINTS_PER_CELL)
        signal = figure.signal(xs, ys, marker="braille")
        signal.lines()
        if len(curves) > 1:
            signal.label(name)
        figure.draw(signal)
        longest = max(longest, len(lrs))
    if len(curves) > 1:
        figure.legend(True, x=longest, y=0, ha="right", va="bottom", relative=True)
    top = max((max(lrs) for lrs in curves.values() if lrs), default=0.0)
    if top > 0:
        figure.ruler("y").lim(0, top)  # an lr axis from zero: plotext would start at the smallest value
    ticks = [1, max(1, longest // 2), longest]
    figure.ruler("x").ticks(ticks, [short_count(t) for t in ticks])
    return figure.build().string()


class LrChart(Widget):
    """The plotext chart, drawn at the widget's current size on every render."""

    curves: reactive[dict[str, list[float]]] = reactive(dict, always_update=True)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._cache: tuple[tuple, Text] | None = None

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        if not self.curves or width < 20 or height < 5:
            return Text("")
        key = (id(self.curves), width, height)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, Text.from_ansi(render_lr_chart(self.curves, width, height)))
        return self._cache[1]


class LrPreview(Vertical):
    """A status line and a plotext chart of ``{name: [lr per update]}``."""

    class Computed(Message):
        """New curves, or the engine's error; ``error_key`` is the dotted key the error names."""

        def __init__(self, curves: dict[str, list[float]], error: str | None, total_steps: int = 0) -> None:
            super().__init__()
            self.curves = curves
            self.error = error
            self.total_steps = total_steps  # the span drawn: the one asked for, or the engine's default
            head = (error or "").split(":", 1)[0]
            self.error_key = head if error and head.startswith("optim_sches.") and " " not in head else None

    DEFAULT_CSS = """
    LrPreview { height: 1fr; min-height: 6; }
    LrPreview #lr-status { height: auto; color: $text-muted; }
    LrPreview #lr-chart { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.curves: dict[str, list[float]] = {}
        self.error: str | None = None
        self._request: tuple | None = None
        self._timer: Timer | None = None
        self._computing = False
        self._computations = 0

    def compose(self) -> ComposeResult:
        yield Static("lr preview: waiting for the OptimSchedulers", id="lr-status")
        yield LrChart(id="lr-chart")

    @property
    def computations(self) -> int:
        """How many curves were computed (tests check the debounce with it)."""
        return self._computations

    def request(self, optim_sches: dict, total_steps: int | None, accum_grad: int = 1,
                train_conf: dict | None = None, config: dict | None = None, steps_given: bool = False) -> None:
        """Preview these OptimSchedulers over ``total_steps`` training steps, after a pause in typing.

        ``total_steps`` None: the span ``asr-train lr-preview`` draws by default (every
        schedule's whole shape, from ``engine.optim_sche.preview.default_steps``). With ``config``,
        ``max_update: auto`` is filled in from its training lists as the trainer will
        (engine.optim_sche.preview.with_run_length), and unless ``steps_given`` the preview spans the
        run: max_epoch x batches per epoch.
        """
        train_conf = {**(train_conf or (config or {}).get("train_conf") or {}), "accum_grad": int(accum_grad)}
        self._request = (copy.deepcopy(optim_sches), None if total_steps is None else int(total_steps),
                         int(accum_grad), train_conf, copy.deepcopy(config), steps_given)
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(DEBOUNCE_S, self._start)

    def _start(self) -> None:
        """Compute the latest request; one computation at a time (a thread cannot be interrupted)."""
        self._timer = None
        if self._request is None or self._computing:
            return
        request, self._request = self._request, None
        self._computing = True
        self.query_one("#lr-status", Static).update("lr preview: computing…")
        self.run_worker(partial(self._compute, *request), thread=True, group="lr-preview", name="lr preview")

    def _compute(self, optim_sches: dict, total_steps: int | None, accum_grad: int, train_conf: dict,
                 config: dict | None = None, steps_given: bool = False) -> None:
        worker = get_current_worker()
        run_length = ""
        try:
            if config is not None:
                from engine.optim_sche.preview import with_run_length  # reads the lists: off the UI thread

                optim_sches, values, batches = with_run_length(config, optim_sches, train_conf)
                if batches is not None:
                    max_epoch = int(train_conf.get("max_epoch") or 1)
                    if not steps_given:
                        total_steps = max_epoch * batches
                    run_length = " · max_update " + ", ".join(f"{k} {v}" for k, v in values.items()) + \
                        f" ({max_epoch} epochs x {batches} batches)"
            from engine.optim_sche import lr_curve  # torch: only here, off the UI thread

            if total_steps is None:
                from engine.optim_sche.preview import default_steps

                try:
                    total_steps = default_steps(optim_sches, train_conf)
                except Exception:  # noqa: BLE001 - a schedule the engine refuses: lr_curve names its key
                    total_steps = FALLBACK_STEPS
            steps = min(total_steps, MAX_PREVIEW_STEPS)
            # train_conf.ft_factor scales every lr (fine-tuning), as in training
            ft_factor = float((train_conf or {}).get("ft_factor") or 1.0)
            curves, error = lr_curve(optim_sches, steps, accum_grad=accum_grad, ft_factor=ft_factor), None
        except Exception as exc:  # any bad combination of values is shown, never raised into the UI
            curves, error = {}, str(exc) or type(exc).__name__
            total_steps = total_steps or 0
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show, curves, error, total_steps, run_length)

    def _show(self, curves: dict[str, list[float]], error: str | None, total_steps: int, run_length: str = "") -> None:
        self._computing = False
        self._computations += 1
        self.curves, self.error = curves, error
        status = self.query_one("#lr-status", Static)
        if error:
            status.update(Text(f"lr preview: {error}", style="bold red"))
        else:
            peaks = ", ".join(f"{name} peak {max(lrs):.3g}" for name, lrs in curves.items() if lrs)
            span = short_count(total_steps) if total_steps <= MAX_PREVIEW_STEPS else \
                f"the first {short_count(MAX_PREVIEW_STEPS)} of {short_count(total_steps)}"
            status.update(f"lr per update over {span} training steps · {peaks}{run_length}")
        self.redraw()
        self.post_message(self.Computed(curves, error, total_steps))
        if self._request is not None and self._timer is None:
            self._start()  # edits arrived while computing

    def redraw(self) -> None:
        self.query_one(LrChart).curves = {} if self.error else self.curves
