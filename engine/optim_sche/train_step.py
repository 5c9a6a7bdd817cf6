"""TrainStep: the trainer's one gateway to forward, backward and update.

It owns what must be decided once for all OptimSchedulers: the device, autocast (fp16 / bf16),
the single shared GradScaler, and DDP gradient synchronisation.

Gradient synchronisation happens exactly once per real update, on the last micro-batch of the
accumulation group (the other micro-batches run under ``no_sync``), in one of two ways:

- ``explicit``: DDP stays in ``no_sync`` (it still broadcasts rank 0's initial parameters) and
  :mod:`grad_sync` averages the updating optimisers' gradients in coalesced buckets after the
  backward passes, then broadcasts rank 0's buffers, which leaves rank 0's buffers as DDP would.
  Needed for several OptimSchedulers (or one owning part of the model): each backwards its own
  loss onto its own parameters, and DDP's reducer expects one backward per forward that reaches
  every parameter.
- ``reducer``: DDP's own reducer, which overlaps the all-reduce with the backward pass. Used for
  one OptimScheduler owning every trainable parameter, once the first update (synchronised
  explicitly) has shown that every parameter gets a gradient on every rank; a model that leaves
  parameters unused (a zero-weight branch) stays explicit, with no find_unused_parameters needed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from engine.optim_sche.abs import OptimScheduler
from engine.optim_sche.compile import CompiledModel, is_compile_error
from engine.optim_sche.grad_sync import all_reduce_grads, broadcast_buffers
from engine.optim_sche.precision import cpu_has_native_bf16, precision
from engine.utils.cpus import cpu_flags

logger = logging.getLogger("engine")


@dataclass
class StepResult:
    """What one micro-batch did: its losses (floats), whether any optimiser reached an update, each
    optimiser's lr, the gradient norms of those that updated, timings, and skip counts so far."""

    losses: dict[str, float]
    updated: bool
    lrs: dict[str, float]
    grad_norms: dict[str, float]
    forward_s: float
    backward_s: float
    optim_s: float
    skipped: dict[str, int] = field(default_factory=dict)


AUTOCAST_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _device_precision(train_conf: dict, device: torch.device) -> tuple[str, str]:
    """engine.optim_sche.precision's (name, why), checked against what this device can do."""
    flags = cpu_flags() if device.type == "cpu" else set()  # /proc/cpuinfo read once for both questions
    name, why = precision(train_conf, device.type, flags)
    if name == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"train_conf.use_bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support; use use_fp16")
    if name == "bfloat16" and device.type == "cpu" and not cpu_has_native_bf16(flags):
        logger.warning("train_conf.use_bf16: this CPU has no native bfloat16 arithmetic (avx512_bf16 / amx_bf16); "
                       "bf16 autocast emulates it and is usually slower than float32 here "
                       "(bench/train.py step_time_ratio_bf16_vs_fp32)")
    return name, why


def _scalar_floats(output: dict) -> dict[str, float]:
    """Every scalar in the model's output as a float, with one device sync for all tensors."""
    names, tensors, floats = [], [], {}
    for name, value in output.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            names.append(name)
            tensors.append(value.detach().reshape(()).float())
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            floats[name] = float(value)
    if tensors:
        floats.update(zip(names, torch.stack(tensors).tolist()))
    return floats


