"""Checkpoints screen: listing, n-best marks, averaging, decoding and resume, with stand-in tools."""

import sys
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from asr_tui.app import AsrTuiApp
from asr_tui.checkpoint_list import list_checkpoints, nbest
from asr_tui.messages import ResumeRequested
from asr_tui.screens import checkpoints as checkpoints_module
from asr_tui.screens.checkpoints import CheckpointsScreen
from asr_tui.screens.confirm import ConfirmScreen
from asr_tui.screens.decode_dialog import DecodeDialog
from tests.tui.runfactory import RunFactory, finished_run
from tests.tui.pilot import wait_for
from tests.tui.test_monitor_app import screen_text, text_of
from tests.tui.test_decode_dialog_modes import open_dialog

FAKE_TOOLS = Path(__file__).with_name("fake_tools.py")


@pytest.fixture
def fake_tools(monkeypatch):
    monkeypatch.setattr(checkpoints_module, "tool_argv",
                        lambda name, *args: [sys.executable, str(FAKE_TOOLS), name, *args])


def test_console_nbest_is_what_the_engine_averages(tmp_path):
    """The console marks the checkpoints the engine's CheckpointManager.best picks: ties newest
    first, and checkpoints saved without the metric (no validation) after the scored ones."""
    from engine.checkpoint import CheckpointManager
    from tests.checkpoint.conftest import training_state

    manager = CheckpointManager(tmp_path, keep_nbest_models=10, avg_nbest_model=5, metric="acc")
    for epoch, metrics in enumerate([{"acc": 0.5}, {"acc": 0.7}, None, {"acc": 0.7}, None, {"acc": 0.6}], 1):
        manager.save(training_state(epoch), epoch=epoch, metrics=metrics)
    found, problems = list_checkpoints(tmp_path)
    assert problems == []
    for count in range(1, 7):
        engine_names = [Path(e["path"]).name for e in manager.best(count)]
        assert [c.name for c in nbest(found, count, "acc")] == engine_names
    assert [c.name for c in nbest(found, 5, "acc")] == [
        "model.pt.ep4", "model.pt.ep2", "model.pt.ep6", "model.pt.ep1", "model.pt.ep5"]


def test_list_merges_index_events_and_files(tmp_path):
    run = finished_run(tmp_path)
    (run.run_dir / "model.pt.avg2").write_bytes(b"avg")
    (run.run_dir / "model.pt.ep1.50").write_bytes(b"step ckpt without metadata")
    (run.run_dir / "model.pt.ep2").unlink()  # deleted by keep-n-best: not listed
    (run.run_dir / ".model.pt.ep9.x.tmp").write_bytes(b"partial")
    found, problems = list_checkpoints(run.run_dir)
    names = [c.name for c in found]
    assert names == ["model.pt.ep1.50", "model.pt.ep1", "model.pt.ep3", "model.pt.ep4", "model.pt",
                     "model.pt.avg2"]
    step_ckpt = found[0]
    assert (step_ckpt.epoch, step_ckpt.step, step_ckpt.acc) == (1, 50, None)
    assert found[1].acc is not None and found[1].step == 100
    latest = found[4]
    assert latest.kind == "latest"  # a copy, not a link: it holds the newest save's state
    assert (latest.epoch, latest.step, latest.acc) == (4, 400, found[3].acc)
    assert [c.name for c in nbest(found, 2, "acc")] == ["model.pt.ep4", "model.pt.ep3"]
    assert [c.name for c in nbest(found, 1, "loss")] == ["model.pt.ep4"]
    assert problems == []
    (run.run_dir / "model.pt").unlink()
    (run.run_dir / "model.pt").hardlink_to(run.run_dir / "model.pt.ep4")
    latest = next(c for c in list_checkpoints(run.run_dir)[0] if c.kind == "latest")
    assert (latest.epoch, latest.step) == (4, 400)
    (run.run_dir / "checkpoints.json").write_text("{broken")
    assert "checkpoints.json" in list_checkpoints(run.run_dir)[1][0]


def test_latest_state_is_the_newest_save_even_after_a_stop(tmp_path):
    """A stop writes model.pt in place (a `latest` checkpoint event); later named saves
    replace it. Without a hard link to go by (a copied run directory), the newest save says
    what model.pt holds, not the stale event that named model.pt."""
    run = RunFactory(tmp_path / "stopped")
    run.start()
    run.train(200)
    run.checkpoint(epoch=2, acc=0.5, loss=1.0)
    run.train(50)
    run.events.write("checkpoint", path="model.pt", epoch=3, step=250, metric="acc", metrics={},
                     kept=[], deleted=[], kind="latest")
    latest = next(c for c in list_checkpoints(run.run_dir)[0] if c.kind == "latest")
    assert (latest.epoch, latest.step, latest.acc) == (3, 250, None)
    run.checkpoint(epoch=4, acc=0.9, loss=0.4)
    latest = next(c for c in list_checkpoints(run.run_dir)[0] if c.kind == "latest")
    assert (latest.epoch, latest.acc, latest.loss) == (4, 0.9, 0.4)
    run.close()


