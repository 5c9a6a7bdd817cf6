"""OptimScheduler: one torch optimiser, the parameters it owns, the loss it follows, its lr schedule.

SpeeChain's design (optimiser + scheduler in one object, ``optim_loss`` / ``updated_modules`` /
``step_per_update``) with the corrections this project needs: the loss is divided without touching
the caller's dict, gradients reach only this optimiser's parameters, the schedule counts real
optimiser steps (so ``accum_grad`` does not shorten it), ``ft_factor`` never compounds over
resumes, and a non-finite update is skipped and counted.

Step arithmetic, for ``step_num`` counting micro-batches from 1:
``real_step = (step_num - 1) // accum_grad + 1``; the optimiser backwards its loss on every
micro-batch of a real step with ``real_step % step_per_update == 0`` and updates on the last
micro-batch of that group, with lr ``ft_factor * update_lr(real_step + step_offset)`` (× the
per-module scale). ``step_offset`` is non-zero only when fine-tuning with ``warmup_from: init``.
"""

from __future__ import annotations

import inspect
import logging
import math
from abc import ABC, abstractmethod

import torch

from engine.optim_sche.checks import int_at_least, number, yaml_float_hint
from engine.optim_sche.conf import FUNASR_OPTIMS, WARMUP_FROM_CHOICES, OptimConfError

logger = logging.getLogger(__name__)


# Device types on which an optimiser with a fused kernel (Adam, AdamW, SGD, Adagrad) gets
# ``fused=True`` unless optim_conf chooses ``fused`` or ``foreach`` itself; decided from
# bench/train.py's step_time_ratio_fused_vs_plain (figures: docs/training.md, "Step speed").
# CUDA keeps torch's own default (foreach) until it has been measured there.
FAST_STEP = {"cpu": True, "cuda": False}


def fast_step_options(optim_class: type, optim_conf: dict, params: list) -> dict:
    """``{"fused": True}`` where :data:`FAST_STEP` says it wins and the optimiser and tensors allow it."""
    if "fused" in optim_conf or "foreach" in optim_conf or not params:
        return {}
    if "fused" not in inspect.signature(optim_class.__init__).parameters:
        return {}
    devices = {p.device.type for p in params}
    if len(devices) != 1 or not FAST_STEP.get(devices.pop(), False):
        return {}
    if not all(p.dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64) for p in params):
        return {}
    return {"fused": True}


def _optimizer_class(key: str, optim_type: str) -> type[torch.optim.Optimizer]:
    name = FUNASR_OPTIMS.get(optim_type.lower(), optim_type) if isinstance(optim_type, str) else optim_type
    cls = getattr(torch.optim, name, None) if isinstance(name, str) else None
    if not (inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer)) or name == "LBFGS":
        choices = sorted(
            n for n, c in vars(torch.optim).items()
            if inspect.isclass(c) and issubclass(c, torch.optim.Optimizer) and n not in ("Optimizer", "LBFGS")
        )
        raise OptimConfError(f"{key}: {optim_type!r} is not a torch.optim optimiser (choose from {', '.join(choices)})")
    return cls


