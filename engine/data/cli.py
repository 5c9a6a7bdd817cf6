"""Data command-line tools: ``asr-data demo|stats|check``, ``scp2jsonl``, ``jsonl2scp``.

``scp2jsonl`` and ``jsonl2scp`` accept FunASR's syntax
(``++scp_file_list='["wav.scp", "text.txt"]' ++data_type_list='["source", "target"]'
++jsonl_file_out=train.jsonl``) as well as ordinary ``--flags``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import yaml

from engine.data.lists import DataError

HISTOGRAM_BINS = 20


def _funasr_overrides(argv: list[str]) -> tuple[dict, list[str]]:
    """Split ``++key=value`` arguments (values read as YAML, so JSON lists work) from the rest."""
    overrides, rest = {}, []
    for arg in argv:
        if arg.startswith("++") and "=" in arg:
            key, _, value = arg[2:].partition("=")
            try:
                overrides[key] = yaml.safe_load(value) if value else ""
            except yaml.YAMLError as error:
                raise SystemExit(f"error: cannot parse {arg!r}: {error}") from error
        else:
            rest.append(arg)
    return overrides, rest


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _conversion_args(argv, prog: str, file_flag: str, description: str) -> argparse.Namespace:
    overrides, rest = _funasr_overrides(list(sys.argv[1:] if argv is None else argv))
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--scp-file-list", nargs="+", help="Kaldi tables, e.g. wav.scp text")
    parser.add_argument("--data-type-list", nargs="+", help="field of each table, e.g. source target")
    parser.add_argument(f"--{file_flag.replace('_', '-')}", dest=file_flag, help="the jsonl list")
    parser.add_argument("--strict", action="store_true", help="fail on the first bad entry instead of skipping it")
    args = parser.parse_args(rest)
    known = {"scp_file_list", "data_type_list", file_flag, "strict"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        parser.error(f"unknown option(s) {', '.join('++' + k for k in unknown)}; known: "
                     f"{', '.join('++' + k for k in sorted(known))}")
    for key, value in overrides.items():
        setattr(args, key, value)
    if not args.scp_file_list or not getattr(args, file_flag):
        parser.error(f"give the tables (--scp-file-list or ++scp_file_list) and the list (++{file_flag})")
    args.scp_file_list = [str(p) for p in _as_list(args.scp_file_list)]
    args.data_type_list = [str(t) for t in _as_list(args.data_type_list or ["source", "target"])]
    return args


def _finish(report) -> int:
    print(report.format(), file=sys.stderr)
    return 0


def scp2jsonl_main(argv: list[str] | None = None) -> int:
    from engine.data.scp import scp_to_jsonl

    args = _conversion_args(argv, "scp2jsonl", "jsonl_file_out",
                            "Join Kaldi tables (wav.scp, text) into a FunASR jsonl list.")
    try:
        report = scp_to_jsonl(args.scp_file_list, args.data_type_list, args.jsonl_file_out, strict=args.strict)
    except DataError as error:  # a bad list or argument: a user error
        print(f"error: {error}", file=sys.stderr)
        return 2
    return _finish(report)


def jsonl2scp_main(argv: list[str] | None = None) -> int:
    from engine.data.scp import jsonl_to_scp

    args = _conversion_args(argv, "jsonl2scp", "jsonl_file_in",
                            "Split a FunASR jsonl list into Kaldi tables (wav.scp, text).")
    try:
        report = jsonl_to_scp(args.jsonl_file_in, args.scp_file_list, args.data_type_list, strict=args.strict)
    except DataError as error:  # a bad list or argument: a user error
        print(f"error: {error}", file=sys.stderr)
        return 2
    return _finish(report)


def duration_histogram(durations: list[float], bins: int = HISTOGRAM_BINS) -> dict:
    """{"edges": bins + 1 bounds in seconds, "counts": utterances per bin} (what the console draws)."""
    import numpy

    if not durations:
        return {"edges": [], "counts": []}
    counts, edges = numpy.histogram(durations, bins=bins)
    return {"edges": [round(float(e), 3) for e in edges], "counts": [int(c) for c in counts]}


def _list_texts(paths: list[str], strict: bool, progress: bool, check_audio: bool, report) -> tuple[list[str], list]:
    """The lists' texts and source lengths, their counts merged into ``report`` when given."""
    from engine.data.list_index import index_list

    texts: list[str] = []
    lengths = []
    for path in paths:
        index, list_report = index_list(path, strict=strict, progress=progress, check_audio=check_audio)
        if report is not None:
            report.merge(list_report)
        lengths.append(index.source_len)
        texts.extend(index.texts())
        index.close()
    return texts, lengths


