"""Setup's "start from a model directory": the directory's architecture locked in, its parameter
count and files shown, fine-tuning defaults in the lr preview, and the launched config loadable."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import engine.optim_sche  # noqa: F401  torch, once: the preview's worker would otherwise import it per app
from textual.widgets import Input, Static

from asr_tui.setup_fields import TABS
from asr_tui.widgets.form_model_dir import ModelDirPicker
from asr_tui.widgets.lr_preview import LrPreview
from engine.config import validate_config
from asr_tui.widgets import form_data_check
from tests.tui.test_setup_screen import SetupHarness, field, wait_for, workdir  # noqa: F401


@pytest.fixture
def stats_calls(monkeypatch):
    """``asr-data stats`` answered by a fake (whatever keywords the console passes)."""
    calls = []

    def fake_stats(paths, *args, **kwargs):
        calls.append(list(paths))
        return {"utterances": 1000, "hours": 2.0, "seconds": 7200.0, "dropped": {}, "num_dropped": 0,
                "duration_histogram": {"edges": [0, 5, 10], "counts": [600, 400]}, "problems": []}

    monkeypatch.setattr(form_data_check, "run_stats", fake_stats)
    return calls

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "funasr" / "conformer" / "model"


async def choose(pilot, screen, path: str) -> ModelDirPicker:
    await screen.open_tab("model")
    picker = screen.query_one(ModelDirPicker)
    picker.query_one(Input).value = path
    picker.query_one(Input).focus()
    await pilot.press("enter")
    await pilot.pause()
    return picker


async def test_model_dir_locks_the_architecture_and_launches_a_loadable_config(workdir):
    optim = {"main": {"type": "warmuplr", "conf": {"optim_conf": {"lr": 0.001}, "warmup_steps": 100}}}
    app = SetupHarness({"train_data_set_list": ["data/train.jsonl"], "optim_sches": optim})
    async with app.run_test(size=(120, 50)) as pilot:
        screen = app.screen
        picker = await choose(pilot, screen, str(FIXTURE))
        summary = str(picker.query_one("#model-dir-summary", Static).render())
        assert "Conformer (output_size 64, num_blocks 2, attention_heads 4)" in summary
        assert "parameters" in summary and "tokens.json (172 tokens)" in summary and "am.mvn (80-dim CMVN)" in summary
        await wait_for(pilot, lambda: screen.config["encoder_conf"].get("output_size") == 64)
        encoder = await field(screen, "encoder_conf")
        assert encoder.editor.disabled and (await field(screen, "frontend_conf.n_mels")).editor.disabled
        assert not (await field(screen, "model_conf.ctc_weight")).editor.disabled  # a training key
        assert screen.config["model"] == str(FIXTURE.resolve())
        assert screen.config["train_conf"]["ft_factor"] == 0.1  # suggested, and drawn in the preview
        await screen.open_tab("optim")
        preview = screen.query_one(LrPreview)
        await wait_for(pilot, lambda: preview.curves.get("main") and max(preview.curves["main"]) < 0.0002)
        assert abs(max(preview.curves["main"]) - 0.0001) < 1e-9
        assert screen.problems() == []
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert len(app.launched) == 1
        resolved = validate_config(app.launched[0])  # what asr-train will do with it
        assert resolved["model"] == "conformer" and resolved["model_dir"] == str(FIXTURE.resolve())
        assert resolved["encoder_conf"]["output_size"] == 64

        # Cleared: the fields unlock and the model is the engine's again.
        picker.query_one("#model-dir-clear").press()
        await wait_for(pilot, lambda: not encoder.editor.disabled)
        assert screen.config["model"] == "conformer"


async def test_broken_model_dir_names_the_missing_file(workdir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(FIXTURE, broken)
    (broken / "model.pt").unlink()
    app = SetupHarness({"train_data_set_list": ["data/train.jsonl"]})
    async with app.run_test(size=(120, 50)) as pilot:
        screen = app.screen
        picker = await choose(pilot, screen, str(broken))
        assert "no model.pt in this model directory" in str(picker.query_one("#model-dir-summary", Static).render())
        await wait_for(pilot, lambda: any("no model.pt" in p.message for p in screen.problems()))


def test_init_param_field_takes_the_key_filter(tmp_path):
    from asr_tui.widgets.form_fields import init_param_spec

    parse = init_param_spec()
    model = tmp_path / "model.pt"
    model.write_bytes(b"x")
    assert parse(f"{model}:::ctc.ctc_lo,decoder.output_layer") == f"{model}:::ctc.ctc_lo,decoder.output_layer"
    assert parse(f"{model}:encoder:encoder") == f"{model}:encoder:encoder"
    assert parse("") is None
    import pytest
    with pytest.raises(ValueError, match="no such file"):
        parse(f"{tmp_path / 'nope.pt'}:::ctc")
    with pytest.raises(ValueError, match="PATH"):
        parse(f"{model}:a:b:c:d")


async def test_a_preset_with_a_model_dir_fills_the_tabs_mounted_after_it(workdir):
    """A preset naming a model directory: the picker reads it as its (Lazy) tab mounts, the other
    tabs show its values (the suggested ft_factor) and its architecture fields, the tokenizer's
    english units included (the directory's token list decides them), are locked."""
    optim = {"main": {"type": "warmuplr", "conf": {"optim_conf": {"lr": 0.001}, "warmup_steps": 100}}}
    app = SetupHarness({"model": str(FIXTURE), "train_data_set_list": ["data/train.jsonl"], "optim_sches": optim})
    async with app.run_test(size=(120, 50)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: all(screen.tab_mounted(tab) for tab, _ in TABS))
        await wait_for(pilot, lambda: screen.config["train_conf"].get("ft_factor") == 0.1)
        ft_factor = await field(screen, "train_conf.ft_factor")
        await wait_for(pilot, lambda: ft_factor.value == 0.1)
        assert ft_factor.editor.value == "0.1"
        encoder = await field(screen, "encoder_conf")
        assert encoder.editor.disabled and "output_size: 64" in encoder.editor.value
        assert (await field(screen, "tokenizer_conf.english")).editor.disabled
        assert screen.problems() == []
