"""Side by side with FunASR: the same lists, model, batches and threads, the same wall time each.

FunASR (1.4.16, in its own virtualenv: ``--funasr-python``; never a dependency of asr-tui) trains
with its own trainer (``python -m funasr.bin.train``, what ``funasr-train`` runs) on FunASR's
scaled-down baseline recipe: Conformer 4x144 with conv2d input, a 2-block decoder, ctc_weight 0.3,
lsm 0.1, example batches of 32, Adam 1e-3 with warmuplr 300, no SpecAugment, global CMVN, its
CharTokenizer (English as letters, spaces dropped). The engine trains the same recipe
(:func:`engine_recipe`: same sizes, same parameter count, letters as tokens) and, as a third
system, the demo preset's own recipe (LFR 7/6, 3x128 encoder). Each runs ``--seconds`` from its
launch (start-up included), with ``--threads`` compute threads, one after the other (never
together: they would share the cores). Both start from the same am.mvn (the engine's, which
FunASR reads) and the same letters.

Every epoch checkpoint of each is then decoded on the test list with CTC greedy search (the
engine with asr-decode; FunASR with its own model, frontend and tokenizer in its virtualenv:
bench/funasr_ctc_greedy.py) and scored by the engine's CER (characters, whitespace excluded,
so FunASR's dropped spaces cost nothing). Printed per epoch: each system's valid acc (from
its own trainer), test CER and epoch end (seconds since launch); then ``name: value`` lines:

- step_time_ratio_vs_funasr: the engine's median epoch time over FunASR's, FunASR's recipe, same
  batches per epoch (goal <= 0.6);
- time_to_cer_0.15_ratio_vs_funasr: seconds until an epoch checkpoint decodes to CER <= 0.15,
  engine over FunASR, on FunASR's recipe (goal <= 0.5), and ..._demo_recipe (goal <= 0.25);
  nan when either side did not get there within --seconds;
- cer_at_equal_time_ratio_vs_funasr: the engine's CER at FunASR's last epoch end (its newest
  checkpoint by then) over FunASR's CER there (FunASR's recipe; ..._demo_recipe likewise).

    python bench/funasr.py [--corpus data/demo] [--subset english|all] [--seconds 600] [--threads 2]
        [--funasr-python /work/funasr-venv/bin/python] [--out DIR] [--systems funasr,engine,demo]
        [--demo-preset presets/conformer-demo.yaml]

``--demo-preset`` trains another recipe as the third system (``--systems demo`` alone compares
recipes: its rows and ``engine-demo_time_to_cer_0.15_s`` print without FunASR).

The machine should be otherwise idle: the figures are wall times.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import load_config, save_config  # noqa: E402
from engine.data.tokenizer import SPECIAL_TOKENS, WORD_BOUNDARY  # noqa: E402
from engine.decode.scoring import TextNormalizer, error_counts  # noqa: E402
from engine.events import read_events  # noqa: E402

DEMO_PRESET = ROOT / "presets" / "conformer-demo.yaml"
CER_GOAL = 0.15
ENGLISH = re.compile(r"[A-Za-z' ]+")

# FunASR's scaled-down baseline recipe; the engine's equivalent is engine_recipe().
ENCODER = {"output_size": 144, "attention_heads": 4, "linear_units": 576, "num_blocks": 4, "dropout_rate": 0.1,
           "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.0, "input_layer": "conv2d",
           "normalize_before": True, "macaron_style": True, "use_cnn_module": True, "cnn_module_kernel": 15,
           "activation_type": "swish"}
DECODER = {"attention_heads": 4, "linear_units": 576, "num_blocks": 2, "dropout_rate": 0.1,
           "positional_dropout_rate": 0.1, "self_attention_dropout_rate": 0.0, "src_attention_dropout_rate": 0.0}
BATCH_SIZE = 32
LR = 0.001
WARMUP_STEPS = 300
CTC_WEIGHT = 0.3
LSM_WEIGHT = 0.1


def engine_recipe(config: dict) -> dict:
    """``config`` with FunASR's baseline recipe: the model, batches, optimiser and features above."""
    config = copy.deepcopy(config)
    config["frontend_conf"].update(n_mels=80, frame_length=25, frame_shift=10, dither=1.0, lfr_m=1, lfr_n=1,
                                   window="hamming")
    config["cmvn"] = "global"
    config["specaug_conf"] = {}
    config["tokenizer_conf"] = {"type": "char", "english": "letter"}
    config["model"] = "conformer"
    config["model_conf"] = {"ctc_weight": CTC_WEIGHT, "lsm_weight": LSM_WEIGHT, "length_normalized_loss": False}
    config["encoder_conf"] = {**ENCODER, "pos_enc_layer_type": "rel_pos"}
    config["decoder_conf"] = dict(DECODER)
    config["dataset_conf"].update(batch_type="example", batch_size=BATCH_SIZE, num_workers=0, shuffle=True,
                                  max_source_length=3000, max_target_length=200)
    config["train_conf"].update(grad_clip=5.0, accum_grad=1)
    config["optim_sches"] = {"main": {"type": "warmuplr", "conf": {
        "optim_type": "Adam", "optim_conf": {"lr": LR}, "warmup_steps": WARMUP_STEPS}}}
    return config


