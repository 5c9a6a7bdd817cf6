"""use_bf16: auto|true|false and use_fp16 resolved to the training forward's autocast dtype."""

import pytest

from engine.config import ConfigError, validate_config
from engine.optim_sche.precision import auto_bf16, precision

AMX = {"fpu", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
AVX512_BF16 = {"fpu", "avx512f", "avx512_bf16"}
AVX2 = {"fpu", "avx2", "fma"}


@pytest.mark.parametrize(("conf", "flags", "device", "dtype"), [
    ({"use_bf16": "auto"}, AMX, "cpu", "bfloat16"),
    ({"use_bf16": "auto"}, AVX512_BF16, "cpu", "bfloat16"),  # measured faster on an AMD EPYC
    ({"use_bf16": "auto"}, {"fp", "asimd", "bf16"}, "cpu", "float32"),  # Arm's bf16: not measured
    ({"use_bf16": "auto"}, AVX2, "cpu", "float32"),
    ({"use_bf16": "auto"}, AMX, "cuda", "float32"),  # not measured on a GPU
    ({"use_bf16": "auto", "use_fp16": True}, AMX, "cpu", "float16"),
    ({"use_bf16": True}, AVX2, "cpu", "bfloat16"),
    ({"use_bf16": False}, AMX, "cpu", "float32"),
    ({}, AMX, "cpu", "float32"),  # TrainStep's own default: the config's "auto" comes from engine.config
])
def test_precision_follows_the_setting_and_the_device(conf, flags, device, dtype):
    name, why = precision(conf, device, flags)
    assert name == dtype
    assert why.startswith("use_")


def test_auto_says_why():
    assert auto_bf16("cpu", AMX) == (True, "use_bf16: auto, this CPU has amx_bf16, avx512_bf16 "
                                           "(bf16 measured faster there)")
    assert auto_bf16("cpu", AVX512_BF16)[1] == "use_bf16: auto, this CPU has avx512_bf16 (bf16 measured faster there)"
    assert "neither amx_bf16 nor avx512_bf16" in auto_bf16("cpu", AVX2)[1]


@pytest.mark.parametrize(("conf", "message"), [
    ({"use_bf16": "yes"}, "train_conf.use_bf16 must be auto, true or false, got 'yes'"),
    ({"use_bf16": 1}, "train_conf.use_bf16 must be auto, true or false, got 1"),
    ({"use_fp16": "auto"}, "train_conf.use_fp16 must be true or false, got 'auto'"),
    ({"use_bf16": True, "use_fp16": True}, "train_conf.use_bf16: use_fp16 and use_bf16 are exclusive"),
])
def test_bad_precision_settings_name_the_key(conf, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        precision(conf, "cpu", AMX)


def test_the_config_check_refuses_what_precision_refuses():
    with pytest.raises(ConfigError, match=r"train_conf\.use_bf16: must be one of auto, true, false, got 'yes'"):
        validate_config({"train_conf": {"use_bf16": "yes"}})