class OptimScheduler(ABC):
    """Base class: subclasses set the schedule with ``sche_init(**sche_conf)`` and ``update_lr(real_step)``.

    ``model=None`` builds the schedule alone (no optimiser), which is what ``lr_curve`` uses, so the
    preview and training compute the lr with the very same code.
    """

    def __init__(
        self,
        optim_type: str = "AdamW",
        optim_conf: dict | None = None,
        model: torch.nn.Module | None = None,
        optim_loss: str = "loss",
        updated_modules: str | list[str] | None = None,
        step_per_update: int = 1,
        accum_grad: int = 1,
        grad_clip: float = -1.0,
        grad_norm_type: float = 2.0,
        ft_factor: float = 1.0,
        warmup_from: str = "zero",
        module_lr_scales: dict[str, float] | None = None,
        name: str = "main",
        **sche_conf,
    ):
        self.name = name
        key = f"optim_sches.{name}.conf"
        self.optim_type = optim_type
        self.optim_class = _optimizer_class(f"{key}.optim_type", optim_type)
        if optim_conf is None or not isinstance(optim_conf, dict) or "lr" not in optim_conf:
            raise OptimConfError(f"{key}.optim_conf.lr: the peak learning rate is required, got optim_conf={optim_conf!r}")
        self.optim_conf = dict(optim_conf)
        self.base_lr = number(f"{key}.optim_conf.lr", optim_conf["lr"], above=0.0)
        if not isinstance(optim_loss, str) or not optim_loss:
            raise OptimConfError(f"{key}.optim_loss: must name a loss returned by the model, got {optim_loss!r}")
        self.optim_loss = optim_loss
        if isinstance(updated_modules, str):
            updated_modules = [updated_modules]
        if updated_modules is not None and (
            not isinstance(updated_modules, list) or not updated_modules
            or not all(isinstance(m, str) and m for m in updated_modules)
        ):
            raise OptimConfError(f"{key}.updated_modules: must be null, a module name or a list of them, got {updated_modules!r}")
        self.updated_modules = updated_modules
        self.step_per_update = int_at_least(f"{key}.step_per_update", step_per_update, 1)
        self.accum_grad = int_at_least(f"{key}.accum_grad", accum_grad, 1)
        self.grad_clip = number(f"{key}.grad_clip", grad_clip)
        self.grad_norm_type = (
            math.inf if grad_norm_type in (math.inf, "inf") else number(f"{key}.grad_norm_type", grad_norm_type, above=0.0)
        )
        self.ft_factor = number(f"{key}.ft_factor", ft_factor, above=0.0)
        if warmup_from not in WARMUP_FROM_CHOICES:
            raise OptimConfError(f"{key}.warmup_from: must be one of {', '.join(WARMUP_FROM_CHOICES)}, got {warmup_from!r}")
        self.warmup_from = warmup_from
        module_lr_scales = module_lr_scales or {}
        if not isinstance(module_lr_scales, dict):
            raise OptimConfError(f"{key}.module_lr_scales: must map module-name prefixes to scales, got {module_lr_scales!r}")
        self.module_lr_scales = {
            str(prefix): number(f"{key}.module_lr_scales.{prefix}", scale, minimum=0.0)
            for prefix, scale in module_lr_scales.items()
        }
        self._init_schedule(key, sche_conf)

        self.step_offset = 0  # real steps the init checkpoint had made (warmup_from: init)
        self.last_real_step = 0
        self.updates = 0
        self.skipped = 0
        self.last_grad_norm: float | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.params: list[torch.nn.Parameter] = []
        self.param_names: list[str] = []
        self.group_scales: list[float] = []
        self.covers_model = False
        if model is not None:
            self._build_optimizer(key, model)
        self.lr = self.lr_at(1)

    # ----- schedule -------------------------------------------------------------------------
    def _init_schedule(self, key: str, sche_conf: dict) -> None:
        params = inspect.signature(self.sche_init).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unknown = sorted(set(sche_conf) - set(params))
        if unknown and not takes_any:
            accepted = ", ".join(p for p in params if params[p].kind is not inspect.Parameter.VAR_KEYWORD)
            raise OptimConfError(
                f"{key}.{unknown[0]}: unknown key for {type(self).__name__} "
                f"(its schedule takes: {accepted or 'nothing'}; every entry takes optim_type, optim_conf, "
                f"optim_loss, updated_modules, step_per_update, module_lr_scales, accum_grad, grad_clip, "
                f"grad_norm_type, ft_factor, warmup_from)"
            )
        self.sche_conf = dict(sche_conf)
        self._conf_key = key
        self.sche_init(**sche_conf)

    @abstractmethod
    def sche_init(self, **sche_conf) -> None:
        """Read the schedule's own config keys (validated, with the dotted key in errors)."""

    @abstractmethod
    def update_lr(self, real_step: int) -> float:
        """The schedule's lr (before ft_factor and module scales) for real step ``real_step`` (from 1)."""

    def extra_repr_fn(self) -> str:
        """The schedule's own part of ``repr``."""
        return ", ".join(f"{k}={v!r}" for k, v in self.sche_conf.items())

    def conf_key(self, field: str) -> str:
        """Dotted config key of one of this entry's fields, for error messages."""
        return f"{self._conf_key}.{field}"

    def lr_at(self, real_step: int) -> float:
        """The lr (before module scales) this OptimScheduler uses at real step ``real_step``."""
        return self.ft_factor * self.update_lr(real_step + self.step_offset)

    def get_lr(self) -> float:
        """The lr of the latest update (before module scales); before any, the first update's."""
        return self.lr

    # ----- parameters -----------------------------------------------------------------------
    def _build_optimizer(self, key: str, model: torch.nn.Module) -> None:
        model = getattr(model, "module", model) if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if self.updated_modules is None:
            named = trainable
        else:
            children = dict(model.named_children())
            missing = [m for m in self.updated_modules if m not in children]
            if missing:
                raise OptimConfError(
                    f"{key}.updated_modules: {missing[0]!r} is not a top-level module of "
                    f"{type(model).__name__} (it has: {', '.join(children) or 'none'})"
                )
            prefixes = tuple(f"{m}." for m in self.updated_modules)
            named = [(n, p) for n, p in trainable if n.startswith(prefixes)]
        if not named:
            raise OptimConfError(f"{key}.updated_modules: {self.updated_modules!r} holds no trainable parameter")
        self.param_names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.covers_model = len(named) == len(trainable)

        def scale_of(name: str) -> float:
            matches = [p for p in self.module_lr_scales if name == p or name.startswith(p + ".")]
            return self.module_lr_scales[max(matches, key=len)] if matches else 1.0

        for prefix in self.module_lr_scales:
            if not any(n == prefix or n.startswith(prefix + ".") for n in self.param_names):
                raise OptimConfError(
                    f"{key}.module_lr_scales.{prefix}: matches none of this optimiser's parameters "
                    f"(e.g. {', '.join(self.param_names[:3])})"
                )
        groups: dict[float, list[torch.nn.Parameter]] = {}
        for name, param in named:
            groups.setdefault(scale_of(name), []).append(param)
        self.group_scales = list(groups)
        param_groups = [{"params": ps, "lr": self.base_lr * scale} for scale, ps in groups.items()]
        try:
            fast = fast_step_options(self.optim_class, self.optim_conf, self.params)
            self.optimizer = self.optim_class(param_groups, **fast, **self.optim_conf)
        except (TypeError, ValueError) as exc:
            hints = "".join(yaml_float_hint(v) for v in self.optim_conf.values())
            raise OptimConfError(f"{key}.optim_conf: {self.optim_class.__name__} rejects {self.optim_conf!r}: {exc}{hints}") from None

    # ----- stepping -------------------------------------------------------------------------
    def real_step(self, step_num: int) -> int:
        return (step_num - 1) // self.accum_grad + 1

    def backward_at(self, step_num: int) -> bool:
        """Whether micro-batch ``step_num`` belongs to a real step this optimiser updates on."""
        return self.real_step(step_num) % self.step_per_update == 0

    def updates_at(self, step_num: int) -> bool:
        """Whether this optimiser updates after micro-batch ``step_num`` (the last of its group)."""
        return step_num % self.accum_grad == 0 and self.backward_at(step_num)

    def loss_of(self, losses: dict) -> torch.Tensor:
        loss = losses.get(self.optim_loss) if isinstance(losses, dict) else None
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            available = ", ".join(k for k, v in losses.items() if isinstance(v, torch.Tensor)) if isinstance(losses, dict) else ""
            raise KeyError(
                f"optim_sches.{self.name}.conf.optim_loss: the model returned no scalar loss "
                f"{self.optim_loss!r} (it returned: {available or 'no tensors'})"
            )
        if not loss.requires_grad:
            raise RuntimeError(
                f"optim_sches.{self.name}: loss {self.optim_loss!r} does not depend on any trainable "
                f"parameter (is its weight 0 in model_conf?)"
            )
        return loss

    def backward(self, losses: dict, retain_graph: bool = False, scaler: torch.amp.GradScaler | None = None) -> None:
        """Accumulate ``losses[optim_loss] / accum_grad`` into this optimiser's parameters only."""
        loss = self.loss_of(losses) / self.accum_grad
        if scaler is not None:
            loss = scaler.scale(loss)
        # Own parameters as inputs: another optimiser's loss in the same graph must not leak in.
        inputs = None if self.covers_model else self.params
        torch.autograd.backward(loss, inputs=inputs, retain_graph=retain_graph)

    def update(self, step_num: int, scaler: torch.amp.GradScaler | None = None) -> float:
        """Set the lr, (unscale,) clip and step; a non-finite gradient norm skips the step. Returns the norm."""
        real_step = self.real_step(step_num)
        self.lr = self.lr_at(real_step)
        for group, scale in zip(self.optimizer.param_groups, self.group_scales):
            group["lr"] = self.lr * scale
        if scaler is not None:
            scaler.unscale_(self.optimizer)
        grads = [p.grad for p in self.params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads, self.grad_norm_type) if grads else torch.zeros(())
        norm_value = float(norm)
        if math.isfinite(norm_value):
            if self.grad_clip > 0:
                torch.nn.utils.clip_grads_with_norm_(self.params, self.grad_clip, norm)
            if scaler is not None:
                scaler.step(self.optimizer)
            else:
                self.optimizer.step()
            self.updates += 1
        else:
            self.skipped += 1
            # With fp16 a few skips while the loss scale settles are expected; otherwise it is news.
            level = logging.INFO if scaler is not None else logging.WARNING
            logger.log(level, "%s: gradient norm %s at real step %d, update skipped (%d so far)",
                       self.name, norm_value, real_step, self.skipped)
        self.optimizer.zero_grad(set_to_none=True)
        self.last_real_step = real_step
        self.last_grad_norm = norm_value
        return norm_value

    def step(self, losses: dict, step_num: int) -> bool:
        """SpeeChain's one-call form for a single process: backward, and update at the group's end."""
        if self.optimizer is None:
            raise RuntimeError(f"optim_sches.{self.name} was built without a model (schedule only)")
        if not self.backward_at(step_num):
            return False
        self.backward(losses)
        if step_num % self.accum_grad != 0:
            return False
        self.update(step_num)
        return True

    # ----- state ----------------------------------------------------------------------------
    def set_init_step(self, init_real_step: int) -> None:
        """Fine-tuning: with ``warmup_from: init`` the schedule continues from the init checkpoint's step."""
        if self.warmup_from == "init":
            self.step_offset = int(init_real_step)
            self.lr = self.lr_at(self.last_real_step + 1)

    def state_dict(self) -> dict:
        return {
            "type": type(self).__name__,
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "last_real_step": self.last_real_step,
            "step_offset": self.step_offset,
            "updates": self.updates,
            "skipped": self.skipped,
            "last_grad_norm": self.last_grad_norm,
        }

    def load_state_dict(self, state: dict) -> None:
        """Resume exactly; the config's optimiser settings (betas, weight decay...) win over the checkpoint's."""
        if self.optimizer is not None and state.get("optimizer") is not None:
            try:
                self.optimizer.load_state_dict(state["optimizer"])
            except ValueError as exc:
                raise ValueError(
                    f"optim_sches.{self.name}: the checkpoint's optimiser does not fit this config's "
                    f"parameters ({exc}); did updated_modules, module_lr_scales or the model change?"
                ) from None
            for group in self.optimizer.param_groups:
                group.update({k: v for k, v in self.optim_conf.items() if k != "lr"})
        self.last_real_step = int(state.get("last_real_step", 0))
        self.step_offset = int(state.get("step_offset", 0))
        self.updates = int(state.get("updates", 0))
        self.skipped = int(state.get("skipped", 0))
        self.last_grad_norm = state.get("last_grad_norm")
        self.lr = self.lr_at(max(self.last_real_step, 1))
        for group, scale in zip(self.optimizer.param_groups if self.optimizer else [], self.group_scales):
            group["lr"] = self.lr * scale

    def __repr__(self) -> str:
        general = (
            f"optim={self.optim_type}({', '.join(f'{k}={v!r}' for k, v in self.optim_conf.items())}), "
            f"optim_loss={self.optim_loss!r}, updated_modules={self.updated_modules!r}, "
            f"step_per_update={self.step_per_update}, accum_grad={self.accum_grad}, grad_clip={self.grad_clip}, "
            f"grad_norm_type={self.grad_norm_type}, ft_factor={self.ft_factor}, warmup_from={self.warmup_from!r}"
        )
        if self.module_lr_scales:
            general += f", module_lr_scales={self.module_lr_scales!r}"
        if self.optimizer is not None:
            general += f", params={sum(p.numel() for p in self.params)}"
        extra = self.extra_repr_fn()
        return f"{type(self).__name__}[{self.name}]({general}{', ' + extra if extra else ''})"
