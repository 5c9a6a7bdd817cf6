"""What the console knows about one run, folded from its event log.

The event log (DESIGN.md) is the only source: `RunState.apply` takes events in log order and
keeps the latest of each kind plus bounded chart series. Field names are read tolerantly
(readers skip unknown fields; several spellings the engine may use for the same quantity are
accepted), so an older console keeps working when the engine adds fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import isfinite

from asr_tui.health import HealthTracker

# Rank-row fields charted per rank over time: (field, series prefix); see engine/trainer/resources.py.
RESOURCE_SERIES = (("rss_mb", "rss"), ("cpu_percent", "cpu"), ("gpu_memory_used_mb", "gpumem"),
                   ("gpu_util", "gpuutil"))
# At most one resource point per this many seconds of run time: following a run of 8 ranks that
# logs 200 times a second, adding every row was half of the state's work (the health rules read
# every row themselves, in HealthTracker).
RESOURCE_SECONDS = 1.0

# Statuses a run can have (DESIGN.md + "crashed": process gone without an `end` event).
RUNNING, FINISHED, STOPPED, FAILED, CRASHED = "running", "finished", "stopped", "failed", "crashed"


class Series:
    """A chart series bounded to ``max_points`` however long the run gets.

    Points arrive one at a time. Once the buffer is full, neighbours are averaged pairwise
    and every later point is first accumulated into a bucket twice as wide, so memory and
    redraw cost stay constant while the whole history remains visible at lower resolution.
    """

    # Slots: the follower adds thousands of points a second (a series per rank and figure).
    __slots__ = ("max_points", "xs", "ys", "_bucket", "_pending_x", "_pending_y", "_pending_n", "total_points")

    def __init__(self, max_points: int = 2000) -> None:
        if max_points < 4:
            raise ValueError("max_points must be at least 4")
        self.max_points = max_points
        self.xs: list[float] = []
        self.ys: list[float] = []
        self._bucket = 1
        self._pending_x = 0.0
        self._pending_y = 0.0
        self._pending_n = 0
        self.total_points = 0

    def __len__(self) -> int:
        return len(self.xs)

    def add(self, x: float, y: float) -> None:
        if y is None or not isfinite(y):
            return
        self.total_points += 1
        if self._bucket == 1:  # not full yet: every point is its own (the follower's common case)
            self.xs.append(x)
            self.ys.append(y)
            if len(self.xs) >= self.max_points:
                self._halve()
            return
        self._pending_x += x
        self._pending_y += y
        self._pending_n += 1
        if self._pending_n < self._bucket:
            return
        self.xs.append(self._pending_x / self._pending_n)
        self.ys.append(self._pending_y / self._pending_n)
        self._pending_x = self._pending_y = 0.0
        self._pending_n = 0
        if len(self.xs) >= self.max_points:
            self._halve()

    def _halve(self) -> None:
        n = len(self.xs) // 2 * 2
        xs, ys = self.xs, self.ys
        halved_x = [(xs[i] + xs[i + 1]) / 2 for i in range(0, n, 2)]
        halved_y = [(ys[i] + ys[i + 1]) / 2 for i in range(0, n, 2)]
        if n < len(xs):  # odd leftover stays a point of its own
            halved_x.append(xs[-1])
            halved_y.append(ys[-1])
        self.xs, self.ys = halved_x, halved_y
        self._bucket *= 2

    def points(self) -> tuple[list[float], list[float]]:
        """The stored points plus the partly filled bucket, so the newest value always shows."""
        if self._pending_n:
            return (
                self.xs + [self._pending_x / self._pending_n],
                self.ys + [self._pending_y / self._pending_n],
            )
        return list(self.xs), list(self.ys)

    @property
    def last(self) -> float | None:
        if self._pending_n:
            return self._pending_y / self._pending_n
        return self.ys[-1] if self.ys else None


def global_step(event: dict) -> int | None:
    """The update count of a train/valid/checkpoint event (engine may call it step or total_step)."""
    for key in ("global_step", "total_step", "step"):
        value = event.get(key)
        if isinstance(value, (int, float)):
            return int(value)
    return None


def learning_rates(event: dict) -> dict[str, float]:
    """lr per OptimScheduler: ``lr`` / ``lrs`` may be a mapping by name or a single number."""
    for key in ("lrs", "lr"):
        value = event.get(key)
        if isinstance(value, dict):
            return {str(k): float(v) for k, v in value.items() if isinstance(v, (int, float))}
        if isinstance(value, (int, float)):
            return {"lr": float(value)}
    return {}


def loss_terms(event: dict) -> dict[str, float]:
    """Loss terms of a train/valid event: a ``losses`` mapping or top-level ``loss*`` keys."""
    nested = event.get("losses")
    if isinstance(nested, dict):
        return {k: float(v) for k, v in nested.items() if isinstance(v, (int, float))}
    return {
        k: float(v)
        for k, v in event.items()
        if k.startswith("loss") and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def main_loss(event: dict) -> float | None:
    terms = loss_terms(event)
    if "loss" in terms:
        return terms["loss"]
    return next(iter(terms.values()), None)


def number(event: dict, *keys: str) -> float | None:
    for key in keys:
        value = event.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


@dataclass
class RunState:
    """Latest state of a run plus its chart series; fed event by event with :meth:`apply`."""

    max_points: int = 2000
    keep_series: bool = True
    start: dict | None = None
    first_start: dict | None = None
    data: dict[str, dict] = field(default_factory=dict)  # latest `data` event per split
    last_train: dict | None = None
    last_valid: dict | None = None
    end: dict | None = None
    errors: list[dict] = field(default_factory=list)
    checkpoints: list[dict] = field(default_factory=list)
    averages: list[dict] = field(default_factory=list)
    launches: int = 0
    events_seen: int = 0
    last_event_time: float | None = None
    # (time, step) of train events, to estimate the update rate for the ETA.
    rate_window: list[tuple[float, int]] = field(default_factory=list)
    series: dict[str, Series] = field(default_factory=dict)
    health: HealthTracker = field(default_factory=HealthTracker)
    resource_origin: float | None = None
    resource_last: float | None = None
    _resource_series: dict = field(default_factory=dict, repr=False)

    def _series(self, name: str) -> Series:
        found = self.series.get(name)
        if found is None:
            found = self.series[name] = Series(self.max_points)
        return found

    def apply(self, event: dict) -> None:
        kind = event.get("event")
        self.events_seen += 1
        when = event.get("time")
        if isinstance(when, (int, float)):
            self.last_event_time = float(when)
        self.health.apply(event)
        if kind == "train":
            self._apply_train(event)
        elif kind == "valid":
            self.last_valid = event
            step = global_step(event)
            self._add_point("valid/loss", step, main_loss(event))
            self._add_point("valid/acc", step, number(event, "acc", "accuracy"))
        elif kind == "start":
            self.start = event
            if self.first_start is None:
                self.first_start = event
            self.launches += 1
            self.end = None  # a resume starts a new life of the run
            self.rate_window.clear()
        elif kind == "data":
            self.data[str(event.get("split", "data"))] = event
        elif kind == "checkpoint":
            self.checkpoints.append(event)
        elif kind == "average":
            self.averages.append(event)
        elif kind == "end":
            self.end = event
        elif kind == "error":
            self.errors.append(event)
            del self.errors[:-20]

    def _add_point(self, name: str, step: int | None, value: float | None) -> None:
        if self.keep_series and value is not None and step is not None:
            self._series(name).add(step, value)

    def _apply_train(self, event: dict) -> None:
        self.last_train = event
        step, when = global_step(event), event.get("time")
        if self.keep_series:
            self._add_point("train/loss", step, main_loss(event))
            self._add_point("train/acc", step, number(event, "acc", "accuracy"))
            for name, lr in learning_rates(event).items():
                self._add_point(f"lr/{name}", step, lr)
            ranks = event.get("ranks")
            if isinstance(ranks, list) and isinstance(when, (int, float)):
                self._add_resources(float(when), ranks)
        if step is not None and isinstance(when, (int, float)):
            self.rate_window.append((float(when), step))
            del self.rate_window[:-50]

    def _add_resources(self, when: float, ranks: list) -> None:
        """Per-rank resource series against minutes since the first train event (Resources tab).

        Runs for every train event of every rank (8 ranks at 200 events/s when following), so
        the series are looked up once per (rank, field) and kept in ``_resource_series``.
        """
        if self.resource_origin is None:
            self.resource_origin = when
        elif 0.0 <= when - self.resource_last < RESOURCE_SECONDS:
            return  # a busy run logs many times a second; memory and CPU move slower than that
        self.resource_last = when
        minutes = (when - self.resource_origin) / 60.0
        found = self._resource_series
        for index, row in enumerate(ranks):
            if not isinstance(row, dict):
                continue
            rank = row.get("rank", index)
            for key, prefix in RESOURCE_SERIES:
                value = row.get(key)
                if value.__class__ is float or value.__class__ is int:
                    series = found.get((rank, key))
                    if series is None:
                        series = found[(rank, key)] = self._series(f"{prefix}/r{rank}")
                    series.add(minutes, value)

    # Derived values shown by the runs list and the monitor.

    @property
    def steps_per_epoch(self) -> int | None:
        for source in (self.start, self.first_start):
            if source and isinstance(source.get("steps_per_epoch"), int):
                return source["steps_per_epoch"]
        return None

    @property
    def max_epoch(self) -> int | None:
        for source in (self.start, self.first_start):
            if source and isinstance(source.get("max_epoch"), int):
                return source["max_epoch"]
        return None

    @property
    def finished(self) -> bool:
        """The job ended with status finished: every epoch ran."""
        return bool(self.end) and self.end.get("status") == "finished"

    @property
    def total_steps(self) -> int | None:
        """Updates of the whole run: steps_per_epoch × max_epoch while it runs (length and token
        batching make later epochs a few batches longer or shorter); once finished, the real count."""
        if self.finished and self.step is not None:
            return self.step
        if self.steps_per_epoch and self.max_epoch:
            return self.steps_per_epoch * self.max_epoch
        return None

    @property
    def step(self) -> int | None:
        """The newest update count any event reports (the last one of an epoch is in its checkpoint)."""
        latest = [global_step(e) for e in (self.last_train, self.last_valid, self.last_checkpoint) if e]
        latest = [s for s in latest if s is not None]
        return max(latest) if latest else None

    @property
    def last_checkpoint(self) -> dict | None:
        return self.checkpoints[-1] if self.checkpoints else None

    @property
    def epoch(self) -> int | None:
        for source in (self.last_train, self.last_valid):
            if source and isinstance(source.get("epoch"), int):
                return source["epoch"]
        return None

    @property
    def progress(self) -> float | None:
        if self.finished:
            return 1.0
        if self.total_steps and self.step is not None:
            return min(1.0, self.step / self.total_steps)
        return None

    def steps_per_second(self) -> float | None:
        if len(self.rate_window) < 2:
            return None
        (t0, s0), (t1, s1) = self.rate_window[0], self.rate_window[-1]
        if t1 <= t0 or s1 <= s0:
            return None
        return (s1 - s0) / (t1 - t0)

    def eta_seconds(self) -> float | None:
        rate = self.steps_per_second()
        if rate is None or self.total_steps is None or self.step is None:
            return None
        return max(0.0, (self.total_steps - self.step) / rate)

    def metrics(self) -> dict[str, float]:
        """Last train loss/acc and valid loss/acc, for one-line summaries."""
        shown: dict[str, float] = {}
        if self.last_train:
            for name, value in (("loss", main_loss(self.last_train)),
                                ("acc", number(self.last_train, "acc", "accuracy"))):
                if value is not None:
                    shown[name] = value
        if self.last_valid:
            for name, value in (("valid_loss", main_loss(self.last_valid)),
                                ("valid_acc", number(self.last_valid, "acc", "accuracy"))):
                if value is not None:
                    shown[name] = value
        return shown
