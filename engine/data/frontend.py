"""FunASR's WavFrontend: Kaldi fbank, low frame rate (LFR) stacking, global CMVN.

The fbank is torchaudio's Kaldi-compatible one with FunASR's settings: the waveform is
scaled by 32768 (Kaldi works on int16 magnitudes), hamming window, 25/10 ms frames,
energy floor 0, dither only while training. CMVN is stored as FunASR's ``am.mvn``: a
Kaldi nnet text file whose ``<AddShift>`` holds the negated means and whose
``<Rescale>`` holds the inverse standard deviations, applied after LFR.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
from tqdm import tqdm

from engine.data.audio import load_audio
from engine.utils.fileio import atomic_write_text

# Floor for variances when computing CMVN: a constant feature dimension must not divide by zero.
VARIANCE_FLOOR = 1.0e-20


class WavFrontend:
    """Waveform (num_samples,) -> features (frames, n_mels * lfr_m), CMVN applied when given."""

    def __init__(self, fs: int = 16000, n_mels: int = 80, frame_length: float = 25, frame_shift: float = 10,
                 dither: float = 1.0, lfr_m: int = 1, lfr_n: int = 1, window: str = "hamming",
                 cmvn_file=None):
        if lfr_m < 1 or lfr_n < 1:
            raise ValueError(f"frontend_conf: lfr_m and lfr_n must be >= 1, got {lfr_m}, {lfr_n}")
        self.fs = fs
        self.n_mels = n_mels
        self.frame_length = frame_length
        self.frame_shift = frame_shift
        self.dither = dither
        self.lfr_m = lfr_m
        self.lfr_n = lfr_n
        self.window = window
        self.cmvn_file = str(cmvn_file) if cmvn_file else None
        self._fast: KaldiFbank | None = None  # made on first use (in each DataLoader worker)
        self.cmvn = read_am_mvn(cmvn_file) if cmvn_file else None
        if self.cmvn is not None and self.cmvn[0].numel() != self.output_dim:
            raise ValueError(f"{cmvn_file}: CMVN has dimension {self.cmvn[0].numel()}, "
                             f"the frontend makes {self.output_dim} (n_mels * lfr_m)")

    @property
    def output_dim(self) -> int:
        return self.n_mels * self.lfr_m

    def fbank(self, wave: torch.Tensor, training: bool) -> torch.Tensor:
        """Kaldi fbank (frames, n_mels) of a mono waveform in [-1, 1] (never changed in place)."""
        min_samples = int(self.fs * self.frame_length / 1000)
        if wave.numel() < min_samples:
            wave = torch.nn.functional.pad(wave, (0, min_samples - wave.numel()))
        if self._fast is None:
            self._fast = KaldiFbank(self.fs, self.n_mels, self.frame_length, self.frame_shift, self.window)
        return self._fast(wave * 32768.0, self.dither if training else 0.0)

    def num_frames(self, num_samples: int) -> int:
        """Frames this frontend makes from ``num_samples`` samples (snip_edges, then LFR)."""
        window = int(self.fs * self.frame_length / 1000)
        shift = int(self.fs * self.frame_shift / 1000)
        frames = 1 + (max(num_samples, window) - window) // shift
        return math.ceil(frames / self.lfr_n)

    def __call__(self, wave: torch.Tensor, training: bool = False) -> torch.Tensor:
        feats = apply_lfr(self.fbank(wave, training), self.lfr_m, self.lfr_n)
        if self.cmvn is not None:
            means, stds = self.cmvn
            feats = (feats - means) / stds
        return feats


class KaldiFbank:
    """torchaudio.compliance.kaldi.fbank with FunASR's settings, in fewer and cheaper steps.

    The same computation (snip_edges framing, dither, DC removal, pre-emphasis 0.97, the window,
    zero padding to a power of two, power spectrum, mel banks from 20 Hz to Nyquist, log) and the
    same random draws for dither, so that features match torchaudio's to float precision
    (tests/data/test_audio_frontend.py). Written out because torchaudio's builds the window and
    the mel banks again at every call, computes a log energy fbank never uses, and takes the
    magnitude of the spectrum only to square it: 3.3 ms for a 3 s utterance, which with the loader
    in the training process (the 2-core recipes) was 8% of a Conformer 4x144 step; this takes
    1.3 ms. The window and banks come from torchaudio, once.
    """

    PREEMPHASIS = 0.97

    def __init__(self, fs: int, n_mels: int, frame_length: float, frame_shift: float, window: str):
        from torchaudio.compliance import kaldi

        self.size = int(fs * frame_length * 0.001)
        self.shift = int(fs * frame_shift * 0.001)
        self.padded = 1 << (self.size - 1).bit_length()
        self.window = kaldi._feature_window_function(window, self.size, 0.42, torch.device("cpu"), torch.float32)
        banks, _ = kaldi.get_mel_banks(n_mels, self.padded, float(fs), 20.0, 0.0, 100.0, -500.0, 1.0)
        banks = banks.to(torch.float32)
        # (padded/2 + 1, n_mels): the Nyquist bin gets weight 0, as torchaudio pads it
        self.banks = torch.nn.functional.pad(banks, (0, 1)).T.contiguous()
        self.epsilon = torch.finfo(torch.float32).eps

    def __call__(self, wave: torch.Tensor, dither: float) -> torch.Tensor:
        wave = wave.to(torch.float32).contiguous()
        count = 1 + (wave.numel() - self.size) // self.shift
        frames = wave.as_strided((count, self.size), (self.shift, 1))
        if dither:
            frames = frames + torch.randn(frames.shape) * dither
        frames = frames - frames.mean(dim=1, keepdim=True)
        padded = torch.zeros(count, self.padded)
        body = padded[:, :self.size]
        torch.sub(frames[:, 1:], frames[:, :-1], alpha=self.PREEMPHASIS, out=body[:, 1:])
        torch.mul(frames[:, :1], 1.0 - self.PREEMPHASIS, out=body[:, :1])
        body.mul_(self.window)
        spectrum = torch.fft.rfft(padded)
        power = spectrum.real.square().add_(spectrum.imag.square())
        return torch.mm(power, self.banks).clamp_min_(self.epsilon).log_()


def apply_lfr(feats: torch.Tensor, lfr_m: int, lfr_n: int) -> torch.Tensor:
    """FunASR's low frame rate: stack ``lfr_m`` frames every ``lfr_n`` frames.

    The input is left-padded with (lfr_m - 1) // 2 copies of the first frame and the last
    windows are right-padded with the last frame, giving ceil(T / lfr_n) output frames.
    """
    if lfr_m == 1 and lfr_n == 1:
        return feats
    frames, dim = feats.shape
    left = (lfr_m - 1) // 2
    padded = torch.cat([feats[:1].expand(left, dim), feats], dim=0)
    out_frames = math.ceil(frames / lfr_n)
    index = torch.arange(out_frames).unsqueeze(1) * lfr_n + torch.arange(lfr_m).unsqueeze(0)
    index = index.clamp(max=padded.shape[0] - 1)
    return padded[index].reshape(out_frames, lfr_m * dim)


def compute_cmvn(entries: list[dict], frontend: WavFrontend, num_workers: int = 0,
                 progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Global (means, stds) of the frontend's features (no dither, no CMVN) over ``entries``."""
    plain = WavFrontend(frontend.fs, frontend.n_mels, frontend.frame_length, frontend.frame_shift, 0.0,
                        frontend.lfr_m, frontend.lfr_n, frontend.window)
    loader = torch.utils.data.DataLoader(_PlainFeatures(entries, plain), batch_size=None, num_workers=num_workers)
    total = torch.zeros(plain.output_dim, dtype=torch.float64)
    total_sq = torch.zeros(plain.output_dim, dtype=torch.float64)
    count = 0
    for feats in tqdm(loader, total=len(entries), desc="computing CMVN", unit="utt", disable=not progress):
        feats = feats.double()
        total += feats.sum(0)
        total_sq += (feats * feats).sum(0)
        count += feats.shape[0]
    if count == 0:
        raise ValueError("compute_cmvn: no training features (is the training list empty?)")
    means = total / count
    variances = (total_sq / count - means * means).clamp(min=VARIANCE_FLOOR)
    return means.float(), variances.sqrt().float()


