"""Every screen reaches every other from the keyboard: Esc back, F-key twins in forms, and the
command palette's navigation entries wherever you are."""

from __future__ import annotations

from textual.widgets import Input

import engine.optim_sche  # noqa: F401  torch, once: the Setup screen's preview worker would import it per app
from asr_tui.app import AsrTuiApp
from asr_tui.screens.checkpoints import CheckpointsScreen
from asr_tui.screens.monitor import MonitorScreen
from asr_tui.screens.presets import PresetsScreen
from asr_tui.screens.runs import RunsScreen
from asr_tui.screens.setup import SetupScreen
from tests.tui.pilot import wait_for
from tests.tui.runfactory import finished_run

NAVIGATION = {"Runs", "New run", "Presets", "Environment", "Back"}


def palette_titles(app) -> set[str]:
    return {command.title for command in app.get_system_commands(app.screen)}


async def test_every_screen_reaches_the_others(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = finished_run(tmp_path / "exp", name="demo")
    app = AsrTuiApp(runs_root=tmp_path / "exp", preset={"output_dir": "exp/new"}, preset_path=None)
    async with app.run_test(size=(80, 24)) as pilot:
        # Opened on the form, as scripts/demo.sh does.
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen) and app.screen.query(Input))
        setup = app.screen
        await wait_for(pilot, lambda: isinstance(app.focused, Input))
        await pilot.press("u")  # types: a letter never navigates away from a field
        assert app.screen is setup and app.focused.value.endswith("u")
        shown = {key: active.binding.description for key, active in setup.active_bindings.items()
                 if active.binding.show}
        assert shown["escape"] == "Back" and shown["f9"] == "Runs" and "u" not in shown
        await wait_for(pilot, lambda: "Open run demo" in palette_titles(app))
        assert NAVIGATION | {"Open run demo", "Checkpoints of demo"} <= palette_titles(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
        await pilot.press("f9")  # the twin of u, with the keyboard in a field
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, PresetsScreen) and app.screen.query("#save-name"))
        assert NAVIGATION <= palette_titles(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.attached)
        assert NAVIGATION | {"Open run demo"} <= palette_titles(app)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CheckpointsScreen))
        assert NAVIGATION | {"Checkpoints of demo"} <= palette_titles(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen))
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen_stack) == 1)
        await pilot.press("escape")  # the bottom of the stack: nothing to go back to
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
    assert run.run_dir.exists()
