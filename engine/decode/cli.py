"""``asr-decode``: decode a list with a trained model and score it.

Writes into ``--output``: ``text`` (FunASR's "key hypothesis" lines), ``utt_scores.jsonl`` (per
utterance: reference, hypothesis, S/D/I for characters and words) and ``summary.json`` (CER,
WER, error counts, RTF, how the text was normalised and counted, the model and input used).
Inputs without references are decoded and not scored. The folder appears whole or not at all:
it is written under a temporary name and renamed. Exit status: 0 done, 1 a run-time failure
(utterances that failed, a full disk: one line naming the path), 2 a bad model or input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from engine.data.lists import DataError
from engine.decode.inputs import read_inputs
from engine.decode.model_dir import ModelLoadError, load_asr
from engine.decode.recognizer import Recognizer
from engine.decode.scoring import ErrorCounts, TextNormalizer, error_counts, scoring_conventions
from engine.decode.modes import MODES, default_mode, supported_modes
from engine.utils.dist import usable_cpus
from engine.utils.fileio import atomic_directory, atomic_write_text

NORMALIZE_STEPS = {"lowercase", "punctuation", "nfkc"}


def parse_normalize(value: str) -> TextNormalizer:
    steps = {step.strip() for step in value.split(",") if step.strip()} - {"none"}
    unknown = steps - NORMALIZE_STEPS
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown normalisation step(s) {', '.join(sorted(unknown))}; use a comma list of "
            f"{', '.join(sorted(NORMALIZE_STEPS))} or 'none'")
    return TextNormalizer(lowercase="lowercase" in steps, remove_punctuation="punctuation" in steps,
                          nfkc="nfkc" in steps)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asr-decode", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="run directory, model directory or checkpoint file")
    parser.add_argument("--input", required=True, help="jsonl list, wav.scp or one audio file")
    parser.add_argument("--output", required=True, help="directory for text, utt_scores.jsonl, summary.json")
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="search (default: attention_rescoring, paraformer for a Paraformer); "
                             "a model supports only some of them")
    parser.add_argument("--beam", type=int, default=10, help="beam size (prefix beam, attention, rescoring n-best)")
    parser.add_argument("--batch-size", type=int, default=8, help="utterances per batch")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: cuda when available, else cpu")
    parser.add_argument("--ctc-weight", type=float, default=0.3, help="weight of the CTC score in attention_rescoring")
    parser.add_argument("--length-penalty", type=float, default=0.0, help="per-token bonus in attention beam search")
    parser.add_argument("--normalize", type=parse_normalize, default=parse_normalize("lowercase,punctuation,nfkc"),
                        help="comma list of lowercase, punctuation, nfkc, or 'none' (default: all three)")
    parser.add_argument("--text", help="Kaldi text file with references (for a wav.scp or audio input)")
    parser.add_argument("--num-workers", type=int, default=0, help="processes computing features")
    parser.add_argument("--num-threads", type=int, default=0, help="torch CPU threads (0: every usable core)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--allow-changed-assets", action="store_true",
                        help="decode even though tokens.txt / am.mvn differ from the ones the checkpoint was trained with")
    return parser


def write_output_dir(out: Path, files: dict[str, str]) -> None:
    """Write ``files`` into ``out`` as a whole (engine.utils.fileio.atomic_directory)."""
    with atomic_directory(out) as tmp:
        for name, text in files.items():
            atomic_write_text(tmp / name, text)


def score(entries: list[dict], hyps: dict[str, str], normalizer: TextNormalizer) -> tuple[list[dict], dict]:
    """Per-utterance rows and corpus totals for the entries that have a reference and a hypothesis."""
    rows = []
    chars, words = ErrorCounts(), ErrorCounts()
    for entry in entries:
        if "target" not in entry or entry["key"] not in hyps:
            continue
        hyp = hyps[entry["key"]]
        cer = error_counts(entry["target"], hyp, "char", normalizer)
        wer = error_counts(entry["target"], hyp, "word", normalizer)
        chars, words = chars + cer, words + wer
        rows.append({"key": entry["key"], "ref": entry["target"], "hyp": hyp,
                     "ref_normalized": normalizer(entry["target"]), "hyp_normalized": normalizer(hyp),
                     "char": cer.to_dict(), "word": wer.to_dict()})
    return rows, {"char": chars, "word": words}


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.beam < 1 or args.batch_size < 1:
        print("asr-decode: --beam and --batch-size must be at least 1", file=sys.stderr)
        return 2
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    torch.set_num_threads(args.num_threads or usable_cpus())
    try:
        model, frontend, tokenizer, config = load_asr(args.model, device,
                                                      allow_changed_assets=args.allow_changed_assets)
        entries, report = read_inputs(args.input, args.text, progress=not args.no_progress)
    except (ModelLoadError, DataError, FileNotFoundError, ValueError) as error:
        print(f"asr-decode: {error}", file=sys.stderr)
        return 2
    model_name = config.get("model", "conformer")
    modes = supported_modes(model_name, config)
    args.mode = args.mode or default_mode(model_name)
    if args.mode not in modes:
        print(f"asr-decode: --mode {args.mode}: a {model_name} model decodes with {', '.join(modes)}", file=sys.stderr)
        return 2
    if report.num_dropped or report.notes:
        print(report.format(), file=sys.stderr)
    if not entries:
        print(f"asr-decode: {args.input}: nothing to decode (every entry was dropped)", file=sys.stderr)
        return 2

    started = time.time()
    recognition = Recognizer(model, frontend, tokenizer, device).recognize(
        entries, args.mode, args.beam, args.batch_size, args.ctc_weight, args.length_penalty,
        args.num_workers, progress=not args.no_progress)
    for failure in recognition.failed:
        print(f"asr-decode: {failure['source']}: key {failure['key']!r} not decoded: {failure['error']}",
              file=sys.stderr)

    hyps = {result["key"]: result["text"] for result in recognition.results}
    rows, totals = score(entries, hyps, args.normalize)
    chars, words = totals["char"], totals["word"]
    scored = bool(rows)
    summary = {
        "cer": chars.rate if scored else None,
        "wer": words.rate if scored else None,
        "substitutions": chars.substitutions, "deletions": chars.deletions, "insertions": chars.insertions,
        "char_errors": chars.to_dict(), "word_errors": words.to_dict(),
        "rtf": recognition.rtf,
        "utterances": len(recognition.results),
        "scored_utterances": len(rows),
        "failed_utterances": len(recognition.failed),
        "audio_seconds": round(recognition.audio_seconds, 3),
        "decode_seconds": round(recognition.elapsed_seconds, 3),
        "mode": args.mode, "beam": args.beam, "ctc_weight": args.ctc_weight,
        "length_penalty": args.length_penalty, "batch_size": args.batch_size, "device": device,
        **scoring_conventions(args.normalize),
        "model": str(Path(args.model).resolve()), "checkpoint": config["checkpoint"],
        "input": str(Path(args.input).resolve()), "input_report": report.to_event(),
        "failed": recognition.failed, "started": started,
    }
    out = Path(args.output)
    try:
        write_output_dir(out, {
            "text": "".join(f"{r['key']} {r['text']}\n" for r in recognition.results),
            "utt_scores.jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
            "summary.json": json.dumps(summary, ensure_ascii=False, indent=2) + "\n"})
    except OSError as error:
        print(f"asr-decode: {error.filename or out}: {error.strerror or error}; nothing written", file=sys.stderr)
        return 1

    if scored:
        print(f"{args.mode}: CER {_number(chars.rate)} (S {chars.substitutions} D {chars.deletions} "
              f"I {chars.insertions} / {chars.ref_length}), WER {_number(words.rate)}, {len(rows)} utterances, "
              f"RTF {_number(recognition.rtf)} -> {out}")
    else:
        print(f"{args.mode}: {len(recognition.results)} utterances decoded (no references), "
              f"RTF {_number(recognition.rtf)} -> {out}")
    return 0 if not recognition.failed else 1


if __name__ == "__main__":
    sys.exit(main())
