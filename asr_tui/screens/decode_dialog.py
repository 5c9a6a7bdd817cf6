"""Decode dialog: which test list, which search mode (only those the model supports), which beam."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from engine.decode.modes import supported_modes


@dataclass
class DecodeRequest:
    checkpoint: Path
    test_list: Path
    mode: str
    beam: int


class DecodeDialog(ModalScreen[DecodeRequest | None]):
    """Asks for the test list and mode; Enter decodes, Escape cancels.

    ``modes``: what the model decodes with (engine.decode.modes.supported_modes); by default a
    CTC/attention model's four.
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Decode"),
    ]

    def __init__(self, checkpoint: Path, test_list: str = "", mode: str | None = None, beam: int = 10,
                 cwd: Path | None = None, modes: tuple[str, ...] | None = None) -> None:
        super().__init__()
        self.checkpoint = checkpoint
        self.test_list = test_list
        self.modes = tuple(modes) if modes else supported_modes("conformer")
        self.mode = mode if mode in self.modes else self.modes[0]
        self.beam = beam
        self.cwd = cwd or Path.cwd()

    def compose(self) -> ComposeResult:
        with Vertical(id="decode-box"):
            yield Static(f"Decode with {self.checkpoint.name}", id="decode-title")
            yield Label("test list (jsonl, wav.scp or audio file)")
            yield Input(self.test_list, id="decode-list", compact=True)
            yield Label("search mode")
            yield Select([(m, m) for m in self.modes], value=self.mode, allow_blank=False, id="decode-mode",
                         compact=True)
            yield Label("beam size (beam searches and rescoring)")
            yield Input(str(self.beam), id="decode-beam", type="integer", compact=True)
            yield Static(id="decode-problem")
            with Horizontal(id="decode-buttons"):
                yield Button("Decode (Enter, ctrl+s)", variant="primary", id="decode-go", compact=True)
                yield Button("Cancel (Esc)", id="decode-cancel", compact=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_submit()

    def on_select_changed(self, event: Select.Changed) -> None:
        # Enter on a Select opens it again: after a choice, the next Enter should decode. (The
        # Select takes the focus back from its closing overlay first, hence after the refresh;
        # the Changed it posts for its first value at mount is not a choice.)
        if event.value != self.mode:
            self.mode = str(event.value)
            self.call_after_refresh(self.query_one("#decode-go", Button).focus)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "decode-go":
            self.action_submit()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        problem = self.query_one("#decode-problem", Static)
        text = self.query_one("#decode-list", Input).value.strip()
        if not text:
            problem.update("[red]test list: give a path[/]")
            return
        test_list = Path(text).expanduser()
        resolved = test_list if test_list.is_absolute() else self.cwd / test_list
        if not resolved.exists():
            problem.update(f"[red]test list: {resolved} does not exist[/]")
            return
        beam_text = self.query_one("#decode-beam", Input).value.strip()
        if not beam_text.isdigit() or int(beam_text) < 1:
            problem.update("[red]beam size: a whole number ≥ 1[/]")
            return
        mode = self.query_one("#decode-mode", Select).value
        self.dismiss(DecodeRequest(self.checkpoint, resolved, str(mode), int(beam_text)))
