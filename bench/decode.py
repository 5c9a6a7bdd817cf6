"""Decoding speed on CPU, one ``name: value`` per line: ``rtf_<mode>`` for every mode.

RTF = wall seconds spent decoding (audio reading, features, encoder, search) / seconds of
audio, after one warm-up batch. The model is ``--model`` (run dir, model dir or checkpoint);
without it, a trained demo run in exp/conformer-demo if one exists, else a randomly initialised
model of the demo preset's shape (its hypotheses are garbage, but the network is the demo's size;
attention search on an untrained decoder tends to run to the length limit, so that RTF is an
upper bound). The output says which. ``cer_<mode>`` lines follow when the list has references.

    python bench/decode.py [--model PATH] [--list data/demo/test.jsonl] [--limit 200] [--beam 10] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.data.frontend import WavFrontend  # noqa: E402
from engine.data.lists import read_jsonl  # noqa: E402
from engine.data.tokenizer import CharTokenizer, build_char_token_list  # noqa: E402
from engine.decode.cli import score  # noqa: E402
from engine.decode.model_dir import ModelLoadError, load_asr, resolve_checkpoint  # noqa: E402
from engine.decode.recognizer import Recognizer  # noqa: E402
from engine.decode.scoring import TextNormalizer  # noqa: E402
from engine.decode.modes import default_mode, supported_modes  # noqa: E402
from engine.models import build_model, num_params  # noqa: E402
from engine.utils.dist import usable_cpus  # noqa: E402

DEMO_PRESET = ROOT / "presets" / "conformer-demo.yaml"
DEMO_RUN = ROOT / "exp" / "conformer-demo"


def random_demo_model(entries: list[dict]):
    """The demo preset's network with random weights, a char vocabulary from the list's text."""
    preset = yaml.safe_load(DEMO_PRESET.read_text(encoding="utf-8"))
    conf = {k: v for k, v in preset["frontend_conf"].items()}
    frontend = WavFrontend(**conf)
    tokenizer = CharTokenizer(build_char_token_list([e["target"] for e in entries]))
    torch.manual_seed(0)
    model = build_model(preset["model"], frontend.output_dim, tokenizer.vocab_size, preset["model_conf"],
                        preset["encoder_conf"], preset["decoder_conf"], sos_eos_id=tokenizer.sos_eos_id)
    return model.eval(), frontend, tokenizer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="run directory, model directory or checkpoint")
    parser.add_argument("--list", default=str(ROOT / "data" / "demo" / "test.jsonl"))
    parser.add_argument("--limit", type=int, default=200, help="utterances decoded per mode")
    parser.add_argument("--beam", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: every usable core)")
    args = parser.parse_args()

    if not Path(args.list).is_file():
        print(f"error: {args.list} not found (make the demo corpus: asr-data demo --out data/demo)", file=sys.stderr)
        return 1
    threads = args.threads or usable_cpus()
    torch.set_num_threads(threads)
    entries, report = read_jsonl(args.list)
    entries = entries[: args.limit]
    if report.num_dropped:
        print(report.format(), file=sys.stderr)

    model_path = args.model
    if model_path is None:
        try:
            resolve_checkpoint(DEMO_RUN)
            model_path = str(DEMO_RUN)
        except ModelLoadError:
            model_path = None
    if model_path is not None:
        model, frontend, tokenizer, config = load_asr(model_path, "cpu")
        print(f"model: trained, {config['checkpoint']}")
    else:
        model, frontend, tokenizer = random_demo_model(entries)
        config = {"model": "conformer"}
        print(f"model: randomly initialised {DEMO_PRESET.name} shape (no --model and no trained {DEMO_RUN})")
    print(f"parameters: {num_params(model)}")
    print(f"list: {args.list} ({len(entries)} utterances), cpu threads: {threads}, beam: {args.beam}")

    recognizer = Recognizer(model, frontend, tokenizer, "cpu")
    modes = supported_modes(config["model"], config)
    recognizer.recognize(entries[: args.batch_size], default_mode(config["model"]), batch_size=args.batch_size)  # warm-up
    normalizer = TextNormalizer()
    cers = {}
    for mode in modes:
        recognition = recognizer.recognize(entries, mode, args.beam, args.batch_size)
        print(f"rtf_{mode}: {recognition.rtf:.4f}", flush=True)
        hyps = {r["key"]: r["text"] for r in recognition.results}
        rows, totals = score(entries, hyps, normalizer)
        if rows:
            cers[mode] = totals["char"].rate
    for mode, cer in cers.items():
        print(f"cer_{mode}: {cer:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
