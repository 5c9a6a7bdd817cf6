"""Trainer figures, one ``name: value`` per line.

step_time_ratio_vs_bare: seconds per training step of the engine's loop (Trainer.train_epoch:
TrainStep, meters, events, FunASR log lines) over a bare PyTorch loop (forward, backward, clip,
AdamW, warm-up schedule) on the same model and the same pre-loaded batches, measured in one run,
alternating the two (goal <= 1.05). Data loading is left out of both: it is the data pipeline's
figure (bench/data.py). The conformer-demo model; ``step_time_ratio_vs_bare_paraformer``: the
same for the paraformer-demo model.

step_time_ratio_vs_funasr (Paraformer, when FunASR's virtualenv is there: --funasr-python,
default /work/funasr-venv/bin/python): the engine's Trainer.train_epoch over FunASR 1.4.16's own
Trainer.train_epoch (bench/funasr_train_epoch.py, in that virtualenv) on FunASR's Paraformer
class built from the same confs, starting from the same weights, on the same pre-loaded
batches, with AdamW, WarmupLR, the same grad clip and log interval, one CPU thread count. The
FunASR rounds run in a subprocess after the engine's (not interleaved), under its own torch
(2.11 there, 2.14 here): medians of the rounds.

step_time_ratio_vs_eager: seconds per training step (TrainStep: forward, backward, update) with
train_conf.compile: true over the same with compile: false, on the same model, initial weights and
pre-loaded batches, the variants alternating round by round; compiled steps are timed once the
graph exists. With it: compile_s (first compile), compile_graphs, and
demo_run_ratio_compiled_vs_eager, the whole demo-length run (its batches per epoch x max_epoch)
compiled, compile time included, over eager: what ``compile: auto`` is decided on
(engine/optim_sche/compile.py AUTO_COMPILE).
step_time_ratio_bf16_vs_fp32 (use_bf16 autocast) and step_time_ratio_fused_vs_plain (the
optimiser's fused step, engine/optim_sche/abs.py FAST_STEP) are measured the same way.

demo_time_to_cer_s: training seconds of the demo preset until a checkpoint decodes the demo test
split (unseen voices) to CER <= 0.15 with CTC greedy search (checkpoints every 25 updates; each is
decoded after training, from the newest back, so only the training time is counted).

    python bench/train.py [--corpus data/demo] [--skip-demo] [--run DIR] [--variants compile,bf16,fused]
        [--recipe funasr]   (the FunASR baseline's Conformer 4x144, conv2d, batches of 32: bench/funasr.py)
"""

from __future__ import annotations

import argparse
import copy
import json
import math
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
PARAFORMER_PRESET = ROOT / "presets" / "paraformer-demo.yaml"
FUNASR_PYTHON = Path("/work/funasr-venv/bin/python")
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


def demo_config(corpus: Path, run_dir: Path, preset: Path = PRESET, **train_conf) -> dict:
    overrides = [f"++output_dir={run_dir}"] + [
        f"++{split}_data_set_list=[{corpus / f'{split}.jsonl'}]" for split in ("train", "valid", "test")]
    overrides += [f"++train_conf.{key}={value}" for key, value in train_conf.items()]
    return load_config(preset, overrides)


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


def step_time_ratios(corpus: Path, num_batches: int, rounds: int, preset: Path = PRESET,
                     funasr_python: Path | None = None, cmvn: bool = True) -> dict[str, float]:
    """{"vs_bare": ratio, "engine_step_s", "bare_step_s"} and, with ``funasr_python`` (Paraformer
    only), {"vs_funasr": ratio, "funasr_step_s"}. ``cmvn`` False skips computing the CMVN
    statistics (minutes on a loaded 2-core machine; the timed steps do not depend on them)."""
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        config = demo_config(corpus, Path(tmp), preset, validate_interval=10**6, save_checkpoint_interval=10**6)
        if not cmvn:
            config["cmvn"] = "none"
        dist_info = init_distributed("auto")
        events = EventWriter(Path(tmp) / "events.jsonl")
        trainer, _ = build_trainer(config, dist_info, events=events, stop=StopRequest())
        source = iter(trainer.train_loader)
        batches = [next(source) for _ in range(num_batches)]
        preloaded = PreloadedBatches(batches)
        trainer.train_loader = trainer.sampler = preloaded
        bare_model = copy.deepcopy(trainer.model)
        initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        engine_times, bare_times = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            trainer.train_epoch(1)
            engine_times.append(time.perf_counter() - start)
            bare_times.append(bare_steps(bare_model, batches, config))
        events.close()
        engine_s, bare_s = statistics.median(engine_times), statistics.median(bare_times)
        ratios = {"vs_bare": engine_s / bare_s, "engine_step_s": engine_s / num_batches,
                  "bare_step_s": bare_s / num_batches}
        if funasr_python is not None:
            funasr_times = funasr_epoch_times(funasr_python, config, initial, batches, rounds,
                                              vocab_size=trainer.model.vocab_size, tmp=Path(tmp))
            ratios["vs_funasr"] = engine_s / statistics.median(funasr_times)
            ratios["funasr_step_s"] = statistics.median(funasr_times) / num_batches
    return ratios


