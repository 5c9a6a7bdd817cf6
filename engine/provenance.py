"""Where each config value came from: ``file:line`` of the YAML, or the ``++key=value`` override.

Config errors name the key and its origin (``presets/x.yaml:12: encoder_conf.output_size: ...`` or
``++encoder_conf.output_size=abc: encoder_conf.output_size: ...``), so a user sees at once whether
to fix the preset or the command line. Line numbers come from PyYAML's composed node tree (the
safe loader's marks); no torch here, the console uses it too.
"""

from __future__ import annotations

import os
import re

import yaml

# FunASR's single-optimiser keys are folded into optim_sches.<name> (engine/optim_sche/conf.py):
# an error about the folded key is traced back to the key the user wrote.
_FUNASR_ALIASES = (
    (re.compile(r"^optim_sches\.[^.]+\.conf\.optim_conf(\..*)?$"), "optim_conf"),
    (re.compile(r"^optim_sches\.[^.]+\.conf\.optim_type$"), "optim"),
    (re.compile(r"^optim_sches\.[^.]+\.type$"), "scheduler"),
    (re.compile(r"^optim_sches\.[^.]+\.conf(\..*)?$"), "scheduler_conf"),
)


def key_lines(text: str) -> dict[str, int]:
    """Dotted key -> 1-based line of every mapping key in a YAML document (empty if it does not parse)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}

    def visit(node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                dotted = f"{prefix}{key_node.value}"
                lines[dotted] = key_node.start_mark.line + 1
                visit(value_node, dotted + ".")

    visit(root, "")
    return lines


class Provenance:
    """Dotted key -> origin; the longest recorded prefix of a key is its origin."""

    def __init__(self, source: str = "<config>") -> None:
        self.source = source  # named for keys nobody set (defaults, cross-key checks)
        self._origin: dict[str, str] = {}

    def add_file(self, path: str | os.PathLike, lines: dict[str, int]) -> None:
        for key, line in lines.items():
            self._origin[key] = f"{path}:{line}"

    def add_override(self, dotted: str, text: str) -> None:
        """``++a.b=c`` sets a.b and everything under it: the file's lines below it no longer apply."""
        for key in [k for k in self._origin if k == dotted or k.startswith(dotted + ".")]:
            del self._origin[key]
        self._origin[dotted] = text

    def _match(self, key: str) -> tuple[int, str | None]:
        parts = key.split(".")
        for depth in range(len(parts), 0, -1):
            origin = self._origin.get(".".join(parts[:depth]))
            if origin is not None:
                return depth, origin
        below = sorted(k for k in self._origin if k.startswith(key + "."))  # a problem of a whole section
        return (len(parts), self._origin[below[0]]) if below else (0, None)

    def where(self, key: str) -> str:
        """``file:line``, ``++key=value`` or the config's source when the key was never set."""
        candidates = [key]
        for pattern, alias in _FUNASR_ALIASES:
            match = pattern.match(key)
            if match:
                candidates.append(alias + (match.group(1) or "") if match.groups() else alias)
        best_rank, best = (False, 0), None
        for candidate in candidates:
            depth, origin = self._match(candidate)
            # an override is applied after the file, so it wins over a file line it overlaps
            rank = (origin is not None and origin.startswith("++"), depth)
            if origin is not None and rank > best_rank:
                best_rank, best = rank, origin
        return best or self.source
