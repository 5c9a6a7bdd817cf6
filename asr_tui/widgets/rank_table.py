"""Per-rank table of the latest train event: loss, batch size, step times, memory.

The engine gathers one row per rank to rank 0 (DESIGN.md, `train` event, field `ranks`).
Columns follow the rows' own keys, in a familiar order first, so a field the engine adds
shows up without a console change.
"""

from __future__ import annotations

from asr_tui.widgets.row_table import RowTable

PREFERRED = ("loss", "acc", "batch_size", "data_load", "forward", "backward", "optim", "total", "memory")


def _column_order(keys: set[str]) -> list[str]:
    def rank(key: str) -> tuple[int, str]:
        for index, stem in enumerate(PREFERRED):
            if key == stem or key.startswith(stem + "_"):
                return index, key
        return len(PREFERRED), key

    return sorted(keys - {"rank"}, key=rank)


def format_value(key: str, value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if key.endswith("_s") or key in ("data_load", "forward", "backward", "optim", "total"):
            return f"{value * 1000:.0f}ms" if value < 10 else f"{value:.1f}s"
        if "mem" in key:
            return f"{value:.0f}"
        return f"{value:.4g}"
    return str(value)


def column_label(key: str) -> str:
    label = key[:-2] if key.endswith("_s") else key
    return label.replace("_", " ")


class RankTable(RowTable):
    """One row per rank; :meth:`show` replaces the rows with those of a new train event."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._columns: list[str] = []

    def show(self, ranks: list[dict]) -> None:
        rows = [row for row in ranks if isinstance(row, dict)]
        keys = _column_order(set().union(*(row.keys() for row in rows)) if rows else set())
        if keys == self._columns and self.row_count == len(rows):
            # Same shape: change cells in place, which repaints rows instead of rebuilding.
            for index, row in enumerate(rows):
                for key in keys:
                    self.update_cell(str(index), key, format_value(key, row.get(key, "")))
            return
        if keys != self._columns:
            self.clear(columns=True)
            self._columns = keys
            self.add_column("rank", key="rank")
            for key in keys:
                self.add_column(column_label(key), key=key)
        else:
            self.clear()
        for index, row in enumerate(rows):
            self.add_row(str(row.get("rank", index)),
                         *(format_value(key, row.get(key, "")) for key in keys), key=str(index))
