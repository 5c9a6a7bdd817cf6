"""Setup screen through Textual's Pilot: checks as typed, launch, OptimSchedulers, command, scripts."""

from __future__ import annotations

from functools import partial

import shlex
import socket
import stat
import sys

import pytest
from textual import events
from textual.app import App

import engine.optim_sche  # noqa: F401  torch, once: the preview's worker would otherwise import it per app
from textual.widgets import Button, Input, Select, TextArea

from asr_tui.app import AsrTuiApp
from asr_tui.messages import LaunchRequested, NodeScriptsRequested
from asr_tui.screens.setup import SetupScreen
from asr_tui.step_estimate import estimate_steps
from engine.config_rules import cross_field_issues
from asr_tui.widgets import form_data_check
from asr_tui.widgets.form_data_check import DurationHistogram
from asr_tui.widgets.form_fields import FormField
from asr_tui.widgets.lr_preview import LrChart, LrPreview
from engine.config import DEFAULTS, check_config, deep_merge
from tests.tui.pilot import settle
from tests.tui.pilot import wait_for as pilot_wait_for

SIZE = (80, 24)
# The form answers within a few message turns: fail fast rather than at the shared 60 s.
wait_for = partial(pilot_wait_for, timeout=20.0)


class SetupHarness(App):
    """Just the Setup screen, recording what it asks the app to do."""

    def __init__(self, config: dict | None = None) -> None:
        super().__init__()
        self.config = config
        self.launched: list[dict] = []

    def on_mount(self) -> None:
        self.push_screen(SetupScreen(self.config))

    def on_launch_requested(self, message: LaunchRequested) -> None:
        self.launched.append(message.config)

    def on_node_scripts_requested(self, message: NodeScriptsRequested) -> None:
        AsrTuiApp.on_node_scripts_requested(self, message)  # the screen asks, the app writes


@pytest.fixture
def stats_calls(monkeypatch):
    """``asr-data stats|check`` answered by a fake (the real CLI is tested by the data engine); the
    paths of each call, and in ``calls.audio`` whether it read the audio headers (``check``)."""

    class Calls(list):
        audio: list
        tokenizer_conf: list

    calls = Calls()
    calls.audio = []
    calls.tokenizer_conf = []

    def fake_stats(paths, should_stop=lambda: False, audio=False, tokenizer_conf=None, **_vocab):  # vocab_from
        calls.append(list(paths))
        calls.audio.append(audio)
        calls.tokenizer_conf.append(tokenizer_conf)
        return {"utterances": 1000, "hours": 2.0, "seconds": 7200.0, "dropped": {"too_long": 3},
                "num_dropped": 3, "duration_histogram": {"edges": [0, 5, 10], "counts": [600, 400]},
                "problems": [{"reason": "too_long", "path": paths[0], "line": 7, "key": "u7", "detail": ""}]}

    monkeypatch.setattr(form_data_check, "run_stats", fake_stats)
    return calls


