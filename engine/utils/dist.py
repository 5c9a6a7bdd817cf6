"""Process-group set-up and rank helpers.

The same code path serves ``torchrun`` (RANK, WORLD_SIZE, LOCAL_RANK... in the environment) and a
plain ``python -m engine.train`` (no such variables: one process, no process group).
"""

from __future__ import annotations

import ctypes
import datetime
import os
import signal
from dataclasses import dataclass

import torch
import torch.distributed as dist

from engine.data.selection import world_size_of
from engine.utils.cpus import threads_per_process, usable_cpus  # noqa: F401  (usable_cpus: re-exported)

# Collectives that do not complete within this time raise instead of hanging for ever.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=10)
# Rank 0 may spend long on one-off work (CMVN over a big list) while the others wait.
PREPARE_TIMEOUT = datetime.timedelta(hours=6)


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device
    backend: str | None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise RuntimeError(f"environment variable {name}={raw!r} is not an integer") from None


def set_thread_count(local_world_size: int) -> int:
    """Share the cores among the processes of this node, so they do not oversubscribe the CPU."""
    threads = threads_per_process(local_world_size)
    torch.set_num_threads(threads)
    return threads


def pick_device(local_rank: int) -> torch.device:
    """``cuda:{local_rank}`` among the devices CUDA_VISIBLE_DEVICES leaves visible, else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if local_rank >= count:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
        raise RuntimeError(
            f"LOCAL_RANK {local_rank} has no GPU of its own: {count} visible "
            f"(CUDA_VISIBLE_DEVICES={visible}); use nproc_per_node <= {count}"
        )
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def resolve_backend(backend: str, device: torch.device) -> str:
    """``auto`` is NCCL when the ranks train on GPUs, gloo on the CPU."""
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise RuntimeError("distributed.backend nccl needs GPUs; none is visible (use auto or gloo)")
    return backend


def die_with_parent() -> None:
    """Under torchrun, end this worker when the launcher dies.

    torchrun starts each worker in a session of its own, so ``kill -9`` of the launcher's process
    group would otherwise leave the workers training on as orphans that still write the run
    directory. Linux only (prctl PR_SET_PDEATHSIG); elsewhere it does nothing.
    """
    parent = os.getppid()
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the launcher died before prctl took effect
        os._exit(1)


def init_distributed(backend: str = "auto") -> DistInfo:
    """Read torchrun's environment, set threads and device, and join the process group if there is one."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    local_world_size = _env_int("LOCAL_WORLD_SIZE", 1)
    if "TORCHELASTIC_RUN_ID" in os.environ:
        die_with_parent()
    set_thread_count(local_world_size)
    device = pick_device(local_rank)
    chosen = resolve_backend(backend, device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend=chosen,
            timeout=COLLECTIVE_TIMEOUT,
            device_id=device if device.type == "cuda" else None,
        )
    return DistInfo(rank, world_size, local_rank, local_world_size, device, chosen if world_size > 1 else None)


def world_size_mismatch(config: dict, world_size: int) -> str | None:
    """Why this run's process count differs from the config's ``distributed`` section, or None.

    ``dataset_conf.batch_size`` is each process's own, so a config made for N processes and run
    with another count (``asr-train`` alone on a two-rank preset, say) trains with another global
    batch: allowed, as a quick check is, but said rather than done silently.
    """
    configured = world_size_of(config)
    if configured == world_size:
        return None
    how = "this process runs alone (not under torchrun)" if world_size == 1 else f"this run has {world_size}"
    return (f"distributed asks for {configured} process(es) (nnodes x nproc_per_node) and {how}: batch_size is "
            f"per process, so each update takes {world_size}/{configured} of the configured global batch; "
            f"launch with torchrun as asr-tui's command preview shows for the configured count")


def barrier_group():
    """A gloo group with a long timeout, for waiting on rank 0's one-off preparation."""
    if not dist.is_initialized():
        return None
    return dist.new_group(backend="gloo", timeout=PREPARE_TIMEOUT)


def broadcast_object(obj, group=None, src: int = 0):
    """``obj`` from rank ``src`` on every rank (the object itself when there is one process)."""
    if not dist.is_initialized():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src, group=group)
    return holder[0]


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over all ranks (float64, so counts stay exact)."""
    if not dist.is_initialized():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def all_gather_rows(row: list[float], device: torch.device) -> list[list[float]]:
    """Every rank's ``row`` (equal lengths), in rank order, on every rank."""
    if not dist.is_initialized():
        return [list(row)]
    tensor = torch.tensor(row, dtype=torch.float64, device=device)
    gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, tensor)
    return [item.tolist() for item in gathered]


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on at least one (stop requests, early exits)."""
    if not dist.is_initialized():
        return flag
    tensor = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
