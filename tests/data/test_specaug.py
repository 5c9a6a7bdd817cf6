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
