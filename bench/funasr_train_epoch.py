"""Run by bench/train.py in FunASR's virtualenv (never imported by the engine): time FunASR's own
``Trainer.train_epoch`` (funasr.train_utils.trainer, FunASR 1.4.16) on the batches and initial
weights the engine's side of the benchmark used.

    /work/funasr-venv/bin/python bench/funasr_train_epoch.py JOB.pt ROUNDS THREADS

JOB.pt (written by bench/train.py): the FunASR model class names and confs (the engine's
Paraformer keys are FunASR's), the engine's initial state_dict (FunASR's parameter names),
the batches (speech, speech_lengths, text, text_lengths), AdamW settings, warm-up steps, grad
clip and log interval. Rounds continue training one model with one optimiser, as the engine's
rounds do. Prints one ``round_s: SECONDS`` line per round.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time

import torch


class Batches:
    """The loader FunASR's train_epoch expects: iterable, len(), batch_sampler.set_epoch()."""

    def __init__(self, batches):
        self.batches = batches
        self.batch_sampler = self

    def set_epoch(self, epoch):
        pass

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


def main() -> int:
    job_path, rounds, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    logging.disable(logging.WARNING)  # FunASR logs every log_interval at INFO; keep the work, not the output
    from funasr.models.paraformer.model import Paraformer
    from funasr.schedulers.warmup_lr import WarmupLR
    from funasr.train_utils.trainer import Trainer

    job = torch.load(job_path, weights_only=True)
    batches = Batches(job["batches"])
    model = Paraformer(**job["model_kwargs"])
    result = model.load_state_dict(job["state_dict"], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    optim = torch.optim.AdamW(model.parameters(), **job["optim_conf"])
    scheduler = WarmupLR(optim, warmup_steps=job["warmup_steps"])
    with tempfile.TemporaryDirectory(prefix="bench-funasr-") as out:
        trainer = Trainer(local_rank=0, output_dir=out, device="cpu", max_epoch=1, log_interval=job["log_interval"],
                          validate_interval=10**9, save_checkpoint_interval=10**9, grad_clip=job["grad_clip"])
        for _ in range(rounds):
            start = time.perf_counter()
            trainer.train_epoch(model=model, optim=optim, scheduler=scheduler, dataloader_train=batches,
                                dataloader_val=None, epoch=1)
            print(f"round_s: {time.perf_counter() - start:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