class ResumeRecorder(AsrTuiApp):
    """The app, recording ResumeRequested instead of launching the resume."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.posted: list[ResumeRequested] = []

    def on_resume_requested(self, message: ResumeRequested) -> None:
        message.prevent_default()  # AsrTuiApp's own handler would launch a real resume
        self.posted.append(message)


async def open_checkpoints(pilot, app, run_dir):
    app.push_screen(CheckpointsScreen(run_dir))
    await wait_for(pilot, lambda: isinstance(app.screen, CheckpointsScreen) and app.screen.checkpoints)
    return app.screen


async def test_average_marked_and_decode_by_keys(tmp_path, fake_tools):
    run = finished_run(tmp_path)
    test_list = tmp_path / "test.jsonl"
    test_list.write_text("{}\n")
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_checkpoints(pilot, app, run.run_dir)
        assert screen.marked == {"model.pt.ep4", "model.pt.ep3"}  # avg_nbest_model 2 by acc
        table = screen.query_one("#ckpt-table", DataTable)
        table.move_cursor(row=1)  # model.pt.ep2
        await pilot.press("space")
        assert screen.marked == {"model.pt.ep2", "model.pt.ep3", "model.pt.ep4"}
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: not screen.busy and (run.run_dir / "model.pt.avg3").exists())
        await wait_for(pilot, lambda: "model.pt.avg3" in [c.name for c in screen.checkpoints])
        assert "done" in text_of(screen.query_one("#ckpt-job", Static))
        assert screen.selected().name == "model.pt.avg3"  # ready to be decoded

        table.move_cursor(row=0)
        await pilot.press("d")
        assert isinstance(app.screen, DecodeDialog)
        dialog = app.screen
        dialog.query_one("#decode-list").value = str(test_list)
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.result is not None)
        summary = text_of(screen.query_one("#decode-summary", Static))
        assert "CER 14.81%" in summary and "WER 40.00%" in summary and "3 utts" in summary
        worst = screen.query_one("#worst-table", DataTable)
        assert [worst.get_row_at(i)[0] for i in range(worst.row_count)][:2] == ["utt3", "utt2"]  # most errors first, then highest rate
        await wait_for(pilot, lambda: "good mourning" in screen_text(app))  # drawn on screen
        detail = text_of(screen.query_one("#worst-detail", Static))
        assert "ref speech" in detail and "hyp peach" in detail


async def test_decode_dialog_mode_chosen_by_keys_then_enter_decodes(tmp_path):
    test_list = tmp_path / "test.jsonl"
    async with open_dialog(tmp_path) as (_, pilot, chosen):
        await pilot.press("tab", "enter", "down", "down", "down", "enter")  # open the modes, pick the last
        await pilot.pause()
        await pilot.press("enter")
        await wait_for(pilot, lambda: chosen)
    assert chosen[0].mode == "attention_rescoring" and chosen[0].test_list == test_list


async def test_decode_dialog_rejects_missing_list(tmp_path, fake_tools):
    run = finished_run(tmp_path)
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_checkpoints(pilot, app, run.run_dir)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, DecodeDialog))
        dialog = app.screen
        await wait_for(pilot, lambda: dialog.query_one("#decode-list").has_focus)  # Enter goes to the list
        dialog.query_one("#decode-list").value = str(tmp_path / "missing.jsonl")
        await pilot.press("enter")
        assert app.screen is dialog
        await wait_for(pilot, lambda: "does not exist" in text_of(dialog.query_one("#decode-problem", Static)))
        await pilot.press("escape")
        assert isinstance(app.screen, CheckpointsScreen)


async def test_failed_average_shows_its_error(tmp_path, fake_tools):
    run = finished_run(tmp_path)
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_checkpoints(pilot, app, run.run_dir)
        (run.run_dir / "model.pt.ep4").unlink()  # vanishes after listing
        await pilot.press("a", "y")
        await wait_for(pilot, lambda: not screen.busy and "failed" in text_of(screen.query_one("#ckpt-job")))
        assert "missing checkpoints" in text_of(screen.query_one("#ckpt-job", Static))


async def test_resume_key_posts_resume_for_selected(tmp_path):
    run = finished_run(tmp_path)
    app = ResumeRecorder(runs_root=tmp_path)
    posted = app.posted
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_checkpoints(pilot, app, run.run_dir)
        screen.query_one("#ckpt-table", DataTable).move_cursor(row=2)
        await pilot.press("r")
        await wait_for(pilot, lambda: posted)
        assert posted[0].checkpoint.name == "model.pt.ep3" and posted[0].run_dir == run.run_dir


async def test_export_model_dir_of_the_selected_checkpoint(tmp_path, fake_tools):
    run = finished_run(tmp_path)
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_checkpoints(pilot, app, run.run_dir)
        table = screen.query_one("#ckpt-table", DataTable)
        table.move_cursor(row=1)
        name = screen.selected().name
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        out = run.run_dir / "export" / name
        await wait_for(pilot, lambda: not screen.busy and (out / "configuration.json").exists())
        assert sorted(p.name for p in out.iterdir()) == ["am.mvn", "config.yaml", "configuration.json",
                                                         "model.pt", "tokens.json"]
        assert (out / "model.pt").read_text() == f"model.pt of {name}\n"
        assert "done" in text_of(screen.query_one("#ckpt-job", Static))


async def test_results_that_arrive_after_the_screen_closed_are_dropped(tmp_path):
    """The listing and the tools run in threads and hand their results to the UI thread: if
    the screen was closed meanwhile (the user left, the app is closing), its widgets are gone
    and the results are dropped (a NoMatches here closed the app)."""
    run = finished_run(tmp_path)
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_checkpoints(pilot, app, run.run_dir)
        listing = list(screen.checkpoints)
        app.pop_screen()
        await wait_for(pilot, lambda: not screen.is_attached)
        screen._show(listing, [])  # as the listing worker's call_from_thread would
        screen._tool_progress("export · 1s")
        screen._tool_done("export", 0, [], None)
        await pilot.pause()
        assert app.is_running
