"""The filter line a RowTable opens under itself with ``/``."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Input


class TableFilter(Input):
    """The filter line under a RowTable: typing filters, Enter keeps it, Esc clears it."""

    BINDINGS = [Binding("escape", "clear_filter", "Clear filter", show=False)]

    DEFAULT_CSS = """
    TableFilter { height: 1; border: none; padding: 0 1; background: $boost; }
    """

    def __init__(self, table) -> None:
        super().__init__(placeholder="filter rows (Enter keeps it, Esc clears it)")
        self.table = table

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.table.set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value:
            self.remove()
        self.table.focus()

    def action_clear_filter(self) -> None:
        self.table.set_filter("")
        self.table.focus()
        self.remove()
