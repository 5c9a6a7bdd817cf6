"""A DataTable of rows, where Home and End go to the first and last row."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import DataTable


class RowTable(DataTable):
    """A row-cursor, zebra-striped DataTable whose Home/End move the cursor like a list's.

    DataTable binds Home/End to horizontal scrolling, which with a row cursor leaves the
    cursor where it was: in a list of runs or checkpoints a user expects the first and last row.
    """

    BINDINGS = [
        Binding("home", "scroll_top", "First row", show=False),
        Binding("end", "scroll_bottom", "Last row", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
