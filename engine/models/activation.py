"""Activation names used in WeNet/ESPnet configs, mapped to torch.nn modules."""

from __future__ import annotations

from torch import nn

ACTIVATIONS = {
    "swish": nn.SiLU,
    "silu": nn.SiLU,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
}


def get_activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"activation_type {name!r} is not one of {', '.join(sorted(ACTIVATIONS))}"
        ) from None