def funasr_epoch_times(python: Path, config: dict, state_dict: dict, batches: list[dict], rounds: int,
                       vocab_size: int, tmp: Path) -> list[float]:
    """FunASR's Trainer.train_epoch on the same model, weights and batches (bench/funasr_train_epoch.py)."""
    conf = config["optim_sches"]["main"]["conf"]
    model_kwargs = {"encoder": "SANMEncoder", "encoder_conf": config["encoder_conf"],
                    "decoder": "ParaformerSANMDecoder", "decoder_conf": config["decoder_conf"],
                    "predictor": "CifPredictorV2", "predictor_conf": config["predictor_conf"],
                    "input_size": batches[0]["speech"].size(-1), "vocab_size": vocab_size, **config["model_conf"]}
    job = {"model_kwargs": model_kwargs, "state_dict": state_dict, "optim_conf": conf["optim_conf"],
           "warmup_steps": conf["warmup_steps"], "grad_clip": config["train_conf"]["grad_clip"],
           "log_interval": config["train_conf"]["log_interval"],
           "batches": [{k: b[k] for k in ("speech", "speech_lengths", "text", "text_lengths")} for b in batches]}
    torch.save(job, tmp / "funasr_job.pt")
    result = subprocess.run([str(python), str(ROOT / "bench" / "funasr_train_epoch.py"), str(tmp / "funasr_job.pt"),
                             str(rounds), str(torch.get_num_threads())], check=True, capture_output=True, text=True)
    return [float(line.split(": ", 1)[1]) for line in result.stdout.splitlines() if line.startswith("round_s: ")]


# Each variant changes one thing against float32 eager; use_bf16 is set in all of them, since its
# default (auto) is bf16 on some CPUs.
VARIANTS = {
    "eager": {"compile": False, "use_bf16": False},
    "compile": {"compile": True, "use_bf16": False},
    "bf16": {"compile": False, "use_bf16": True},
    "fused": {"compile": False, "use_bf16": False},
}


def variant_step(config: dict, variant: str, input_dim: int, vocab_size: int, sos_eos_id: int):
    """A TrainStep for ``variant`` of ``config`` (same seed, so the same initial weights)."""
    from engine.models import build_model
    from engine.optim_sche import TrainStep, build_optim_sches

    train_conf = {**config["train_conf"], **VARIANTS[variant]}
    optim_sches_conf = copy.deepcopy(config["optim_sches"])
    for entry in optim_sches_conf.values():
        optim_conf = entry["conf"].setdefault("optim_conf", {})
        if variant == "fused":
            optim_conf["fused"] = True
        else:
            optim_conf.setdefault("fused", False)
            optim_conf.setdefault("foreach", False)
    torch.manual_seed(0)
    model = build_model(config["model"], input_dim, vocab_size, config["model_conf"], config["encoder_conf"],
                        config["decoder_conf"], sos_eos_id=sos_eos_id)
    return TrainStep(model, build_optim_sches(optim_sches_conf, model, train_conf), train_conf, "cpu")


def time_steps(train_step, batches: list[dict], first_step: int) -> list[float]:
    times = []
    for index, batch in enumerate(batches):
        start = time.perf_counter()
        result = train_step.run(lambda model: forward_batch(model, batch), first_step + index)
        if not all(math.isfinite(v) for v in result.losses.values()):
            raise RuntimeError(f"non-finite loss {result.losses} at step {first_step + index}")
        times.append(time.perf_counter() - start)
    return times


def variant_ratios(config: dict, batches: list[dict], variants: list[str], rounds: int, dims: tuple,
                   steps_per_run: int) -> dict[str, float]:
    """Per-step medians of each variant against eager, rounds alternating (see the module doc)."""
    steps = {name: variant_step(config, name, *dims) for name in ["eager", *variants]}
    counters = dict.fromkeys(steps, 1)
    figures: dict[str, float] = {}
    first: dict[str, float] = {}
    for name, train_step in steps.items():  # warm-up round: compiles, allocator and caches warm
        start = time.perf_counter()
        time_steps(train_step, batches, counters[name])
        first[name] = time.perf_counter() - start
        counters[name] += len(batches)
    per_step: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, train_step in steps.items():
            per_step[name].extend(time_steps(train_step, batches, counters[name]))
            counters[name] += len(batches)
    eager = statistics.median(per_step["eager"])
    for name in variants:
        ratio = statistics.median(per_step[name]) / eager
        key = {"compile": "step_time_ratio_vs_eager", "bf16": "step_time_ratio_bf16_vs_fp32",
               "fused": "step_time_ratio_fused_vs_plain"}[name]
        figures[key] = ratio
        if name == "compile":
            status = steps[name].compile_status
            steady = statistics.median(per_step[name])
            compile_s = max(first[name] - steady * len(batches), 0.0)
            figures["compile_active"] = float(status["active"])
            figures["compile_s"] = compile_s
            figures["compile_graphs"] = status["graphs"]
            figures["demo_run_steps"] = steps_per_run
            figures["demo_run_ratio_compiled_vs_eager"] = (compile_s + steady * steps_per_run) / (eager * steps_per_run)
            if not status["active"]:
                print(f"# {status['reason']}", file=sys.stderr)
    return figures