def list_stats(paths: list[str], strict: bool = False, progress: bool = True, check_audio: bool = False,
               tokenizer_conf: dict | None = None, vocab_from: list[str] | None = None) -> tuple[dict, object]:
    """Utterances, hours, durations and the token inventory of the lists (units as
    ``tokenizer_conf`` splits text: English letters by default), with their problems report; given
    the training lists as ``vocab_from``, also the out-of-vocabulary rate against their tokens.

    ``check_audio`` reads every audio header (missing and unreadable files are dropped and
    reported); without it the lists' ``source_len`` is trusted, as training does.
    """
    import numpy

    from engine.data.report import DataReport
    from engine.data.tokenizer import token_units, vocabulary_coverage

    report = DataReport(name=", ".join(paths))
    unit_name, split = token_units(tokenizer_conf)
    texts, lengths = _list_texts(paths, strict, progress, check_audio, report)
    units: Counter = Counter()
    for text in texts:
        units.update(split(text))
    durations = (numpy.concatenate(lengths) if lengths else numpy.zeros(0)) / 100.0
    stats = {
        "utterances": report.utterances,
        "hours": round(report.hours, 4),
        "seconds": round(report.seconds, 2),
        "duration_s": {"min": float(durations.min()) if len(durations) else 0.0,
                       "mean": float(durations.mean()) if len(durations) else 0.0,
                       "max": float(durations.max()) if len(durations) else 0.0},
        "duration_histogram": duration_histogram(durations.tolist()),
        "token_unit": unit_name,
        "tokens": sum(units.values()),
        "distinct_tokens": len(units),
        "top_tokens": [[token, count] for token, count in units.most_common(20)],
        "dropped": dict(report.dropped),
        "num_dropped": report.num_dropped,
        "notes": dict(report.notes),
        "audio_checked": check_audio,
    }
    if vocab_from:
        train_texts, _ = _list_texts(vocab_from, False, False, False, None)
        inventory = {unit for text in train_texts for unit in split(text)}
        stats["vocabulary"] = {"lists": list(vocab_from), "distinct_tokens": len(inventory),
                               **vocabulary_coverage(texts, inventory, split)}
    return {"stats": stats, "durations": durations.tolist()}, report


def _tokenizer_conf(text: str) -> dict:
    from engine.data.tokenizer import ENGLISH_UNITS

    try:
        conf = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(f"not YAML: {error}") from None
    if not isinstance(conf, dict) or conf.get("type", "char") not in ("char", "bpe") \
            or conf.get("english", "letter") not in ENGLISH_UNITS:
        raise argparse.ArgumentTypeError(f"expected a mapping like {{type: char, english: letter}}, got {text!r}")
    return conf


def default_report_path(list_path: str) -> Path:
    """Where ``asr-data check`` writes its report by default: beside the (first) list."""
    return Path(f"{list_path}.check.json")


def _add_token_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tokenizer-conf", type=_tokenizer_conf, default={"type": "char"},
                        help="the config's tokenizer_conf as YAML, e.g. '{type: char, english: word}': count "
                             "tokens as it splits text (default: char, English as letters; bpe: characters)")
    parser.add_argument("--vocab-from", nargs="+", metavar="TRAIN_LIST",
                        help="training lists: report the out-of-vocabulary rate of LISTS against their tokens")


def _histogram(durations: list[float], color: bool) -> str:
    import plotext

    figure = plotext.figure
    figure.clear()
    figure.draw(figure.hist(durations, bins=30))
    figure.title("utterance duration (s)")
    figure.plot_size(70, 15)
    text = str(figure.build())
    return text if color else plotext.uncolorize(text)


