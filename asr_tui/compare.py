"""What the Compare screen shows of two or more runs: curves, best figures, decodes, config diff.

Torch-free and Textual-free; the screen calls :func:`load_runs` in a thread worker. Each run's
log is read with the monitor's history scan (``tailer.scan_history``: parsed whole when small,
rare events plus evenly spaced train samples when big), folded into a :class:`TimedRunState`
that keeps every chart series twice: against the update count and against hours since the
run's first event, so runs can be aligned either way. Finished, running and crashed runs and
runs started from a script all have an event log; that is all this needs (config.yaml is read
when present, else the config the ``start`` event carries).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from asr_tui.presets_store import MISSING
from asr_tui.run_state import RunState, global_step, main_loss, number
from asr_tui.runs_store import RunJsonError, process_alive, read_run_json, run_status
from asr_tui.tailer import scan_history

# Train events sampled from a big log: two points per braille cell of a 250-column chart.
COMPARE_TRAIN_SAMPLES = 500
from engine.config import DEFAULTS, deep_merge, flatten

STEP, TIME = "step", "time"
TIME_PREFIX = "time:"
# Keys that differ between any two runs by construction: not worth a row of the diff.
DIFF_IGNORED = ("output_dir",)


class TimedRunState(RunState):
    """A RunState whose chart series are also kept against hours since the first event."""

    def __init__(self, max_points: int = 2000) -> None:
        super().__init__(max_points=max_points)
        self.origin: float | None = None
        self._hours: float | None = None
        self.best: dict[str, tuple[float, int | None]] = {}  # "valid_acc"/"valid_loss" -> (value, step)

    def apply(self, event: dict) -> None:
        when = event.get("time")
        if isinstance(when, (int, float)):
            if self.origin is None:
                self.origin = float(when)
            self._hours = (float(when) - self.origin) / 3600.0
        else:
            self._hours = None
        if event.get("event") == "valid":
            self._best(event)
        super().apply(event)

    def _best(self, event: dict) -> None:
        step = global_step(event)
        acc, loss = number(event, "acc", "accuracy"), main_loss(event)
        if acc is not None and ("valid_acc" not in self.best or acc > self.best["valid_acc"][0]):
            self.best["valid_acc"] = (acc, step)
        if loss is not None and ("valid_loss" not in self.best or loss < self.best["valid_loss"][0]):
            self.best["valid_loss"] = (loss, step)

    def _add_resources(self, when: float, ranks: list) -> None:
        """Compare draws no per-rank resources: not kept."""

    def _add_point(self, name: str, step: int | None, value: float | None) -> None:
        super()._add_point(name, step, value)
        if value is not None and self._hours is not None and not name.startswith(TIME_PREFIX):
            self._series(TIME_PREFIX + name).add(self._hours, value)


@dataclass
class DecodeSummary:
    """One ``asr-decode --output`` directory of a run (its summary.json)."""

    name: str
    cer: float | None
    wer: float | None
    mode: str = ""
    utterances: int | None = None


@dataclass
class ComparedRun:
    run_dir: Path
    label: str
    state: TimedRunState
    status: str = ""
    reason: str = ""
    config: dict = field(default_factory=dict)
    config_source: str = ""
    decodes: list[DecodeSummary] = field(default_factory=list)
    bad_lines: int = 0
    problems: list[str] = field(default_factory=list)  # unreadable files, each named

    @property
    def best_decode(self) -> DecodeSummary | None:
        scored = [d for d in self.decodes if d.cer is not None]
        return min(scored, key=lambda d: d.cer) if scored else None

    def series(self, name: str, axis: str = STEP):
        """The chart series ``name`` ("train/loss", "lr/main", ...) against ``axis``."""
        return self.state.series.get(name if axis == STEP else TIME_PREFIX + name)

    def lr_names(self) -> list[str]:
        return sorted(n for n in self.state.series if n.startswith("lr/"))


def read_decodes(run_dir: Path, problems: list[str]) -> list[DecodeSummary]:
    """Every ``RUN/decode/*/summary.json``, newest name order; unreadable ones are named in ``problems``."""
    found = []
    for path in sorted(Path(run_dir).glob("decode/*/summary.json")):
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: unreadable ({exc})")
            continue
        if not isinstance(summary, dict):
            problems.append(f"{path}: not a JSON object")
            continue
        found.append(DecodeSummary(
            name=path.parent.name,
            cer=number(summary, "cer"), wer=number(summary, "wer"), mode=str(summary.get("mode", "")),
            utterances=summary.get("utterances") if isinstance(summary.get("utterances"), int) else None))
    return found


