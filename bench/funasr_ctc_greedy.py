"""Run by bench/funasr.py with FunASR's own interpreter (its virtualenv): CTC greedy decoding of
FunASR epoch checkpoints, and the validation accuracy FunASR's trainer recorded in each.

    /path/to/funasr-venv/bin/python bench/funasr_ctc_greedy.py RUN_DIR TEST_LIST OUT_JSON CKPT...

RUN_DIR is FunASR's output_dir (it holds the config.yaml that ``funasr-train`` wrote). For each
checkpoint, OUT_JSON gets {"checkpoint", "val_acc", "hyps": {key: text}}. The model, frontend and
tokenizer are FunASR's, built by FunASR from that config; only the greedy search (argmax, merge
repeats, drop blanks) is written here, as FunASR's Transformer.inference has no CTC-only mode.
Never imported by the engine or the tests.
"""

from __future__ import annotations

import json
import os
import sys

# This file's directory holds bench/funasr.py, which would shadow the funasr package.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import torch  # noqa: E402


def main(argv: list[str]) -> int:
    run_dir, test_list, out_json, *checkpoints = argv
    from funasr import AutoModel
    from funasr.utils.load_utils import extract_fbank, load_audio_text_image_video

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    auto = AutoModel(model=run_dir, init_param=checkpoints[0], device="cpu", disable_update=True, disable_pbar=True,
                     disable_log=True)
    model, kwargs = auto.model, auto.kwargs
    frontend, tokenizer = kwargs["frontend"], kwargs["tokenizer"]
    if hasattr(frontend, "dither"):
        frontend.dither = 0.0
    entries = [json.loads(line) for line in open(test_list, encoding="utf-8") if line.strip()]
    results = []
    for checkpoint in checkpoints:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        model.load_state_dict(state["state_dict"])
        model.eval()
        name = checkpoint.rsplit("/", 1)[-1]
        val_acc = (state.get("val_acc_step_or_epoch") or {}).get(name)
        hyps = {}
        with torch.no_grad():
            for entry in entries:
                audio = load_audio_text_image_video(entry["source"], fs=frontend.fs)
                speech, lengths = extract_fbank(audio, data_type="sound", frontend=frontend)
                encoder_out, encoder_lens = model.encode(speech, lengths)
                best = model.ctc.log_softmax(encoder_out)[0, : int(encoder_lens[0])].argmax(dim=-1)
                # blank, <s> and </s> are not text (as the engine's decoding drops them)
                skip = {model.blank_id, getattr(model, "sos", 1), getattr(model, "eos", 2)}
                ids = [int(i) for i in torch.unique_consecutive(best) if int(i) not in skip]
                hyps[entry["key"]] = tokenizer.tokens2text(tokenizer.ids2tokens(ids))
        results.append({"checkpoint": checkpoint, "val_acc": val_acc, "hyps": hyps})
    with open(out_json, "w", encoding="utf-8") as handle:
        json.dump(results, handle, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
