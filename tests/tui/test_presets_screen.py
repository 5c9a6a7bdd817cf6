"""Presets screen through Pilot: list, load into the form, bad presets, save, diff."""

from __future__ import annotations

from functools import partial

import pytest
import yaml
from textual.app import App
from textual.widgets import DataTable, Input, OptionList

import engine.optim_sche  # noqa: F401  torch, once: the Setup screen's preview worker would import it per app
from asr_tui import presets_store
from asr_tui.messages import PresetLoaded
from asr_tui.screens.presets import PresetsScreen
from asr_tui.screens.setup import SetupScreen
from tests.tui.pilot import settle
from tests.tui.pilot import wait_for as pilot_wait_for

SIZE = (80, 24)
# The form answers within a few message turns: fail fast rather than at the shared 60 s.
wait_for = partial(pilot_wait_for, timeout=20.0)


class PresetsHarness(App):
    """Setup with Presets above it, acting on PresetLoaded as the real app does."""

    def __init__(self, config: dict | None = None) -> None:
        super().__init__()
        self.config = config
        self.loaded: list[PresetLoaded] = []

    def on_mount(self) -> None:
        self.push_screen(SetupScreen(self.config))

    def action_presets(self) -> None:
        self.push_screen(PresetsScreen())

    def on_preset_loaded(self, message: PresetLoaded) -> None:
        self.loaded.append(message)
        while isinstance(self.screen, (PresetsScreen, SetupScreen)):
            self.pop_screen()
        self.push_screen(SetupScreen(message.config, preset_path=message.path))


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """Shipped presets in one folder, the user's (XDG) in another; a train list to point at."""
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    monkeypatch.setattr(presets_store, "shipped_presets_dirs", lambda: [shipped])
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.jsonl").write_text("")
    (shipped / "small.yaml").write_text(
        "output_dir: exp/small\ntrain_data_set_list: [train.jsonl]\ntrain_conf: {max_epoch: 3}\n")
    (shipped / "unknown-key.yaml").write_text("train_conf: {max_epochs: 3}\n")
    (shipped / "broken.yaml").write_text("train_conf: {max_epoch: 3\n")
    return {"shipped": shipped, "user": tmp_path / "xdg" / "asr-tui" / "presets"}


async def open_presets(app, pilot) -> PresetsScreen:
    await pilot.press("ctrl+o")
    # Pushed is not mounted yet (the form below may still be mounting its lazy tabs).
    await wait_for(pilot, lambda: isinstance(app.screen, PresetsScreen) and app.screen.is_mounted)
    return app.screen


def highlight(screen: PresetsScreen, name: str) -> None:
    option_list = screen.query_one("#preset-list", OptionList)
    option_list.highlighted = [p.name for p in screen.presets].index(name)
    option_list.focus()


async def test_load_a_preset_into_the_form(dirs):
    app = PresetsHarness()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_presets(app, pilot)
        assert [p.name for p in screen.presets] == ["broken", "small", "unknown-key"]
        highlight(screen, "small")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
        assert app.loaded[0].path == dirs["shipped"] / "small.yaml"
        setup = app.screen
        assert setup.config["train_conf"]["max_epoch"] == 3
        assert (await setup.show_field("train_conf.max_epoch")).editor.value == "3"
        assert (await setup.show_field("output_dir")).editor.value == "exp/small"
        assert setup.preset_path.name == "small.yaml"


async def test_opens_on_the_preset_the_form_was_loaded_from(dirs):
    app = PresetsHarness()
    async with app.run_test(size=SIZE) as pilot:
        app.pop_screen()
        app.push_screen(SetupScreen({"train_conf": {"max_epoch": 3}}, preset_path="shipped/small.yaml"))
        screen = await open_presets(app, pilot)
        assert screen.highlighted_preset().name == "small"  # a relative path names it too


@pytest.mark.parametrize("name, needle", [("unknown-key", "train_conf.max_epochs: unknown key"),
                                          ("broken", "line 2")])
async def test_bad_preset_is_an_error_not_a_crash(dirs, name, needle):
    app = PresetsHarness()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_presets(app, pilot)
        path = dirs["shipped"] / f"{name}.yaml"
        assert needle in screen.errors[path] and str(path) in screen.errors[path]
        option = screen.query_one("#preset-list", OptionList).get_option(str(path))
        assert "invalid" in str(option.prompt)
        highlight(screen, name)
        await pilot.pause()
        assert needle in screen.query_one("#preset-yaml").text
        await pilot.press("enter")
        await settle(pilot)  # idle first: "not loaded" must not pass for being early
        assert app.screen is screen and app.loaded == []
        assert any(needle in str(n.message) for n in app._notifications)


async def test_save_the_form_and_see_its_changes(dirs):
    app = PresetsHarness({"train_data_set_list": ["train.jsonl"]})
    async with app.run_test(size=SIZE) as pilot:
        setup = app.screen
        max_epoch = await setup.show_field("train_conf.max_epoch")
        max_epoch.focus_editor()
        max_epoch.editor.value = "7"
        await wait_for(pilot, lambda: setup.config["train_conf"]["max_epoch"] == 7)
        screen = await open_presets(app, pilot)
        table = screen.query_one("#diff", DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert ["train_conf.max_epoch", "50", "7"] in [list(map(str, row)) for row in rows]
        assert "Form vs the defaults: " in str(screen.query_one("#diff-title").render())

        name = screen.query_one("#save-name", Input)
        name.focus()
        await pilot.press(*"mine", "enter")
        saved = dirs["user"] / "mine.yaml"
        await wait_for(pilot, saved.exists)
        assert yaml.safe_load(saved.read_text()) == setup.current_config()
        assert "mine" in [p.name for p in screen.presets]
        assert screen.query_one("#diff", DataTable).row_count == 0  # the form now matches its preset
        assert "Form vs mine.yaml: 0 change(s)" in str(screen.query_one("#diff-title").render())

        # Saving over an existing preset takes a second, deliberate press.
        setup.config["train_conf"]["max_epoch"] = 9
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert yaml.safe_load(saved.read_text())["train_conf"]["max_epoch"] == 7
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: yaml.safe_load(saved.read_text())["train_conf"]["max_epoch"] == 9)


async def test_loading_over_unsaved_changes_takes_a_second_enter(dirs):
    app = PresetsHarness({"train_data_set_list": ["train.jsonl"]})
    async with app.run_test(size=SIZE) as pilot:
        setup = app.screen
        seed = await setup.show_field("seed")
        seed.focus_editor()
        seed.editor.value = "42"
        await wait_for(pilot, lambda: setup.config["seed"] == 42)
        screen = await open_presets(app, pilot)
        highlight(screen, "small")
        await pilot.press("enter")
        await settle(pilot)  # idle first: "not loaded" must not pass for being early
        assert app.loaded == [] and app.screen is screen
        assert any("1 unsaved change" in str(n.message) for n in app._notifications)
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(app.loaded) == 1)


async def test_unsafe_preset_name_is_refused(dirs):
    app = PresetsHarness({"train_data_set_list": ["train.jsonl"]})
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_presets(app, pilot)
        screen.query_one("#save-name", Input).value = "../escape"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not (dirs["user"].parent / "escape.yaml").exists()
        assert any("preset name" in str(n.message) for n in app._notifications)
