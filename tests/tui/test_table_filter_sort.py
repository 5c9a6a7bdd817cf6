"""Every table filters with / and sorts with o / O; what a screen acts on is the row under the cursor."""

from textual.app import App

from asr_tui.widgets.rank_table import RankTable
from asr_tui.widgets.row_table import sort_key
from tests.tui.pilot import wait_for
from tests.tui.runfactory import finished_run, train_event
from tests.tui.test_checkpoints_screen import ResumeRecorder, open_checkpoints


def names(table, column=0):
    return [str(table.get_row_at(i)[column]) for i in range(table.row_count)]


def test_sort_key_orders_numbers_by_value_then_text():
    cells = ["12ms", "-", "3.5", "abc", "100", "⚠ data", "1e-3"]
    assert sorted(cells, key=sort_key) == ["1e-3", "3.5", "12ms", "100", "abc", "⚠ data", "-"]


async def test_sorted_and_filtered_checkpoints_act_on_the_row_under_the_cursor(tmp_path):
    run = finished_run(tmp_path)
    app = ResumeRecorder(runs_root=tmp_path)
    posted = app.posted
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_checkpoints(pilot, app, run.run_dir)
        table = screen.query_one("#ckpt-table")
        table.focus()
        listed = names(table, 1)
        await pilot.press("o", "o", "O")  # by the second column (name), descending
        await pilot.pause()
        assert names(table, 1) == sorted(listed, reverse=True)
        table.move_cursor(row=0)
        assert screen.selected().name == sorted(listed)[-1]
        await pilot.press("slash", *"ep2", "enter")
        assert names(table, 1) == ["model.pt.ep2"] and table.has_focus
        await pilot.press("r")
        await wait_for(pilot, lambda: posted)
        assert posted[0].checkpoint.name == "model.pt.ep2"


class RankApp(App):
    def compose(self):
        yield RankTable()


async def test_rank_table_keeps_its_sort_when_rows_change_in_place():
    app = RankApp()
    async with app.run_test() as pilot:
        table = app.query_one(RankTable)
        rows = train_event(10, 1, world_size=4)["ranks"]
        table.show(rows)
        table.sort_by("forward_s", reverse=True)
        rows[2]["forward_s"] = 0.9
        table.show(rows)  # same shape: cells change in place
        await pilot.pause()
        assert names(table)[0] == "2"
        rows[2]["forward_s"] = 0.01
        rows[1]["forward_s"] = 0.5
        table.show(rows)
        await pilot.pause()
        assert names(table)[0] == "1" and names(table)[-1] == "2"
