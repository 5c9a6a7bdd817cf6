"""The decode dialog offers only the modes the model supports (engine.decode.modes)."""

from __future__ import annotations

from textual.widgets import Select

from asr_tui.app import AsrTuiApp
from asr_tui.screens.decode_dialog import DecodeDialog
from engine.decode.modes import supported_modes
from tests.tui.pilot import wait_for


def options(dialog: DecodeDialog) -> list[str]:
    select = dialog.query_one("#decode-mode", Select)
    return [str(value) for _, value in select._options if value is not Select.NULL]


async def test_paraformer_dialog_lists_its_modes_and_decodes_with_the_first(tmp_path):
    test_list = tmp_path / "test.jsonl"
    test_list.write_text("{}\n")
    chosen = []
    app = AsrTuiApp(runs_root=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        modes = supported_modes("paraformer", {"model_conf": {"ctc_weight": 0.0}})
        app.push_screen(DecodeDialog(tmp_path / "model.pt", str(test_list), cwd=tmp_path, modes=modes), chosen.append)
        await pilot.pause()
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