def step_variants(corpus: Path, num_batches: int, rounds: int, variants: list[str], recipe: str,
                  work: Path | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-variants-") as tmp:
        run_dir = work / f"variants-{recipe}" if work else Path(tmp)
        config = demo_config(corpus, run_dir, validate_interval=10**6, save_checkpoint_interval=10**6)
        if recipe == "funasr":
            from bench.funasr import engine_recipe

            config = engine_recipe(config)
        dist_info = init_distributed("auto")
        events = EventWriter(Path(tmp) / "events.jsonl")
        trainer, _ = build_trainer(config, dist_info, events=events, stop=StopRequest())
        source = iter(trainer.train_loader)
        batches = [next(source) for _ in range(num_batches)]
        model = trainer.model
        dims = (batches[0]["speech"].size(-1), model.vocab_size, model.sos)
        steps_per_run = len(trainer.sampler) * int(config["train_conf"]["max_epoch"])
        events.close()
        return variant_ratios(config, batches, variants, rounds, dims, steps_per_run)


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
    parser.add_argument("--skip-demo", action="store_true", help="only the step-time ratios")
    parser.add_argument("--models", default="conformer,paraformer", help="step-time ratios of these demo models")
    parser.add_argument("--no-cmvn", action="store_true", help="skip the CMVN statistics (step timing only)")
    parser.add_argument("--funasr-python", type=Path, default=FUNASR_PYTHON,
                        help="python of a virtualenv with funasr==1.4.16 (step_time_ratio_vs_funasr; skipped if absent)")
    parser.add_argument("--run", type=Path, help="an already trained demo run (with step checkpoints) to score")
    parser.add_argument("--variants", default="fused,bf16",
                        help="step variants timed against eager: compile, bf16, fused (comma-separated, empty for none; compile is left out by default: on this CPU it did not finish)")
    parser.add_argument("--variant-batches", type=int, default=6, help="batches per variant round")
    parser.add_argument("--recipe", choices=("demo", "funasr"), default="demo",
                        help="the demo preset, or FunASR's baseline recipe as bench/funasr.py trains it")
    parser.add_argument("--skip-bare", action="store_true", help="leave out step_time_ratio_vs_bare")
    parser.add_argument("--work", type=Path,
                        help="keep the variant runs' tokenizer and am.mvn here between invocations (default: temporary)")
    args = parser.parse_args(argv)
    corpus = args.corpus.resolve()
    if not args.skip_bare:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        if "conformer" in models:
            ratios = step_time_ratios(corpus, args.batches, args.rounds, cmvn=not args.no_cmvn)
            print(f"step_time_ratio_vs_bare: {ratios['vs_bare']:.3f}", flush=True)
        if "paraformer" in models:
            funasr = args.funasr_python if args.funasr_python and args.funasr_python.is_file() else None
            ratios = step_time_ratios(corpus, args.batches, args.rounds, PARAFORMER_PRESET, funasr, cmvn=not args.no_cmvn)
            print(f"step_time_ratio_vs_bare_paraformer: {ratios['vs_bare']:.3f}", flush=True)
            print(f"paraformer_step_s_engine: {ratios['engine_step_s']:.4f}", flush=True)
            print(f"paraformer_step_s_bare: {ratios['bare_step_s']:.4f}", flush=True)
            if "vs_funasr" in ratios:
                print(f"step_time_ratio_vs_funasr: {ratios['vs_funasr']:.3f}", flush=True)
                print(f"paraformer_step_s_funasr: {ratios['funasr_step_s']:.4f}", flush=True)
            else:
                print(f"# step_time_ratio_vs_funasr: skipped ({args.funasr_python} not found)", file=sys.stderr)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - (set(VARIANTS) - {"eager"}))
    if unknown:
        parser.error(f"--variants: unknown {', '.join(unknown)}")
    if variants:
        figures = step_variants(corpus, args.variant_batches, args.rounds, variants, args.recipe, args.work)
        for name, value in figures.items():
            print(f"{name}: {value:.3f}" if isinstance(value, float) else f"{name}: {value}", flush=True)
    if not args.skip_demo:
        print(f"demo_time_to_cer_s: {demo_time_to_cer(corpus, args.run):.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
