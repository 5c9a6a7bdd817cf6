"""Data pipeline figures, one ``name: value`` per line.

real_frames_{example,length,token}: share of non-padding frames in the batches of one epoch
(goal >= 0.95 for length and token). loader_audio_s_per_s_w{0,2}: seconds of audio turned
into padded feature batches per second of wall time, with 0 and 2 DataLoader workers;
loader_audio_s_per_s_w0_speed: the same with speed perturbation [0.9, 1.0, 1.1] (its ratio to
w0 is loader_speed_perturb_ratio).

``--scale 1000000,10000000``: for each size, a synthetic list of that many lines pointing at the
demo audio (made in a temporary directory and deleted after), and, in a fresh process per size:
startup_{N}_s, the seconds from launch (interpreter start, imports included) to the first batch
on one rank with the demo preset's batching (startup_cpu_{N}_s: the CPU seconds of the same span,
which is what the wall time is on an idle machine: the work is single-threaded); list_rss_mb_{N}, the resident memory the list adds
to the process once indexed, filtered and planned (goal at 1M: <= 200); list_peak_mb_{N}, the
peak over the same span. Sizes are written 1m, 10m, 2500k...

    python bench/data.py [--list data/demo/train.jsonl] [--scale 1000000,2000000] [--skip-loader]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.data import build_dataloader  # noqa: E402
from engine.data.frontend import WavFrontend  # noqa: E402
from engine.data.lists import read_jsonl  # noqa: E402
from engine.data.sampler import BatchSampler  # noqa: E402
from engine.data.specaug import SpecAugment  # noqa: E402
from engine.data.tokenizer import build_tokenizer  # noqa: E402


def real_frames_share(entries, token_counts, frontend, batch_type, batch_size, buffer_size):
    """Non-padding share of the speech tensors of one epoch (frames counted as the frontend makes them)."""
    sampler = BatchSampler([e["source_len"] for e in entries], token_counts, batch_type, batch_size,
                           buffer_size=buffer_size)
    frames = [frontend.num_frames(int(e["source_len"]) * frontend.fs // 100) for e in entries]
    real = padded = 0
    for batch in sampler:
        lengths = [frames[i] for i in batch]
        real += sum(lengths)
        padded += max(lengths) * len(lengths)
    return real / padded


def size_name(count: int) -> str:
    if count % 1_000_000 == 0:
        return f"{count // 1_000_000}m"
    return f"{count // 1000}k" if count % 1000 == 0 else str(count)


def make_synthetic_list(demo_list: Path, count: int, out_path: Path) -> None:
    """``count`` lines cycling over the demo list's entries, each with a key of its own."""
    import msgspec

    base = [json.loads(line) for line in demo_list.read_text(encoding="utf-8").splitlines() if line.strip()]
    demo_dir = demo_list.parent.resolve()
    for entry in base:
        entry["source"] = str(demo_dir / entry["source"])
    encode = msgspec.json.encode
    with open(out_path, "wb") as handle:
        chunk = []
        for i in range(count):
            entry = base[i % len(base)]
            chunk.append(encode({**entry, "key": f"syn{i:09d}"}))
            if len(chunk) == 100_000:
                handle.write(b"\n".join(chunk) + b"\n")
                chunk = []
        if chunk:
            handle.write(b"\n".join(chunk) + b"\n")


# Run in a fresh interpreter per size, so that memory and import time are the list's alone.
STARTUP_PROBE = r"""
import json, sys, time
start = time.perf_counter()
import torch
torch.set_num_threads(1)
from engine.data import build_dataloader
from engine.data.frontend import WavFrontend
from engine.data.tokenizer import load_tokenizer

def rss_mb():
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

list_path, tokens, conf = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
tokenizer, frontend = load_tokenizer(tokens), WavFrontend(lfr_m=7, lfr_n=6)
before, _ = rss_mb()
loader, sampler, report = build_dataloader(list_path, conf, frontend, tokenizer, train=True, seed=0)
sampler.set_epoch(1)
batches = len(sampler)
after, peak = rss_mb()
batch = next(iter(loader))
print(json.dumps({"startup_s": time.perf_counter() - start, "startup_cpu_s": time.process_time(),
                  "list_rss_mb": after - before,
                  "list_peak_mb": peak - before, "utterances": report.utterances, "batches": batches,
                  "first_batch": len(batch["keys"])}))
"""


