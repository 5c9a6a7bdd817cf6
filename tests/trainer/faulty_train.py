"""torchrun entry for the error test: ``engine.train`` where rank 1 raises at its third step."""

import os
import sys

from engine.optim_sche.train_step import TrainStep
from engine.train import main

original_run = TrainStep.run


def run_failing_on_rank_1(self, batch_fn, step_num):
    if os.environ.get("RANK") == "1" and step_num == 3:
        raise RuntimeError("injected failure on rank 1")
    return original_run(self, batch_fn, step_num)


TrainStep.run = run_failing_on_rank_1
sys.exit(main())
