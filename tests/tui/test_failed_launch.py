"""A launch that dies before its first event (an import error, say) shows as crashed, with the
line of console.log that names the error, in the runs list and in the monitor."""

import sys

from textual.widgets import Static

from asr_tui.app import AsrTuiApp
from asr_tui.launcher import Launcher
from asr_tui.messages import LaunchRequested
from asr_tui.screens.monitor import MonitorScreen
from engine.config import DEFAULTS, deep_merge
from tests.tui.pilot import wait_for

ERROR = ("/venv/lib/python3.11/site-packages/torchaudio/lib/libtorchaudio.so: "
         "undefined symbol: torch_exception_get_what_without_backtrace")


def broken_python(tmp_path):
    """An interpreter that fails as a bad install does: a traceback ending in an ImportError, exit 1."""
    program = tmp_path / "broken_import.py"
    program.write_text(f"import sys\nprint('Traceback (most recent call last):', file=sys.stderr)\n"
                       f"raise ImportError({ERROR!r})\n")
    script = tmp_path / "broken-python"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} {program}\n")
    script.chmod(0o755)
    return str(script)


async def test_a_launch_that_dies_before_its_first_event_shows_crashed_with_the_error(tmp_path):
    root = tmp_path / "exp"
    config = deep_merge(DEFAULTS, {"output_dir": str(root / "broken"), "train_data_set_list": ["train.jsonl"]})
    app = AsrTuiApp(runs_root=root, launcher=Launcher(cwd=tmp_path, python=broken_python(tmp_path)))
    async with app.run_test(size=(100, 30)) as pilot:
        app.post_message(LaunchRequested(config))
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen))
        monitor = app.screen
        await wait_for(pilot, lambda: monitor.status == "crashed")
        error = monitor.query_one("#monitor-error", Static)
        await wait_for(pilot, lambda: "undefined symbol" in str(error.render()))
        assert error.display
        assert "ImportError" in str(error.render())

        app.action_runs()
        runs = app.screen
        await wait_for(pilot, lambda: str(root / "broken") in runs.summaries)
        summary = runs.summaries[str(root / "broken")]
        assert summary.status == "crashed"
        assert "ImportError" in summary.reason and "undefined symbol" in summary.reason
