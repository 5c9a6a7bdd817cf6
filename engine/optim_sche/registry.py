"""Scheduler names -> OptimScheduler classes, plus SpeeChain's query form for a user's own subclass."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

from engine.optim_sche.abs import OptimScheduler
from engine.optim_sche.conf import OptimConfError
from engine.optim_sche.constant import ConstantLr
from engine.optim_sche.cosine import CosineLr
from engine.optim_sche.exponential import ExponentialLr
from engine.optim_sche.noam import NoamLr
from engine.optim_sche.tri_stage import TriStageLr
from engine.optim_sche.warmuplr import WarmupLr

SCHEDULERS: dict[str, type[OptimScheduler]] = {
    "noam": NoamLr,
    "warmuplr": WarmupLr,
    "tri_stage": TriStageLr,
    "cosine": CosineLr,
    "constant": ConstantLr,
    "exponential": ExponentialLr,
}


def _load_file(key: str, path: Path) -> object:
    if not path.is_file():
        raise OptimConfError(f"{key}: no such file {str(path)!r}")
    # keyed by path and modification time: an edited file is loaded afresh (the console's live preview)
    module_name = f"_asr_user_optim_sche_{abs(hash((str(path.resolve()), path.stat().st_mtime_ns)))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[module_name]
        raise
    return module


def _import_module(key: str, module_path: str) -> object:
    """SpeeChain's ``noam.NoamLr`` names a file of this package; otherwise an importable module."""
    for candidate in (f"engine.optim_sche.{module_path}", module_path):
        try:
            return importlib.import_module(candidate)
        except ModuleNotFoundError as exc:
            if exc.name is None or not candidate.startswith(exc.name):
                raise  # the module exists but one of its own imports is missing
    raise OptimConfError(f"{key}: no module {module_path!r} (neither engine.optim_sche.{module_path} nor {module_path})")


def resolve_scheduler(query: str, key: str = "type") -> type[OptimScheduler]:
    """A registry name (``warmuplr``), ``path/to/file.py:Class`` or ``module.Class``."""
    if query in SCHEDULERS:
        return SCHEDULERS[query]
    if ":" in query:
        file_part, _, class_name = query.rpartition(":")
        module = _load_file(key, Path(file_part).expanduser())
    elif "." in query:
        module_path, _, class_name = query.rpartition(".")
        module = _import_module(key, module_path)
    else:
        raise OptimConfError(
            f"{key}: unknown scheduler {query!r} (built in: {', '.join(SCHEDULERS)}; "
            f"or 'path/to/file.py:Class' / 'module.Class' for your own OptimScheduler subclass)"
        )
    cls = getattr(module, class_name, None)
    if not (inspect.isclass(cls) and issubclass(cls, OptimScheduler)):
        raise OptimConfError(f"{key}: {query!r} does not name an OptimScheduler subclass")
    return cls
