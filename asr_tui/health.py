"""Health of a job, judged from its event log: stalls, non-finite losses, slow data, leaks, slow ranks.

Pure and torch-free: :class:`HealthTracker` is fed the events in log order (``RunState`` does it
for the monitor and for the runs list, so both judge alike) and :meth:`HealthTracker.findings`
answers with what is wrong now. Each finding names the rank (or "all ranks") and the figure.

Rules (docs/console.md, "Health"):

- stalled: the process is alive and no ``train`` event came for more than 5x the median
  interval between the recent ones (and at least 10 s);
- non-finite: a recent ``train`` event lists fields in ``nonfinite`` (NaN/inf written as null);
- skipped: the ``skipped`` counts (updates skipped for a non-finite gradient norm) rose recently;
- data loading: a rank spends more than 20% of its step time waiting for data;
- memory growth: a rank's RSS or GPU memory grew at every one of the last N intervals;
- slow rank: a rank's forward time per update (the part no collective evens out) is well
  above the median rank's.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

STALL_FACTOR = 5.0
STALL_MIN_S = 10.0  # and never under this: a log written in bursts has sub-second median gaps
MIN_INTERVALS = 3  # fewer intervals than this give no median worth judging by
DATA_LOAD_FRACTION = 0.2
GROWTH_INTERVALS = 8  # N: memory must have grown across this many intervals
GROWTH_MIN_FRACTION = 0.05
GROWTH_MIN_MB = 32.0
SLOW_RANK_FACTOR = 1.5
SLOW_RANK_MIN_S = 0.005
RECENT = 5  # train events averaged for the per-rank rules
WINDOW = max(GROWTH_INTERVALS + 1, 16)

# Memory figures judged for growth, with the label shown; memory_mb only from an older engine
# that wrote neither of the others.
MEMORY_FIGURES = (("rss_mb", "RSS"), ("gpu_memory_used_mb", "GPU memory"))
SHORT = {"stalled": "stall", "nonfinite": "nan", "skipped": "skip", "data_loading": "data",
         "memory_growth": "mem", "slow_rank": "slow"}


@dataclass(frozen=True)
class Finding:
    """One thing wrong with the job: ``kind`` (a SHORT key), the rank (None: all ranks), and a line."""

    kind: str
    rank: int | None
    message: str

    @property
    def short(self) -> str:
        return SHORT.get(self.kind, self.kind)


def median(values) -> float:
    """The median (statistics.median, written here: importing statistics slows the console's start)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _number(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _rank_of(path: str) -> int | None:
    """The rank a ``nonfinite`` path names ("ranks.1.loss" -> 1), None for a run-wide field."""
    parts = path.split(".")
    if len(parts) >= 2 and parts[0] == "ranks" and parts[1].isdigit():
        return int(parts[1])
    return None


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


class HealthTracker:
    """The recent train events of the current launch, judged on demand."""

    def __init__(self) -> None:
        self.train: deque[dict] = deque(maxlen=WINDOW)
        self.ended = False

    def apply(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "train":
            self.train.append(event)
        elif kind == "start":  # a new launch: its intervals and counts start afresh
            self.train.clear()
            self.ended = False
        elif kind == "end":
            self.ended = True

    def findings(self, now: float | None = None, alive: bool | None = None) -> list[Finding]:
        """What is wrong now; ``alive`` (the job's process lives) and ``now`` for the stall rule."""
        found: list[Finding] = []
        for rule in (self._stalled(now, alive), self._nonfinite(), self._skipped(), self._data_loading(),
                     *self._memory_growth(), self._slow_rank()):
            if rule is not None:
                found.append(rule)
        return found

    # The rules.

    def _times(self) -> list[float]:
        return [t for t in (_number(e.get("time")) for e in self.train) if t is not None]

    def median_interval(self) -> float | None:
        times = self._times()
        gaps = [b - a for a, b in zip(times, times[1:]) if b > a]
        return median(gaps) if len(gaps) >= MIN_INTERVALS else None

    def _stalled(self, now: float | None, alive: bool | None) -> Finding | None:
        if not alive or self.ended or now is None:
            return None
        typical, times = self.median_interval(), self._times()
        if typical is None or not times:
            return None
        silent = now - times[-1]
        if silent <= max(STALL_FACTOR * typical, STALL_MIN_S):
            return None
        return Finding("stalled", None, f"stalled: no train event for {_seconds(silent)} (all ranks), "
                                        f"{silent / typical:.0f}x the median interval {_seconds(typical)}")

    def _nonfinite(self) -> Finding | None:
        hit = [e for e in self.train if isinstance(e.get("nonfinite"), list) and e["nonfinite"]]
        if not hit:
            return None
        last = hit[-1]
        paths = [str(p) for p in last["nonfinite"]]
        ranks = sorted({r for r in map(_rank_of, paths) if r is not None})
        where = f"rank {ranks[0]}" if len(ranks) == 1 else (
            f"ranks {', '.join(map(str, ranks))}" if ranks else "all ranks")
        return Finding("nonfinite", ranks[0] if len(ranks) == 1 else None,
                       f"non-finite {', '.join(paths[:3])}{' …' if len(paths) > 3 else ''} on {where} "
                       f"at step {last.get('step', '?')} ({len(hit)} of the last {len(self.train)} train events)")

    def _skipped(self) -> Finding | None:
        counts = [e["skipped"] for e in self.train if isinstance(e.get("skipped"), dict)]
        if len(counts) < 2:
            return None
        first, last = counts[0], counts[-1]
        rose = {name: int(n) - int(first.get(name, 0)) for name, n in last.items()
                if isinstance(n, int) and isinstance(first.get(name, 0), int) and n > first.get(name, 0)}
        if not rose:
            return None
        steps = [e.get("step") for e in self.train if isinstance(e.get("skipped"), dict)]
        span = f" in steps {steps[0]}-{steps[-1]}" if all(isinstance(s, int) for s in (steps[0], steps[-1])) else ""
        text = ", ".join(f"{name} {n} (total {last[name]})" for name, n in rose.items())
        return Finding("skipped", None, f"updates skipped for a non-finite gradient on all ranks{span}: {text}")

    def _rank_means(self, figure) -> dict[int, float]:
        """Per rank, the mean of ``figure(row)`` over the last RECENT train events."""
        sums: dict[int, list[float]] = {}
        for event in list(self.train)[-RECENT:]:
            for index, row in enumerate(event.get("ranks") or []):
                if not isinstance(row, dict):
                    continue
                value = figure(row)
                if value is not None:
                    rank = row.get("rank") if isinstance(row.get("rank"), int) else index
                    sums.setdefault(rank, []).append(value)
        return {rank: sum(values) / len(values) for rank, values in sums.items()}

    def _data_loading(self) -> Finding | None:
        def fraction(row: dict) -> float | None:
            load, total = _number(row.get("data_load_s")), _number(row.get("total_s"))
            return load / total if load is not None and total else None

        over = {rank: f for rank, f in self._rank_means(fraction).items() if f > DATA_LOAD_FRACTION}
        if not over:
            return None
        worst = max(over, key=over.get)
        others = f" (and {len(over) - 1} more rank{'s' if len(over) > 2 else ''})" if len(over) > 1 else ""
        return Finding("data_loading", worst, f"data loading {over[worst] * 100:.0f}% of step time on rank {worst}"
                                              f"{others}: more workers or prefetch?")

    def _memory_growth(self) -> list[Finding]:
        events = list(self.train)[-(GROWTH_INTERVALS + 1):]
        if len(events) < GROWTH_INTERVALS + 1:
            return []
        figures = list(MEMORY_FIGURES)
        if not any(isinstance(r, dict) and (r.get("rss_mb") is not None or r.get("gpu_memory_used_mb") is not None)
                   for e in events for r in (e.get("ranks") or [])):
            figures = [("memory_mb", "memory")]
        found = []
        for key, label in figures:
            worst: tuple[float, int, float, float] | None = None
            for rank, values in self._per_rank(events, key).items():
                if len(values) < GROWTH_INTERVALS + 1:
                    continue
                grew = all(b > a for a, b in zip(values, values[1:]))
                first, last = values[0], values[-1]
                if grew and first > 0 and last - first >= max(GROWTH_MIN_MB, GROWTH_MIN_FRACTION * first):
                    growth = (last - first) / first
                    if worst is None or growth > worst[0]:
                        worst = (growth, rank, first, last)
            if worst is not None:
                growth, rank, first, last = worst
                found.append(Finding("memory_growth", rank,
                                     f"{label} of rank {rank} grew at each of the last {GROWTH_INTERVALS} intervals: "
                                     f"{first:.0f} -> {last:.0f} MiB (+{growth * 100:.0f}%)"))
        return found

    @staticmethod
    def _per_rank(events: list[dict], key: str) -> dict[int, list[float]]:
        values: dict[int, list[float]] = {}
        for event in events:
            for index, row in enumerate(event.get("ranks") or []):
                if isinstance(row, dict) and _number(row.get(key)) is not None:
                    rank = row.get("rank") if isinstance(row.get("rank"), int) else index
                    values.setdefault(rank, []).append(float(row[key]))
        return values

    def _slow_rank(self) -> Finding | None:
        # Forward only: waiting for data has its own rule, and backward and optim end in
        # collectives where every rank waits for the slowest, which evens them out.
        means = self._rank_means(lambda row: _number(row.get("forward_s")))
        if len(means) < 2:
            return None
        typical = median(means.values())
        slowest = max(means, key=means.get)
        value = means[slowest]
        if value < SLOW_RANK_FACTOR * typical or value - typical < SLOW_RANK_MIN_S:
            return None
        ratio = f"{value / typical:.1f}x" if typical > 0 else "far above"
        return Finding("slow_rank", slowest, f"rank {slowest} is slow: forward {_seconds(value)} "
                                             f"per update, {ratio} the median rank ({_seconds(typical)})")


def marker(findings: list[Finding]) -> str:
    """The runs list's short marker: the first finding's tag, plus how many more."""
    if not findings:
        return ""
    more = f"+{len(findings) - 1}" if len(findings) > 1 else ""
    return f"⚠ {findings[0].short}{more}"