@pytest.fixture
def workdir(tmp_path, monkeypatch, stats_calls):
    """A working directory holding a train and a valid list."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for name in ("train", "valid"):
        (tmp_path / "data" / f"{name}.jsonl").write_text('{"key": "a", "source": "a.wav", "target": "x"}\n')
    return tmp_path


async def field(screen: SetupScreen, key: str) -> FormField:
    """The field of ``key``, its tab shown (tabs are mounted when first shown)."""
    found = await screen.show_field(key)
    assert found is not None, key
    return found


async def type_into(pilot, form_field: FormField, text: str) -> None:
    """Focus the field, clear it and type ``text`` key by key, as a user would."""
    editor = form_field.editor
    assert isinstance(editor, Input)
    form_field.focus_editor()
    editor.value = ""
    await pilot.pause()
    await pilot.press(*list(text))
    await pilot.pause()


async def test_bad_value_shows_error_beside_field_and_blocks_launch(workdir):
    app = SetupHarness({"train_data_set_list": ["data/train.jsonl"]})
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        batch_size = await field(screen, "dataset_conf.batch_size")
        await type_into(pilot, batch_size, "12x")
        assert batch_size.error == "batch_size: must be a positive integer"
        assert "batch_size: must be a positive integer" in str(batch_size.query_one(".form-error").render())
        assert screen.config["dataset_conf"]["batch_size"] == 12  # the last value that parsed stays
        await pilot.press("ctrl+r")
        await settle(pilot)  # idle first: "not launched" must not pass for being early
        assert app.launched == []
        assert screen.query_one("#setup-tabs").active == "batching"  # launch went to the problem
        await type_into(pilot, batch_size, "0")
        assert batch_size.error == "batch_size: must be a positive integer"
        await type_into(pilot, batch_size, "16")
        assert batch_size.error is None
        assert screen.config["dataset_conf"]["batch_size"] == 16


async def test_config_level_errors_land_on_their_fields(workdir):
    app = SetupHarness()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.pause()
        assert "at least one training list" in (await field(screen, "train_data_set_list")).error
        await type_into(pilot, await field(screen, "train_data_set_list"), "data/nope.jsonl")
        train_lists = await field(screen, "train_data_set_list")
        assert train_lists.error == "train_data_set_list: no such file: data/nope.jsonl"
        await type_into(pilot, await field(screen, "distributed.node_rank"), "2")
        assert "below nnodes" in (await field(screen, "distributed.node_rank")).error
        await type_into(pilot, await field(screen, "distributed.devices"), "0")
        await type_into(pilot, await field(screen, "distributed.nproc_per_node"), "2")
        assert "lists 1 GPU(s) for nproc_per_node 2" in (await field(screen, "distributed.devices")).error
        # The engine keeps max(keep_nbest_models, avg_nbest_model): averaging more than are kept is valid.
        await type_into(pilot, await field(screen, "train_conf.avg_nbest_model"), "30")
        assert (await field(screen, "train_conf.avg_nbest_model")).error is None
        await pilot.press("ctrl+r")
        await settle(pilot)  # idle first: "not launched" must not pass for being early
        assert app.launched == []


async def test_launch_carries_the_edited_config(workdir):
    app = SetupHarness()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await type_into(pilot, await field(screen, "train_data_set_list"), "data/train.jsonl")
        await type_into(pilot, await field(screen, "valid_data_set_list"), "data/valid.jsonl")
        await type_into(pilot, await field(screen, "output_dir"), "exp/mine")
        await type_into(pilot, await field(screen, "train_conf.max_epoch"), "7")
        await type_into(pilot, await field(screen, "distributed.devices"), "0, 1")
        (await field(screen, "train_conf.use_bf16")).editor.value = True
        (await field(screen, "dataset_conf.batch_type")).editor.value = "example"
        await pilot.pause()
        assert screen.problems() == []
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert len(app.launched) == 1
        config = app.launched[0]
        assert config["train_data_set_list"] == ["data/train.jsonl"]
        assert config["valid_data_set_list"] == ["data/valid.jsonl"]
        assert config["output_dir"] == "exp/mine"
        assert config["train_conf"]["max_epoch"] == 7
        assert config["train_conf"]["use_bf16"] is True
        assert config["dataset_conf"]["batch_type"] == "example"
        assert config["distributed"]["devices"] == "0,1"
        assert config["optim_sches"] == DEFAULTS["optim_sches"]


async def test_function_keys_show_a_tab_and_take_the_keyboard_there(workdir):
    app = SetupHarness({"train_data_set_list": ["data/train.jsonl"]})
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("f7")
        await wait_for(pilot, lambda: screen.focused is not None and screen.focused.has_focus
                       and screen.field_for("distributed.nnodes") is not None
                       and screen.focused is screen.field_for("distributed.nnodes").editor)
        await pilot.press("tab", "4")  # nproc_per_node: its text is selected on focus, so typing replaces it
        await wait_for(pilot, lambda: screen.config["distributed"]["nproc_per_node"] == 4)
        await pilot.press("f8")
        await wait_for(pilot, lambda: "--nproc_per_node 4" in screen.query_one("#command", TextArea).text)
        assert "1 change(s) from the defaults" in str(screen.query_one("#changes").render())


async def test_keys_typed_right_after_a_function_key_go_to_its_tab(workdir):
    """A burst (fast typing, tmux send-keys) lands where an F-key put the focus, even on a tab
    mounted only now, not in the field the focus left."""
    app = SetupHarness({"train_data_set_list": ["data/train.jsonl"]})
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.pause()

        def burst(*keys: str) -> None:
            for key in keys:  # posted without waiting in between, as a terminal delivers them
                app.post_message(events.Key(key, key if len(key) == 1 else None))

        burst("f5", "home", "ctrl+k", "6")
        await wait_for(pilot, lambda: screen.config["train_conf"]["max_epoch"] == 6)
        assert screen.config["output_dir"] == DEFAULTS["output_dir"]  # the field left is untouched
        burst("f2", "home", "ctrl+k", "o", "u", "t")
        await wait_for(pilot, lambda: screen.config["output_dir"] == "out")
        assert screen.config["train_conf"]["max_epoch"] == 6


async def test_busy_master_port_blocks_launch(workdir):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        app = SetupHarness({"train_data_set_list": ["data/train.jsonl"], "distributed": {"master_port": port}})
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: app.screen.query_one("#setup-tabs").active == "distributed")
            await settle(pilot)  # idle first: "not launched" must not pass for being early
            assert app.launched == []
            assert f"{port} is in use" in app.screen.field_for("distributed.master_port").error


async def test_a_third_optimiser_with_a_duplicate_name_overwrites_no_other(workdir):
    app = SetupHarness({"train_data_set_list": ["data/train.jsonl"]})
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("ctrl+n")
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: len(screen.editors()) == 3)
        editors = screen.editors()
        await type_into(pilot, editors[1].field_for("conf.optim_conf.lr"), "0.0002")
        await type_into(pilot, editors[2].field_for("conf.optim_conf.lr"), "0.0003")
        await type_into(pilot, editors[1].field_for("name"), "main")
        await type_into(pilot, editors[2].field_for("name"), "main")
        lrs = [entry["conf"]["optim_conf"]["lr"] for entry in screen.config["optim_sches"].values()]
        assert len(lrs) == 3 and {0.0002, 0.0003} <= set(lrs)  # every editor's entry is still there
        assert "two OptimSchedulers are called 'main'" in "\n".join(p.message for p in screen.problems())
        await pilot.press("ctrl+r")
        await settle(pilot)  # idle first: "not launched" must not pass for being early
        assert app.launched == []


async def test_add_and_remove_optim_schedulers(workdir):
    app = SetupHarness({"train_data_set_list": ["data/train.jsonl"]})
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: len(screen.editors()) == 2)
        editors = screen.editors()
        assert [e.sche_name for e in editors] == ["main", "optim1"]
        assert set(screen.config["optim_sches"]) == {"main", "optim1"}
        # Two optimisers over the whole model overlap: each must name its modules.
        assert "name the modules" in editors[1].field_for("conf.updated_modules").error
        await type_into(pilot, editors[0].field_for("conf.updated_modules"), "encoder,ctc")
        await type_into(pilot, editors[1].field_for("conf.updated_modules"), "decoder")
        await type_into(pilot, editors[1].field_for("conf.optim_conf.lr"), "0.0005")
        await type_into(pilot, editors[1].field_for("name"), "dec")
        assert screen.problems() == []
        assert screen.config["optim_sches"]["dec"]["conf"]["updated_modules"] == ["decoder"]
        assert screen.config["optim_sches"]["dec"]["conf"]["optim_conf"]["lr"] == 0.0005
        await type_into(pilot, editors[1].field_for("conf.updated_modules"), "decoder, ctc")
        assert "ctc is already updated by main" in editors[1].field_for("conf.updated_modules").error
        await pilot.press("ctrl+r")
        await settle(pilot)  # idle first: "not launched" must not pass for being early
        assert app.launched == []
        editors[1].query_one(".optim-remove", Button).press()
        await wait_for(pilot, lambda: len(screen.editors()) == 1)
        assert [e.sche_name for e in screen.editors()] == ["main"]
        assert list(screen.config["optim_sches"]) == ["main"]


async def test_schedule_type_swaps_its_fields(workdir):
    app = SetupHarness({"train_data_set_list": ["data/train.jsonl"]})
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await screen.open_tab("optim")
        editor = screen.editors()[0]
        editor.field_for("type").editor.value = "tri_stage"
        await wait_for(pilot, lambda: screen.config["optim_sches"]["main"]["type"] == "tri_stage")
        conf = screen.config["optim_sches"]["main"]["conf"]
        assert conf["phase_ratio"] == [0.1, 0.4, 0.5] and conf["max_update"] == 100000
        assert "warmup_steps" not in conf  # phase_ratio and explicit steps exclude each other
        await type_into(pilot, editor.field_for("conf.phase_ratio"), "0.2, 0.2, 0.2")
        assert "must add up to 1" in editor.field_for("conf.phase_ratio").error
        editor.field_for("type").editor.value = "cosine"
        await wait_for(pilot, lambda: screen.config["optim_sches"]["main"]["type"] == "cosine")
        conf = screen.config["optim_sches"]["main"]["conf"]
        assert "phase_ratio" not in conf and conf["warmup_steps"] == 0 and conf["min_lr"] == 0.0
        assert editor.field_for("conf.phase_ratio") is not editor.field_for("conf.min_lr")
        keys = {f.spec.key for f in editor.fields()}
        assert "conf.min_lr" in keys and "conf.phase_ratio" not in keys
        # keys the form has no field for stay editable as one mapping
        await type_into(pilot, editor.field_for("conf.(other)"), "{grad_clip: 5}")
        assert screen.config["optim_sches"]["main"]["conf"]["grad_clip"] == 5


async def test_lr_preview_draws_every_scheduler(workdir):
    optim_sches = {"main": {"type": "warmuplr", "conf": {"optim_conf": {"lr": 0.001}, "warmup_steps": 500}},
                   "ctc": {"type": "constant", "conf": {"optim_conf": {"lr": 0.0002}, "updated_modules": ["ctc"]}}}
    optim_sches["main"]["conf"]["updated_modules"] = ["encoder", "decoder"]
    app = SetupHarness({"train_data_set_list": ["data/train.jsonl"], "train_conf": {"accum_grad": 2},
                        "optim_sches": optim_sches})
    async with app.run_test(size=(100, 40)) as pilot:
        screen = app.screen
        await screen.open_tab("optim")
        await type_into(pilot, screen.query_one("#preview-steps", FormField), "4000")
        preview = screen.query_one(LrPreview)
        await wait_for(pilot, lambda: len(preview.curves.get("main", ())) == 2000)
        assert set(preview.curves) == {"main", "ctc"}
        assert len(preview.curves["main"]) == 2000  # real updates: 4000 steps / accum_grad 2
        assert set(preview.curves["ctc"]) == {0.0002}
        await pilot.pause()
        chart = str(screen.query_one(LrChart).render())
        assert any("\u2800" <= ch <= "\u28ff" for ch in chart)  # braille dots of the curve
        status = str(screen.query_one("#lr-status").render())
        assert "main peak 0.001" in status and "ctc peak 0.0002" in status


async def test_lr_preview_is_debounced(workdir):
    app = SetupHarness()
    async with app.run_test(size=SIZE) as pilot:
        await app.screen.open_tab("optim")
        preview = app.screen.query_one(LrPreview)
        await wait_for(pilot, lambda: preview.computations == 1)  # the preview of the opened form
        for steps in range(1000, 1020):  # a burst of edits: one computation, of the last one
            preview.request(DEFAULTS["optim_sches"], steps)
        await wait_for(pilot, lambda: preview.computations == 2)
        # No request is left waiting for its debounce, none is being computed: no third curve comes.
        await wait_for(pilot, lambda: preview._timer is None and not preview._computing)
        await settle(pilot)
        assert preview.computations == 2
        assert len(preview.curves["main"]) == 1019


async def test_engine_schedule_errors_show_on_their_fields(workdir):
    app = SetupHarness({"train_data_set_list": ["data/train.jsonl"]})
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await screen.open_tab("optim")
        preview = screen.query_one(LrPreview)
        editor = screen.editors()[0]
        editor.field_for("type").editor.value = "cosine"
        await wait_for(pilot, lambda: editor.field_for("conf.max_update").spec.key == "conf.max_update")
        # empty: auto, the run's length from the lists, which here name audio that is not there
        await type_into(pilot, editor.field_for("conf.max_update"), "")
        # The preview sets its own error first, then posts it to the form's field: wait for both.
        await wait_for(pilot, lambda: preview.error is not None
                       and editor.field_for("conf.max_update").error is not None)
        assert "max_update" in preview.error
        assert "auto: cannot count the run's batches (no utterances left in data/train.jsonl" in \
            editor.field_for("conf.max_update").error
        await pilot.press("ctrl+r")
        await settle(pilot)  # idle first: "not launched" must not pass for being early
        assert app.launched == []


async def test_command_for_one_and_two_nodes(workdir):
    app = SetupHarness({"train_data_set_list": ["data/train.jsonl"], "output_dir": "exp/a"})
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.press("f8")
        text = screen.query_one("#command", TextArea).text
        argv = shlex.split(text)
        assert argv[:3] == [sys.executable, "-m", "torch.distributed.run"]
        assert argv[argv.index("--nnodes") + 1] == "1" and "--standalone" not in argv
        assert argv[-2:] == ["--config", str(workdir / "exp" / "a" / "config.yaml")]
        await type_into(pilot, await field(screen, "distributed.nnodes"), "2")
        await type_into(pilot, await field(screen, "distributed.nproc_per_node"), "4")
        await type_into(pilot, await field(screen, "distributed.master_addr"), "10.1.2.3")
        await type_into(pilot, await field(screen, "distributed.devices"), "0,1,2,3")
        await pilot.press("f8")
        await pilot.pause()
        argv = shlex.split(screen.query_one("#command", TextArea).text)
        assert argv[0] == "CUDA_VISIBLE_DEVICES=0,1,2,3"
        assert argv[argv.index("--nnodes") + 1] == "2"
        assert argv[argv.index("--nproc_per_node") + 1] == "4"
        assert argv[argv.index("--master_addr") + 1] == "10.1.2.3"
        assert "node 0 of 2" in str(screen.query_one("#command-title").render())
        await pilot.press("ctrl+y")
        assert app.clipboard == screen.command()


async def test_node_scripts_saved_executable(workdir):
    app = SetupHarness({"train_data_set_list": ["data/train.jsonl"], "output_dir": "exp/two",
                        "distributed": {"nnodes": 2, "master_addr": "10.0.0.1"}})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+t")
        await pilot.pause()
        run_dir = workdir / "exp" / "two"
        for rank in (0, 1):
            script = run_dir / f"run_node{rank}.sh"
            assert script.stat().st_mode & stat.S_IXUSR
            assert f"--node_rank {rank} " in script.read_text()
        assert (run_dir / "config.yaml").is_file()
        # A different config never overwrites an earlier run's config.yaml.
        await type_into(pilot, await field(app.screen, "train_conf.max_epoch"), "3")
        before = (run_dir / "config.yaml").read_text()
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert (run_dir / "config.yaml").read_text() == before


async def test_file_picker_fills_the_list(workdir):
    app = SetupHarness()
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await pilot.click((await field(screen, "train_data_set_list")).query_one(".form-browse"))
        await pilot.pause()
        picker = app.screen
        assert type(picker).__name__ == "FilePickerScreen"
        path_input = picker.query_one("#picker-path", Input)
        path_input.value = str(workdir / "data" / "train.jsonl")
        path_input.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen
        assert screen.config["train_data_set_list"] == ["data/train.jsonl"]


async def test_data_lists_are_checked_and_feed_the_step_estimate(workdir, stats_calls):
    app = SetupHarness({"train_data_set_list": ["data/train.jsonl"], "valid_data_set_list": ["data/valid.jsonl"],
                        "dataset_conf": {"batch_type": "example", "batch_size": 10},
                        "train_conf": {"max_epoch": 3}})
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(stats_calls) == 2 and screen.train_stats is not None)
        assert stats_calls == [["data/train.jsonl"], ["data/valid.jsonl"]]
        await pilot.pause()
        report = str(screen.query_one("#data-report").render())
        assert "train: 1,000 utts · 2.00 h · dropped 3 (too_long 3)" in report
        assert "data/train.jsonl:7 'u7': too_long" in report and "… and 2 more" in report
        histogram = screen.query_one(DurationHistogram)
        assert histogram.display and histogram.histogram["counts"] == [600, 400]
        assert "█" in str(histogram.render())
        await screen.open_tab("optim")
        placeholder = screen.query_one("#preview-steps", FormField).query_one(Input).placeholder
        assert placeholder.startswith("300 ")  # 1000 utts / 10 per batch x 3 epochs
        assert stats_calls.audio == [False, False]  # typing a list: the fast stats, lengths trusted
        await screen.open_tab("data")
        screen.query_one("#data-check-button").press()
        await wait_for(pilot, lambda: len(stats_calls) == 4)
        assert stats_calls.audio[2:] == [True, True]  # the button: every audio header, a report


async def test_a_data_check_that_fails_unexpectedly_is_shown_and_keeps_the_form(workdir, monkeypatch):
    def broken_stats(paths, *args, **kwargs):
        raise TypeError("unexpected keyword argument 'vocab_from'")

    monkeypatch.setattr(form_data_check, "run_stats", broken_stats)
    app = SetupHarness({"train_data_set_list": ["data/train.jsonl"]})
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        report = screen.query_one("#data-report")
        await wait_for(pilot, lambda: "TypeError" in str(report.render()))
        assert app.is_running and app.screen is screen
        assert "unexpected keyword argument 'vocab_from'" in str(report.render())


async def test_model_preset_copies_only_the_model(workdir, monkeypatch):
    preset = workdir / "big.yaml"
    preset.write_text("model: transformer\nencoder_conf: {output_size: 512}\ntrain_conf: {max_epoch: 99}\n")
    from asr_tui.presets_store import Preset
    import asr_tui.screens.setup as setup_module

    monkeypatch.setattr(setup_module, "list_presets", lambda: [Preset("big", preset, "user")])
    app = SetupHarness({"train_data_set_list": ["data/train.jsonl"]})
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await screen.open_tab("model")
        screen.query_one("#model-preset", Select).value = str(preset)
        await wait_for(pilot, lambda: screen.config["model"] == "transformer")
        assert screen.config["model"] == "transformer"
        assert screen.config["encoder_conf"] == {"output_size": 512}
        assert screen.config["train_conf"]["max_epoch"] == DEFAULTS["train_conf"]["max_epoch"]
        assert (await field(screen, "encoder_conf")).editor.value == "{output_size: 512}"


def test_cross_field_checks():
    config = deep_merge(DEFAULTS, {"tokenizer_conf": {"type": "bpe"},
                                   "distributed": {"devices": "0", "nproc_per_node": 2},
                                   "dataset_conf": {"min_source_length": 50, "max_source_length": 10}})
    assert {issue.key for issue in cross_field_issues(config)} == {"distributed.devices"}
    # the form shows check_config's issues: the cross-field rules and the engine's own checks
    keys = {issue.key for issue in check_config(config)}
    assert {"tokenizer_conf.vocab_size", "distributed.devices", "dataset_conf.max_source_length"} <= keys


def test_step_estimate_from_frames():
    config = deep_merge(DEFAULTS, {"dataset_conf": {"batch_type": "token", "batch_size": 6000},
                                   "train_conf": {"max_epoch": 2},
                                   "distributed": {"nproc_per_node": 2}})
    steps, why = estimate_steps(config, {"utterances": 10, "seconds": 3600.0})
    assert steps == 2 * 30 and "train list" in why  # 360000 frames / 6000 = 60 batches, 30 per rank


def test_setup_and_presets_import_neither_torch_nor_plotext():
    """The console's first frame must not wait on torch: the preview imports it in its worker."""
    import subprocess

    code = ("import sys, asr_tui.app, asr_tui.screens.setup, asr_tui.screens.presets, asr_tui.screens.checkpoints, asr_tui.checkpoint_list; "
            "print(sorted(m for m in ('torch', 'plotext', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


async def test_char_tokenizer_english_units_reach_the_config_and_the_data_check(workdir, stats_calls):
    """Issue 12: the char tokenizer's English units, letters (the engine's default, as FunASR's
    CharTokenizer) or words. Left at the default, the key is not written (a bpe tokenizer takes none)."""
    from tests.tui.test_monitor_app import screen_text

    app = SetupHarness({"train_data_set_list": ["data/train.jsonl"]})
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        english = await field(screen, "tokenizer_conf.english")
        await pilot.pause()
        assert english.editor.value is None and "default (letter)" in screen_text(app)
        english.editor.value = "word"
        await wait_for(pilot, lambda: screen.config["tokenizer_conf"].get("english") == "word")
        # the data check counts tokens (and the OOV rate) as this tokenizer will split the text
        await wait_for(pilot, lambda: {"type": "char", "english": "word"} in stats_calls.tokenizer_conf)
        (await field(screen, "tokenizer_conf.type")).editor.value = "bpe"
        await wait_for(pilot, lambda: english.error is not None)
        assert "english: unknown key for tokenizer_conf.type bpe" in english.error
        english.editor.value = None  # back to the default: the key goes
        (await field(screen, "tokenizer_conf.type")).editor.value = "char"
        await wait_for(pilot, lambda: english.error is None and "english" not in screen.config["tokenizer_conf"])
        english.editor.value = "letter"
        await wait_for(pilot, lambda: screen.config["tokenizer_conf"].get("english") == "letter"
                       and screen.problems() == [])
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.launched)
        assert app.launched[0]["tokenizer_conf"] == {"type": "char", "english": "letter"}


