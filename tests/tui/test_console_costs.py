"""What keeps the console cheap (bench/tui.py's figures) without changing what it shows.

Screens under another one do no periodic work, the footer is rebuilt only when its keys
change, sampled event lines decode as ``json.loads`` reads them, and a chart series keeps its
newest point however it is thinned.
"""

import json
import math

from textual.widgets._footer import FooterKey

from asr_tui.app import AsrTuiApp
from asr_tui.run_state import Series
from asr_tui.runs_store import RunsStore
from asr_tui.screens import monitor as monitor_module
from asr_tui.screens.help import HelpScreen
from asr_tui.screens.monitor import MonitorScreen
from asr_tui.screens.runs import RunsScreen
from asr_tui.screens.shown import on_show
from asr_tui.tailer import parse_line
from asr_tui.widgets.chart import MetricChart
from asr_tui.widgets.footer import Footer
from tests.tui.pilot import wait_for
from tests.tui.runfactory import finished_run, live_run


def footer_keys(screen) -> list[str]:
    """The descriptions the screen's footer shows (none while the screen is being composed)."""
    return [key.description for footer in screen.query(Footer) for key in footer.query(FooterKey)]


async def test_runs_list_rests_while_another_screen_covers_it(tmp_path, monkeypatch):
    finished_run(tmp_path, name="a", steps=100)
    finished_run(tmp_path, name="b", steps=100)
    scans = []
    original = RunsStore.scan
    monkeypatch.setattr(RunsStore, "scan", lambda self: scans.append(1) or original(self))
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        runs = app.screen
        assert isinstance(runs, RunsScreen)
        await wait_for(pilot, lambda: len(runs.summaries) == 2)
        app.push_screen(MonitorScreen(tmp_path / "a"))
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.attached)
        monitor = app.screen
        # Textual counts the screen just below the top as current; on_show does not.
        assert runs.is_current and not on_show(runs) and on_show(monitor)
        await pilot.pause()
        scans.clear()
        runs.action_refresh()  # what its 2-second timer calls
        await pilot.pause(0.2)
        assert scans == []
        app.push_screen(HelpScreen(monitor, []))  # a modal dialog: the monitor still shows behind it
        await pilot.pause()
        assert on_show(monitor) and not on_show(runs)
        app.pop_screen()
        app.pop_screen()
        await wait_for(pilot, lambda: scans)  # back on show: rescanned at once
        assert on_show(runs)


async def test_monitor_under_another_screen_draws_when_back(tmp_path, monkeypatch):
    monkeypatch.setattr(monitor_module, "CHART_SECONDS", 600.0)  # no timer redraw: only the resume draws
    run, _ = live_run(tmp_path)
    run.train(100)
    app = AsrTuiApp(runs_root=tmp_path, run_dir=run.run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.attached)
        monitor = app.screen
        await pilot.press("2")
        chart = monitor.query_one("#chart-loss", MetricChart)
        await wait_for(pilot, lambda: chart._drawn_key is not None)
        drawn = chart._drawn_key
        app.push_screen(RunsScreen(tmp_path))  # as Compare or the checkpoints cover it
        await pilot.pause()
        assert not on_show(monitor)
        run.train(30)
        await wait_for(pilot, lambda: monitor.follower.state.step == 190)  # still followed
        monitor._draw_charts(tick=True)  # what its 2-second timer calls
        assert chart._drawn_key == drawn  # not drawn while covered
        app.pop_screen()
        await wait_for(pilot, lambda: chart._drawn_key != drawn, timeout=10)
    run.close()


async def test_footer_is_rebuilt_only_when_its_keys_change(tmp_path, monkeypatch):
    finished_run(tmp_path, name="a", steps=100)
    rebuilds = []
    original = Footer.recompose
    monkeypatch.setattr(Footer, "recompose", lambda self: rebuilds.append(type(self.screen).__name__)
                        or original(self))
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        runs = app.screen
        await wait_for(pilot, lambda: "Filter" in footer_keys(runs))  # the focused table's key
        assert "Mark" in footer_keys(runs) and "Quit" in footer_keys(runs)
        rebuilds.clear()
        for _ in range(3):
            runs.refresh_bindings()  # signals that change nothing shown
        await pilot.pause(0.2)
        assert rebuilds == []
        runs.set_focus(None)  # the table's keys go: the footer follows
        await wait_for(pilot, lambda: "Filter" not in footer_keys(runs))
        assert rebuilds == ["RunsScreen"]
        app.push_screen(MonitorScreen(tmp_path / "a"))
        await wait_for(pilot, lambda: "Smooth" in footer_keys(app.screen))
        assert "Mark" not in footer_keys(app.screen)
        app.pop_screen()
        await wait_for(pilot, lambda: app.screen is runs)
        await pilot.pause(0.2)
        assert "Mark" in footer_keys(runs) and "Smooth" not in footer_keys(runs)


def test_sampled_lines_decode_as_json_loads_reads_them():
    lines = [b'{"event":"train","step":3,"loss":1.25,"lr":{"main":0.001},"ranks":[{"rank":0}]}',
             b'{"event": "valid", "step": 10, "acc": 0.5, "big": 12345678901234567890}',
             b'{"event":"train","loss":NaN,"grad_norm":Infinity}',  # a foreign writer's NaN
             '{"event":"data","text":"中文 ok"}'.encode()]
    for line in lines:
        expected, got = json.loads(line), parse_line(line)
        assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert math.isnan(parse_line(lines[2])["loss"])
    for bad in (b"[1, 2]", b'{"step": 1}', b"not json", b"\xff\xfe{}"):
        assert parse_line(bad) is None


def test_series_thinning_keeps_the_newest_point_and_the_shape():
    for count in (1, 7, 8, 9, 31, 64, 65, 1000, 1001):
        series = Series(max_points=8)
        for x in range(count):
            series.add(x, 2.0 * x + 1)  # a line: averaging neighbours keeps every point on it
        xs, ys = series.points()
        assert series.total_points == count and len(xs) <= 9
        assert all(y == 2.0 * x + 1 for x, y in zip(xs, ys))
        assert xs == sorted(xs) and xs[0] < series._bucket and xs[-1] > count - 2 * series._bucket
        assert series.last == ys[-1]
        if count < 8:  # not thinned yet: every point as given
            assert xs == list(range(count))
    series = Series(max_points=8)
    for x in range(5):
        series.add(x, float("nan") if x == 2 else x)  # non-finite values are not points
    assert series.points() == ([0, 1, 3, 4], [0, 1, 3, 4]) and series.total_points == 4
