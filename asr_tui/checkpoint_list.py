"""The checkpoints of a run: which files exist, with the epoch, step and metrics they were saved at.

Metadata comes from the run's ``checkpoints.json`` index when the engine wrote one, else from
its ``checkpoint`` events; files are found by FunASR's names (model.pt, model.pt.ep{N},
model.pt.ep{E}.{S}, model.pt.avg{N}), parsed by the engine's own ``engine.checkpoint.names``,
so a checkpoint without metadata is still listed. The n-best are ranked by the engine's
``engine.checkpoint.ranking``: the console marks the files the engine averages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from engine.checkpoint.names import LATEST, parse_name
from engine.checkpoint.ranking import rank_entries

from asr_tui.tailer import find_events


@dataclass
class CheckpointInfo:
    path: Path
    kind: str  # latest | epoch | step | average
    epoch: int | None = None
    step: int | None = None
    acc: float | None = None
    loss: float | None = None
    size: int = 0
    mtime: float = 0.0
    inode: int = 0
    saved_at: float | None = None  # the save time the engine recorded (ranks ties, newest first)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def averageable(self) -> bool:
        return self.kind in ("epoch", "step")


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _index_entries(run_dir: Path) -> tuple[list[dict], str]:
    """Entries of checkpoints.json, and a problem text when it exists but cannot be read."""
    path = run_dir / "checkpoints.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [], ""
    except (OSError, ValueError) as exc:
        return [], f"{path}: unreadable ({exc}); using the event log instead"
    if isinstance(data, dict):
        data = data.get("checkpoints", [])
    if not isinstance(data, list):
        return [], f"{path}: expected a list of checkpoints"
    return [entry for entry in data if isinstance(entry, dict) and entry.get("path")], ""


def list_checkpoints(run_dir: Path) -> tuple[list[CheckpointInfo], list[str]]:
    """(checkpoints on disk, oldest first and averages last; problems worth showing)."""
    run_dir = Path(run_dir)
    problems: list[str] = []
    metadata: dict[str, dict] = {}
    saves = find_events(run_dir / "events.jsonl", ("checkpoint",))
    for event in saves:
        metadata[Path(str(event.get("path", ""))).name] = event
    entries, problem = _index_entries(run_dir)
    if problem:
        problems.append(problem)
    for entry in entries:
        metadata[Path(str(entry["path"])).name] = entry
    # Every save, named or not, leaves its state in model.pt: the newest save describes it.
    newest_save = max((m for m in (*saves, *entries) if _number(m.get("time")) is not None),
                      key=lambda m: m["time"], default=None)
    found = []
    try:
        files = [(p, parse_name(p.name)) for p in run_dir.iterdir()
                 if (p.name == LATEST or parse_name(p.name) is not None) and p.is_file()]
    except OSError as exc:
        return [], [f"{run_dir}: {exc.strerror}"]
    for path, parsed in files:
        meta = metadata.get(path.name, {})
        metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
        kind = parsed.kind if parsed is not None else "latest"
        epoch = meta.get("epoch") if isinstance(meta.get("epoch"), int) else (parsed.epoch if parsed else None)
        step = meta.get("step") if isinstance(meta.get("step"), int) else (parsed.step if parsed else None)
        try:
            stat = path.stat()
        except FileNotFoundError:  # deleted by keep-n-best while we looked
            continue
        found.append(CheckpointInfo(
            path=path, kind=kind, epoch=epoch, step=step,
            acc=_number(metrics.get("acc")), loss=_number(metrics.get("loss")),
            size=stat.st_size, mtime=stat.st_mtime, inode=stat.st_ino, saved_at=_number(meta.get("time")),
        ))
    # model.pt is a hard link to the newest named checkpoint (it shares that file's metadata),
    # or, where links are impossible or a copy broke them, the state of the newest save.
    by_inode = {c.inode: c for c in found if c.kind in ("epoch", "step")}
    for ckpt in found:
        if ckpt.kind != "latest":
            continue
        twin = by_inode.get(ckpt.inode)
        if twin is not None:
            ckpt.epoch, ckpt.step, ckpt.acc, ckpt.loss = twin.epoch, twin.step, twin.acc, twin.loss
        elif newest_save is not None:
            metrics = newest_save.get("metrics") if isinstance(newest_save.get("metrics"), dict) else {}
            epoch, step = newest_save.get("epoch"), newest_save.get("step")
            ckpt.epoch = epoch if isinstance(epoch, int) else None
            ckpt.step = step if isinstance(step, int) else None
            ckpt.acc, ckpt.loss = _number(metrics.get("acc")), _number(metrics.get("loss"))
    order = {"epoch": 0, "step": 0, "latest": 1, "average": 2}
    found.sort(key=lambda c: (order[c.kind], c.step if c.step is not None else -1,
                              c.epoch if c.epoch is not None else -1, c.mtime))
    return found, problems


def nbest(checkpoints: list[CheckpointInfo], count: int, metric: str = "acc") -> list[CheckpointInfo]:
    """The ``count`` checkpoints the engine averages by ``metric`` (acc: highest, loss: lowest),
    ranked by ``engine.checkpoint.ranking.rank_entries``: ties newest first, and checkpoints saved
    without the metric after the scored ones, newest first."""
    named = {c.name: c for c in checkpoints if c.averageable}
    entries = [{"path": name, "time": c.saved_at if c.saved_at is not None else c.mtime, "epoch": c.epoch,
                "step": c.step, "metrics": {"acc": c.acc, "loss": c.loss}} for name, c in named.items()]
    return [named[entry["path"]] for entry in rank_entries(entries, metric)[:max(0, count)]]


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}GB"