class TrainStep:
    """Forward (under autocast), backward per OptimScheduler, synchronise, update."""

    def __init__(self, model: torch.nn.Module, optim_sches: dict[str, OptimScheduler], train_conf: dict,
                 device: torch.device | str):
        if not optim_sches:
            raise ValueError("optim_sches: at least one OptimScheduler is needed")
        self.device = torch.device(device)
        self.module = model.to(self.device)
        self.optim_sches = optim_sches
        # "float32", "bfloat16" or "float16", and why; autocast runs in the latter two
        self.precision, self.precision_reason = _device_precision(train_conf, self.device)
        self.autocast_dtype = AUTOCAST_DTYPES[self.precision]
        # One scaler for all optimisers (PyTorch's multi-optimiser AMP recipe): each unscales its
        # own gradients; update() runs once per iteration in which any of them stepped.
        self.scaler = torch.amp.GradScaler(self.device.type) if self.autocast_dtype is torch.float16 else None
        self.world_size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        only = next(iter(optim_sches.values()))
        if self.world_size == 1:
            self.grad_sync = None
            self.model = self.module
        else:
            self.grad_sync = "probe" if len(optim_sches) == 1 and only.covers_model else "explicit"
            self.model = DistributedDataParallel(
                self.module,
                device_ids=[self.device.index] if self.device.type == "cuda" and self.device.index is not None else None,
                find_unused_parameters=bool(train_conf.get("find_unused_parameters", False)),
            )
        # The forward (and with it the backward) compiled per train_conf.compile; validation and
        # decoding call the bare module, eager.
        self.compiled = CompiledModel(self.model, train_conf.get("compile", False), self.device.type)
        self.last_step_num = 0

    @property
    def compile_status(self) -> dict:
        """{"requested", "active", "reason", "graphs", "compile_s"} (see engine.optim_sche.compile)."""
        return dict(self.compiled.status)

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run(self, batch_fn, step_num: int) -> StepResult:
        """One micro-batch: ``batch_fn(self.model)`` returns the loss dict; ``step_num`` counts micro-batches from 1."""
        if step_num <= self.last_step_num:
            raise ValueError(
                f"step_num {step_num} after {self.last_step_num}: pass the run's micro-batch count, "
                f"which keeps rising over epochs and resumes (the schedules depend on it)"
            )
        self.last_step_num = step_num
        active = [o for o in self.optim_sches.values() if o.backward_at(step_num)]
        updating = [o for o in active if o.updates_at(step_num)]
        sync_by_ddp = self.grad_sync == "reducer" and bool(updating)
        no_sync = self.model.no_sync() if self.grad_sync and not sync_by_ddp else contextlib.nullcontext()

        start = time.perf_counter()
        compiling = self.compiled.status["active"]
        pending = compiling and any(p.grad is not None for o in active for p in o.params)
        try:
            losses, forward_end = self._forward_backward(batch_fn, active, no_sync)
        except Exception as error:  # noqa: BLE001 - only compile failures are caught
            if not (compiling and is_compile_error(error)):
                raise
            # Backward graphs are compiled at their first backward, so a failure there may leave
            # this micro-batch's gradients half-made: they are dropped and the micro-batch is run
            # again, eager. Gradients accumulated from earlier micro-batches of the group go too
            # (they cannot be told apart), which is said.
            for optim_sche in active:
                optim_sche.optimizer.zero_grad(set_to_none=True)
            if pending:
                logger.warning("train_conf.compile: the gradients accumulated before micro-batch %d were dropped "
                               "with the failed compile; this update uses the rest of its group", step_num)
            self.compiled.fall_back(error)
            start = time.perf_counter()
            losses, forward_end = self._forward_backward(batch_fn, active, no_sync)
        backward_end = time.perf_counter()

        grad_norms = {}
        if updating:
            explicit = self.grad_sync in ("explicit", "probe")
            if explicit:
                complete = all_reduce_grads([p for o in updating for p in o.params], self.world_size)
                if self.grad_sync == "probe":
                    self.grad_sync = "reducer" if complete else "explicit"
            for optim_sche in updating:
                grad_norms[optim_sche.name] = optim_sche.update(step_num, self.scaler)
            if self.scaler is not None:
                self.scaler.update()
            if explicit:
                broadcast_buffers(self.module)
            self._synchronize()
        optim_end = time.perf_counter()
        return StepResult(
            losses=losses,
            updated=bool(updating),
            lrs={name: o.get_lr() for name, o in self.optim_sches.items()},
            grad_norms=grad_norms,
            forward_s=forward_end - start,
            backward_s=backward_end - forward_end,
            optim_s=optim_end - backward_end,
            skipped={name: o.skipped for name, o in self.optim_sches.items()},
        )

    def _forward_backward(self, batch_fn, active: list, no_sync) -> tuple[dict[str, float], float]:
        with no_sync:
            with torch.set_grad_enabled(bool(active)), self._autocast():
                output = self._batch_output(batch_fn)
            losses = _scalar_floats(output)
            forward_end = time.perf_counter()
            for index, optim_sche in enumerate(active):
                optim_sche.backward(output, retain_graph=index < len(active) - 1, scaler=self.scaler)
            del output
            self._synchronize()
        return losses, forward_end

    def _batch_output(self, batch_fn) -> dict:
        output = batch_fn(self.compiled)
        if not isinstance(output, dict):
            raise TypeError(f"batch_fn must return a dict of losses, got {type(output).__name__}")
        return output

    def set_init_step(self, init_real_step: int | None) -> None:
        """After init_param: OptimSchedulers with ``warmup_from: init`` continue from that checkpoint's real step."""
        wanting = [name for name, o in self.optim_sches.items() if o.warmup_from == "init"]
        if wanting and init_real_step is None:
            raise ValueError(
                f"optim_sches.{wanting[0]}.conf.warmup_from: 'init' continues the schedule from the step "
                f"recorded in train_conf.init_param's checkpoint, but there is no init_param or it records "
                f"no optimiser step (averaged or foreign weights); use warmup_from: zero"
            )
        for optim_sche in self.optim_sches.values():
            optim_sche.set_init_step(init_real_step or 0)

    def state_dict(self) -> dict:
        return {
            "optim_sches": {name: o.state_dict() for name, o in self.optim_sches.items()},
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "step_num": self.last_step_num,
        }

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("optim_sches", {})
        missing = [name for name in self.optim_sches if name not in saved]
        extra = [name for name in saved if name not in self.optim_sches]
        if missing or extra:
            raise ValueError(
                f"optim_sches: the checkpoint has {', '.join(saved) or 'none'} but the config has "
                f"{', '.join(self.optim_sches)} (missing: {', '.join(missing) or '-'}, extra: {', '.join(extra) or '-'})"
            )
        for name, optim_sche in self.optim_sches.items():
            optim_sche.load_state_dict(saved[name])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.last_step_num = int(state.get("step_num", 0))


def init_real_step(state: dict) -> int | None:
    """The real step recorded in a TrainStep ``state_dict`` (for ``warmup_from: init``), or None."""
    steps = [s.get("last_real_step") for s in (state or {}).get("optim_sches", {}).values()]
    steps = [int(s) for s in steps if s is not None]
    return max(steps) if steps else None
