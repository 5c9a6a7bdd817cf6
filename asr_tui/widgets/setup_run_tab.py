"""The Run tab of the setup form: what blocks launch, the torchrun command, the changes made.

It only shows what the screen hands it (:meth:`RunTab.show`); its buttons post
``Button.Pressed`` with ids ``launch``, ``copy`` and ``scripts``, which the screen answers.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Label, Static, TextArea

from asr_tui.widgets.setup_tab import SetupTab


class RunTab(SetupTab):
    """Problems, the command (selectable, read-only), launch/copy/scripts buttons, the diff."""

    def compose(self) -> ComposeResult:
        yield Static("", id="problems")
        yield Label("", id="command-title")
        yield TextArea("", id="command", read_only=True, soft_wrap=True, show_line_numbers=False)
        with Horizontal(id="run-buttons"):
            yield Button("Launch (ctrl+r)", id="launch", variant="success", compact=True)
            yield Button("Copy (ctrl+y)", id="copy", compact=True)
            yield Button("Save node scripts (ctrl+t)", id="scripts", compact=True)
        yield Static("", id="changes")

    def show(self, problems: list[str], command_title: str, command: str, changes: str) -> None:
        """Draw the tab; a text that did not change is not set again (each update lays out)."""
        self.query_one("#problems", Static).update(
            "Fix before launch:\n" + "\n".join(f"  • {p}" for p in problems[:20])
            if problems else "✓ The config is complete.")
        self.query_one("#command-title", Label).update(command_title)
        area = self.query_one("#command", TextArea)
        if area.text != command:
            area.load_text(command)
        self.query_one("#changes", Static).update(changes)
