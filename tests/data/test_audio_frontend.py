import numpy as np
import pytest
import soundfile
import torch
import torchaudio

from engine.data.audio import AudioError, load_audio
from engine.data.frontend import WavFrontend, apply_lfr, compute_cmvn, read_am_mvn, write_am_mvn


def test_load_audio_reads_int16_and_float_wav_and_flac(tmp_path):
    samples = (np.sin(np.arange(16000) / 10) * 0.5).astype("float32")
    for name, subtype in [("a.wav", "PCM_16"), ("b.wav", "FLOAT"), ("c.flac", "PCM_16")]:
        soundfile.write(str(tmp_path / name), samples, 16000, subtype=subtype)
        wave = load_audio(tmp_path / name)
        assert wave.dtype == torch.float32 and wave.shape == (16000,)
        assert torch.allclose(wave, torch.from_numpy(samples), atol=1e-4)


def test_load_audio_downmixes_and_resamples(tmp_path):
    stereo = np.stack([np.full(8000, 0.2), np.full(8000, 0.4)], axis=1).astype("float32")
    soundfile.write(str(tmp_path / "s.wav"), stereo, 8000, subtype="FLOAT")
    wave = load_audio(tmp_path / "s.wav", fs=16000)
    assert wave.shape == (16000,)
    assert wave[4000:12000].mean().item() == pytest.approx(0.3, abs=1e-3)


def test_load_audio_error_names_the_file(tmp_path):
    path = tmp_path / "bad.wav"
    path.write_bytes(b"not audio")
    with pytest.raises(AudioError, match="bad.wav"):
        load_audio(path)


@pytest.mark.parametrize("window,samples,dither", [("hamming", 16000, 0.0), ("hamming", 16000, 1.0),
                                                    ("povey", 12345, 1.0), ("hanning", 400, 0.0)])
def test_fbank_equals_torchaudio_kaldi_fbank(window, samples, dither):
    """engine.data.frontend.KaldiFbank against torchaudio's, dither drawn from the same seed."""
    wave = torch.randn(samples, generator=torch.Generator().manual_seed(1)) * 0.1
    frontend = WavFrontend(n_mels=80, dither=dither, window=window)
    torch.manual_seed(0)
    ours = frontend(wave, training=True)
    torch.manual_seed(0)
    reference = torchaudio.compliance.kaldi.fbank(wave.unsqueeze(0) * 32768, num_mel_bins=80, frame_length=25,
                                                  frame_shift=10, dither=dither, energy_floor=0.0,
                                                  window_type=window, sample_frequency=16000)
    assert ours.shape == reference.shape == (1 + (samples - 400) // 160, 80)
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-3)  # log energies of 5-20: float rounding


def test_dither_only_in_training():
    wave = torch.zeros(8000)
    frontend = WavFrontend(dither=1.0)
    assert torch.equal(frontend(wave, training=False), frontend(wave, training=False))
    assert not torch.equal(frontend(wave, training=True), frontend(wave, training=True))


def test_lfr_stacks_frames_like_funasr():
    feats = torch.arange(10.0).unsqueeze(1)  # 10 frames, 1 dim
    out = apply_lfr(feats, lfr_m=7, lfr_n=6)
    assert out.shape == (2, 7)
    # Left padding of (7 - 1) // 2 = 3 copies of frame 0; the last window is padded with frame 9.
    assert out[0].tolist() == [0, 0, 0, 0, 1, 2, 3]
    assert out[1].tolist() == [3, 4, 5, 6, 7, 8, 9]
    frontend = WavFrontend(lfr_m=7, lfr_n=6)
    assert frontend(torch.randn(16000) * 0.1).shape == (frontend.num_frames(16000), 560)


def test_am_mvn_round_trip_and_funasr_format(tmp_path):
    means, stds = torch.randn(80), torch.rand(80) + 0.5
    write_am_mvn(tmp_path / "am.mvn", means, stds)
    text = (tmp_path / "am.mvn").read_text()
    assert text.startswith("<Nnet>\n<Splice> 80 80\n[ 0 ]\n<AddShift> 80 80\n<LearnRateCoef> 0 [ ")
    assert "<Rescale> 80 80\n<LearnRateCoef> 0 [ " in text and text.endswith("</Nnet>\n")
    read_means, read_stds = read_am_mvn(tmp_path / "am.mvn")
    assert torch.allclose(read_means, means, rtol=1e-6, atol=1e-6)
    assert torch.allclose(read_stds, stds, rtol=1e-6)


def test_read_am_mvn_rejects_broken_file(tmp_path):
    (tmp_path / "am.mvn").write_text("<Nnet>\n<AddShift> 2 2\n<LearnRateCoef> 0 [ 1 2 ]\n</Nnet>\n")
    with pytest.raises(ValueError, match=r"am\.mvn.*Rescale"):
        read_am_mvn(tmp_path / "am.mvn")


def test_cmvn_from_training_list_normalises_features(small_corpus, tmp_path):
    from engine.data.lists import read_jsonl

    torch.set_num_threads(1)
    entries, _ = read_jsonl(small_corpus / "train.jsonl")
    means, stds = compute_cmvn(entries[:20], WavFrontend(), progress=False)
    write_am_mvn(tmp_path / "am.mvn", means, stds)
    frontend = WavFrontend(cmvn_file=tmp_path / "am.mvn", dither=0.0)
    feats = torch.cat([frontend(load_audio(e["source"])) for e in entries[:20]])
    assert feats.mean(0).abs().max() < 1e-3
    assert (feats.std(0) - 1).abs().max() < 1e-2
