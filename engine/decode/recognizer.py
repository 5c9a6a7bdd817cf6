"""Batched recognition of audio entries: features, encoder, search, text, with timing for RTF."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from engine.data.audio import AudioError, load_audio
from engine.decode.search import decode_batch


class FeatureDataset(torch.utils.data.Dataset):
    """Features of each entry; a file that fails to read yields its error instead of stopping the run."""

    def __init__(self, entries: list[dict], frontend):
        self.entries = entries
        self.frontend = frontend

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int):
        entry = self.entries[index]
        try:
            wave = load_audio(entry["source"], self.frontend.fs)
        except AudioError as error:
            return index, None, 0.0, str(error)
        return index, self.frontend(wave, training=False), wave.numel() / self.frontend.fs, None


def collate_features(items):
    good = [item for item in items if item[1] is not None]
    failed = [(index, error) for index, feats, _, error in items if feats is None]
    if not good:
        return [], None, None, 0.0, failed
    indices = [item[0] for item in good]
    lengths = torch.tensor([item[1].size(0) for item in good])
    speech = torch.nn.utils.rnn.pad_sequence([item[1] for item in good], batch_first=True)
    return indices, speech, lengths, sum(item[2] for item in good), failed


@dataclass
class Recognition:
    """Hypotheses in input order (``results``), files that failed, and the timing behind RTF."""

    results: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    audio_seconds: float = 0.0
    elapsed_seconds: float = 0.0

    @property
    def rtf(self) -> float | None:
        return self.elapsed_seconds / self.audio_seconds if self.audio_seconds else None


class Recognizer:
    def __init__(self, model, frontend, tokenizer, device: str | torch.device = "cpu"):
        self.model = model.eval()
        self.frontend = frontend
        self.tokenizer = tokenizer
        self.device = torch.device(device)

    def recognize(self, entries: list[dict], mode: str | None = None, beam_size: int = 10,
                  batch_size: int = 8, ctc_weight: float = 0.3, length_penalty: float = 0.0,
                  num_workers: int = 0, progress: bool = False) -> Recognition:
        """Decode ``entries`` (dicts with key, source and, for length-sorted batching, source_len).

        Utterances are batched by similar length (less padding); results come back in input order.
        ``mode`` None: the model's default (paraformer for a Paraformer, else attention_rescoring).
        """
        if mode is None:
            mode = "paraformer" if hasattr(self.model, "predictor") else "attention_rescoring"
        order = sorted(range(len(entries)), key=lambda i: -int(entries[i].get("source_len", 0)))
        dataset = FeatureDataset([entries[i] for i in order], self.frontend)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                                             collate_fn=collate_features)
        hyps: dict[int, str] = {}
        out = Recognition()
        bar = tqdm(total=len(entries), desc=f"decoding ({mode})", unit="utt", disable=not progress)
        start = time.perf_counter()
        for indices, speech, lengths, seconds, failed in loader:
            for index, error in failed:
                entry = entries[order[index]]
                out.failed.append({"key": entry["key"], "source": entry["source"], "error": error})
            if indices:
                token_ids = decode_batch(self.model, speech.to(self.device), lengths.to(self.device), mode,
                                         beam_size, ctc_weight, length_penalty)
                for index, ids in zip(indices, token_ids):
                    hyps[order[index]] = self.tokenizer.decode(ids)
                out.audio_seconds += seconds
            bar.update(len(indices) + len(failed))
        out.elapsed_seconds = time.perf_counter() - start
        bar.close()
        out.results = [{"key": entries[i]["key"], "text": hyps[i]} for i in range(len(entries)) if i in hyps]
        return out
