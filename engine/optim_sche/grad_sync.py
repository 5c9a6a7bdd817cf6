"""Explicit gradient all-reduce for several OptimSchedulers under DDP.

DDP's reducer expects one backward pass per forward; several optimisers each backward their own
loss through a shared graph, so for them TrainStep keeps DDP in ``no_sync`` (it still broadcasts
the initial parameters) and averages the gradients here, once per real update, in coalesced
buckets (torch has no public coalesced all-reduce, hence the hand-written flatten).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

BUCKET_BYTES = 25 * 1024 * 1024  # DDP's default bucket_cap_mb


def _buckets(tensors: list[torch.Tensor]) -> list[list[int]]:
    """Indices of ``tensors`` grouped by (device, dtype) into buckets of at most BUCKET_BYTES."""
    by_kind: dict[tuple, list[int]] = {}
    for index, tensor in enumerate(tensors):
        by_kind.setdefault((tensor.device, tensor.dtype), []).append(index)
    buckets = []
    for indices in by_kind.values():
        bucket, size = [], 0
        for index in indices:
            nbytes = tensors[index].numel() * tensors[index].element_size()
            if bucket and size + nbytes > BUCKET_BYTES:
                buckets.append(bucket)
                bucket, size = [], 0
            bucket.append(index)
            size += nbytes
        if bucket:
            buckets.append(bucket)
    return buckets


def all_reduce_grads(params: list[torch.nn.Parameter], world_size: int) -> bool:
    """Average the gradients of ``params`` over all ranks (same ``params`` order on every rank).

    A parameter with no gradient on some rank (a branch its batch did not use) counts as zero
    there; one with no gradient on any rank keeps ``grad = None``, as without DDP. Returns whether
    every parameter had a gradient on every rank (what DDP's reducer needs).
    """
    if not params:
        return True
    device = params[0].device
    has_grad = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
    dist.all_reduce(has_grad)
    counts = has_grad.tolist()
    synced = [p for p, count in zip(params, counts) if count > 0]
    for p in synced:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in synced]
    for bucket in _buckets(grads):
        flat = torch.cat([grads[i].reshape(-1) for i in bucket])
        dist.all_reduce(flat)
        flat.div_(world_size)
        offset = 0
        for i in bucket:
            numel = grads[i].numel()
            grads[i].copy_(flat[offset:offset + numel].view_as(grads[i]))
            offset += numel
    return all(count == world_size for count in counts)


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Rank ``src``'s buffers (BatchNorm statistics...) on every rank, as DDP's forward would do."""
    buffers = [b for b in module.buffers()]
    for bucket in _buckets(buffers):
        flat = torch.cat([buffers[i].reshape(-1) for i in bucket])
        dist.broadcast(flat, src)
        offset = 0
        for i in bucket:
            numel = buffers[i].numel()
            buffers[i].copy_(flat[offset:offset + numel].view_as(buffers[i]))
            offset += numel
