"""The decode dialog offers only the modes the model supports (engine.decode.modes)."""

from __future__ import annotations

import contextlib

from textual.widgets import Select

from asr_tui.app import AsrTuiApp
from asr_tui.screens.decode_dialog import DecodeDialog
from engine.decode.modes import supported_modes
from tests.tui.pilot import wait_for


def options(dialog: DecodeDialog) -> list[str]:
    select = dialog.query_one("#decode-mode", Select)
    return [str(value) for _, value in select._options if value is not Select.NULL]


@contextlib.asynccontextmanager
async def open_dialog(tmp_path, modes=None):
    """(app, pilot, the requests the dialog answered) with the dialog open on an existing test list."""
    test_list = tmp_path / "test.jsonl"
    test_list.write_text("{}\n")
    chosen = []
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        app.push_screen(DecodeDialog(tmp_path / "model.pt", str(test_list), cwd=tmp_path, modes=modes), chosen.append)
        await pilot.pause()
        yield app, pilot, chosen


async def test_paraformer_dialog_lists_its_modes_and_decodes_with_the_first(tmp_path):
    modes = supported_modes("paraformer", {"model_conf": {"ctc_weight": 0.0}})
    async with open_dialog(tmp_path, modes) as (app, pilot, chosen):
        assert options(app.screen) == ["paraformer"]
        await pilot.press("enter")
        await wait_for(pilot, lambda: chosen)
    assert chosen[0].mode == "paraformer"


async def test_conformer_dialog_keeps_the_four_modes(tmp_path):
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        app.push_screen(DecodeDialog(tmp_path / "model.pt", "", cwd=tmp_path))
        await pilot.pause()
        assert options(app.screen) == ["ctc_greedy", "ctc_prefix_beam", "attention", "attention_rescoring"]
        with_ctc = supported_modes("paraformer", {"model_conf": {"ctc_weight": 0.3}})
        app.pop_screen()
        app.push_screen(DecodeDialog(tmp_path / "model.pt", "", cwd=tmp_path, modes=with_ctc))
        await pilot.pause()
        assert options(app.screen) == ["paraformer", "ctc_greedy", "ctc_prefix_beam"]


async def test_text_style_chosen_by_keys(tmp_path):
    """auto by default; the third choice asks asr-decode for FunASR's text (--text-style funasr)."""
    async with open_dialog(tmp_path) as (app, pilot, chosen):
        select = app.screen.query_one("#decode-text-style", Select)
        assert [str(value) for _, value in select._options] == ["auto", "engine", "funasr"]
        assert select.value == "auto"
        await pilot.press("tab", "tab", "tab", "enter", "down", "down", "enter")  # list, mode, beam, text style
        await pilot.pause()
        assert select.value == "funasr"
        await pilot.press("enter")
        await wait_for(pilot, lambda: chosen)
    assert chosen[0].text_style == "funasr" and chosen[0].mode == "ctc_greedy"