def funasr_config(lists: dict[str, Path], tokens: Path, cmvn: Path, out_dir: Path, max_epoch: int) -> dict:
    """FunASR's config.yaml for the same recipe (its own names: Conformer, ConformerEncoder ...)."""
    return {
        "model": "Conformer",
        "model_conf": {"ctc_weight": CTC_WEIGHT, "lsm_weight": LSM_WEIGHT, "length_normalized_loss": False},
        "encoder": "ConformerEncoder",
        "encoder_conf": {**ENCODER, "pos_enc_layer_type": "rel_pos", "selfattention_layer_type": "rel_selfattn"},
        "decoder": "TransformerDecoder",
        "decoder_conf": dict(DECODER),
        "frontend": "WavFrontend",
        "frontend_conf": {"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25, "frame_shift": 10,
                          "dither": 1.0, "lfr_m": 1, "lfr_n": 1, "cmvn_file": str(cmvn)},
        "specaug": None,
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>", "token_list": str(tokens)},
        "ctc_conf": {"dropout_rate": 0.0, "ctc_type": "builtin", "reduce": True, "ignore_nan_grad": True},
        "dataset": "AudioDataset",
        "dataset_conf": {"index_ds": "IndexDSJsonl", "batch_sampler": "BatchSampler", "batch_type": "example",
                         "batch_size": BATCH_SIZE, "max_token_length": 3000, "buffer_size": 1000, "shuffle": True,
                         "num_workers": 0, "pin_memory": False},
        "train_conf": {"max_epoch": max_epoch, "log_interval": 20, "resume": False,
                       "validate_interval": 10**7, "save_checkpoint_interval": 10**7,
                       "keep_nbest_models": 1000, "avg_nbest_model": 1, "grad_clip": 5.0, "accum_grad": 1},
        "optim": "adam",
        "optim_conf": {"lr": LR},
        "scheduler": "warmuplr",
        "scheduler_conf": {"warmup_steps": WARMUP_STEPS},
        "train_data_set_list": str(lists["train"]),
        "valid_data_set_list": str(lists["valid"]),
        "output_dir": str(out_dir),
        "seed": 0,
    }


