import torch

from engine.data.specaug import SpecAugment


def test_masks_bands_and_keeps_shape():
    torch.manual_seed(0)
    feats = torch.ones(200, 80)
    out = SpecAugment(num_freq_mask=2, freq_mask_width=20, num_time_mask=2, time_mask_width_ratio=0.1)(feats)
    assert out.shape == feats.shape
    zero_columns = (out == 0).all(dim=0).sum()
    zero_rows = (out == 0).all(dim=1).sum()
    assert 0 < zero_columns <= 40 and 0 < zero_rows <= 40


def test_time_mask_ratio_scales_with_length_and_fixed_width_does_not():
    assert SpecAugment(time_mask_width_ratio=0.05)._time_mask_width(400) == 20
    assert SpecAugment(time_mask_width=30, time_mask_width_ratio=None)._time_mask_width(400) == 30


def test_time_warp_keeps_length_and_is_off_by_default():
    feats = torch.arange(300.0).unsqueeze(1).repeat(1, 4)
    plain = SpecAugment(num_freq_mask=0, num_time_mask=0)
    assert torch.equal(plain(feats), feats)
    warped = SpecAugment(num_freq_mask=0, num_time_mask=0, time_warp_window=20)(feats)
    assert warped.shape == feats.shape
    assert (warped[1:, 0] >= warped[:-1, 0] - 1e-4).all()  # a warp moves frames, never reorders them


def test_masks_are_torchaudios_with_the_same_draws():
    """engine/data/specaug.py's slices against torchaudio's FrequencyMasking and TimeMasking, from one seed."""
    import torchaudio

    for seed, frames, conf in [(0, 37, dict(num_freq_mask=2, freq_mask_width=40, num_time_mask=2, time_mask_width_ratio=0.05)),
                               (1, 200, dict(num_freq_mask=3, freq_mask_width=27, num_time_mask=2, time_mask_width=30,
                                             time_mask_width_ratio=None)),
                               (2, 5, dict(num_freq_mask=1, freq_mask_width=80, num_time_mask=4, time_mask_width_ratio=0.5))]:
        feats = torch.randn(frames, 80) + 3.0
        augment = SpecAugment(**conf)
        torch.manual_seed(seed)
        got = augment(feats)
        torch.manual_seed(seed)
        spec = feats.t().unsqueeze(0)
        for _ in range(augment.num_freq_mask):
            spec = torchaudio.transforms.FrequencyMasking(augment.freq_mask_width)(spec)
        time_mask = torchaudio.transforms.TimeMasking(min(augment._time_mask_width(frames), frames))
        for _ in range(augment.num_time_mask):
            spec = time_mask(spec)
        assert torch.equal(got, spec.squeeze(0).t()), (seed, frames)
        assert (got == 0).any() and not (feats == 0).any(), "bands were masked, the input is left as it was"
