"""Stand-ins for ``asr-average`` and ``asr-decode`` (no torch): same arguments, same outputs.

``python fake_tools.py asr-average --run DIR --out PATH --checkpoints P ...`` writes PATH and an
``average`` event (``--export-only CKPT --export DIR`` writes DIR's five files); ``python fake_tools.py asr-decode --model M --input L --mode X --beam B
--output DIR`` prints tqdm-style progress and writes summary.json and utt_scores.jsonl.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.events import EventWriter  # noqa: E402


def average(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--checkpoints", nargs="+", type=Path)
    parser.add_argument("--export-only", type=Path)
    parser.add_argument("--export", type=Path)
    args = parser.parse_args(argv)
    if args.export_only is not None:  # export one checkpoint as a model directory, average nothing
        if not args.export_only.exists():
            print(f"asr-average: error: {args.export_only}: checkpoint not found", file=sys.stderr)
            return 1
        args.export.mkdir(parents=True, exist_ok=True)
        for name in ("config.yaml", "model.pt", "am.mvn", "tokens.json", "configuration.json"):
            (args.export / name).write_text(f"{name} of {args.export_only.name}\n")
        print(f"exported {args.export_only.name} as a FunASR model directory to {args.export}")
        return 0
    missing = [str(p) for p in args.checkpoints if not p.exists()]
    if missing:
        print(f"asr-average: missing checkpoints: {', '.join(missing)}", file=sys.stderr)
        return 1
    args.out.write_bytes(b"averaged " + b" ".join(p.name.encode() for p in args.checkpoints))
    EventWriter(args.run / "events.jsonl").write(
        "average", path=str(args.out), sources=[str(p) for p in args.checkpoints], metric="explicit")
    print(f"averaged {len(args.checkpoints)} checkpoints into {args.out}")
    return 0


def decode(argv):
    parser = argparse.ArgumentParser()
    for name in ("--model", "--input", "--mode", "--beam", "--output"):
        parser.add_argument(name, required=True)
    args = parser.parse_args(argv)
    for percent in (10, 50, 100):
        print(f"\rdecoding: {percent}%|####| {percent}/100", end="", file=sys.stderr, flush=True)
        time.sleep(0.05)
    print(file=sys.stderr)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rows = [
        {"key": "utt1", "ref": "hello world", "hyp": "hello world",
         "char": {"errors": 0, "length": 10}, "word": {"errors": 0, "length": 2}},
        {"key": "utt2", "ref": "good morning", "hyp": "good mourning",
         "char": {"errors": 2, "length": 11}, "word": {"errors": 1, "length": 2}},
        {"key": "utt3", "ref": "speech", "hyp": "peach",
         "char": {"errors": 2, "length": 6}, "word": {"errors": 1, "length": 1}},
    ]
    (out / "utt_scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {"cer": 4 / 27, "wer": 2 / 5, "substitutions": 3, "deletions": 1, "insertions": 0,
               "rtf": 0.05, "utterances": 3, "mode": args.mode, "model": args.model}
    (out / "summary.json").write_text(json.dumps(summary))
    print(f"{args.mode}: CER {summary['cer']:.4f}")
    return 0


if __name__ == "__main__":
    tool, rest = sys.argv[1], sys.argv[2:]
    sys.exit(average(rest) if tool == "asr-average" else decode(rest))