def scale_figures(demo_list: Path, counts: list[int], conf: dict) -> None:
    from engine.data.lists import read_jsonl

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as work:
        work = Path(work)
        entries, _ = read_jsonl(demo_list, check_audio=False)
        build_tokenizer({"type": "char"}, [e["target"] for e in entries], work)
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "OMP_NUM_THREADS": "1"}
        for count in counts:
            list_path = work / f"synthetic_{count}.jsonl"
            made = time.perf_counter()
            make_synthetic_list(demo_list, count, list_path)
            print(f"# {size_name(count)}: list of {list_path.stat().st_size / 2**20:.0f} MiB made in "
                  f"{time.perf_counter() - made:.1f} s", flush=True)
            try:
                out = subprocess.run([sys.executable, "-c", STARTUP_PROBE, str(list_path), str(work / "tokens.txt"),
                                      json.dumps(conf)], capture_output=True, text=True, env=env, check=True).stdout
            finally:
                list_path.unlink()
            result = json.loads(out.strip().splitlines()[-1])
            name = size_name(count)
            print(f"startup_{name}_s: {result['startup_s']:.2f}")
            print(f"startup_cpu_{name}_s: {result['startup_cpu_s']:.2f}")
            print(f"list_rss_mb_{name}: {result['list_rss_mb']:.1f}")
            print(f"list_peak_mb_{name}: {result['list_peak_mb']:.1f}")
            print(f"# {name}: {result['utterances']} utterances kept, {result['batches']} batches per epoch, "
                  f"first batch of {result['first_batch']}", flush=True)


def loader_speed(list_path, tokenizer, workers, conf, max_seconds):
    torch.set_num_threads(1)
    loader, sampler, report = build_dataloader(list_path, {**conf, "num_workers": workers}, WavFrontend(), tokenizer,
                                               train=True, specaug=SpecAugment())
    frames = 0
    start = time.perf_counter()
    for batch in loader:
        frames += batch["num_frames_real"]
        if time.perf_counter() - start > max_seconds:
            break
    elapsed = time.perf_counter() - start
    return frames * 0.01 / elapsed  # 10 ms frames


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", default=str(ROOT / "data" / "demo" / "train.jsonl"))
    parser.add_argument("--batch-size-example", type=int, default=32)
    parser.add_argument("--batch-size-length", type=int, default=8000, help="padded 10 ms frames per batch")
    parser.add_argument("--batch-size-token", type=int, default=9000)
    parser.add_argument("--buffer-size", type=int, default=1024)
    parser.add_argument("--max-seconds", type=float, default=20.0, help="time limit of each loader measure")
    parser.add_argument("--scale", default="", help="comma-separated list sizes for the start-up figures, e.g. 1000000")
    parser.add_argument("--skip-loader", action="store_true", help="only the --scale figures")
    args = parser.parse_args(argv)
    if not Path(args.list).is_file():
        print(f"error: {args.list} not found (make the demo corpus: asr-data demo --out data/demo)", file=sys.stderr)
        return 1
    if args.scale:
        # the demo preset's batching (engine workers off: one process is measured)
        conf = {"batch_type": "length", "batch_size": 4000, "buffer_size": 1000, "num_workers": 0,
                "max_source_length": 1500, "max_target_length": 100}
        scale_figures(Path(args.list), [int(float(n)) for n in args.scale.split(",")], conf)
        if args.skip_loader:
            return 0
    entries, report = read_jsonl(args.list)
    frontend = WavFrontend()
    with tempfile.TemporaryDirectory() as token_dir:
        tokenizer = build_tokenizer({"type": "char"}, [e["target"] for e in entries], token_dir)
    token_counts = [len(tokenizer.encode(e["target"])) for e in entries]
    print(f"utterances: {report.utterances}")
    print(f"hours: {report.hours:.3f}")
    for batch_type in ("example", "length", "token"):
        share = real_frames_share(entries, token_counts, frontend, batch_type,
                                  getattr(args, f"batch_size_{batch_type}"), args.buffer_size)
        print(f"real_frames_{batch_type}: {share:.4f}")
    conf = {"batch_type": "length", "batch_size": args.batch_size_length, "buffer_size": args.buffer_size}
    speeds = {}
    for workers in (0, 2):
        speeds[workers] = loader_speed(args.list, tokenizer, workers, conf, args.max_seconds)
        print(f"loader_audio_s_per_s_w{workers}: {speeds[workers]:.1f}")
    perturbed = loader_speed(args.list, tokenizer, 0, {**conf, "speed_perturb": [0.9, 1.0, 1.1]}, args.max_seconds)
    print(f"loader_audio_s_per_s_w0_speed: {perturbed:.1f}")
    print(f"loader_speed_perturb_ratio: {perturbed / speeds[0]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