async def test_patience_and_speed_perturb_fields_reach_the_launched_config(workdir):
    app = SetupHarness({"train_data_set_list": ["data/train.jsonl"]})
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await type_into(pilot, await field(screen, "train_conf.patience"), "5")
        await type_into(pilot, await field(screen, "dataset_conf.speed_perturb"), "0.9, 1.0, 1.1")
        await pilot.pause()
        assert screen.problems() == []
        await pilot.press("ctrl+r")
        await pilot.pause()
        config = app.launched[0]
        assert config["train_conf"]["patience"] == 5
        assert config["dataset_conf"]["speed_perturb"] == [0.9, 1.0, 1.1]


async def test_lr_preview_fills_max_update_auto_from_the_lists_as_the_run_will(workdir, small_corpus):
    """cosine without max_update: the preview counts the training batches with the engine's plan."""
    from engine.data.selection import config_batches_per_epoch
    from engine.optim_sche.run_length import run_real_steps

    config = {"train_data_set_list": [str(small_corpus / "train.jsonl")], "train_conf": {"max_epoch": 3},
              "dataset_conf": {"batch_type": "example", "batch_size": 8},
              "optim_sches": {"main": {"type": "cosine", "conf": {"optim_conf": {"lr": 0.001}, "warmup_steps": 2}}}}
    app = SetupHarness(config)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = app.screen
        await screen.open_tab("optim")
        preview = screen.query_one(LrPreview)
        batches, _ = config_batches_per_epoch(deep_merge(DEFAULTS, config))
        await wait_for(pilot, lambda: len(preview.curves.get("main", ())) == 3 * batches)
        status = str(screen.query_one("#lr-status").render())
        assert f"max_update main {run_real_steps(batches, 3, 1)} (3 epochs x {batches} batches)" in status
        assert preview.curves["main"][-1] == pytest.approx(0.0, abs=1e-12)  # cosine ends at min_lr: the run's end
