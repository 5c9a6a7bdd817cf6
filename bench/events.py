"""Event log throughput: how fast the engine appends events and a reader takes in a long run.

    python bench/events.py [--events 1000000] [--ranks 8]

Prints ``name: value`` lines: events_write_per_s (EventWriter.write of train events with a
per-rank table), events_read_1m_s (EventReader.read_new of the whole log, scaled to 1,000,000
events) and events_file_mb. Everything is written in a temporary directory, removed after.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.events import EventReader, EventWriter  # noqa: E402


def train_fields(step: int, ranks: int) -> dict:
    row = {"loss": 12.3, "batch_size": 32, "data_load_s": 0.004, "forward_s": 0.11, "backward_s": 0.21,
           "optim_s": 0.012, "total_s": 0.34, "memory_mb": 20480.0}
    return {"epoch": 3, "step": step, "lr": {"main": 8.1e-4}, "loss": 12.345, "losses": {"loss_ctc": 20.1, "loss_att": 9.8},
            "acc": 0.81, "grad_norm": {"main": 3.2}, "throughput": 1234.5, "padding_ratio": 0.12,
            "ranks": [dict(row, rank=r) for r in range(ranks)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--ranks", type=int, default=8, help="rows in each train event's rank table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        writes = min(args.events, 20_000)
        with EventWriter(path) as writer:
            start = time.perf_counter()
            for step in range(writes):
                writer.write("train", **train_fields(step, args.ranks))
            write_s = time.perf_counter() - start
        line = path.read_bytes().splitlines(keepends=True)[-1]
        with open(path, "ab") as handle:  # the rest of the log, byte-identical lines
            remaining = args.events - writes
            while remaining > 0:
                block = min(remaining, 100_000)
                handle.write(line * block)
                remaining -= block
        reader = EventReader(path)
        start = time.perf_counter()
        events = reader.read_new()
        read_s = time.perf_counter() - start
        assert len(events) == args.events and reader.malformed == 0
        print(f"events_write_per_s: {writes / write_s:.0f}")
        print(f"events_read_1m_s: {read_s * 1_000_000 / args.events:.2f}")
        print(f"events_file_mb: {path.stat().st_size / 2**20:.0f}")


if __name__ == "__main__":
    main()
