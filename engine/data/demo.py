"""The demo corpus: Mandarin, English and code-switched sentences spoken by espeak-ng.

Mandarin runs are read by the ``cmn-latn-pinyin`` voice (the plain ``cmn`` voice reads
characters missing from its dictionary as English-spelled pinyin with tone digits) and
English runs by ``en``, with the same voice variant, rate and pitch, concatenated.
The test split is spoken by voice variants never heard in train; valid by train voices.
Everything is 16 kHz mono int16 wav. A stamp written last marks a complete corpus, so
re-running with the same arguments is instant and an interrupted run is redone.
"""

from __future__ import annotations

import ctypes.util
import json
import multiprocessing
import random
import shutil
from pathlib import Path

import numpy as np
import soundfile
from tqdm import tqdm

from engine.data.demo_text import make_sentence, script_segments
from engine.data.espeak import make_synthesizer
from engine.utils.fileio import atomic_write_text

FS = 16000
TRAIN_VARIANTS = ["m1", "m2", "m3", "m5", "f1", "f2", "f3"]
TEST_VARIANTS = ["m4", "f4"]
ESPEAK_VOICES = {"zh": "cmn-latn-pinyin", "en": "en"}
RATES = {"zh": (190, 250), "en": (140, 190)}  # words per minute; espeak's Mandarin is slow at its default
PITCH_RANGE = (35, 70)
GAP_SECONDS = 0.05  # pause between a Mandarin and an English run
EDGE_SECONDS = 0.1  # silence kept before and after each utterance
SILENCE_THRESHOLD = 1e-3
SHARD_SIZE = 40  # utterances per worker process
STAMP = ".demo_complete.json"
STAMP_VERSION = 1


