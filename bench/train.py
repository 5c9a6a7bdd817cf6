"""Trainer figures, one ``name: value`` per line.

step_time_ratio_vs_bare: seconds per training step of the engine's loop (Trainer.train_epoch:
TrainStep, meters, events, FunASR log lines) over a bare PyTorch loop (forward, backward, clip,
AdamW, warm-up schedule) on the same model and the same pre-loaded batches, measured in one run,
alternating the two (goal <= 1.05). Data loading is left out of both: it is the data pipeline's
figure (bench/data.py).

demo_time_to_cer_s: training seconds of the demo preset until a checkpoint decodes the demo test
split (unseen voices) to CER <= 0.15 with CTC greedy search (checkpoints every 25 updates; each is
decoded after training, from the newest back, so only the training time is counted).

    python bench/train.py [--corpus data/demo] [--skip-demo] [--run DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import load_config  # noqa: E402
from engine.events import EventWriter, read_events  # noqa: E402
from engine.trainer.build import build_trainer  # noqa: E402
from engine.trainer.signals import StopRequest  # noqa: E402
from engine.trainer.validation import forward_batch  # noqa: E402
from engine.utils.dist import init_distributed  # noqa: E402

PRESET = ROOT / "presets" / "conformer-demo.yaml"
CER_GOAL = 0.15


class PreloadedBatches:
    """Stands in for the loader and its sampler: the same batches every epoch, already in memory."""

    def __init__(self, batches: list[dict]):
        self.batches = batches
        self.consumed = 0

    def set_epoch(self, epoch: int) -> None:
        self.consumed = 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for batch in self.batches:
            self.consumed += 1
            yield batch


def demo_config(corpus: Path, run_dir: Path, **train_conf) -> dict:
    overrides = [f"++output_dir={run_dir}"] + [
        f"++{split}_data_set_list=[{corpus / f'{split}.jsonl'}]" for split in ("train", "valid", "test")]
    overrides += [f"++train_conf.{key}={value}" for key, value in train_conf.items()]
    return load_config(PRESET, overrides)


def bare_steps(model, batches, config) -> float:
    """Seconds for the batches with the plainest loop that trains the same way."""
    conf = config["optim_sches"]["main"]["conf"]
    optimizer = torch.optim.AdamW(model.parameters(), **conf["optim_conf"])
    warmup = conf["warmup_steps"]
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, (warmup / (s + 1)) ** 0.5))
    clip = config["train_conf"]["grad_clip"]
    model.train()
    start = time.perf_counter()
    for batch in batches:
        loss = forward_batch(model, batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def step_time_ratio(corpus: Path, num_batches: int, rounds: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        config = demo_config(corpus, Path(tmp), validate_interval=10**6, save_checkpoint_interval=10**6)
        dist_info = init_distributed("auto")
        events = EventWriter(Path(tmp) / "events.jsonl")
        trainer, _ = build_trainer(config, dist_info, events=events, stop=StopRequest())
        source = iter(trainer.train_loader)
        batches = [next(source) for _ in range(num_batches)]
        preloaded = PreloadedBatches(batches)
        trainer.train_loader = trainer.sampler = preloaded
        bare_model = copy.deepcopy(trainer.model)
        engine_times, bare_times = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            trainer.train_epoch(1)
            engine_times.append(time.perf_counter() - start)
            bare_times.append(bare_steps(bare_model, batches, config))
        events.close()
    return statistics.median(engine_times) / statistics.median(bare_times)


def checkpoint_cer(checkpoint: Path, test_list: Path, out: Path) -> float:
    subprocess.run([sys.executable, "-m", "engine.decode.cli", "--model", str(checkpoint), "--input", str(test_list),
                    "--mode", "ctc_greedy", "--output", str(out), "--no-progress"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))["cer"]


def demo_time_to_cer(corpus: Path, run_dir: Path | None) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        if run_dir is None:
            run_dir = Path(tmp) / "run"
            config = demo_config(corpus, run_dir, save_checkpoint_interval=25, keep_nbest_models=1000)
            config_path = Path(tmp) / "demo.yaml"
            config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
            subprocess.run([sys.executable, "-m", "engine.train", "--config", str(config_path)], check=True,
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        events = read_events(run_dir / "events.jsonl")
        started = next(e["time"] for e in events if e["event"] == "start")
        saved = [e for e in events if e["event"] == "checkpoint" and (run_dir / e["path"]).is_file()]
        reached = None
        for event in sorted(saved, key=lambda e: e["step"], reverse=True):
            cer = checkpoint_cer(run_dir / event["path"], corpus / "test.jsonl", Path(tmp) / f"decode-{event['step']}")
            print(f"# step {event['step']}: cer {cer:.4f}", file=sys.stderr)
            if cer > CER_GOAL:
                break
            reached = event
        if reached is None:
            return float("nan")
        return reached["time"] - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "data" / "demo", help="demo corpus directory")
    parser.add_argument("--batches", type=int, default=20, help="batches per timing round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating engine/bare rounds (median taken)")
    parser.add_argument("--skip-demo", action="store_true", help="only the step-time ratio")
    parser.add_argument("--run", type=Path, help="an already trained demo run (with step checkpoints) to score")
    args = parser.parse_args(argv)
    corpus = args.corpus.resolve()
    print(f"step_time_ratio_vs_bare: {step_time_ratio(corpus, args.batches, args.rounds):.3f}", flush=True)
    if not args.skip_demo:
        print(f"demo_time_to_cer_s: {demo_time_to_cer(corpus, args.run):.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
