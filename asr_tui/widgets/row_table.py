"""A DataTable of rows: Home/End go to the first and last row, ``/`` filters, ``o`` sorts.

Every table of the console (runs, checkpoints, worst utterances, ranks, compare) is one. The
screens fill it as a plain DataTable (``clear`` then ``add_row``, or ``update_cell``); the table
remembers every row it was given and shows those matching the filter, in the chosen order, so
a refresh of the screen keeps the user's filter and sort.
"""

from __future__ import annotations

import re

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")


def plain(cell) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def sort_key(cell) -> tuple:
    """Numbers (the first one in the cell: "812ms", "45.0% 12/100") before text, each in order."""
    text = plain(cell).strip()
    match = _NUMBER.match(text.lstrip("⚠ "))
    if match:
        return (0, float(match.group()), text.lower())
    return (1 if text not in ("", "-") else 2, 0.0, text.lower())


class RowTable(DataTable):
    """A row-cursor, zebra-striped DataTable whose Home/End move the cursor like a list's.

    DataTable binds Home/End to horizontal scrolling, which with a row cursor leaves the
    cursor where it was: in a list of runs or checkpoints a user expects the first and last row.
    ``/`` filters the rows (case-insensitive, any cell), ``o`` sorts by the next column (numbers
    by value), ``O`` reverses the order.
    """

    BINDINGS = [
        Binding("home", "scroll_top", "First row", show=False),
        Binding("end", "scroll_bottom", "Last row", show=False),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("o", "sort_next", "Sort", show=False),  # the footer is full at 80 columns: help lists it
        Binding("O", "sort_reverse", "Reverse sort", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._given: dict[str, list] = {}  # every row the screen added, by key, in its order
        self._given_labels: dict[str, object] = {}
        self._labels: dict[str, Text] = {}  # column labels as given, before the sort mark
        self.filter_text = ""
        self.sort_column: str | None = None
        self.sort_reverse = False
        self._resort_due = False

    # What the screens call: record every row, show those that match.

    def add_row(self, *cells, height: int | None = 1, key: str | None = None, label=None):
        if key is None:
            key = f"row-{len(self._given)}"
        self._given[key] = list(cells)
        if label is not None:
            self._given_labels[key] = label
        if self._matches(cells):
            row_key = super().add_row(*cells, height=height, key=key, label=label)
            self._schedule_sort()
            return row_key
        return None

    def clear(self, columns: bool = False):
        self._given.clear()
        self._given_labels.clear()
        if columns:
            self._labels.clear()
        return super().clear(columns=columns)

    def update_cell(self, row_key, column_key, value, *, update_width: bool = False) -> None:
        key = row_key.value if hasattr(row_key, "value") else row_key
        column = column_key.value if hasattr(column_key, "value") else column_key
        cells = self._given.get(key)
        if cells is not None:
            index = self._column_index(column)
            if index is not None and index < len(cells):
                cells[index] = value
        if key in self.rows:
            super().update_cell(row_key, column_key, value, update_width=update_width)
            if column == self.sort_column:
                self._schedule_sort()

    @property
    def given_count(self) -> int:
        """Rows the screen gave, shown or filtered out."""
        return len(self._given)

    def _column_index(self, column: str) -> int | None:
        for index, key in enumerate(self.columns):
            if key.value == column:
                return index
        return None

    def _matches(self, cells) -> bool:
        if not self.filter_text:
            return True
        needle = self.filter_text.lower()
        return any(needle in plain(cell).lower() for cell in cells)

    # Filter and sort.

    def set_filter(self, text: str) -> None:
        """Show only the rows with ``text`` in some cell (case-insensitive)."""
        self.filter_text = text
        self._rebuild()

    def sort_by(self, column: str | None, reverse: bool = False) -> None:
        """Order the rows by ``column`` (None: as the screen listed them)."""
        self.sort_column, self.sort_reverse = column, reverse
        self._rebuild()

    def _rebuild(self) -> None:
        """The matching rows in the screen's order, then sorted; the cursor stays on its row."""
        selected = self._cursor_key()
        super().clear()
        for key, cells in self._given.items():
            if self._matches(cells):
                super().add_row(*cells, key=key, label=self._given_labels.get(key))
        self._sort_now()
        if selected in self.rows:
            self.move_cursor(row=self.get_row_index(selected), animate=False)

    def action_filter(self) -> None:
        from asr_tui.widgets.table_filter import TableFilter  # Input is not needed at start

        for found in self.screen.query(TableFilter):
            if found.table is self:
                found.focus()
                return
        line = TableFilter(self)
        line.value = self.filter_text
        self.parent.mount(line, after=self)
        line.focus()

    def action_sort_next(self) -> None:
        keys = [key.value for key in self.columns]
        if not keys:
            return
        if self.sort_column not in keys:
            column = keys[0]
        else:
            index = keys.index(self.sort_column) + 1
            column = keys[index] if index < len(keys) else None
        self.sort_by(column)
        self.notify(f"sorted by {self._column_label(column)}" if column else "rows as listed", timeout=2)

    def action_sort_reverse(self) -> None:
        if self.sort_column is None:
            self.action_sort_next()
        else:
            self.sort_by(self.sort_column, not self.sort_reverse)

    def _column_label(self, key: str | None) -> str:
        for column_key, column in self.columns.items():
            if column_key.value == key:
                return plain(self._labels.get(key, column.label))
        return str(key)

    def _schedule_sort(self) -> None:
        if self.sort_column is not None and not self._resort_due:
            self._resort_due = True
            self.call_later(self._sort_now)

    def _sort_now(self) -> None:
        self._resort_due = False
        if self.sort_column is not None and self._column_index(self.sort_column) is None:
            self.sort_column = None  # the screen rebuilt its columns without it
        for column_key, column in self.columns.items():  # the sorted column's label shows the order
            original = self._labels.setdefault(column_key.value, column.label.copy())
            column.label = original.copy()
            if column_key.value == self.sort_column:
                column.label.append(" ▼" if self.sort_reverse else " ▲")
        if self.sort_column is not None and self.rows:
            selected = self._cursor_key()
            super().sort(self.sort_column, key=sort_key, reverse=self.sort_reverse)
            if selected in self.rows:
                self.move_cursor(row=self.get_row_index(selected), animate=False)
        self.refresh()

    def _cursor_key(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - the cursor is outside the rows while the table is rebuilt
            return None