def write_lists(corpus: Path, subset: str, out: Path, max_train: int | None = None,
                max_eval: int | None = None) -> dict[str, Path]:
    """The corpus's lists with absolute audio paths (FunASR reads them as given); English-only on
    request; only the first ``max_train`` training and ``max_eval`` valid/test utterances when
    given (a smoke test on a loaded machine)."""
    lists = {}
    for split in ("train", "valid", "test"):
        lines = []
        for line in (corpus / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            if subset == "english" and not ENGLISH.fullmatch(entry["target"]):
                continue
            entry["source"] = str((corpus / entry["source"]).resolve())
            lines.append(json.dumps(entry, ensure_ascii=False))
        limit = max_train if split == "train" else max_eval
        if limit:
            lines = lines[:limit]
        lists[split] = out / f"{split}.jsonl"
        lists[split].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lists


def engine_config(base: Path | None, lists: dict[str, Path], run_dir: Path, max_epoch: int, funasr_like: bool) -> dict:
    overrides = [f"++output_dir={run_dir}", f"++train_data_set_list=[{lists['train']}]",
                 f"++valid_data_set_list=[{lists['valid']}]", f"++test_data_set_list=[{lists['test']}]"]
    config = load_config(base, overrides)
    if funasr_like:
        config = engine_recipe(config)
    config["train_conf"].update(max_epoch=max_epoch, validate_interval=10**7, save_checkpoint_interval=10**7,
                                keep_nbest_models=1000, avg_nbest_model=0, log_interval=20)
    return config


CMVN_SAMPLE = 200


def prepare_engine_run(config: dict) -> None:
    """Tokenizer and am.mvn made before the clock starts (FunASR gets the same am.mvn ready-made).
    CMVN from a seeded sample of CMVN_SAMPLE utterances: global means settle within a few hundred."""
    import random

    from engine.data.frontend import WavFrontend, compute_cmvn, write_am_mvn
    from engine.data.lists import read_jsonl
    from engine.trainer.assets import CMVN_FILE, frontend_args, prepare_assets
    from engine.utils.dist import init_distributed

    run_dir = Path(config["output_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / CMVN_FILE).is_file():
        entries, _ = read_jsonl(config["train_data_set_list"][0])
        sample = random.Random(0).sample(entries, min(CMVN_SAMPLE, len(entries)))
        means, stds = compute_cmvn(sample, WavFrontend(**frontend_args(config["frontend_conf"])), progress=False)
        write_am_mvn(run_dir / CMVN_FILE, means, stds)
    prepare_assets(config, run_dir, init_distributed("cpu"))


def timed_run(argv: list[str], seconds: float, log_path: Path, env: dict, cwd: Path = ROOT) -> float:
    """Run ``argv`` in its own process group for ``seconds`` (then stop it); returns the launch time."""
    launched = time.time()
    with log_path.open("w", encoding="utf-8") as log_file:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return launched


def thread_env(threads: int, python_path: str | None = None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if python_path is not None:
        env["PYTHONPATH"] = python_path
    else:
        env.pop("PYTHONPATH", None)
    return env


def epoch_checkpoints(run_dir: Path, launched: float, seconds: float) -> list[tuple[int, Path, float]]:
    """(epoch, path, seconds since launch) of each epoch checkpoint written within the time."""
    found = []
    for path in run_dir.glob("model.pt.ep*"):
        match = re.fullmatch(r"model\.pt\.ep(\d+)", path.name)
        if match:
            at = path.stat().st_mtime - launched
            if at <= seconds + 1.0:
                found.append((int(match.group(1)), path, at))
    return sorted(found)


def cer_of(hyps: dict[str, str], refs: dict[str, str]) -> float:
    normalizer = TextNormalizer()
    total = None
    for key, ref in refs.items():
        counts = error_counts(ref, hyps.get(key, ""), "char", normalizer)
        total = counts if total is None else total + counts
    return total.rate if total is not None else float("nan")


def engine_results(run_dir: Path, launched: float, seconds: float, test_list: Path, work: Path) -> list[dict]:
    events = read_events(run_dir / "events.jsonl")
    val_acc = {e["epoch"]: (e.get("metrics") or {}).get("acc") for e in events
               if e["event"] == "checkpoint" and e.get("kind") == "epoch"}
    rows = []
    for epoch, path, at in epoch_checkpoints(run_dir, launched, seconds):
        out = work / f"decode-{run_dir.name}-{epoch}"
        subprocess.run([sys.executable, "-m", "engine.decode.cli", "--model", str(path), "--input", str(test_list),
                        "--mode", "ctc_greedy", "--output", str(out), "--no-progress"], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        cer = json.loads((out / "summary.json").read_text(encoding="utf-8"))["cer"]
        rows.append({"epoch": epoch, "time": at, "cer": cer, "acc": val_acc.get(epoch)})
    return rows


def funasr_results(funasr_python: str, run_dir: Path, launched: float, seconds: float, test_list: Path,
                   work: Path, threads: int) -> list[dict]:
    checkpoints = epoch_checkpoints(run_dir, launched, seconds)
    if not checkpoints:
        return []
    out_json = work / "funasr-hyps.json"
    out_json.unlink(missing_ok=True)
    done = subprocess.run([funasr_python, str(ROOT / "bench" / "funasr_ctc_greedy.py"), str(run_dir),
                           str(test_list), str(out_json), *[str(p) for _, p, _ in checkpoints]], cwd=work,
                          env=thread_env(threads), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if not out_json.is_file():
        raise RuntimeError(f"FunASR decoding failed (exit {done.returncode}): {done.stderr[-2000:]}")
    if done.returncode != 0:  # FunASR's interpreter has been seen to exit 1 at shutdown after writing
        print(f"# FunASR decoding exited {done.returncode} after writing {out_json.name}", file=sys.stderr)
    refs = {e["key"]: e["target"] for e in map(json.loads, test_list.read_text(encoding="utf-8").splitlines())}
    decoded = {item["checkpoint"]: item for item in json.loads(out_json.read_text(encoding="utf-8"))}
    rows = []
    for epoch, path, at in checkpoints:
        item = decoded[str(path)]
        rows.append({"epoch": epoch, "time": at, "cer": cer_of(item["hyps"], refs), "acc": item["val_acc"]})
    return rows


def time_to_cer(rows: list[dict]) -> float:
    return next((r["time"] for r in rows if r["cer"] is not None and r["cer"] <= CER_GOAL), float("nan"))


def cer_at(rows: list[dict], at: float) -> float:
    before = [r for r in rows if r["time"] <= at]
    return before[-1]["cer"] if before else float("nan")


def epoch_times(rows: list[dict]) -> list[float]:
    ends = [r["time"] for r in rows]
    return [b - a for a, b in zip(ends, ends[1:])] or ends[:1]


def ratio(a: float, b: float) -> float:
    return a / b if b and math.isfinite(a) and math.isfinite(b) else float("nan")


def fmt(value, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def print_table(systems: dict[str, list[dict]]) -> None:
    names = list(systems)
    print("epoch | " + " | ".join(f"{n} valid acc | {n} CER | {n} epoch end (s)" for n in names))
    for epoch in sorted({r["epoch"] for rows in systems.values() for r in rows}):
        cells = []
        for name in names:
            row = next((r for r in systems[name] if r["epoch"] == epoch), {})
            cells += [fmt(row.get("acc")), fmt(row.get("cer")), fmt(row.get("time"), 0)]
        print(f"{epoch} | " + " | ".join(cells))


def num_params_of(config: dict) -> int:
    from engine.data.tokenizer import load_tokenizer
    from engine.models import build_model, num_params

    run_dir = Path(config["output_dir"])
    tokenizer = load_tokenizer(run_dir)
    input_dim = config["frontend_conf"]["n_mels"] * config["frontend_conf"]["lfr_m"]
    return num_params(build_model(config["model"], input_dim, tokenizer.vocab_size, config["model_conf"],
                                  config["encoder_conf"], config["decoder_conf"], sos_eos_id=tokenizer.sos_eos_id))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "data" / "demo")
    parser.add_argument("--subset", choices=("english", "all"), default="english",
                        help="english: the utterances whose text is English only; all: the whole corpus")
    parser.add_argument("--seconds", type=float, default=600.0, help="wall time of each system, from launch")
    parser.add_argument("--threads", type=int, default=2, help="compute threads of each system")
    parser.add_argument("--funasr-python", default="/work/funasr-venv/bin/python",
                        help="the interpreter of a virtualenv with funasr 1.4.16")
    parser.add_argument("--systems", default="funasr,engine,demo",
                        help="which to run: funasr (FunASR's trainer), engine (same recipe), demo (demo preset)")
    parser.add_argument("--out", type=Path, help="work directory to keep (default: a temporary one)")
    parser.add_argument("--max-train", type=int, help="only the first N training utterances (a smoke test)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the runs already in --out (each system's NAME.launched file) and only score them")
    parser.add_argument("--max-eval", type=int, help="only the first N valid and test utterances (a smoke test)")
    parser.add_argument("--demo-preset", type=Path, default=DEMO_PRESET,
                        help="the recipe of the 'demo' system (default: presets/conformer-demo.yaml)")
    args = parser.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    if not shutil.which(args.funasr_python) and "funasr" in systems:
        parser.error(f"--funasr-python {args.funasr_python}: not found (FunASR lives in its own virtualenv)")
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-funasr-"))
    work.mkdir(parents=True, exist_ok=True)
    lists = write_lists(args.corpus.resolve(), args.subset, work, args.max_train, args.max_eval)
    max_epoch = 1000  # the wall time ends the runs
    counts = {split: sum(1 for _ in path.open(encoding="utf-8")) for split, path in lists.items()}
    print(f"# lists ({args.subset}): " + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)

    same = engine_config(None, lists, work / "engine", max_epoch, funasr_like=True)
    prepare_engine_run(same)
    demo = engine_config(args.demo_preset, lists, work / "demo", max_epoch, funasr_like=False)
    demo["dataset_conf"]["num_workers"] = 0
    prepare_engine_run(demo)
    engine_tokens = (work / "engine" / "tokens.txt").read_text(encoding="utf-8").splitlines()
    funasr_tokens = work / "funasr-tokens.txt"  # FunASR's CharTokenizer drops spaces: no "▁"
    funasr_tokens.write_text("\n".join(t for t in engine_tokens if t != WORD_BOUNDARY) + "\n", encoding="utf-8")
    assert engine_tokens[:4] == SPECIAL_TOKENS
    print(f"# parameters: engine (FunASR's recipe) {num_params_of(same)}, demo preset {num_params_of(demo)}",
          flush=True)

    results: dict[str, list[dict]] = {}

    def launch(name: str, argv: list[str], env: dict, cwd: Path = ROOT) -> float:
        """Run one system (or, with --reuse, take its earlier run); its launch time is kept beside it."""
        stamp = work / f"{name}.launched"
        if args.reuse and stamp.is_file():
            print(f"# {name}: reusing the run launched at {stamp.read_text().strip()}", flush=True)
            return float(stamp.read_text())
        launched = timed_run(argv, args.seconds, work / f"{name}.log", env, cwd)
        stamp.write_text(f"{launched}\n")
        return launched

    if "funasr" in systems:
        funasr_dir = work / "funasr"
        if not (args.reuse and (work / "funasr.launched").is_file()):
            shutil.rmtree(funasr_dir, ignore_errors=True)
        funasr_dir.mkdir(exist_ok=True)
        (work / "funasr-config.yaml").write_text(yaml.safe_dump(funasr_config(
            lists, funasr_tokens, work / "engine" / "am.mvn", funasr_dir, max_epoch)), encoding="utf-8")
        print(f"# FunASR: {args.seconds:.0f} s", flush=True)
        launched = launch("funasr", [args.funasr_python, "-m", "funasr.bin.train", "--config-path", str(work),
                                     "--config-name", "funasr-config.yaml", "++device=cpu", f"++ncpu={args.threads}",
                                     "++disable_update=true", f"hydra.run.dir={work / 'hydra'}"],
                          thread_env(args.threads), cwd=work)
        results["FunASR"] = funasr_results(args.funasr_python, funasr_dir, launched, args.seconds, lists["test"],
                                           work, args.threads)
    for name, config, key in (("engine", same, "engine"), ("demo", demo, "engine-demo")):
        if name not in systems:
            continue
        config_path = work / f"{name}.yaml"
        save_config(config, config_path)
        print(f"# engine ({'FunASR recipe' if name == 'engine' else 'demo preset recipe'}): {args.seconds:.0f} s",
              flush=True)
        launched = launch(name, [sys.executable, "-m", "engine.train", "--config", str(config_path)],
                          thread_env(args.threads, str(ROOT)))
        results[key] = engine_results(Path(config["output_dir"]), launched, args.seconds, lists["test"], work)

    print_table(results)
    funasr_rows = results.get("FunASR", [])
    figures = {}
    if funasr_rows and results.get("engine"):
        rows = results["engine"]
        figures["step_time_ratio_vs_funasr"] = ratio(statistics.median(epoch_times(rows)),
                                                     statistics.median(epoch_times(funasr_rows)))
        figures["time_to_cer_0.15_ratio_vs_funasr"] = ratio(time_to_cer(rows), time_to_cer(funasr_rows))
        last = funasr_rows[-1]["time"]
        figures["cer_at_equal_time_ratio_vs_funasr"] = ratio(cer_at(rows, last), cer_at(funasr_rows, last))
    if funasr_rows and results.get("engine-demo"):
        rows = results["engine-demo"]
        figures["time_to_cer_0.15_ratio_vs_funasr_demo_recipe"] = ratio(time_to_cer(rows), time_to_cer(funasr_rows))
        last = funasr_rows[-1]["time"]
        figures["cer_at_equal_time_ratio_vs_funasr_demo_recipe"] = ratio(cer_at(rows, last), cer_at(funasr_rows, last))
    for name, rows in results.items():
        figures[f"{name}_time_to_cer_0.15_s"] = time_to_cer(rows)
        figures[f"{name}_epochs"] = len(rows)
    for name, value in figures.items():
        print(f"{name}: {fmt(float(value))}", flush=True)
    print(f"# work directory: {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
