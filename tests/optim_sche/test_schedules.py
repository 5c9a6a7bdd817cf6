"""Each schedule's formula at chosen steps, and lr_curve's length and values."""

import math

import pytest

from engine.optim_sche import OptimConfError, lr_curve
from engine.optim_sche.build import build_one


def schedule(sche_type, lr=1e-3, **conf):
    return build_one("main", {"type": sche_type, "conf": {"optim_conf": {"lr": lr}, **conf}}, None, None)


def test_warmuplr_peaks_at_warmup_then_decays_as_inverse_sqrt():
    s = schedule("warmuplr", lr=2e-3, warmup_steps=100)
    assert s.lr_at(1) == pytest.approx(2e-3 / 100)
    assert s.lr_at(50) == pytest.approx(2e-3 * 50 / 100)
    assert s.lr_at(100) == pytest.approx(2e-3)
    assert s.lr_at(400) == pytest.approx(2e-3 * (100 / 400) ** 0.5)


def test_noam_without_d_model_equals_warmuplr_and_with_d_model_uses_width():
    plain = schedule("noam", lr=1e-3, warmup_steps=25)
    warm = schedule("warmuplr", lr=1e-3, warmup_steps=25)
    assert [plain.lr_at(s) for s in (1, 25, 90)] == pytest.approx([warm.lr_at(s) for s in (1, 25, 90)])
    paper = schedule("noam", lr=5.0, warmup_steps=4000, d_model=256)
    assert paper.lr_at(4000) == pytest.approx(5.0 * 256**-0.5 * 4000**-0.5)
    assert paper.lr_at(16000) == pytest.approx(5.0 * 256**-0.5 * 16000**-0.5)


def test_tri_stage_phases_from_ratio_and_from_steps():
    s = schedule("tri_stage", lr=1e-3, phase_ratio=[0.1, 0.4, 0.5], max_update=1000,
                 init_lr_scale=0.01, final_lr_scale=0.05)
    assert (s.warmup_steps, s.hold_steps, s.decay_steps) == (100, 400, 500)
    assert s.lr_at(1) == pytest.approx(1e-5)                          # init_lr_scale * peak
    assert s.lr_at(51) == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5)   # half way up the warmup
    assert s.lr_at(101) == pytest.approx(1e-3)                        # hold
    assert s.lr_at(500) == pytest.approx(1e-3)
    assert s.lr_at(751) == pytest.approx(1e-3 * math.exp(math.log(0.05) * 250 / 500))
    assert s.lr_at(1001) == pytest.approx(5e-5)                       # final
    assert s.lr_at(5000) == pytest.approx(5e-5)
    explicit = schedule("tri_stage", lr=1e-3, warmup_steps=100, hold_steps=400, decay_steps=500,
                        init_lr_scale=0.01, final_lr_scale=0.05)
    assert [explicit.lr_at(n) for n in (1, 51, 300, 751, 2000)] == [s.lr_at(n) for n in (1, 51, 300, 751, 2000)]


def test_cosine_with_warmup():
    s = schedule("cosine", lr=1e-3, warmup_steps=10, max_update=110, min_lr=1e-5)
    assert s.lr_at(5) == pytest.approx(5e-4)
    assert s.lr_at(10) == pytest.approx(1e-3)
    assert s.lr_at(60) == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5)
    assert s.lr_at(110) == pytest.approx(1e-5)
    assert s.lr_at(500) == pytest.approx(1e-5)


def test_constant_and_exponential():
    assert schedule("constant", lr=3e-4).lr_at(1) == 3e-4
    warm = schedule("constant", lr=3e-4, warmup_steps=4)
    assert [warm.lr_at(s) for s in (1, 2, 4, 99)] == pytest.approx([7.5e-5, 1.5e-4, 3e-4, 3e-4])
    exp = schedule("exponential", lr=1e-3, gamma=0.5, decay_steps=10, min_lr=1e-4)
    assert exp.lr_at(1) == pytest.approx(1e-3)
    assert exp.lr_at(11) == pytest.approx(5e-4)
    assert exp.lr_at(21) == pytest.approx(2.5e-4)
    assert exp.lr_at(1000) == pytest.approx(1e-4)
    warm_exp = schedule("exponential", lr=1e-3, gamma=0.9, warmup_steps=5)
    assert [warm_exp.lr_at(s) for s in (1, 5, 6)] == pytest.approx([2e-4, 1e-3, 9e-4])


def test_ft_factor_scales_every_schedule():
    for sche_type, extra in [("warmuplr", {"warmup_steps": 10}), ("tri_stage", {"phase_ratio": [0.2, 0.3, 0.5], "max_update": 50}),
                             ("cosine", {"max_update": 50, "warmup_steps": 5})]:
        plain = schedule(sche_type, **extra)
        tuned = schedule(sche_type, ft_factor=0.1, **extra)
        assert [tuned.lr_at(s) for s in (1, 7, 30)] == pytest.approx([0.1 * plain.lr_at(s) for s in (1, 7, 30)])


