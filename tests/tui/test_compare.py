"""Compare runs: what is read of each run, and the screen reached from the runs list by keys only."""

import json
import os

from textual.widgets import DataTable, Static, TabbedContent

from asr_tui.app import AsrTuiApp
from asr_tui.compare import STEP, TIME, config_diff, load_runs
from asr_tui.presets_store import MISSING
from asr_tui.screens.compare import CompareScreen
from asr_tui.widgets.compare_chart import CompareChart
from engine.config import save_config
from tests.tui.pilot import wait_for
from tests.tui.runfactory import RunFactory, crashed_run, finished_run, live_run


def with_config(run: RunFactory, **train_conf) -> None:
    run.config["train_conf"].update(train_conf)
    save_config(run.config, run.run_dir / "config.yaml")


def decoded(run: RunFactory, name: str, cer: float) -> None:
    out = run.run_dir / "decode" / name
    out.mkdir(parents=True)
    (out / "summary.json").write_text(json.dumps({"cer": cer, "wer": cer * 2, "mode": "ctc_greedy",
                                                  "utterances": 200}))


def test_load_runs_reads_curves_best_figures_decodes_and_config(tmp_path):
    finished = finished_run(tmp_path, name="a", steps=400)
    with_config(finished, accum_grad=2)
    decoded(finished, "model.pt.avg2-ctc_greedy-test", 0.12)
    decoded(finished, "model.pt.ep4-ctc_greedy-test", 0.15)
    crashed = crashed_run(tmp_path, name="b")
    (crashed.run_dir / "config.yaml").unlink()  # a script's run may lack it: the start event's config serves
    runs = load_runs([finished.run_dir, crashed.run_dir])
    a, b = runs
    assert (a.label, a.status, b.status) == ("a", "finished", "crashed")
    assert b.config_source == "start event" and a.config_source.endswith("config.yaml")
    # runfactory: valid every 50 steps with acc = train acc - 0.03, rising; loss falling
    assert a.state.best["valid_acc"][1] == 400 and a.state.best["valid_loss"][1] == 400
    assert b.state.best["valid_acc"][1] == 100
    assert a.best_decode.name == "model.pt.avg2-ctc_greedy-test" and b.best_decode is None
    step_series, time_series = a.series("train/loss", STEP), a.series("train/loss", TIME)
    assert len(step_series) == 40 and len(time_series) == 40
    assert step_series.xs[-1] == 400 and 0 <= time_series.xs[-1] < 1  # hours since the first event
    assert a.lr_names() == ["lr/main"]
    diff = dict(config_diff([a.config, b.config]))
    assert diff["train_conf.accum_grad"] == [2, 1]
    assert "output_dir" not in diff


def test_running_runs_and_runs_started_from_a_script_compare_too(tmp_path):
    live, _ = live_run(tmp_path, name="live")
    script = RunFactory(tmp_path / "script")  # a script's run: events.jsonl and config.yaml, no run.json
    script.start()
    script.train(50)
    script.close()
    live_run_, script_run = load_runs([live.run_dir, script.run_dir])
    assert live_run_.status == "running" and live_run_.state.step == 60
    assert script_run.status == "running" and script_run.problems == []  # its log moved in the last 10 min
    assert script_run.state.best["valid_acc"][1] == 50
    live.close()


def test_config_diff_of_three_with_a_missing_key():
    rows = config_diff([{"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}}, {"a": 1, "b": {"c": 2, "d": 0}}])
    assert rows == [("b.c", [2, 3, 2]), ("b.d", [MISSING, MISSING, 0])]


def screen_rows(table: DataTable) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def test_mark_two_runs_and_compare_them_by_keys(tmp_path):
    one = finished_run(tmp_path, name="one", steps=400)
    with_config(one, accum_grad=4)
    crashed_run(tmp_path, name="two")
    live, _ = live_run(tmp_path, name="three")
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one("#runs-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        await pilot.press("v")  # nothing marked: a hint, no screen
        assert not isinstance(app.screen, CompareScreen)
        names = [str(table.get_row_at(i)[0]) for i in range(3)]
        table.move_cursor(row=names.index("one"))
        await pilot.press("space")
        table.move_cursor(row=names.index("two"))
        await pilot.press("space")
        assert [os.path.basename(k) for k in app.screen.marked] == ["one", "two"]
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loaded)
        screen = app.screen
        legend = str(screen.query_one("#compare-legend", Static).render())
        assert "one (finished)" in legend and "two (crashed)" in legend and "x: update step" in legend
        await wait_for(pilot, lambda: "no data" not in str(screen.query_one("#cmp-loss", CompareChart).drawing))
        loss_drawing = screen.query_one("#cmp-loss", CompareChart).drawing.plain
        await pilot.press("t")
        assert "hours since start" in str(screen.query_one("#compare-legend", Static).render())
        await wait_for(pilot, lambda: screen.query_one("#cmp-loss", CompareChart).drawing.plain != loss_drawing)
        await pilot.press("2")
        assert screen.query_one(TabbedContent).active == "best"
        best = screen_rows(screen.query_one("#compare-best", DataTable))
        assert [row[0] for row in best] == ["one", "two"]
        assert best[0][2] == "400" and best[1][1] == "crashed"
        await pilot.press("3")
        diff = screen_rows(screen.query_one("#compare-diff", DataTable))
        assert ["train_conf.accum_grad", "4", "1"] in diff
        await pilot.press("escape")
        assert not isinstance(app.screen, CompareScreen)
    live.close()


async def test_runs_table_filters_with_slash_and_sorts_with_o(tmp_path):
    for name in ("alpha", "beta", "gamma"):
        finished_run(tmp_path, name=name, steps=100)
    crashed_run(tmp_path, name="delta")
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one("#runs-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 4)
        table.focus()
        await pilot.press("slash", "c", "r", "a")
        assert [str(table.get_row_at(i)[0]) for i in range(table.row_count)] == ["delta"]
        await pilot.press("enter")  # keeps the filter, back in the table
        assert table.has_focus and table.row_count == 1
        await pilot.press("g")  # a refresh keeps the filter
        await pilot.pause(0.5)
        assert table.row_count == 1
        await pilot.press("slash", "escape")
        assert table.row_count == 4
        await pilot.press("o")  # sort by the first column: run name
        await pilot.pause()
        assert [str(table.get_row_at(i)[0]) for i in range(4)] == ["alpha", "beta", "delta", "gamma"]
        await pilot.press("O")
        await pilot.pause()
        assert [str(table.get_row_at(i)[0]) for i in range(4)] == ["gamma", "delta", "beta", "alpha"]
