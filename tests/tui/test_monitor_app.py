"""Pilot tests of the app shell, the runs list and the monitor against fabricated runs."""

import html
import re

from textual.widgets import DataTable, Log, Static

from asr_tui.app import AsrTuiApp, main
from asr_tui.screens.help import HelpScreen
from asr_tui.screens.monitor import MonitorScreen
from asr_tui.screens.runs import RunsScreen
from asr_tui.widgets.chart import MetricChart
from asr_tui.widgets.rank_table import RankTable
from tests.tui.pilot import wait_for
from tests.tui.runfactory import crashed_run, finished_run, live_run


def runs_rows(app):
    table = app.screen.query_one("#runs-table", DataTable)
    return {table.get_row_at(i)[0]: str(table.get_row_at(i)[1]) for i in range(table.row_count)}


def text_of(widget: Static) -> str:
    return str(widget.render())


def screen_text(app) -> str:
    """What the terminal shows, from the SVG screenshot's text."""
    svg = app.export_screenshot()
    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


async def open_monitor(pilot, app, name):
    await wait_for(pilot, lambda: name in runs_rows(app))
    table = app.screen.query_one("#runs-table", DataTable)
    index = next(i for i in range(table.row_count) if table.get_row_at(i)[0] == name)
    table.move_cursor(row=index)
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.attached)
    return app.screen


async def test_runs_screen_lists_statuses(tmp_path):
    finished_run(tmp_path)
    crashed_run(tmp_path)
    live, _ = live_run(tmp_path)
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(runs_rows(app)) == 3)
        assert runs_rows(app) == {"finished": "finished", "crashed": "crashed", "live": "running"}
        # a new run appears on the next refresh without restarting the console
        finished_run(tmp_path, name="later", steps=100)
        await pilot.press("g")
        await wait_for(pilot, lambda: "later" in runs_rows(app))
    live.close()


async def test_home_and_end_move_the_runs_cursor(tmp_path):
    for name in ("a", "b", "c"):
        finished_run(tmp_path, name=name, steps=100)
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(runs_rows(app)) == 3)
        table = app.screen.query_one("#runs-table", DataTable)
        table.focus()
        await pilot.press("end")
        assert table.cursor_row == 2
        await pilot.press("home")
        assert table.cursor_row == 0


async def test_monitor_shows_ranks_data_and_charts(tmp_path):
    finished_run(tmp_path)
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(100, 32)) as pilot:
        monitor = await open_monitor(pilot, app, "finished")
        table = monitor.query_one(RankTable)
        assert table.row_count == 2
        assert "batch size" in [str(c.label) for c in table.columns.values()]
        status = text_of(monitor.query_one("#monitor-status", Static))
        assert "finished" in status and "400/400" in status
        data = text_of(monitor.query_one("#monitor-data", Static))
        assert "3000 utts" in data and "3 too_long" in data
        await pilot.press("2")
        chart = monitor.query_one("#chart-loss", MetricChart)
        await wait_for(pilot, lambda: "┤" in text_of(chart))
        drawn = text_of(chart)
        await pilot.press("l")  # log scale redraws at once
        await wait_for(pilot, lambda: text_of(chart) != drawn)
        assert "log" in text_of(chart)
        await pilot.press("3")
        assert monitor.query_one("#monitor-log", Log).line_count > 10
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


async def test_crashed_job_shows_error_and_console_tail(tmp_path):
    crashed_run(tmp_path)
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = await open_monitor(pilot, app, "crashed")
        panel = monitor.query_one("#monitor-error", Static)
        assert panel.display
        text = text_of(panel)
        assert "error on rank 1: CUDA out of memory" in text
        assert "tail of console.log" in text and "RuntimeError" in text


async def test_reattach_shows_whole_history_and_follows(tmp_path):
    """A run written while no console was open: a new console shows all of it, then follows."""
    run, _ = live_run(tmp_path)
    run.train(300)  # step 360
    app = AsrTuiApp(runs_root=tmp_path, run_dir=run.run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.attached)
        monitor = app.screen
        state = monitor.follower.state
        assert state.series["train/loss"].total_points == 36
        assert state.series["train/loss"].points()[0][0] == 10
        run.train(20)
        run.checkpoint(4, 0.9, 0.5)
        await wait_for(pilot, lambda: state.step == 380)
        await wait_for(pilot, lambda: "380/400" in text_of(monitor.query_one("#monitor-status", Static)))
        run.end("finished")
        await wait_for(pilot, lambda: monitor.status == "finished")
    run.close()


