"""A run's named checkpoints: saving with FunASR's names, the ``checkpoints.json`` index,
keep-n-best by a validation metric, and averaging the best into ``model.pt.avg{N}``.

Every file is replaced atomically and the index is only ever a cache of what the files say:
each checkpoint carries its own ``checkpoint_meta`` (epoch, step, kind, metrics, time), so after
a kill -9 at any moment the index is rebuilt from the directory (entries whose file is gone are
dropped, files not indexed are picked up) with a warning for each repair. Updates take an
exclusive lock on the run directory, so the trainer and ``asr-average`` can both write it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from engine.checkpoint.average import average_checkpoints
from engine.checkpoint.names import INDEX, LATEST, average_name, epoch_name, parse_name, step_name
from engine.checkpoint.ranking import METRICS, chronological_key, metric_value, rank_entries
from engine.checkpoint.storage import CheckpointError, load_checkpoint, save_checkpoint
from engine.utils.fileio import atomic_write_text

log = logging.getLogger(__name__)

INDEX_VERSION = 1
STALE_TMP_SECONDS = 600  # a temporary file untouched this long belongs to a killed writer


@dataclass
class SaveResult:
    """What :meth:`CheckpointManager.save` did; paths are absolute."""
    path: Path
    kept: list[Path]
    deleted: list[Path]
    entry: dict = field(repr=False)


@dataclass
class AverageResult(os.PathLike):
    """An averaged checkpoint; usable as its path (``os.fspath``)."""
    path: Path
    sources: list[Path]
    metric: str

    def __fspath__(self) -> str:
        return str(self.path)

    def to_event(self, run_dir: str | os.PathLike) -> dict:
        """Fields of the ``average`` event, paths relative to ``run_dir`` where inside it."""
        return {"path": relative_path(self.path, run_dir),
                "sources": [relative_path(p, run_dir) for p in self.sources], "metric": self.metric}


def relative_path(path: str | os.PathLike, run_dir: str | os.PathLike) -> str:
    """``path`` relative to the run directory when inside it (runs can be moved), else absolute."""
    path, run_dir = Path(path).absolute(), Path(run_dir).absolute()
    try:
        return str(path.relative_to(run_dir))
    except ValueError:
        return str(path)


def _plain_metrics(metrics: dict | None) -> dict:
    """Metrics as JSON numbers: tensors become floats, NaN/inf become None (no rank for them)."""
    plain = {}
    for name, value in (metrics or {}).items():
        value = value.item() if hasattr(value, "item") else value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            plain[name] = float(value) if math.isfinite(value) else None
        else:
            plain[name] = value
    return plain


def _funasr_metrics(state: dict, name: str) -> dict:
    """Validation metrics FunASR's trainer keeps inside its checkpoints, as
    ``val_{acc,loss}_step_or_epoch: {checkpoint name: value}`` (older versions spell it
    ``..._step_or_eoch``), so checkpoints of a FunASR run rank the same here."""
    metrics = {}
    for metric in METRICS:
        for key in (f"val_{metric}_step_or_epoch", f"val_{metric}_step_or_eoch"):
            table = state.get(key)
            if isinstance(table, dict) and isinstance(table.get(name), (int, float)):
                metrics[metric] = float(table[name])
                break
    return metrics


class CheckpointManager:
    """Saves named checkpoints of a run and keeps the ``keep_nbest_models`` best of them.

    Never deletes one of the ``avg_nbest_model`` best (averaging at the end needs them), nor
    the newest one, nor ``model.pt`` or averages. ``metric`` is FunASR's
    ``avg_keep_nbest_models_type``: ``acc`` or ``loss``.
    """

    def __init__(self, run_dir: str | os.PathLike, keep_nbest_models: int = 20,
                 avg_nbest_model: int = 10, metric: str = "acc", read_only: bool = False):
        if metric not in METRICS:
            raise ValueError(f"avg_keep_nbest_models_type must be one of {', '.join(METRICS)}, not {metric!r}")
        if keep_nbest_models < 1:
            raise ValueError(f"keep_nbest_models must be at least 1, not {keep_nbest_models}")
        if avg_nbest_model < 0:
            raise ValueError(f"avg_nbest_model must be 0 or more, not {avg_nbest_model}")
        self.run_dir = Path(run_dir)
        self.keep_nbest_models = keep_nbest_models
        self.avg_nbest_model = avg_nbest_model
        self.metric = metric
        # read_only (asr-average --list): nothing is written, and an entry whose file is gone is
        # reported and kept, metrics and all, rather than dropped from the index.
        self.read_only = read_only
        self.missing: list[dict] = []
        self.warnings: list[str] = []  # every repair of the index, also logged
        self._lock_warned = False
        if read_only:
            self._index = self._load_index()
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._index = self._load_index()
            self._write_index()

    # Queries ---------------------------------------------------------------------------------

    def entries(self) -> list[dict]:
        """Named checkpoints (epoch and step), oldest first, as recorded in checkpoints.json."""
        return sorted((dict(e) for e in self._index["checkpoints"]), key=chronological_key)

    def averages(self) -> list[dict]:
        return [dict(e) for e in self._index["averages"]]

    def best(self, n: int, metric: str | None = None) -> list[dict]:
        """The ``n`` best named checkpoints by ``metric`` (default: the manager's), best first."""
        return rank_entries(self._index["checkpoints"], metric or self.metric)[:max(n, 0)]

    def last(self, n: int) -> list[dict]:
        """The ``n`` newest named checkpoints, newest first."""
        return sorted(self._index["checkpoints"], key=chronological_key, reverse=True)[:max(n, 0)]

    def path_of(self, entry: dict) -> Path:
        return self.run_dir / entry["path"]

    # Saving ----------------------------------------------------------------------------------

    def save(self, state: dict, *, epoch: int, step: int | None = None, metrics: dict | None = None,
             kind: str | None = None) -> SaveResult:
        """Write ``model.pt.ep{epoch}`` (kind "epoch") or ``model.pt.ep{epoch}.{step}`` (kind
        "step"; the default when ``step`` is given) and make ``model.pt`` the same state, index
        it with ``metrics`` (validation metrics at save time), then apply keep-n-best. An epoch
        checkpoint without ``step`` records ``state["step"]`` when the state has one."""
        kind = kind or ("step" if step is not None else "epoch")
        if kind not in ("epoch", "step"):
            raise ValueError(f"kind must be 'epoch' or 'step', not {kind!r}")
        if kind == "step" and step is None:
            raise ValueError("a step checkpoint needs its step")
        name = step_name(epoch, step) if kind == "step" else epoch_name(epoch)
        if step is None and isinstance(state.get("step"), int):
            step = state["step"]  # an epoch checkpoint still records the global step it was at
        meta = {"kind": kind, "epoch": int(epoch), "step": None if step is None else int(step),
                "metrics": _plain_metrics(metrics), "time": time.time()}
        path = self.run_dir / name
        save_checkpoint(path, {**state, "checkpoint_meta": meta})
        self._link_latest(path)
        entry = {"path": name, **meta, "size": path.stat().st_size}
        with self._locked():
            self._index = self._load_index(skip={name})
            checkpoints = [e for e in self._index["checkpoints"] if e["path"] != name] + [entry]
            keep = self._to_keep(checkpoints, newest=entry)
            doomed = [e for e in checkpoints if e["path"] not in keep]
            self._index["checkpoints"] = checkpoints
            self._write_index()  # a kill from here on leaves an index naming files still there
            for doomed_entry in doomed:
                self.path_of(doomed_entry).unlink(missing_ok=True)
            self._index["checkpoints"] = [e for e in checkpoints if e["path"] in keep]
            self._write_index()
        kept = [self.path_of(e) for e in sorted(self._index["checkpoints"], key=chronological_key)]
        return SaveResult(path=path, kept=kept, deleted=[self.path_of(e) for e in doomed], entry=entry)

    def _to_keep(self, checkpoints: list[dict], newest: dict) -> set[str]:
        needed = max(self.keep_nbest_models, self.avg_nbest_model)
        return {e["path"] for e in rank_entries(checkpoints, self.metric)[:needed]} | {newest["path"]}

    def _link_latest(self, source: Path) -> None:
        """``model.pt`` becomes the same file (a hard link: no second write of a large state),
        swapped in atomically; a copy where the filesystem has no hard links."""
        latest = self.run_dir / LATEST
        fd, tmp = tempfile.mkstemp(prefix=f".{LATEST}.", suffix=".tmp", dir=self.run_dir)
        os.close(fd)
        try:
            os.unlink(tmp)
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copyfile(source, tmp)
                with open(tmp, "rb+") as handle:
                    os.fsync(handle.fileno())
            os.replace(tmp, latest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # Averaging -------------------------------------------------------------------------------

    def average(self, n: int, metric: str | None = None) -> AverageResult:
        """Average the ``n`` best named checkpoints by ``metric`` (default: the manager's; "last"
        takes the ``n`` newest) into ``model.pt.avg{k}``, k being how many there were."""
        metric = metric or self.metric
        chosen = self.last(n) if metric == "last" else self.best(n, metric)
        if n < 1 or not chosen:
            raise CheckpointError(f"nothing to average in {self.run_dir}: "
                                  f"{len(self._index['checkpoints'])} named checkpoints, n={n}")
        if len(chosen) < n:
            log.warning("averaging %d checkpoints: only %d of the %d asked for exist",
                        len(chosen), len(chosen), n)
        return self.average_entries(chosen, metric)

    def average_entries(self, chosen: list[dict], metric: str, out_path: str | os.PathLike | None = None,
                        progress: bool = False) -> AverageResult:
        """Average the given index entries (or ``{"path": ...}`` dicts of other files)."""
        chosen = sorted(chosen, key=chronological_key)  # the newest last: integer buffers come from it
        paths = [self.path_of(e) for e in chosen]
        meta = [{k: e[k] for k in ("kind", "epoch", "step", "metrics") if k in e} for e in chosen]
        out = Path(out_path) if out_path else self.run_dir / average_name(len(chosen))
        average_checkpoints(paths, out, sources_meta=meta, metric=metric, progress=progress)
        result = AverageResult(path=out, sources=paths, metric=metric)
        if out.parent.absolute() == self.run_dir.absolute() and parse_name(out.name):
            with self._locked():
                self._index = self._load_index(skip={out.name})
                self._index["averages"] = [a for a in self._index["averages"] if a["path"] != out.name]
                self._index["averages"].append({
                    "path": out.name, "sources": [relative_path(p, self.run_dir) for p in paths],
                    "metric": metric, "size": out.stat().st_size, "time": time.time()})
                self._write_index()
        return result

    # The index -------------------------------------------------------------------------------

    @contextmanager
    def _locked(self):
        """Exclusive lock on the run directory for a read-modify-write of the index."""
        fd = os.open(self.run_dir, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as error:  # a filesystem without locks (some NFS set-ups)
                if not self._lock_warned:
                    self._lock_warned = True
                    self._warn(f"{self.run_dir}: cannot lock ({error.strerror}); do not run asr-average "
                               f"while this run saves checkpoints")
            yield
        finally:
            os.close(fd)

    def _write_index(self) -> None:
        if self.read_only:
            raise RuntimeError(f"{self.run_dir}: opened read-only, the index is not written")
        index = {"version": INDEX_VERSION, "metric": self.metric,
                 "keep_nbest_models": self.keep_nbest_models, "avg_nbest_model": self.avg_nbest_model,
                 "checkpoints": sorted(self._index["checkpoints"], key=chronological_key),
                 "averages": sorted(self._index["averages"], key=lambda a: a.get("time") or 0.0)}
        text = json.dumps(index, indent=1, allow_nan=False) + "\n"
        path = self.run_dir / INDEX
        try:
            if path.read_text(encoding="utf-8") == text:
                return  # unchanged: readers watching its mtime are not woken for nothing
        except (FileNotFoundError, UnicodeDecodeError):
            pass
        atomic_write_text(path, text)

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning("%s", message)

    def _load_index(self, skip: frozenset | set = frozenset()) -> dict:
        """checkpoints.json reconciled with the directory; ``skip``: names being saved now."""
        index_path = self.run_dir / INDEX
        index = {"checkpoints": [], "averages": []}
        if index_path.exists():
            try:
                loaded = json.loads(index_path.read_text(encoding="utf-8"))
                index = {"checkpoints": list(loaded["checkpoints"]), "averages": list(loaded["averages"])}
            except (ValueError, KeyError, TypeError) as error:
                self._warn(f"{index_path}: unreadable index ({error}); rebuilt from the checkpoint files")
        for section in ("checkpoints", "averages"):
            present = []
            for entry in index[section]:
                if (self.run_dir / entry["path"]).is_file():
                    present.append(entry)
                elif self.read_only:
                    self.missing.append(entry)  # the caller reports it
                else:
                    self._warn(f"{index_path}: {entry['path']} is listed but its file is gone; dropped")
            index[section] = present
        indexed = {e["path"] for section in ("checkpoints", "averages") for e in index[section]}
        for path in sorted(self.run_dir.iterdir()):
            parsed = parse_name(path.name)
            if parsed is None or path.name in indexed or path.name in skip:
                continue
            entry = self._entry_from_file(path, parsed)
            if entry is not None:
                index["checkpoints" if parsed.kind != "average" else "averages"].append(entry)
        if not self.read_only:
            self._remove_stale_temporaries()
        return index

    def _entry_from_file(self, path: Path, parsed) -> dict | None:
        """An index entry for a checkpoint file not in the index, from its own metadata or name."""
        try:
            state = load_checkpoint(path, mmap=True)
        except CheckpointError as error:
            self._warn(f"{path.name} is not in {INDEX} and cannot be read, left out of it: {error}")
            return None
        stat = path.stat()
        if parsed.kind == "average":
            entry = {"path": path.name, "sources": [s.get("path") for s in state.get("sources") or []
                                                   if isinstance(s, dict)],
                     "metric": state.get("metric"), "size": stat.st_size, "time": stat.st_mtime}
        else:
            meta = state.get("checkpoint_meta") if isinstance(state.get("checkpoint_meta"), dict) else {}
            entry = {"path": path.name, "kind": parsed.kind, "epoch": parsed.epoch,
                     "step": meta.get("step", parsed.step),
                     "metrics": meta.get("metrics") or _funasr_metrics(state, path.name),
                     "time": meta.get("time", stat.st_mtime), "size": stat.st_size}
        self._warn(f"{path.name} was not in {INDEX} (a save was interrupted); picked up from the file")
        return entry

    def _remove_stale_temporaries(self) -> None:
        now = time.time()
        temporaries = [*self.run_dir.glob(f".{LATEST}*.tmp"), *self.run_dir.glob(f".{INDEX}.*.tmp")]
        for tmp in temporaries:
            try:
                stat = tmp.stat()
                if now - stat.st_mtime > STALE_TMP_SECONDS:
                    tmp.unlink()
                    self._warn(f"removed {tmp.name} ({stat.st_size / 2**20:.1f} MiB), left by an "
                               f"interrupted checkpoint write")
            except FileNotFoundError:
                continue