def read_config(run_dir: Path, state: RunState, problems: list[str]) -> tuple[dict, str]:
    """The run's config over the engine defaults, and where it came from."""
    path = Path(run_dir) / "config.yaml"
    config, source = None, ""
    if path.exists():
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
            source = str(path)
        except (OSError, yaml.YAMLError) as exc:
            problems.append(f"{path}: unreadable ({str(exc).splitlines()[0]})")
        if config is not None and not isinstance(config, dict):
            problems.append(f"{path}: not a mapping")
            config = None
    if config is None and state.first_start and isinstance(state.first_start.get("config"), dict):
        config, source = state.first_start["config"], "start event"
    if config is None:
        return {}, ""
    return deep_merge(DEFAULTS, config), source


def load_run(run_dir: Path, label: str | None = None, max_points: int = 1000) -> ComparedRun:
    run_dir = Path(run_dir)
    state = TimedRunState(max_points=max_points)
    scan = scan_history(run_dir / "events.jsonl", state, train_samples=COMPARE_TRAIN_SAMPLES)
    run = ComparedRun(run_dir=run_dir, label=label or run_dir.name, state=state, bad_lines=scan.bad_lines)
    try:
        record = read_run_json(run_dir)
    except RunJsonError as exc:
        record = None
        run.problems.append(str(exc))
    run.status, run.reason = run_status(state, record, process_alive(record))
    run.config, run.config_source = read_config(run_dir, state, run.problems)
    run.decodes = read_decodes(run_dir, run.problems)
    return run


def labels_for(run_dirs: list[Path]) -> list[str]:
    """Short distinct names: the directory name, with its parent where two names clash."""
    names = [Path(d).name for d in run_dirs]
    return [f"{Path(d).parent.name}/{n}" if names.count(n) > 1 else n for d, n in zip(run_dirs, names)]


def load_runs(run_dirs: list[Path], max_points: int = 1000) -> list[ComparedRun]:
    run_dirs = [Path(d) for d in run_dirs]
    return [load_run(d, label, max_points) for d, label in zip(run_dirs, labels_for(run_dirs))]


def config_diff(configs: list[dict], ignored: tuple[str, ...] = DIFF_IGNORED) -> list[tuple[str, list[Any]]]:
    """``(dotted key, [value per run])`` for every leaf whose values are not all equal, sorted by key.

    A key one run lacks shows as :data:`~asr_tui.presets_store.MISSING` there.
    """
    flat = [flatten(c) for c in configs]
    keys = sorted(set().union(*flat)) if flat else []
    rows = []
    for key in keys:
        if key in ignored:
            continue
        values = [f.get(key, MISSING) for f in flat]
        if any(v != values[0] for v in values[1:]):
            rows.append((key, values))
    return rows


def best_rows(runs: list[ComparedRun]) -> list[dict[str, str]]:
    """One row per run for the table of best figures (strings, ready to show)."""
    rows = []
    for run in runs:
        state = run.state
        acc, loss = run.state.best.get("valid_acc"), run.state.best.get("valid_loss")
        decode = run.best_decode
        last_loss = main_loss(state.last_train) if state.last_train else None
        rows.append({
            "run": run.label,
            "status": run.status,
            "steps": "-" if state.step is None else str(state.step),
            "train loss": "-" if last_loss is None else f"{last_loss:.3f}",
            "best v.acc": "-" if acc is None else f"{acc[0]:.4f} @{acc[1]}",
            "best v.loss": "-" if loss is None else f"{loss[0]:.3f} @{loss[1]}",
            "best CER": "-" if decode is None else f"{decode.cer * 100:.2f}%",
            "decode": "-" if decode is None else decode.name,
        })
    return rows