class _PlainFeatures(torch.utils.data.Dataset):
    """Features without dither or CMVN, one utterance per item (so workers can share the work)."""

    def __init__(self, entries: list[dict], frontend: WavFrontend):
        self.entries = entries
        self.frontend = frontend

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.frontend(load_audio(self.entries[index]["source"], self.frontend.fs), training=False)


def _vector(values: torch.Tensor) -> str:
    return "[ " + " ".join(f"{v:.8g}" for v in values.tolist()) + " ]"


def write_am_mvn(path, means: torch.Tensor, stds: torch.Tensor) -> None:
    """Write FunASR's am.mvn (Kaldi nnet text: AddShift = -means, Rescale = 1 / stds), atomically."""
    dim = means.numel()
    text = (
        "<Nnet>\n"
        f"<Splice> {dim} {dim}\n"
        "[ 0 ]\n"
        f"<AddShift> {dim} {dim}\n"
        f"<LearnRateCoef> 0 {_vector(-means.double())}\n"
        f"<Rescale> {dim} {dim}\n"
        f"<LearnRateCoef> 0 {_vector(1.0 / stds.double())}\n"
        "</Nnet>\n"
    )
    atomic_write_text(path, text)


def read_am_mvn(path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read an am.mvn back as (means, stds); errors name the file and what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read CMVN file: {error}") from error
    vectors = {}
    for component in ("AddShift", "Rescale"):
        match = re.search(rf"<{component}>\s+(\d+)\s+(\d+)\s*<LearnRateCoef>\s+\S+\s*\[([^\]]*)\]", text)
        if match is None:
            raise ValueError(f"{path}: not a Kaldi nnet CMVN file: no <{component}> vector")
        try:
            values = torch.tensor([float(v) for v in match.group(3).split()], dtype=torch.float64)
        except ValueError as error:
            raise ValueError(f"{path}: <{component}> holds a non-number: {error}") from error
        if values.numel() != int(match.group(1)):
            raise ValueError(f"{path}: <{component}> declares {match.group(1)} values, holds {values.numel()}")
        vectors[component] = values
    shift, rescale = vectors["AddShift"], vectors["Rescale"]
    if shift.numel() != rescale.numel():
        raise ValueError(f"{path}: <AddShift> and <Rescale> differ in dimension")
    if (rescale == 0).any():
        raise ValueError(f"{path}: <Rescale> holds a zero")
    return (-shift).float(), (1.0 / rescale).float()
