"""Presets screen: list, load and save experiment presets."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static


class PresetsScreen(Screen):
    """Shipped and user presets."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Presets")
        yield Footer()
