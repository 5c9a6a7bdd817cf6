"""Help screen (`?`): the keys of the screen it was opened from, and the app's own keys."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

INTRO = (
    "asr-tui: set up, launch and watch ASR training runs, average and decode checkpoints. "
    "Ctrl+P opens the command palette, which finds every action by name. Jobs run detached: "
    "quitting the console or losing SSH leaves them running; open the console again to follow."
)


def keys_table(title: str, bindings: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key, description in bindings:
        table.add_row(key, description)
    return table


def screen_keys(screen: Screen) -> list[tuple[str, str]]:
    """(key, description) of the bindings a screen declares, as the footer names them."""
    seen, rows = set(), []
    for binding in getattr(screen, "BINDINGS", []):
        if not isinstance(binding, Binding):
            binding = Binding(*binding)
        if binding.description and binding.action not in seen:
            seen.add(binding.action)
            rows.append((binding.key_display or binding.key, binding.description))
    return rows


class HelpScreen(ModalScreen):
    """Modal list of keys; any of Escape, q or ? closes it."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("q", "dismiss", "Close", show=False),
        Binding("question_mark", "dismiss", "Close", show=False),
    ]

    def __init__(self, for_screen: Screen, app_keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.for_screen = for_screen
        self.app_keys = app_keys

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Static(Text(INTRO), id="help-intro")
            name = type(self.for_screen).__name__.removesuffix("Screen") or "Screen"
            keys = screen_keys(self.for_screen)
            if keys:
                yield Static(keys_table(f"{name} keys", keys))
            yield Static(keys_table("Everywhere", self.app_keys))
