"""A toy corpus the tiny model learns in seconds: each token is a tone, utterances are tone sequences.

Used by the decode tests to get a *trained* model (searches, rescoring, the CLI end to end)
without the demo corpus or the trainer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import soundfile
import torch

from engine.config import DEFAULTS
from engine.data.frontend import WavFrontend, write_am_mvn
from engine.data.tokenizer import SPECIAL_TOKENS, CharTokenizer
from engine.models import build_model
from engine.utils.fileio import atomic_torch_save, atomic_write_text

FS = 16000
UNITS = list("一二三四五六七八")
TONE_SECONDS, GAP_SECONDS = 0.12, 0.04
ENCODER_CONF = dict(output_size=32, attention_heads=2, linear_units=64, num_blocks=2, cnn_module_kernel=5,
                    dropout_rate=0.0, positional_dropout_rate=0.0, input_layer="conv2d")
DECODER_CONF = dict(attention_heads=2, linear_units=64, num_blocks=1, dropout_rate=0.0,
                    positional_dropout_rate=0.0)
MODEL_CONF = {"ctc_weight": 0.5, "lsm_weight": 0.0}
FRONTEND_CONF = {"fs": FS, "n_mels": 40, "frame_length": 25, "frame_shift": 10, "dither": 0.0,
                 "lfr_m": 1, "lfr_n": 1}


def synthesize(text: str, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    pieces = [torch.zeros(int(GAP_SECONDS * FS))]
    for char in text:
        frequency = 300.0 + 300.0 * UNITS.index(char)
        t = torch.arange(int(TONE_SECONDS * FS)) / FS
        pieces += [0.3 * torch.sin(2 * math.pi * frequency * t), torch.zeros(int(GAP_SECONDS * FS))]
    wave = torch.cat(pieces)
    return wave + 0.003 * torch.randn(wave.shape, generator=gen)


def texts(count: int, seed: int) -> list[str]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        length = int(torch.randint(2, 6, (1,), generator=gen))
        out.append("".join(UNITS[int(i)] for i in torch.randint(0, len(UNITS), (length,), generator=gen)))
    return out


def write_list(directory: Path, name: str, utterances: list[str], seed: int) -> Path:
    lines = []
    for index, text in enumerate(utterances):
        wav = directory / "wav" / f"{name}{index:03d}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(wav, synthesize(text, seed + index).numpy(), FS, subtype="PCM_16")
        lines.append(json.dumps({"key": f"{name}{index:03d}", "source": str(wav), "target": text},
                                ensure_ascii=False))
    path = directory / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def features(frontend: WavFrontend, list_path: Path) -> list[tuple[torch.Tensor, str]]:
    import soundfile as sf

    items = []
    for line in list_path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        wave, _ = sf.read(entry["source"], dtype="float32")
        items.append((frontend(torch.from_numpy(wave)), entry["target"]))
    return items


def pad_batch(items, tokenizer):
    speech = torch.nn.utils.rnn.pad_sequence([f for f, _ in items], batch_first=True)
    speech_lengths = torch.tensor([f.size(0) for f, _ in items])
    ids = [torch.tensor(tokenizer.encode(t)) for _, t in items]
    text = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=-1)
    return speech, speech_lengths, text, torch.tensor([len(i) for i in ids])


def build_toy_run(run_dir: Path, steps: int = 150, train_utterances: int = 48) -> dict:
    """A run directory (config.yaml, tokens.txt, am.mvn, model.pt) of a tiny trained model, plus
    train/test lists of tone audio. Returns paths and the trained model."""
    run_dir.mkdir(parents=True, exist_ok=True)
    data_dir = run_dir / "data"
    train_list = write_list(data_dir, "train", texts(train_utterances, seed=1), seed=100)
    test_list = write_list(data_dir, "test", texts(8, seed=2), seed=200)
    tokenizer = CharTokenizer(SPECIAL_TOKENS + UNITS)
    tokenizer.save(run_dir)

    raw = WavFrontend(**FRONTEND_CONF)
    stacked = torch.cat([f for f, _ in features(raw, train_list)])
    write_am_mvn(run_dir / "am.mvn", stacked.mean(0), stacked.std(0).clamp(min=1e-3))
    frontend = WavFrontend(**FRONTEND_CONF, cmvn_file=run_dir / "am.mvn")

    config = json.loads(json.dumps(DEFAULTS))
    config.update(output_dir=str(run_dir), model="conformer", model_conf=MODEL_CONF, encoder_conf=ENCODER_CONF,
                  decoder_conf=DECODER_CONF, frontend_conf=FRONTEND_CONF, cmvn="global",
                  train_data_set_list=[str(train_list)], valid_data_set_list=[str(test_list)])
    import yaml

    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config, allow_unicode=True, sort_keys=False))

    torch.manual_seed(0)
    model = build_model("conformer", frontend.output_dim, tokenizer.vocab_size, MODEL_CONF, ENCODER_CONF,
                        DECODER_CONF, sos_eos_id=tokenizer.sos_eos_id)
    optimizer = torch.optim.Adam(model.parameters(), lr=4e-3)
    batch = pad_batch(features(frontend, train_list), tokenizer)
    model.train()
    for _ in range(steps):
        loss = model(*batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    atomic_torch_save({"model": model.state_dict(), "epoch": 1, "step": steps}, run_dir / "model.pt")
    test_batch = pad_batch(features(frontend, test_list), tokenizer)
    return {"run_dir": run_dir, "train_list": train_list, "test_list": test_list, "model": model,
            "tokenizer": tokenizer, "frontend": frontend, "test_batch": test_batch, "final_loss": loss.item()}
