"""One rank of the 2-process gloo test (started by torch.multiprocessing from test_ddp.py)."""

from datetime import timedelta

import torch
import torch.distributed as dist

from engine.optim_sche import TrainStep, build_optim_sches
from tests.optim_sche.models import EncDec, data

SCENARIOS = {
    # one OptimScheduler over the whole model: DDP's own reducer, no_sync between updates
    "single": ({"main": {"type": "warmuplr", "conf": {"optim_type": "AdamW", "optim_conf": {"lr": 1e-2},
                                                      "warmup_steps": 2}}}, {"accum_grad": 2, "grad_clip": 1.0}),
    # two on two losses, one updating every other real step: explicit coalesced all-reduce
    "multi": ({"enc": {"type": "constant", "conf": {"optim_type": "SGD", "optim_conf": {"lr": 0.1},
                                                   "optim_loss": "loss_enc", "updated_modules": "encoder",
                                                   "step_per_update": 2}},
               "dec": {"type": "warmuplr", "conf": {"optim_type": "AdamW", "optim_conf": {"lr": 1e-2},
                                                   "optim_loss": "loss_dec", "updated_modules": "decoder",
                                                   "warmup_steps": 2}}}, {"accum_grad": 2, "grad_clip": 1.0}),
    # one over the whole model whose loss leaves the decoder unused: stays explicit, no DDP error
    "unused": ({"main": {"type": "constant", "conf": {"optim_type": "SGD", "optim_conf": {"lr": 0.1},
                                                     "optim_loss": "loss_enc"}}}, {"accum_grad": 2}),
}
GRAD_SYNC = {"single": "reducer", "multi": "explicit", "unused": "explicit"}
MICRO_STEPS = 8
GLOBAL_BATCH = 8


def global_batches():
    x, y = data(MICRO_STEPS * GLOBAL_BATCH, seed=3)
    return [(x[i:i + GLOBAL_BATCH], y[i:i + GLOBAL_BATCH]) for i in range(0, len(x), GLOBAL_BATCH)]


def run_scenario(name, rank, world_size, model):
    conf, train_conf = SCENARIOS[name]
    ts = TrainStep(model, build_optim_sches(conf, model, train_conf), train_conf, "cpu")
    first_grad = None
    for step, (x, y) in enumerate(global_batches(), start=1):
        share = len(x) // world_size
        bx, by = x[rank * share:(rank + 1) * share], y[rank * share:(rank + 1) * share]
        ts.run(lambda m: m(bx, by), step)
        if step == 1:
            first_grad = None if model.decoder.weight.grad is None else model.decoder.weight.grad.clone()
    return ts, first_grad


def main(rank, world_size, init_file, out_dir):
    torch.set_num_threads(1)
    # a rank that waits longer than this on the other fails with an error instead of hanging
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=60))
    try:
        for name in SCENARIOS:
            model = EncDec(seed=rank)  # different on each rank: DDP must broadcast rank 0's
            ts, first_grad = run_scenario(name, rank, world_size, model)
            torch.save({"state": model.state_dict(), "first_grad": first_grad,
                        "skipped": {k: o.skipped for k, o in ts.optim_sches.items()}, "grad_sync": ts.grad_sync},
                       f"{out_dir}/{name}_rank{rank}.pt")
        # Both ranks past their last collective before either tears gloo down: once, in a full-suite
        # run, rank 0 aborted in teardown ("terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()
