"""FunASR's checkpoint file names inside a run directory, and parsing them back."""

from __future__ import annotations

import re
from dataclasses import dataclass

LATEST = "model.pt"  # latest full training state, what a resume loads
INDEX = "checkpoints.json"

_NAMED = re.compile(r"^model\.pt\.ep(\d+)(?:\.(\d+))?$")
_AVERAGE = re.compile(r"^model\.pt\.avg(\d+)$")


def epoch_name(epoch: int) -> str:
    return f"model.pt.ep{epoch}"


def step_name(epoch: int, step: int) -> str:
    return f"model.pt.ep{epoch}.{step}"


def average_name(count: int) -> str:
    return f"model.pt.avg{count}"


@dataclass(frozen=True)
class ParsedName:
    kind: str  # "epoch", "step" or "average"
    epoch: int | None = None
    step: int | None = None
    count: int | None = None  # how many checkpoints an average holds


def parse_name(name: str) -> ParsedName | None:
    """What a file name says about its checkpoint; None for any other file (model.pt included)."""
    match = _NAMED.match(name)
    if match:
        epoch, step = match.groups()
        if step is None:
            return ParsedName("epoch", epoch=int(epoch))
        return ParsedName("step", epoch=int(epoch), step=int(step))
    match = _AVERAGE.match(name)
    if match:
        return ParsedName("average", count=int(match.group(1)))
    return None
