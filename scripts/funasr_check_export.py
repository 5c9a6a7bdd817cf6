"""Check that FunASR decodes a model directory the engine exported, as the engine does (not run by CI).

Run in the FunASR reference virtualenv (funasr==1.4.16), from the repository root:

    /work/funasr-venv/bin/python scripts/funasr_check_export.py EXPORT_DIR WAV [WAV ...] \\
        [--engine-python /work/main/.venv/bin/python] [--record tests/fixtures/funasr/engine_export/funasr_accepted.json]

EXPORT_DIR is what ``asr-average --export`` (engine.decode.model_dir.export_model_dir) wrote. It
trains and exports nothing itself. For each wav it decodes with FunASR's
``AutoModel(model=EXPORT_DIR).generate()`` in three ways (CTC greedy: ``batch_size=2``; attention
beam search: ``decoding_ctc_weight=0``; AutoModel's default joint CTC/attention beam search) and
with ``asr-decode`` (``--mode ctc_greedy`` and ``--mode attention --beam 10``, run with the
engine's interpreter), then compares the texts. FunASR writes no space between a Chinese
character and a Latin word where the engine does, so texts are compared without spaces; the
engine has no joint CTC/attention beam search, so the default path is shown, not compared.
``--record`` writes what FunASR accepted (config.yaml, state-dict keys and shapes, the texts) for
tests/funasr/test_export_shape.py. Exit status 0 when every compared text is identical.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]


def engine_decode(python: str, model_dir: Path, wavs: list[Path], mode: str) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        scp = Path(tmp) / "wav.scp"
        scp.write_text("".join(f"{w.stem} {w.resolve()}\n" for w in wavs), encoding="utf-8")
        env = dict(os.environ, PYTHONPATH=str(REPO))
        subprocess.run([python, "-m", "engine.decode.cli", "--model", str(model_dir), "--input", str(scp),
                        "--output", str(Path(tmp) / "out"), "--mode", mode, "--beam", "10", "--batch-size", "1",
                        "--device", "cpu", "--no-progress"], check=True, env=env, cwd=REPO)
        texts = {}
        for line in (Path(tmp) / "out" / "text").read_text(encoding="utf-8").splitlines():
            key, _, text = line.partition(" ")
            texts[key] = text
        return texts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("wavs", type=Path, nargs="+")
    parser.add_argument("--engine-python", default="/work/main/.venv/bin/python")
    parser.add_argument("--record", type=Path)
    args = parser.parse_args(argv)

    from funasr import AutoModel

    auto = AutoModel(model=str(args.model_dir), device="cpu", disable_update=True, disable_pbar=True,
                     log_level="ERROR")
    funasr: dict[str, dict[str, str]] = {}
    for name, kwargs in (("ctc_greedy", {"batch_size": 2}), ("attention", {"decoding_ctc_weight": 0.0}),
                         ("joint", {})):
        for wav in args.wavs:  # one utterance per call: FunASR lets padding leak into real frames
            funasr.setdefault(wav.stem, {})[name] = auto.generate(input=str(wav), **kwargs)[0]["text"]
        auto.model.beam_search = None
    engine = {mode: engine_decode(args.engine_python, args.model_dir, args.wavs, mode)
              for mode in ("ctc_greedy", "attention")}

    same = True
    texts = {}
    for wav in args.wavs:
        key = wav.stem
        row = {f"funasr_{k}": v for k, v in funasr[key].items()}
        row.update({f"engine_{mode}": engine[mode].get(key, "") for mode in engine})
        texts[key] = row
        for mode in engine:
            equal = row[f"engine_{mode}"].replace(" ", "") == row[f"funasr_{mode}"].replace(" ", "")
            same &= equal
            print(f"{key} {mode:10s} {'same' if equal else 'DIFFERENT'}: funasr {row[f'funasr_{mode}']!r} "
                  f"engine {row[f'engine_{mode}']!r}")
        print(f"{key} joint      (funasr only): {row['funasr_joint']!r}")
    if args.record:
        saved = torch.load(args.model_dir / "model.pt", map_location="cpu", weights_only=True)
        state = saved.get("state_dict", saved)
        record = {"funasr_version": __import__("funasr").__version__,
                  "files": sorted(p.name for p in args.model_dir.iterdir()),
                  "config": yaml.safe_load((args.model_dir / "config.yaml").read_text(encoding="utf-8")),
                  "configuration": json.loads((args.model_dir / "configuration.json").read_text(encoding="utf-8")),
                  "state_dict": {key: list(value.shape) for key, value in state.items()},
                  "texts": texts, "all_same": same}
        args.record.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print("all compared texts identical" if same else "texts differ")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