def test_lr_curve_counts_real_updates():
    conf = {
        "enc": {"type": "warmuplr", "conf": {"optim_conf": {"lr": 1e-3}, "warmup_steps": 4, "step_per_update": 2}},
        "dec": {"type": "tri_stage", "conf": {"optim_conf": {"lr": 1e-3}, "phase_ratio": [0.25, 0.25, 0.5], "max_update": 8}},
    }
    curves = lr_curve(conf, total_steps=35, accum_grad=4)
    assert len(curves["dec"]) == 35 // 4 == 8
    assert len(curves["enc"]) == 35 // 4 // 2 == 4
    enc = schedule("warmuplr", warmup_steps=4)
    assert curves["enc"] == [enc.lr_at(s) for s in (2, 4, 6, 8)]
    # tri_stage counts real updates: with accum_grad=4 its 8 updates span the whole decay
    assert curves["dec"][-1] == pytest.approx(1e-3 * 0.01 ** (3 / 4))
    assert lr_curve(conf, 35, 4, ft_factor=0.5)["dec"] == pytest.approx([0.5 * v for v in curves["dec"]])


@pytest.mark.parametrize(
    "sche_type, conf, key",
    [
        ("warmuplr", {"warmup_step": 10}, "optim_sches.main.conf.warmup_step"),
        ("warmuplr", {"warmup_steps": 0}, "optim_sches.main.conf.warmup_steps"),
        ("tri_stage", {"phase_ratio": [0.1, 0.4, 0.4], "max_update": 10}, "optim_sches.main.conf.phase_ratio"),
        ("tri_stage", {"phase_ratio": [0.1, 0.4, 0.5]}, "optim_sches.main.conf.max_update"),
        ("cosine", {}, "optim_sches.main.conf.max_update"),
        ("exponential", {"gamma": 1.5}, "optim_sches.main.conf.gamma"),
        ("warmuplr", {"optim_conf": {}}, "optim_sches.main.conf.optim_conf.lr"),
        ("warmuplr", {"optim_type": "Adamm"}, "optim_sches.main.conf.optim_type"),
        ("warmuplr", {"step_per_update": 0}, "optim_sches.main.conf.step_per_update"),
        ("warmuplr", {"warmup_from": "middle"}, "optim_sches.main.conf.warmup_from"),
        ("warmuplr", {"use_fp16": True}, "optim_sches.main.conf.use_fp16"),
        ("nosuch", {}, "optim_sches.main.type"),
    ],
)
def test_bad_config_names_the_key(sche_type, conf, key):
    entry = {"type": sche_type, "conf": {"optim_conf": {"lr": 1e-3}, **conf}}
    with pytest.raises(OptimConfError) as info:
        lr_curve({"main": entry}, 10)
    assert str(info.value).startswith(key)


USER_SCHEDULE = '''
from engine.optim_sche.abs import OptimScheduler
from engine.optim_sche.checks import int_at_least


class LinearDecayLr(OptimScheduler):
    """lr(s) = lr * max(0, 1 - s / total_steps)."""

    def sche_init(self, total_steps: int = 100):
        self.total_steps = int_at_least(self.conf_key("total_steps"), total_steps, 1)

    def update_lr(self, real_step):
        return self.base_lr * max(0.0, 1 - real_step / self.total_steps)


class NotOne:
    pass
'''


def test_user_subclass_by_file_module_and_speechain_query(tmp_path, monkeypatch):
    (tmp_path / "my_sche.py").write_text(USER_SCHEDULE)
    by_file = lr_curve({"main": {"type": f"{tmp_path}/my_sche.py:LinearDecayLr",
                                 "conf": {"optim_conf": {"lr": 1.0}, "total_steps": 4}}}, 4)
    assert by_file["main"] == pytest.approx([0.75, 0.5, 0.25, 0.0])
    monkeypatch.syspath_prepend(str(tmp_path))
    by_module = lr_curve({"main": {"type": "my_sche.LinearDecayLr", "conf": {"optim_conf": {"lr": 1.0}, "total_steps": 4}}}, 4)
    assert by_module == by_file
    speechain = lr_curve({"main": {"type": "noam.NoamLr", "conf": {"optim_conf": {"lr": 1.0}, "warmup_steps": 2}}}, 3)
    assert speechain["main"] == pytest.approx([0.5, 1.0, (2 / 3) ** 0.5])
    with pytest.raises(OptimConfError, match="does not name an OptimScheduler subclass"):
        lr_curve({"main": {"type": f"{tmp_path}/my_sche.py:NotOne", "conf": {"optim_conf": {"lr": 1.0}}}}, 4)
    with pytest.raises(OptimConfError, match="no such file"):
        lr_curve({"main": {"type": f"{tmp_path}/missing.py:X", "conf": {"optim_conf": {"lr": 1.0}}}}, 4)
    with pytest.raises(OptimConfError, match="total_step: unknown key for LinearDecayLr"):
        lr_curve({"main": {"type": f"{tmp_path}/my_sche.py:LinearDecayLr", "conf": {"optim_conf": {"lr": 1.0}, "total_step": 4}}}, 4)
