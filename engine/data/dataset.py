"""Map-style dataset of (features, token ids) and the collate that pads them into a batch."""

from __future__ import annotations

import torch

from engine.data.audio import AudioError, load_audio

# Padding value of the "text" tensor: ignored by the losses (an id of -1 never exists).
TEXT_PAD = -1


class AudioTextDataset(torch.utils.data.Dataset):
    """Item i: audio of entry i through the frontend (and SpecAugment in training), with its token ids."""

    def __init__(self, entries: list[dict], token_ids: list[list[int]], frontend, specaug=None,
                 train: bool = False):
        self.entries = entries
        self.token_ids = token_ids
        self.frontend = frontend
        self.specaug = specaug
        self.train = train

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        entry = self.entries[index]
        try:
            wave = load_audio(entry["source"], self.frontend.fs)
        except AudioError as error:
            raise AudioError(f"key {entry['key']!r}: {error}") from error
        feats = self.frontend(wave, training=self.train)
        if self.train and self.specaug is not None:
            feats = self.specaug(feats)
        return {"key": entry["key"], "speech": feats, "text": torch.tensor(self.token_ids[index], dtype=torch.int64)}


def collate(items: list[dict]) -> dict:
    """Pad a list of items into the batch dict of docs/ARCHITECTURE.md (speech with 0, text with -1)."""
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
    }
