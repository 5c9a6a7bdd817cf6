"""Setup screen: edit an experiment config and launch it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static


class SetupScreen(Screen):
    """Forms for every part of the experiment config."""

    def __init__(self, config: dict | None = None) -> None:
        super().__init__()
        self.config = dict(config or {})

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Setup")
        yield Footer()
