"""Map-style dataset of (features, token ids) over a ListIndex, and the collate that pads a batch.

Lines are parsed, audio read and texts tokenised here, when an utterance is loaded, not at start
(see engine.data.list_index). An utterance that cannot be loaded (missing or unreadable audio, a
line that changed, a text without tokens) is skipped and recorded in the batch's ``skipped``
list with its key and reason; the trainer counts and reports them. A batch whose every
utterance failed takes the next loadable utterances of the list instead, so that every rank
still gets a batch (DDP needs one on each rank at each step).
"""

from __future__ import annotations

import os

import torch

from engine.data.audio import AudioError, load_audio
from engine.data.batching import split_virtual
from engine.data.list_index import DataError
from engine.data.speed import perturb

# Padding value of the "text" tensor: ignored by the losses (an id of -1 never exists).
TEXT_PAD = -1
# A batch whose utterances all failed looks this far along the list for one that loads.
MAX_REPLACEMENT_TRIES = 1000


class NoTokens(Exception):
    """The text has no token of the tokenizer."""


class AudioTextDataset(torch.utils.data.Dataset):
    """Item i: audio of entry i through the frontend (and SpecAugment in training), with its token ids.

    With ``speed_factors`` the indices are the sampler's virtual ones (utterance + count x factor
    position, see engine.data.batching). With a ``cache`` (engine.data.cache) an item's features
    are kept where they are the same at every load, its audio where training dither is fresh.
    """

    def __init__(self, index, tokenizer, frontend, specaug=None, train: bool = False, speed_factors=(),
                 cache=None):
        self.index = index
        self.tokenizer = tokenizer
        self.frontend = frontend
        self.specaug = specaug
        self.train = train
        self.speed_factors = tuple(speed_factors or ())
        self.cache = cache
        # Training dither draws fresh noise at every load: then the cache keeps the audio, not the features.
        self.cache_features = not (train and frontend.dither)

    def __len__(self) -> int:
        return len(self.index) * max(len(self.speed_factors), 1)

    def _load(self, index: int) -> dict:
        count = len(self.index)
        utterance, choice = split_virtual(index, count)
        entry = self.index.entry(utterance)
        token_ids = self.tokenizer.encode(entry["target"])
        if not token_ids:
            raise NoTokens(f"no token of the tokenizer in {entry['target']!r}")
        feats = self._features(entry, index, choice)
        if self.train and self.specaug is not None:  # SpecAugment copies: cached features stay as they are
            feats = self.specaug(feats)
        return {"key": entry["key"], "speech": feats, "text": torch.tensor(token_ids, dtype=torch.int64)}

    def _features(self, entry: dict, index: int, choice: int) -> torch.Tensor:
        kept = self.cache.get(index) if self.cache is not None else None
        if kept is not None and self.cache_features:
            return kept
        wave = kept
        if wave is None:
            wave = load_audio(entry["source"], self.frontend.fs)
            if self.speed_factors:
                wave = perturb(wave, self.speed_factors[choice])
            if self.cache is not None and not self.cache_features:
                self.cache.put(index, wave)
        feats = self.frontend(wave, training=self.train)
        if self.cache is not None and self.cache_features:
            self.cache.put(index, feats)
        return feats

    def _skipped(self, index: int, error: Exception) -> dict:
        utterance, _ = split_virtual(index, len(self.index))
        path, line = self.index.where(utterance)
        if isinstance(error, AudioError):
            missing = not os.path.exists(self.index.entry(utterance)["source"])
            reason = "missing_audio" if missing else "unreadable_audio"
        elif isinstance(error, DataError):
            reason = "unreadable_line"
        else:
            reason = "no_tokens"
        try:
            key = self.index.key(utterance)
        except Exception:  # the line itself is unreadable
            key = None
        return {"skipped": {"reason": reason, "path": path, "line": line, "key": key, "detail": str(error)}}

    def __getitem__(self, index: int) -> dict:
        """Item ``index``, or ``{"skipped": {...}}`` when it cannot be loaded."""
        try:
            return self._load(index)
        except (AudioError, DataError, NoTokens) as error:
            return self._skipped(index, error)

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """A batch's items (what the DataLoader calls); see the module docstring for failures."""
        items = [self[i] for i in indices]
        if indices and all("skipped" in item for item in items):
            count = len(self.index)
            start = split_virtual(indices[-1], count)[0]
            for step in range(1, min(MAX_REPLACEMENT_TRIES, count) + 1):
                item = self[(start + step) % count]
                items.append(item)
                if "skipped" not in item:
                    break
            else:
                raise RuntimeError(f"{self.index.paths[0]}: no utterance could be loaded near line "
                                   f"{self.index.where(start)[1]} ({items[0]['skipped']['detail']})")
        return items


def collate(items: list[dict]) -> dict:
    """Pad a list of items into the batch dict of docs/ARCHITECTURE.md (speech with 0, text with -1)."""
    skipped = [item["skipped"] for item in items if "skipped" in item]
    items = [item for item in items if "skipped" not in item]
    speech_lengths = torch.tensor([item["speech"].shape[0] for item in items], dtype=torch.int64)
    text_lengths = torch.tensor([item["text"].numel() for item in items], dtype=torch.int64)
    speech = torch.nn.utils.rnn.pad_sequence([item["speech"] for item in items], batch_first=True)
    text = torch.nn.utils.rnn.pad_sequence([item["text"] for item in items], batch_first=True,
                                           padding_value=TEXT_PAD)
    return {
        "keys": [item["key"] for item in items],
        "speech": speech,
        "speech_lengths": speech_lengths,
        "text": text,
        "text_lengths": text_lengths,
        "num_frames_padded": int(speech.shape[0] * speech.shape[1]),
        "num_frames_real": int(speech_lengths.sum()),
        "skipped": skipped,
    }
