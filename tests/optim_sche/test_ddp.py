"""2-process gloo DDP: identical parameters on both ranks after accumulated steps, equal to one process."""

import time

import pytest
import torch
import torch.multiprocessing as mp

from engine.optim_sche import TrainStep, build_optim_sches
from tests.optim_sche import ddp_worker
from tests.optim_sche.models import EncDec


RANKS_DEADLINE_S = 180


def run_two_ranks(tmp_path) -> None:
    """Run both ranks to the end, or kill them: a rank left behind keeps the suite's output open.

    spawn, not fork: a rank forked from this long-lived pytest process inherits whatever the
    threads earlier tests started (OpenMP's pool, tqdm's monitor) held at that moment, and forked
    ranks once hung in CI for the whole test timeout. spawn costs ~5 s more on two cores.
    """
    ranks = mp.start_processes(ddp_worker.main, args=(2, str(tmp_path / "rendezvous"), str(tmp_path)),
                               nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + RANKS_DEADLINE_S
    try:
        while not ranks.join(timeout=1.0):
            if time.monotonic() > deadline:
                pytest.fail(f"the two ranks did not finish within {RANKS_DEADLINE_S} s")
    finally:
        for process in ranks.processes:
            if process.is_alive():
                process.kill()
                process.join()


@pytest.mark.timeout(RANKS_DEADLINE_S + 60)
def test_two_ranks_match_each_other_and_one_process(tmp_path):
    run_two_ranks(tmp_path)
    for name, (conf, train_conf) in ddp_worker.SCENARIOS.items():
        rank0 = torch.load(tmp_path / f"{name}_rank0.pt", weights_only=True)
        rank1 = torch.load(tmp_path / f"{name}_rank1.pt", weights_only=True)
        # parameters are equal after every update; buffers too where TrainStep broadcasts them after
        # the update (several optimisers), while DDP's reducer syncs them before the next forward
        assert rank0["grad_sync"] == rank1["grad_sync"] == ddp_worker.GRAD_SYNC[name]
        compared = rank0["state"] if rank0["grad_sync"] == "explicit" else dict(EncDec().named_parameters())
        for key in compared:
            assert torch.equal(rank0["state"][key], rank1["state"][key]), f"{name}: {key} differs between ranks"
        # no all-reduce on the first micro-batch: each rank still holds its own gradient
        if rank0["first_grad"] is not None:
            assert not torch.allclose(rank0["first_grad"], rank1["first_grad"]), name
        assert rank0["skipped"] == rank1["skipped"] == {k: 0 for k in conf}

        model = EncDec(seed=0)
        ts = TrainStep(model, build_optim_sches(conf, model, train_conf), train_conf, "cpu")
        for step, (x, y) in enumerate(ddp_worker.global_batches(), start=1):
            ts.run(lambda m: m(x, y), step)
        for key, value in model.named_parameters():
            torch.testing.assert_close(rank0["state"][key], value.detach(), rtol=1e-5, atol=1e-6,
                                       msg=lambda m: f"{name}: {key}: {m}")