def split_sizes(num_train: int) -> dict[str, int]:
    held_out = max(20, num_train // 15)
    return {"train": num_train, "valid": held_out, "test": held_out}


def plan_corpus(num_train: int, seed: int) -> list[dict]:
    """Every utterance to make: key, split, text, voice variant, rates and pitch (from the seed alone)."""
    rng = random.Random(seed)
    plan = []
    for split, count in split_sizes(num_train).items():
        variants = TEST_VARIANTS if split == "test" else TRAIN_VARIANTS
        for index in range(count):
            kind, text = make_sentence(rng)
            variant = rng.choice(variants)
            plan.append({
                "key": f"{split}_{variant}_{index:05d}",
                "split": split,
                "kind": kind,
                "text": text,
                "variant": variant,
                "rate": {language: rng.randint(*bounds) for language, bounds in RATES.items()},
                "pitch": rng.randint(*PITCH_RANGE),
            })
    return plan


def _trim(samples: np.ndarray) -> np.ndarray:
    loud = np.nonzero(np.abs(samples) > SILENCE_THRESHOLD)[0]
    return samples[loud[0]: loud[-1] + 1] if loud.size else samples[:0]


def synthesize_shard(jobs: list[tuple[dict, str]], synthesizer) -> list[tuple[str, int]]:
    """Write each (item, path) as 16 kHz int16 wav; returns (key, number of samples) per item.

    Runs are spoken grouped by language, because switching espeak-ng between Mandarin
    and English reloads its dictionary, which costs more than speaking a sentence.
    """
    runs = []
    for item_index, (item, _) in enumerate(jobs):
        for run_index, (language, text) in enumerate(script_segments(item["text"])):
            runs.append((language, item_index, run_index, text))
    spoken: dict[tuple[int, int], np.ndarray] = {}
    for language, item_index, run_index, text in sorted(runs):
        item = jobs[item_index][0]
        voice = f"{ESPEAK_VOICES[language]}+{item['variant']}"
        samples = synthesizer.speak(text, voice, item["rate"][language], item["pitch"])
        spoken[item_index, run_index] = _trim(samples.astype(np.float32) / 32768.0)
    import torch
    import torchaudio

    rate_hz = synthesizer.sample_rate
    resample = torchaudio.transforms.Resample(rate_hz, FS)
    gap = np.zeros(int(GAP_SECONDS * rate_hz), dtype=np.float32)
    edge = np.zeros(int(EDGE_SECONDS * rate_hz), dtype=np.float32)
    written = []
    for item_index, (item, path) in enumerate(jobs):
        pieces = [spoken[key] for key in sorted(k for k in spoken if k[0] == item_index)]
        joined = [edge]
        for index, piece in enumerate(pieces):
            joined.extend([gap, piece] if index else [piece])
        joined.append(edge)
        wave = resample(torch.from_numpy(np.concatenate(joined))).clamp(-1.0, 1.0)
        soundfile.write(path, wave.numpy(), FS, subtype="PCM_16")
        written.append((item["key"], wave.numel()))
    return written


def _synthesize_shard_in_fresh_process(jobs: list[tuple[dict, str]]) -> list[tuple[str, int]]:
    """Pool task, one fresh process per shard: libespeak-ng keeps state between utterances,
    so a shard's audio then depends on the shard alone, not on how shards met workers."""
    import torch

    torch.set_num_threads(1)
    return synthesize_shard(jobs, make_synthesizer())


WORKER_PRELOAD = ["torchaudio", "engine.data.demo"]


class WorkerStartError(RuntimeError):
    """The synthesis workers cannot start; the message names the import that fails."""


def _check_worker_imports(modules: list[str]) -> None:
    """Import what the fork server preloads, here, so that a broken install is reported as its
    own error. The fork server swallows ImportError and dies of anything else (an OSError for a
    torch/torchaudio ABI mismatch), which the pool only reports as ``EOFError: unexpected EOF``."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise WorkerStartError(
                f"demo corpus workers cannot start: importing {name} failed: {type(exc).__name__}: {exc} "
                "(python -m engine.utils.install_check tells what to do)") from exc


def _worker_context():
    """Fork workers from a fork server, not from this process: the server imports torchaudio
    once (forking is then cheap) and has never loaded libespeak-ng, whose state a worker
    forked from a process that had used it would inherit, changing the audio."""
    _check_worker_imports(WORKER_PRELOAD)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_PRELOAD)
    return context


def _read_stamp(out_dir: Path) -> dict | None:
    try:
        return json.loads((out_dir / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def corpus_is_complete(out_dir, num_train: int | None = None, seed: int | None = None) -> bool:
    """True when ``out_dir`` holds a finished demo corpus (of these arguments, when given)."""
    out_dir = Path(out_dir)
    stamp = _read_stamp(out_dir)
    if not stamp or stamp.get("version") != STAMP_VERSION:
        return False
    if (num_train is not None and stamp.get("num_train") != num_train) or (seed is not None and stamp.get("seed") != seed):
        return False
    return all((out_dir / f"{split}.jsonl").is_file() for split in split_sizes(stamp["num_train"]))


def make_demo_corpus(out_dir, num_train: int = 3000, seed: int = 0, progress: bool = True,
                     num_workers: int = 2) -> Path:
    """Synthesise the demo corpus into ``out_dir`` (nothing to do if it is already complete)."""
    out_dir = Path(out_dir)
    if corpus_is_complete(out_dir, num_train, seed):
        return out_dir
    if ctypes.util.find_library("espeak-ng") is None and shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    (out_dir / STAMP).unlink(missing_ok=True)
    plan = plan_corpus(num_train, seed)
    for split in split_sizes(num_train):
        wav_dir = out_dir / split / "wav"
        wav_dir.mkdir(parents=True, exist_ok=True)
        for stale in wav_dir.glob(f"{split}_*.wav"):  # from an interrupted or other-sized run
            stale.unlink()
    jobs = [(item, str(out_dir / item["split"] / "wav" / f"{item['key']}.wav")) for item in plan]
    shards = [jobs[start: start + SHARD_SIZE] for start in range(0, len(jobs), SHARD_SIZE)]
    samples: dict[str, int] = {}
    with tqdm(total=len(jobs), desc="synthesising demo corpus", unit="utt", disable=not progress) as bar:
        try:
            with _worker_context().Pool(num_workers, maxtasksperchild=1) as pool:
                for results in pool.imap(_synthesize_shard_in_fresh_process, shards):
                    samples.update(results)
                    bar.update(len(results))
        except (EOFError, BrokenPipeError, ConnectionError) as exc:  # the fork server died
            raise WorkerStartError(f"demo corpus workers died: {type(exc).__name__}: {exc}; "
                                   "run python -m engine.utils.install_check") from exc
    _write_lists(out_dir, plan, samples)
    stamp = {"version": STAMP_VERSION, "num_train": num_train, "seed": seed,
             "utterances": {split: n for split, n in split_sizes(num_train).items()},
             "train_variants": TRAIN_VARIANTS, "test_variants": TEST_VARIANTS}
    atomic_write_text(out_dir / STAMP, json.dumps(stamp, indent=1) + "\n")
    return out_dir


def _write_lists(out_dir: Path, plan: list[dict], samples: dict[str, int]) -> None:
    """Per split: wav.scp and text (Kaldi style, paths relative to the split), and DIR/{split}.jsonl."""
    from engine.data.lists import source_len_of, target_len_of

    for split in dict.fromkeys(item["split"] for item in plan):
        items = [item for item in plan if item["split"] == split]
        scp = "".join(f"{i['key']} wav/{i['key']}.wav\n" for i in items)
        text = "".join(f"{i['key']} {i['text']}\n" for i in items)
        jsonl = "".join(json.dumps({
            "key": i["key"], "source": f"{split}/wav/{i['key']}.wav", "source_len": source_len_of(samples[i["key"]], FS),
            "target": i["text"], "target_len": target_len_of(i["text"]),
        }, ensure_ascii=False) + "\n" for i in items)
        atomic_write_text(out_dir / split / "wav.scp", scp)
        atomic_write_text(out_dir / split / "text", text)
        atomic_write_text(out_dir / f"{split}.jsonl", jsonl)
