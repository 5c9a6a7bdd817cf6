"""Data pipeline figures, one ``name: value`` per line.

real_frames_{example,length,token}: share of non-padding frames in the batches of one epoch
(goal >= 0.95 for length and token). loader_audio_s_per_s_w{0,2}: seconds of audio turned
into padded feature batches per second of wall time, with 0 and 2 DataLoader workers.

    python bench/data.py [--list data/demo/train.jsonl]
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args(argv)
    if not Path(args.list).is_file():
        print(f"error: {args.list} not found (make the demo corpus: asr-data demo --out data/demo)", file=sys.stderr)
        return 1
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
    for workers in (0, 2):
        print(f"loader_audio_s_per_s_w{workers}: {loader_speed(args.list, tokenizer, workers, conf, args.max_seconds):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
