"""``train_conf.init_param`` entries ``PATH[:SRC[:DST[:EXCLUDE,...]]]`` (ESPnet's form), parsed without torch.

Used by the loader (engine.trainer.init_param), the pre-flight path check and the model-directory
config expansion, so all three read an entry the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class InitSpec:
    path: str
    src: str = ""
    dst: str = ""
    exclude: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "InitSpec":
        parts = str(text).strip().split(":")
        if len(parts) > 4:
            raise ValueError(f"train_conf.init_param: {text!r}: expected PATH[:SRC[:DST[:EXCLUDE,...]]]")
        parts += [""] * (4 - len(parts))
        exclude = tuple(p.strip() for p in parts[3].split(",") if p.strip())
        return cls(parts[0], parts[1].strip().strip("."), parts[2].strip().strip("."), exclude)

    def describe(self) -> str:
        text = self.path
        if self.src or self.dst or self.exclude:
            text += f":{self.src}:{self.dst}" + (f":{','.join(self.exclude)}" if self.exclude else "")
        return text


def init_specs(paths) -> list[InitSpec]:
    """``train_conf.init_param`` (a string, comma-separated paths, or a list) -> entries."""
    if isinstance(paths, (str, os.PathLike)):
        text = str(paths)
        # "a.pt,b.pt" lists files; in "a.pt:::x,y" the commas separate the excluded prefixes.
        entries = [text] if ":" in text else [p for p in text.split(",") if p.strip()]
    else:
        entries = [str(p) for p in paths]
    return [InitSpec.parse(entry) for entry in entries]
