"""A stand-in for ``python -m torch.distributed.run ... -m engine.train``, for launcher tests.

Invoked with torchrun's argv (the launcher's ``python`` points here), it finds ``--config``,
writes the events a real job writes (start, data, train...), records its argv and answers
SIGTERM as the engine does: an ``end`` event with status stopped, exit 0. Needs no torch.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.events import EventWriter  # noqa: E402


def main() -> None:
    argv = sys.argv[1:]
    config_path = Path(argv[argv.index("--config") + 1])
    run_dir = config_path.parent
    (run_dir / "fake_argv.json").write_text(json.dumps(sys.argv))
    resume = next((a.split("=", 1)[1] for a in argv if a.startswith("++train_conf.resume_from=")), None)
    events = EventWriter(run_dir / "events.jsonl")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    events.write("start", world_size=2, num_params=1000, steps_per_epoch=1000, max_epoch=1,
                 resumed_from=resume, config={})
    print(f"fake engine pid {os.getpid()} pgid {os.getpgid(0)}", flush=True)
    step = 0
    while not stopping and step < 1000:
        step += 1
        events.write("train", epoch=1, step=step, lr={"main": 1e-3}, loss=1.0 / step, acc=0.5,
                     grad_norm={"main": 1.0}, throughput=1.0, padding_ratio=0.0,
                     ranks=[{"rank": r, "loss": 1.0, "batch_size": 8, "data_load_s": 0.0,
                             "forward_s": 0.0, "backward_s": 0.0, "optim_s": 0.0, "total_s": 0.01,
                             "memory_mb": 1.0} for r in range(2)])
        time.sleep(0.02)
    events.write("end", status="stopped" if stopping else "finished", reason="SIGTERM" if stopping else "")
    print("fake engine saved and stopped", flush=True)


if __name__ == "__main__":
    main()
