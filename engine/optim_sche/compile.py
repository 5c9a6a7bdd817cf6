"""torch.compile of the training forward (and so its backward), with an automatic fallback to eager.

``train_conf.compile``:

- ``false``: eager.
- ``true``: compile; where it cannot (no C++ compiler for the CPU backend, no Triton for CUDA,
  an error while compiling) the step runs eager and the reason is logged and reported.
- ``auto`` (default): compile on the device types where ``bench/train.py``
  (``step_time_ratio_vs_eager``) measured a gain over a demo-length run, compile time included
  (:data:`AUTO_COMPILE`); eager elsewhere.

Shapes: batches differ in length. The first batch compiles a graph for its exact sizes; the
first batch of another shape recompiles once with those sizes symbolic (dynamo's automatic
dynamic shapes), after which one graph serves every length, so recompiles stay bounded by what
changes besides sizes (train/eval mode, a new dtype). Dynamo's own ``recompile_limit`` is the
hard bound: past it dynamo runs that frame eager by itself. The count of compiled graphs is
read from dynamo's counters and reported with the status (``train`` events carry it).

A compile error at any step (inductor cannot build the kernels: no compiler, a compiler error,
an inductor bug such as the dynamic-shape ``cannot determine truth value of Relational`` that
torch 2.14.1's CPU backend raised on the Conformer) turns compiling off for the rest of the run;
that step is repeated eager (see TrainStep.run).
"""

from __future__ import annotations

import logging
import shutil
import time

import torch

from engine.optim_sche.conf import COMPILE_CHOICES

log = logging.getLogger("engine")

# Device types on which ``compile: auto`` compiles, from bench/train.py's step_time_ratio_vs_eager
# (measured figures and the machine: docs/training.md, "Step speed"). CUDA is left eager until it
# has been measured there: no GPU was at hand when this was decided.
AUTO_COMPILE = {"cpu": False, "cuda": False}


def compiler_missing(device_type: str) -> str | None:
    """Why inductor cannot build kernels for this device type here, or None when it can."""
    if device_type == "cpu":
        try:
            from torch._inductor import config as inductor_config

            cxx = inductor_config.cpp.cxx
            candidates = [c for c in (cxx if isinstance(cxx, tuple) else (cxx,)) if c] or ["g++"]
        except Exception:  # noqa: BLE001 - an inductor without this config: let torch.compile say
            return None
        if not any(shutil.which(str(c)) for c in candidates):
            return f"no C++ compiler ({', '.join(map(str, candidates))}) on PATH for inductor's CPU backend"
        return None
    if device_type == "cuda":
        try:
            from torch.utils._triton import has_triton
        except ImportError:
            return "this torch has no Triton support"
        return None if has_triton() else "Triton is not installed (inductor's CUDA backend needs it)"
    return f"inductor has no backend for device type {device_type!r}"


def wanted(setting, device_type: str) -> tuple[bool, str]:
    """(compile?, why) for ``train_conf.compile`` on this device type, before any compiler check."""
    if setting not in COMPILE_CHOICES:
        raise ValueError(f"train_conf.compile must be auto, true or false, got {setting!r}")
    if setting is False:
        return False, "compile: false"
    if setting is True:
        return True, "compile: true"
    if AUTO_COMPILE.get(device_type, False):
        return True, f"compile: auto, measured faster on {device_type}"
    return False, f"compile: auto, not measured faster on {device_type} (bench/train.py step_time_ratio_vs_eager)"


def compiled_graphs() -> int:
    """Graphs dynamo has compiled in this process (first compiles and recompiles)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return 0
    return int(counters["stats"].get("unique_graphs", 0))


class CompiledModel:
    """Calls the compiled module, or the eager one when compiling is off or has failed.

    ``status`` says which, and why: {"requested", "active", "reason", "graphs", "compile_s"}.
    A failure while compiling (a first compile or a recompile) is caught: the call is repeated
    eager and every later call stays eager. Errors of the model itself (shape mistakes) are
    raised as they would be without compiling.
    """

    def __init__(self, module: torch.nn.Module, setting, device_type: str):
        self.eager = module
        requested, reason = wanted(setting, device_type)
        self.status = {"requested": requested, "active": False, "reason": reason, "graphs": 0, "compile_s": 0.0}
        self.compiled = None
        if requested:
            missing = compiler_missing(device_type)
            if missing:
                self.fall_back(missing)
            else:
                self.compiled = torch.compile(module)
                self.status["active"] = True
        self._graphs_before = compiled_graphs()
        self.calls = 0

    def fall_back(self, why) -> None:
        """Run eager from now on, and say why (an exception or a text)."""
        if isinstance(why, BaseException):
            # The root cause says what went wrong (a compiler message); the wrapper only where.
            root = why
            while getattr(root, "inner_exception", None) is not None or root.__cause__ is not None:
                root = getattr(root, "inner_exception", None) or root.__cause__
            lines = [line.strip() for line in str(root).splitlines() if line.strip()]
            why = f"{type(why).__name__}: {type(root).__name__}: {lines[0] if lines else ''}"[:500]
        self.compiled = None
        self.status.update(active=False, reason=f"compile fell back to eager: {why}")
        log.warning("train_conf.compile: %s", self.status["reason"])

    def __getattr__(self, name):
        # Anything else (train(), parameters(), no_sync() ...) is the eager module's.
        if name in ("eager", "compiled", "status"):
            raise AttributeError(name)
        return getattr(self.eager, name)

    def __call__(self, *args, **kwargs):
        if self.compiled is None:
            return self.eager(*args, **kwargs)
        self.calls += 1
        start = time.perf_counter()
        before = compiled_graphs()
        try:
            output = self.compiled(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - a compile failure: run eager, say why
            if not is_compile_error(error):
                raise
            self.fall_back(error)
            return self.eager(*args, **kwargs)
        graphs = compiled_graphs()
        if graphs > before:
            self.status["compile_s"] += time.perf_counter() - start
        self.status["graphs"] = graphs - self._graphs_before
        return output


def is_compile_error(error: BaseException) -> bool:
    """True for errors of dynamo/inductor while compiling (not of the model's own code)."""
    try:
        from torch._dynamo.exc import BackendCompilerFailed, InternalTorchDynamoError, Unsupported
    except ImportError:
        return False
    if isinstance(error, (BackendCompilerFailed, InternalTorchDynamoError, Unsupported)):
        return True
    try:
        from torch._inductor.exc import InductorError
    except ImportError:
        return False
    return isinstance(error, InductorError)
