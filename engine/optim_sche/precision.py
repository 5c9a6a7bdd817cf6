"""The training forward's autocast precision: ``train_conf.use_fp16`` and ``train_conf.use_bf16``.

``use_fp16: true`` runs the forward under float16 autocast with a GradScaler. ``use_bf16``:

- ``false``: float32 (unless use_fp16).
- ``true``: bfloat16 autocast, no scaler. On a CPU without bfloat16 instructions autocast
  emulates it, which is slower than float32; a warning says so.
- ``auto`` (default): bfloat16 on the devices where ``bench/train.py``
  (``step_time_ratio_bf16_vs_fp32``) measured the step faster (:func:`auto_bf16`), float32
  elsewhere; float16 when use_fp16 is set.

Validation and decoding run the bare model in float32 whatever this says; the parameters, the
gradients and the optimiser state stay float32 (autocast casts the inputs of matrix products and
convolutions only). Torch-free, so that ``asr-train doctor`` can say what ``auto`` picks on a
machine.
"""

from __future__ import annotations

from engine.utils.cpus import cpu_flags

BF16_CHOICES = ("auto", True, False)

# CPU flags with which bf16 autocast was measured faster than float32 (docs/training.md, "Step
# speed"), 2 cores, bench/train.py --variants bf16: AMX tiles (Intel Xeon with AMX) took the
# FunASR-recipe step in 0.82x the float32 time; AVX-512 BF16 dot products without AMX (an AMD EPYC
# with avx512_bf16) in 0.48-0.53x, and the demo recipe's in 0.74x. Without either, autocast
# emulates bf16 at about 4x the float32 time (AMD EPYC, AVX2); Arm's bf16 has not been measured.
AUTO_BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})

# CUDA is left in float32 under ``auto`` until bf16 has been measured on a GPU (none was lent when
# this was decided); ``use_bf16: true`` is the switch there.
AUTO_BF16_CUDA = False


def cpu_has_native_bf16(flags: set[str] | None = None) -> bool:
    """True when the CPU advertises bfloat16 instructions (x86 avx512_bf16 / amx_bf16, Arm bf16)."""
    return bool((cpu_flags() if flags is None else flags) & NATIVE_BF16_CPU_FLAGS)


def auto_bf16(device_type: str, flags: set[str] | None = None) -> tuple[bool, str]:
    """(bf16?, why) for ``use_bf16: auto`` on this device type."""
    if device_type == "cpu":
        found = sorted((cpu_flags() if flags is None else flags) & AUTO_BF16_CPU_FLAGS)
        if found:
            return True, f"use_bf16: auto, this CPU has {', '.join(found)} (bf16 measured faster there)"
        return False, ("use_bf16: auto, float32: this CPU has neither amx_bf16 nor avx512_bf16 "
                       "(bf16 not measured faster without them)")
    if device_type == "cuda" and AUTO_BF16_CUDA:
        return True, "use_bf16: auto, bf16 measured faster on cuda"
    return False, f"use_bf16: auto, float32: bf16 not measured faster on {device_type}"


def precision(train_conf: dict, device_type: str, flags: set[str] | None = None) -> tuple[str, str]:
    """("float32" | "bfloat16" | "float16", why) for this train_conf on this device type.

    Raises ValueError, naming the key, for a bad value or use_fp16 together with use_bf16: true.
    """
    use_fp16, use_bf16 = train_conf.get("use_fp16", False), train_conf.get("use_bf16", False)
    if not isinstance(use_fp16, bool):
        raise ValueError(f"train_conf.use_fp16 must be true or false, got {use_fp16!r}")
    if use_bf16 != "auto" and not isinstance(use_bf16, bool):
        raise ValueError(f"train_conf.use_bf16 must be auto, true or false, got {use_bf16!r}")
    if use_fp16 and use_bf16 is True:
        raise ValueError("train_conf.use_bf16: use_fp16 and use_bf16 are exclusive")
    if use_fp16:
        return "float16", "use_fp16: true"
    if use_bf16 is True:
        return "bfloat16", "use_bf16: true"
    if use_bf16 is False:
        return "float32", "use_bf16: false"
    bf16, why = auto_bf16(device_type, flags)
    return ("bfloat16" if bf16 else "float32"), why
