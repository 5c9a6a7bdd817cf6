"""``asr-average``: average a run's checkpoints into model.pt.avg{N}, as the run does at its end.

    asr-average --run DIR [--num N] [--metric acc|loss]    the N best by the validation metric
    asr-average --run DIR --last N                          the N newest
    asr-average --run DIR --checkpoints P [P ...]           exactly these files
    ... [--out PATH] [--export MODEL_DIR] [--list]

N and the metric default to the run's own avg_nbest_model and avg_keep_nbest_models_type (kept in
checkpoints.json). The result is written atomically, recorded in checkpoints.json, and announced
by an ``average`` event in DIR/events.jsonl. ``--list`` writes nothing: a checkpoint listed in
checkpoints.json whose file is missing is reported, and its entry kept. Exit status: 0 done,
2 a bad run, choice or checkpoint file, 1 a run-time failure (a full disk: path and cause).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from engine.checkpoint.manager import METRICS, CheckpointManager, metric_value, relative_path
from engine.checkpoint.names import INDEX, parse_name
from engine.checkpoint.storage import CheckpointError
from engine.events import EventWriter
from engine.utils.dist import usable_cpus

DEFAULT_NUM = 10
DEFAULT_METRIC = "acc"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-average", description="Average checkpoints of a run into model.pt.avg{N}.")
    parser.add_argument("--run", required=True, type=Path, help="run directory (output_dir)")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--num", type=int, help="average the N best by --metric "
                        "(default: the run's avg_nbest_model)")
    choice.add_argument("--last", type=int, metavar="N", help="average the N newest checkpoints")
    choice.add_argument("--checkpoints", nargs="+", type=Path, metavar="P",
                        help="average exactly these checkpoint files (in the run or elsewhere)")
    choice.add_argument("--export-only", type=Path, metavar="CHECKPOINT",
                        help="average nothing: write --export MODEL_DIR from this checkpoint or average as it is")
    parser.add_argument("--metric", choices=METRICS, help="validation metric recorded at save time "
                        "for --num (default: the run's avg_keep_nbest_models_type)")
    parser.add_argument("--out", type=Path, help="output file (default: RUN/model.pt.avg{N})")
    parser.add_argument("--export", type=Path, metavar="MODEL_DIR",
                        help="also write a FunASR model directory (funasr.AutoModel loads it) with the "
                        "averaged weights")
    parser.add_argument("--list", action="store_true",
                        help="only show the checkpoints and mark the ones that would be averaged")
    return parser


def run_settings(run_dir: Path) -> dict:
    """The run's keep/average settings as its trainer recorded them in checkpoints.json."""
    try:
        index = json.loads((run_dir / INDEX).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def explicit_entries(manager: CheckpointManager, paths: list[Path]) -> list[dict]:
    """Index entries for the given files (found as given, or inside the run directory)."""
    by_name = {e["path"]: e for e in manager.entries()}
    entries, missing = [], []
    for given in paths:
        path = given if given.exists() or given.is_absolute() else manager.run_dir / given
        if not path.is_file():
            missing.append(str(given))
            continue
        known = by_name.get(relative_path(path, manager.run_dir))
        if known is not None:
            entries.append(known)
        else:  # a file of another run, or a name the index does not know: order by its time
            parsed = parse_name(path.name)
            entries.append({"path": str(path.absolute()), "time": path.stat().st_mtime,
                            "epoch": parsed.epoch if parsed else None,
                            "step": parsed.step if parsed else None})
    if missing:
        raise CheckpointError(f"no such checkpoint file(s): {', '.join(missing)}")
    return entries


def choose(manager: CheckpointManager, args: argparse.Namespace) -> tuple[list[dict], str]:
    """The entries to average and how they were chosen ("acc", "loss", "last" or "explicit")."""
    if args.checkpoints:
        wanted, how = len(args.checkpoints), "explicit"
        chosen = explicit_entries(manager, args.checkpoints)
    elif args.last:
        wanted, how = args.last, "last"
        chosen = manager.last(wanted)
    else:
        wanted, how = args.num or manager.avg_nbest_model, args.metric or manager.metric
        if wanted < 1:
            raise ValueError(f"{manager.run_dir} averages no checkpoints (avg_nbest_model 0): pass --num N")
        chosen = manager.best(wanted, how)
    if not chosen:
        raise CheckpointError(f"{manager.run_dir} has no epoch or step checkpoints (model.pt.ep*) to average")
    if len(chosen) < wanted:
        print(f"asr-average: only {len(chosen)} checkpoints exist; averaging all of them", file=sys.stderr)
    return chosen, how


def describe(entry: dict) -> str:
    scores = ", ".join(f"{m} {metric_value(entry, m):.4f}" for m in METRICS if metric_value(entry, m) is not None)
    parts = [f"{name} {entry[name]}" for name in ("epoch", "step") if entry.get(name) is not None]
    return ", ".join(parts + ([scores] if scores else [])) or "no metadata"


def print_table(manager: CheckpointManager, chosen: list[dict]) -> None:
    """Every checkpoint of the run, oldest first; '*' marks the ones averaged, '!' missing files."""
    picked = {e["path"] for e in chosen}
    for entry in manager.missing:
        print(f"! {entry['path']:<24} {describe(entry)}  (file missing)")
    for entry in manager.entries():
        size = f"{entry['size'] / 2**20:.1f} MiB" if isinstance(entry.get("size"), int) else ""
        print(f"{'*' if entry['path'] in picked else ' '} {entry['path']:<24} {describe(entry)}  {size}")
    for entry in chosen:
        if entry["path"] not in {e["path"] for e in manager.entries()}:
            print(f"* {entry['path']}  {describe(entry)}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run_dir: Path = args.run
    if not run_dir.is_dir():
        parser.error(f"--run {run_dir}: no such run directory")
    for option in ("num", "last"):
        value = getattr(args, option)
        if value is not None and value < 1:
            parser.error(f"--{option} must be at least 1, not {value}")
    torch.set_num_threads(usable_cpus())
    if args.export_only is not None:
        if args.export is None:
            parser.error("--export-only needs --export MODEL_DIR")
        checkpoint = args.export_only if args.export_only.exists() else run_dir / args.export_only
        return export(run_dir, args.export, checkpoint)

    settings = run_settings(run_dir)
    try:
        manager = CheckpointManager(
            run_dir, keep_nbest_models=int(settings.get("keep_nbest_models", 1)),
            avg_nbest_model=int(settings.get("avg_nbest_model", DEFAULT_NUM)),
            metric=settings.get("metric", DEFAULT_METRIC), read_only=args.list)
        for entry in manager.missing:
            print(f"asr-average: {run_dir / entry['path']}: listed in {INDEX} ({describe(entry)}) but the file "
                  f"is missing", file=sys.stderr)
        if args.list:
            try:
                chosen, _ = choose(manager, args)
            except (CheckpointError, ValueError):
                chosen = []
                print("(no checkpoint would be averaged)")
            print_table(manager, chosen)
            return 0
        chosen, how = choose(manager, args)
        print_table(manager, chosen)
        result = manager.average_entries(chosen, how, out_path=args.out, progress=True)
    except (CheckpointError, ValueError) as error:  # a bad run, choice or checkpoint file
        print(f"asr-average: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a permission: the path and the cause, nothing half-written
        print(f"asr-average: {error.filename or run_dir}: {error.strerror or error}", file=sys.stderr)
        return 1
    with EventWriter(run_dir / "events.jsonl") as events:
        events.write("average", **result.to_event(run_dir))
    print(f"averaged {len(result.sources)} checkpoints ({how}) into {result.path}")

    if args.export:
        return export(run_dir, args.export, result.path)
    return 0


def export(run_dir: Path, out_dir: Path, checkpoint: Path) -> int:
    """Write the FunASR model directory ``out_dir`` from ``checkpoint`` of the run."""
    from engine.decode.model_dir import ModelLoadError, export_model_dir  # only when asked

    try:
        exported = export_model_dir(run_dir, out_dir, checkpoint=checkpoint)
    except (ModelLoadError, CheckpointError, OSError) as error:
        print(f"asr-average: error: export to {out_dir} failed: {error}", file=sys.stderr)
        return 1
    print(f"exported {checkpoint.name} as a FunASR model directory to {exported}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
