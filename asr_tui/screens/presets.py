"""Presets screen: shipped and user presets; load one into the form, save the form as one.

The left list holds ``presets/`` (shipped) and ``$XDG_CONFIG_HOME/asr-tui/presets`` (user);
each is validated as it is listed, so a bad file shows its error (file and key) instead of
failing later. Enter loads the highlighted preset (posting :class:`PresetLoaded` for the app);
the table shows, key by key, how the setup form differs from the preset it was loaded from.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, OptionList, TextArea
from textual.widgets.option_list import Option

from asr_tui.messages import PresetLoaded
from asr_tui.screens.navigation import FORM_NAVIGATION
from asr_tui.presets_store import (
    Preset, PresetError, config_diff, list_presets, load_preset, preset_path_for, save_preset,
    short_value, user_presets_dir,
)
from asr_tui.widgets.row_table import RowTable
from engine.config import ConfigError, validate_config


class PresetsScreen(Screen):
    """Browse, load and save presets; see what the form changed."""

    CSS_PATH = "presets.tcss"
    BINDINGS = [
        *FORM_NAVIGATION,
        Binding("ctrl+s", "save", "Save form"),
        Binding("f5", "refresh", "Refresh"),
    ]

    def __init__(self, user_dir: Path | None = None) -> None:
        super().__init__()
        self.user_dir = user_dir
        self.presets: list[Preset] = []
        self.errors: dict[Path, str] = {}
        self._overwrite_armed: Path | None = None
        self._load_armed: Path | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="presets-body"):
            with Vertical(id="presets-left"):
                yield Label("Presets (Enter loads)", classes="pane-title")
                yield OptionList(id="preset-list")
            with Vertical(id="presets-right"):
                yield Label("", id="preset-title", classes="pane-title")
                yield TextArea("", id="preset-yaml", read_only=True, show_line_numbers=False)
                yield Label("", id="diff-title", classes="pane-title")
                yield RowTable(id="diff")
        with Horizontal(id="save-row"):
            yield Label("Save form as", id="save-label")
            yield Input(placeholder="name", id="save-name", compact=True)
            yield Button("Save (ctrl+s)", id="save", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#diff", DataTable).add_columns("key", "preset", "form")
        setup = self.setup_screen()
        self.action_refresh(select=setup.preset_path if setup is not None else None)  # the form's own
        self.query_one("#preset-list", OptionList).focus()

    def on_screen_resume(self) -> None:
        self.show_diff()

    # ---- the setup form this screen works with -----------------------------------------------

    def setup_screen(self):
        """The open Setup screen (the form to save and to compare), if any."""
        from asr_tui.screens.setup import SetupScreen

        for screen in reversed(self.app.screen_stack):
            if isinstance(screen, SetupScreen):
                return screen
        return None

    # ---- listing ------------------------------------------------------------------------------

    def action_refresh(self, select: Path | None = None) -> None:
        self.presets = list_presets(self.user_dir)
        self.errors = {}
        option_list = self.query_one("#preset-list", OptionList)
        option_list.clear_options()
        for preset in self.presets:
            try:
                load_preset(preset.path)
            except PresetError as exc:
                self.errors[preset.path] = str(exc)
            label = Text(preset.name)
            label.append(f"  {preset.source}", style="dim")
            if preset.path in self.errors:
                label.append("  ✗ invalid", style="bold red")
            option_list.add_option(Option(label, id=str(preset.path)))
        if not self.presets:
            self.query_one("#preset-title", Label).update(
                f"No presets yet: save the form to {self.user_dir or user_presets_dir()}")
        paths = [p.path.resolve() for p in self.presets]
        if paths:
            target = select.resolve() if select is not None else None
            option_list.highlighted = paths.index(target) if target in paths else 0
        self.show_diff()

    def highlighted_preset(self) -> Preset | None:
        index = self.query_one("#preset-list", OptionList).highlighted
        return self.presets[index] if index is not None and 0 <= index < len(self.presets) else None

    @on(OptionList.OptionHighlighted, "#preset-list")
    def _highlighted(self) -> None:
        preset = self.highlighted_preset()
        if preset is None:
            return
        self.query_one("#preset-title", Label).update(f"{preset.name} · {preset.path}")
        error = self.errors.get(preset.path)
        try:
            text = preset.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            text = ""
            error = error or f"{preset.path}: cannot read ({exc})"
        area = self.query_one("#preset-yaml", TextArea)
        area.load_text((f"# ✗ {error}\n\n" if error else "") + text)
        area.set_class(error is not None, "-invalid")

    # ---- loading ------------------------------------------------------------------------------

    @on(OptionList.OptionSelected, "#preset-list")
    def _selected(self) -> None:
        self.action_load()

    def action_load(self) -> None:
        preset = self.highlighted_preset()
        if preset is None:
            return
        try:
            config = load_preset(preset.path)
        except PresetError as exc:
            self.errors[preset.path] = str(exc)
            self._highlighted()
            self.notify(str(exc), title="bad preset", severity="error", timeout=10)
            return
        setup = self.setup_screen()
        unsaved = config_diff(setup.baseline, setup.current_config()) if setup is not None else []
        if unsaved and self._load_armed != preset.path:
            self._load_armed = preset.path
            self.notify(f"The form has {len(unsaved)} unsaved change(s) (listed below): Enter again to "
                        f"replace them with {preset.name}, or save the form first.", severity="warning", timeout=8)
            return
        self._load_armed = None
        self.post_message(PresetLoaded(config, preset.path))

    # ---- the diff -----------------------------------------------------------------------------

    def show_diff(self) -> None:
        table = self.query_one("#diff", DataTable)
        title = self.query_one("#diff-title", Label)
        table.clear()
        setup = self.setup_screen()
        if setup is None:
            title.update("No setup form open (n opens one): nothing to compare")
            return
        source = setup.preset_path.name if setup.preset_path else "the defaults"
        rows = config_diff(setup.baseline, setup.current_config())
        title.update(f"Form vs {source}: {len(rows)} change(s)")
        for key, old, new in rows:
            table.add_row(key, short_value(old), short_value(new))

    # ---- saving -------------------------------------------------------------------------------

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    @on(Input.Submitted, "#save-name")
    def _save_submitted(self) -> None:
        self.action_save()

    def action_save(self) -> None:
        name_input = self.query_one("#save-name", Input)
        setup = self.setup_screen()
        if setup is None:
            self.notify("No setup form open: nothing to save (n opens one).", severity="warning")
            return
        if not name_input.value.strip():
            name_input.focus()
            self.notify("Type a name for the preset, then Enter.")
            return
        try:
            path = preset_path_for(name_input.value.strip(), self.user_dir)
        except PresetError as exc:
            self.notify(str(exc), severity="error")
            return
        config = setup.current_config()
        try:
            # A preset may leave the training lists to be filled in later (as load_preset allows).
            validate_config({**config, "train_data_set_list": config.get("train_data_set_list") or ["-"]},
                            "setup form")
        except ConfigError as exc:
            self.notify(f"Not saved: {exc}", severity="error", timeout=10)
            return
        if path.exists() and self._overwrite_armed != path:
            self._overwrite_armed = path
            self.notify(f"{path} exists: save again to overwrite it.", severity="warning")
            return
        self._overwrite_armed = None
        try:
            save_preset(config, path)
        except OSError as exc:
            self.notify(f"Not saved: {path}: {exc.strerror or exc}", severity="error", timeout=10)
            return
        setup.set_baseline(config, path)
        self.notify(f"Saved {path}")
        self.action_refresh(select=path)