async def test_help_palette_and_quit(tmp_path):
    finished_run(tmp_path)
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(runs_rows(app)) == 1)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_text = screen_text(app)
        assert "Runs keys" in help_text and "Checkpoints" in help_text and "Quit" in help_text
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert {"Checkpoints", "Stop", "Refresh", "New run", "Presets", "Quit"} <= set(titles)
        assert "Open run finished" in titles
        command = next(c for c in app.get_system_commands(app.screen) if c.title == "Open run finished")
        command.callback()
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen))
        monitor_titles = [command.title for command in app.get_system_commands(app.screen)]
        assert {"Stop", "Resume", "Smooth", "Log y", "Charts", "Back"} <= set(monitor_titles)
        await pilot.press("u")  # back to the runs list from anywhere
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("q")
    assert app.return_code == 0 or app.return_code is None


def test_main_rejects_missing_run_dir(tmp_path, capsys):
    try:
        main(["--run", str(tmp_path / "nope")])
    except SystemExit as exc:
        assert exc.code == 2
    assert "no such run directory" in capsys.readouterr().err


def test_main_rejects_bad_preset_naming_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train_conf:\n  max_epoch: [1\n")
    try:
        main(["--preset", str(bad)])
    except SystemExit as exc:
        assert exc.code == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "line" in err


async def test_malformed_event_lines_are_counted_and_shown(tmp_path):
    run = finished_run(tmp_path)
    with open(run.run_dir / "events.jsonl", "a") as handle:
        handle.write("not json at all\n[1, 2]\n")
    app = AsrTuiApp(runs_root=tmp_path, run_dir=run.run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.attached)
        status = text_of(app.screen.query_one("#monitor-status", Static))
        assert "2 malformed event line(s) skipped in events.jsonl" in status
        assert "finished" in status


async def test_an_early_stopped_run_shows_why_it_ended(tmp_path):
    from tests.tui.runfactory import RunFactory, dead_pid

    run = RunFactory(tmp_path / "patient")
    run.run_json(pid=dead_pid(), status="finished")
    run.start()
    run.train(120)
    reason = "early stopping: validation acc has not improved for 3 validations (best 0.91 at step 50)"
    run.end("finished", reason)
    run.close()
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        monitor = await open_monitor(pilot, app, "patient")
        await wait_for(pilot, lambda: reason in text_of(monitor.query_one("#monitor-status", Static)))
        assert "finished" in text_of(monitor.query_one("#monitor-status", Static))


async def test_one_enter_opens_one_monitor(tmp_path):
    """Enter in the runs list is the DataTable's select (RowSelected), not also the screen's
    Enter binding: one OpenRun, one monitor. Two Enters that reach the list before the first is
    handled (a key repeat, a bounce) still open one monitor: the app opens a run's monitor only
    where it is not already on top."""
    from textual.events import Key

    from asr_tui.messages import OpenRun

    finished_run(tmp_path)
    live, _ = live_run(tmp_path)  # the list keeps refreshing underneath
    posted: set[int] = set()

    def hook(message) -> None:
        if isinstance(message, OpenRun):
            posted.add(id(message))  # a message is seen once by each pump it bubbles through

    def monitors() -> int:
        return sum(isinstance(screen, MonitorScreen) for screen in app.screen_stack)

    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(80, 24), message_hook=hook) as pilot:
        await wait_for(pilot, lambda: len(runs_rows(app)) == 2)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen))
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert len(posted) == 1 and monitors() == 1
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        posted.clear()
        app.post_message(Key("enter", "\r"))
        app.post_message(Key("enter", "\r"))
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen))
        await pilot.pause(0.3)
        await pilot.pause()
        assert len(posted) == 2 and monitors() == 1
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
    live.close()