def _stats_command(args) -> int:
    check_audio = args.command == "check"
    try:
        result, report = list_stats(args.lists, strict=args.strict, progress=not args.json, check_audio=check_audio,
                                    tokenizer_conf=args.tokenizer_conf, vocab_from=args.vocab_from)
    except DataError as error:  # a bad list or argument: a user error
        print(f"error: {error}", file=sys.stderr)
        return 2
    stats = result["stats"]
    document = {**stats, "lists": list(args.lists), "problems": [p.to_dict() for p in report.problems]}
    if check_audio:
        from engine.utils.fileio import atomic_write_text

        target = Path(args.report) if args.report else default_report_path(args.lists[0])
        atomic_write_text(target, json.dumps(document, ensure_ascii=False, indent=1) + "\n")
        document["report"] = str(target)
        if not args.json:
            print(f"report written to {target}", file=sys.stderr)
    if args.json:
        print(json.dumps(document, ensure_ascii=False))
        return 0
    print(report.format())
    duration = stats["duration_s"]
    print(f"utterances: {stats['utterances']}")
    print(f"hours: {stats['hours']:.3f}")
    print(f"duration min/mean/max: {duration['min']:.2f} / {duration['mean']:.2f} / {duration['max']:.2f} s")
    print(f"tokens (CJK characters and {stats['token_unit']}s): {stats['tokens']}, "
          f"distinct: {stats['distinct_tokens']}")
    print("most frequent: " + " ".join(f"{token}:{count}" for token, count in stats["top_tokens"]))
    vocabulary = stats.get("vocabulary")
    if vocabulary:
        examples = f" (e.g. {' '.join(vocabulary['oov_examples'])})" if vocabulary["oov_examples"] else ""
        print(f"out of vocabulary of {', '.join(vocabulary['lists'])} ({vocabulary['distinct_tokens']} tokens): "
              f"{vocabulary['oov_tokens']} of {vocabulary['tokens']} tokens ({100 * vocabulary['oov_rate']:.2f}%), "
              f"in {vocabulary['utterances_with_oov']} of {vocabulary['utterances']} utterances{examples}")
    if result["durations"]:
        print(_histogram(result["durations"], color=sys.stdout.isatty()))
    return 0


def _demo_command(args) -> int:
    from engine.data.demo import WorkerStartError, make_demo_corpus

    try:
        out = make_demo_corpus(args.out, num_train=args.num_train, seed=args.seed, progress=True,
                               num_workers=args.num_workers)
    except WorkerStartError as error:
        print(f"asr-data demo: {error}", file=sys.stderr)
        return 1
    print(f"demo corpus ready: {out}/train.jsonl, valid.jsonl, test.jsonl")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asr-data", description="Data lists: demo corpus, statistics and checks.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="synthesise the demo corpus with espeak-ng")
    demo.add_argument("--out", required=True, help="corpus directory (made if missing)")
    demo.add_argument("--num-train", type=int, default=3000, help="training utterances (default 3000)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--num-workers", type=int, default=2, help="synthesis processes (default 2)")
    demo.set_defaults(run=_demo_command)
    stats = commands.add_parser("stats", help="utterances, hours, durations, tokens and problems of lists")
    stats.add_argument("lists", nargs="+", help="jsonl lists")
    stats.add_argument("--strict", action="store_true", help="fail on the first bad entry")
    stats.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    _add_token_options(stats)
    stats.set_defaults(run=_stats_command)
    check = commands.add_parser("check", help="stats after reading every audio header (missing, unreadable, "
                                              "resampled, multi-channel files); writes a JSON report")
    check.add_argument("lists", nargs="+", help="jsonl lists")
    check.add_argument("--strict", action="store_true", help="fail on the first bad entry")
    check.add_argument("--json", action="store_true", help="print the report as one JSON object too")
    check.add_argument("--report", help="where to write the report (default: beside the first list, LIST.check.json)")
    _add_token_options(check)
    check.set_defaults(run=_stats_command)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
