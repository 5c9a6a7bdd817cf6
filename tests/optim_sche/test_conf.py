"""FunASR's single-optimiser form read as one OptimScheduler; conf.py stays torch-free."""

import subprocess
import sys

import pytest

from engine.optim_sche.conf import OptimConfError, entry_kwargs, normalise_optim_conf


def test_funasr_single_form_becomes_main():
    config = {"optim": "adam", "optim_conf": {"lr": 0.0002, "weight_decay": 1e-6},
              "scheduler": "warmuplr", "scheduler_conf": {"warmup_steps": 30000}, "model": "conformer"}
    result = normalise_optim_conf(config)
    assert result == {"model": "conformer", "optim_sches": {"main": {"type": "warmuplr", "conf": {
        "optim_type": "Adam", "optim_conf": {"lr": 0.0002, "weight_decay": 1e-6}, "warmup_steps": 30000}}}}
    assert "optim" in config  # the caller's dict is untouched


def test_funasr_keys_override_a_single_entry_and_map_names():
    preset = {"optim_sches": {"mine": {"type": "warmuplr", "conf": {"optim_type": "AdamW", "optim_conf": {"lr": 1e-3, "eps": 1e-8},
                                                                  "updated_modules": "decoder", "warmup_steps": 100}}}}
    lr_only = normalise_optim_conf({**preset, "optim_conf": {"lr": 0.0002}})
    assert lr_only["optim_sches"]["mine"]["conf"]["optim_conf"] == {"lr": 0.0002, "eps": 1e-8}
    assert lr_only["optim_sches"]["mine"]["conf"]["warmup_steps"] == 100
    noam = normalise_optim_conf({**preset, "scheduler": "noamlr", "scheduler_conf": {"model_size": 256, "warmup_steps": 8}})
    entry = noam["optim_sches"]["mine"]
    assert entry["type"] == "noam"
    assert entry["conf"] == {"optim_type": "AdamW", "optim_conf": {"lr": 1e-3, "eps": 1e-8},
                             "updated_modules": "decoder", "d_model": 256, "warmup_steps": 8}
    cosine = normalise_optim_conf({"scheduler": "CosineAnnealingLR", "scheduler_conf": {"T_max": 90, "eta_min": 1e-6}})
    assert cosine["optim_sches"]["main"] == {"type": "cosine", "conf": {"max_update": 90, "min_lr": 1e-6}}


def test_ambiguous_and_unsupported_forms_are_errors():
    two = {"optim_sches": {"a": {"type": "constant"}, "b": {"type": "constant"}}, "optim_conf": {"lr": 1.0}}
    with pytest.raises(OptimConfError, match="optim_conf: FunASR's single-optimiser keys are ambiguous with 2 optim_sches"):
        normalise_optim_conf(two)
    with pytest.raises(OptimConfError, match="scheduler: 'cycliclr' is not supported"):
        normalise_optim_conf({"scheduler": "cycliclr"})


def test_entry_kwargs_take_train_conf_defaults_and_entry_overrides():
    entry = {"type": "warmuplr", "conf": {"optim_conf": {"lr": 1.0}, "grad_clip": 5}}
    sche_type, kwargs = entry_kwargs("main", entry, {"accum_grad": 4, "grad_clip": 10, "ft_factor": 0.1, "max_epoch": 9})
    assert sche_type == "warmuplr"
    assert kwargs == {"optim_conf": {"lr": 1.0}, "accum_grad": 4, "grad_clip": 5, "ft_factor": 0.1}
    assert "grad_clip" not in entry_kwargs("main", {"type": "constant", "conf": {}}, {"grad_clip": None})[1]
    with pytest.raises(OptimConfError, match=r"optim_sches.main.extra: unknown key"):
        entry_kwargs("main", {"type": "constant", "extra": 1}, {})


def test_conf_module_and_package_import_without_torch():
    code = ("import sys; import engine.optim_sche; from engine.optim_sche.conf import normalise_optim_conf; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
