"""The Environment screen shows the doctor's report, reached from the command palette."""

from asr_tui.app import AsrTuiApp
from asr_tui.screens.environment import EnvironmentScreen
from tests.tui.pilot import wait_for
from tests.tui.test_monitor_app import screen_text


async def test_environment_screen_from_the_palette_shows_the_doctor_report(tmp_path):
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(100, 60)) as pilot:
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert "Environment" in titles
        await pilot.press("ctrl+p")
        await pilot.press(*"Environment")
        await wait_for(pilot, lambda: "Environment" in screen_text(app))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, EnvironmentScreen))
        screen = app.screen
        await wait_for(pilot, lambda: screen.report is not None or screen.error, timeout=180)
        assert screen.error == ""
        assert screen.report["install_check"]["ok"] is True
        text = screen_text(app)
        for shown in ("install_check", "usable_cores", "gloo", "espeak-ng", "free_gib", "Environment"):
            assert shown in text, shown
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, EnvironmentScreen))
