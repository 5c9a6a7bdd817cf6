"""The monitor's health line and Resources tab, and the runs list's health marker."""

import os
import re
import time

from textual.widgets import DataTable, TabbedContent

from asr_tui.app import AsrTuiApp
from asr_tui.screens.monitor import MonitorScreen
from asr_tui.widgets.chart import MetricChart
from asr_tui.widgets.health_line import HealthLine
from tests.tui.pilot import wait_for
from tests.tui.runfactory import RunFactory, train_event


def sick_run(root, name="sick", world=4, silent_for=0.0):
    """A live run (this test's pid) whose rank 2 waits for data and whose ranks report resources."""
    run = RunFactory(root / name, world_size=world)
    run.run_json(pid=os.getpid(), pgid=os.getpgid(0))
    run.start()
    first = time.time() - silent_for - 20 * 2.0
    for index in range(20):
        event = train_event(10 * (index + 1), 1, world)
        for row in event["ranks"]:
            row.update(rss_mb=1500.0 + row["rank"] * 10, cpu_percent=90.0 + row["rank"])
        event["ranks"][2]["data_load_s"] = 0.15
        run.events.write("train", **event, time=first + 2.0 * index)
    return run


async def test_health_line_names_rank_and_figure_and_resources_tab_draws_ranks(tmp_path):
    run = sick_run(tmp_path)
    app = AsrTuiApp(runs_root=tmp_path, run_dir=run.run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.attached)
        line = app.screen.query_one(HealthLine)
        await wait_for(pilot, lambda: line.findings)
        assert [f.kind for f in line.findings] == ["data_loading"]
        assert "data loading 43% of step time on rank 2" in str(line.render())
        await pilot.press("4")
        assert app.screen.query_one(TabbedContent).active == "resources"
        rss = app.screen.query_one("#res-rss", MetricChart)
        # every rank a series, named in the title or, on a tall enough chart, in a legend
        await wait_for(pilot, lambda: all(f"r{rank}" in rss.drawing.plain for rank in range(4)))
        gpu = app.screen.query_one("#res-gpuutil", MetricChart)
        assert not gpu.display  # a CPU run has no GPU figures: the CPU charts take the tab
    run.close()


async def test_a_stalled_job_shows_in_the_monitor_and_the_runs_list(tmp_path):
    run = sick_run(tmp_path, name="stuck", silent_for=120.0)
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one("#runs-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 1)
        await wait_for(pilot, lambda: str(table.get_row_at(0)[2]).startswith("⚠ stall"))
        assert "+1" in str(table.get_row_at(0)[2])  # and the data loading
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.attached)
        line = app.screen.query_one(HealthLine)
        await wait_for(pilot, lambda: line.findings)
        assert line.findings[0].kind == "stalled"
        assert re.search(r"no train event for 1\d\d\.\d s \(all ranks\), \d+x the median interval 2\.0 s",
                         line.findings[0].message), line.findings[0].message
    run.close()
