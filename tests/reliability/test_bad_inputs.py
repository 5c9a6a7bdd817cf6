"""Every bad input gets a clear error and loses nothing (issue 15): one table, one row per case.

Each row runs a command (in-process through its ``main``), and checks its exit code, that its
error is one line naming the file, line or key (matched by ``message``), that no traceback is
shown, and that the folder the case watches is byte-for-byte what it was ("nothing written,
nothing lost"), or what the case's ``then`` check says it must be.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.reliability.conftest import Result, disk_full, events, run_tool, snapshot, write_tiny_config


@dataclass
class Ctx:
    """What a case works with; ``run`` is a copy of the trained run (made only for cases that ask)."""

    tmp: Path
    corpus: Path
    run: Path | None = None
    config: Path | None = None  # a config file of a fresh run (output_dir tmp/new_run)
    state: dict = field(default_factory=dict)

    @property
    def new_run(self) -> Path:
        return self.tmp / "new_run"

    @property
    def run_config(self) -> Path:
        return self.tmp / "config.yaml"  # the trained copy's config (written by the run_copy fixture)


@dataclass
class Case:
    name: str
    tool: str
    argv: Callable[[Ctx], list]
    code: int
    message: str  # a regex the error line must match ("" : no error expected)
    watch: Callable[[Ctx], Path] | None = None  # a folder that must be left exactly as it was
    then: Callable[[Ctx, Result], None] | None = None  # further checks of what was written
    needs_run: bool = False
    around: Callable | None = None  # a context manager factory (ctx) -> the conditions of the run
    one_line: bool = True  # the error is the only line on stderr


def train(ctx: Ctx, *overrides: str) -> list:
    return ["--config", ctx.config, *overrides]


def resume(ctx: Ctx, *overrides: str) -> list:
    return ["--config", ctx.run_config, "++train_conf.max_epoch=2", *overrides]


def decode(ctx: Ctx, *extra) -> list:
    return ["--model", ctx.run, "--input", ctx.corpus / "valid.jsonl", "--output", ctx.tmp / "decoded",
            "--mode", "ctc_greedy", "--no-progress", "--num-threads", "1", *extra]


# -- set-ups ---------------------------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def bad_preset(ctx: Ctx) -> list:
    """A preset whose encoder_conf.num_blocks (line 3) is text."""
    preset = write(ctx.tmp / "preset.yaml", f"output_dir: {ctx.new_run}\nencoder_conf:\n  num_blocks: many\n"
                                            f"train_data_set_list: [{ctx.corpus / 'train.jsonl'}]\n")
    return ["--config", preset]


def yaml_syntax_error(ctx: Ctx) -> list:
    return ["--config", write(ctx.tmp / "broken.yaml", "train_conf:\n  max_epoch: [1, 2\n")]


def with_list(ctx: Ctx, key: str, text: str) -> list:
    data = write(ctx.tmp / f"{key}.jsonl", text)
    return train(ctx, f"++{key}=[{data}]")


def unusable_list(ctx: Ctx) -> list:
    """Lines that are there but all unusable: found only when the list is read, during set-up."""
    lines = "".join(json.dumps({"key": f"u{i}", "source": f"/nowhere/u{i}.wav", "target": "x"}) + "\n"
                    for i in range(3))
    return with_list(ctx, "train_data_set_list", lines)


def output_dir_is_file(ctx: Ctx) -> list:
    write(ctx.tmp / "taken", "a file")
    return train(ctx, f"++output_dir={ctx.tmp / 'taken'}")


def output_dir_under_file(ctx: Ctx) -> list:
    write(ctx.tmp / "taken", "a file")
    return train(ctx, f"++output_dir={ctx.tmp / 'taken' / 'run'}")


def output_dir_read_only(ctx: Ctx) -> list:
    (ctx.tmp / "ro").mkdir()
    os.chmod(ctx.tmp / "ro", 0o555)
    return train(ctx, f"++output_dir={ctx.tmp / 'ro' / 'run'}")


def lock_held_by_other_process(ctx: Ctx) -> list:
    """A second process holds run.lock (as a training job's rank 0 does) until the case ends."""
    ctx.run.mkdir(exist_ok=True)
    code = ("import sys, time; from engine.trainer.run_lock import RunLock; "
            "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(ctx.run)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=os.getcwd()), start_new_session=True)
    assert holder.stdout.readline().strip() == "held"
    ctx.state["holder"] = holder
    return resume(ctx)


def corrupt(path: Path) -> None:
    path.unlink()  # model.pt is a hard link of model.pt.ep1: break the link, not the twin
    path.write_bytes(random.Random(path.name).randbytes(50_000))  # the same bytes every run


def decode_corrupt_model(ctx: Ctx) -> list:
    for name in ("model.pt", "model.pt.avg1"):
        corrupt(ctx.run / name)
    return decode(ctx)


def resume_corrupt_latest(ctx: Ctx) -> list:
    corrupt(ctx.run / "model.pt")
    return resume(ctx)


def reordered_tokens(ctx: Ctx) -> None:
    tokens = (ctx.run / "tokens.txt").read_text(encoding="utf-8").splitlines()
    specials, rest = tokens[:4], tokens[4:]
    (ctx.run / "tokens.txt").write_text("\n".join(specials + rest[::-1]) + "\n", encoding="utf-8")


def decode_reordered_tokens(ctx: Ctx, *extra) -> list:
    reordered_tokens(ctx)
    return decode(ctx, *extra)


def decode_other_cmvn(ctx: Ctx) -> list:
    """Statistics of other data written over am.mvn (the writer the engine uses): same shape, other numbers."""
    from engine.data.frontend import read_am_mvn, write_am_mvn

    means, stds = read_am_mvn(ctx.run / "am.mvn")
    write_am_mvn(ctx.run / "am.mvn", means + 1.0, stds * 2.0)
    return decode(ctx)


def resume_reordered_tokens(ctx: Ctx) -> list:
    reordered_tokens(ctx)
    return resume(ctx)


def resume_other_list(ctx: Ctx) -> list:
    """Resume with a train list of other texts (the tokenizer stays the run's): most become <unk>."""
    lines = []
    for line in (ctx.corpus / "train.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        entry["source"] = str(ctx.corpus / entry["source"])
        entry["target"] = "ꙮꙮ qqq ꙮ"
        lines.append(json.dumps(entry, ensure_ascii=False))
    other = write(ctx.tmp / "other.jsonl", "\n".join(lines) + "\n")
    return resume(ctx, f"++train_data_set_list=[{other}]")


def jsonl_with(ctx: Ctx, source_len) -> list:
    good = json.loads((ctx.corpus / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    good["source"] = str(ctx.corpus / good["source"])
    bad = dict(good, key="bad", source_len=source_len)
    data = write(ctx.tmp / "in.jsonl", json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    return ["--jsonl-file-in", data, "--scp-file-list", ctx.tmp / "out" / "wav.scp", ctx.tmp / "out" / "text"]


def average_list_missing(ctx: Ctx) -> list:
    (ctx.run / "model.pt.ep1").unlink()
    ctx.state["index"] = (ctx.run / "checkpoints.json").read_bytes()
    return ["--run", ctx.run, "--list"]


def jsonl_without_targets(ctx: Ctx) -> list:
    lines = [json.loads(line) for line in (ctx.corpus / "valid.jsonl").read_text(encoding="utf-8").splitlines()]
    data = write(ctx.tmp / "untranscribed.jsonl",
                 "".join(json.dumps({"key": e["key"], "source": str(ctx.corpus / e["source"])}) + "\n"
                         for e in lines))
    return ["--model", ctx.run, "--input", data, "--output", ctx.tmp / "decoded", "--mode", "ctc_greedy",
            "--no-progress", "--num-threads", "1"]


# -- checks of what was written --------------------------------------------------------------------

def no_folder(name: str):
    def check(ctx: Ctx, result: Result) -> None:
        assert not (ctx.tmp / name).exists(), f"{name} was left behind"
    return check


def no_new_run(ctx: Ctx, result: Result) -> None:
    assert not ctx.new_run.exists(), f"a half-made run directory was left: {sorted(os.listdir(ctx.new_run))}"


def loads(path: Path) -> None:
    from engine.checkpoint.storage import load_checkpoint

    load_checkpoint(path)


def resumed_from_ep1(ctx: Ctx, result: Result) -> None:
    assert "resuming from model.pt.ep1, the newest intact checkpoint" in result.err
    assert "weights_only=False" not in result.err
    start = [e for e in events(ctx.run) if e["event"] == "start"][-1]
    assert start["resumed_from"] == "model.pt.ep1" and start["epoch"] == 2
    loads(ctx.run / "model.pt.ep2")


def oov_reported(ctx: Ctx, result: Result) -> None:
    assert re.search(r"train data: 8 of 8 texts \(100\.0%\) have tokens outside tokens\.txt", result.err)
    data = [e for e in events(ctx.run) if e["event"] == "data" and e["split"] == "train"][-1]
    assert data["oov"]["texts"] == 8 and data["oov"]["of_texts"] == 8
    from asr_tui.screens.monitor import data_text  # what the console shows

    assert "8 texts (100%) with <unk>" in data_text({"train": data}).plain


def index_kept(ctx: Ctx, result: Result) -> None:
    assert (ctx.run / "checkpoints.json").read_bytes() == ctx.state["index"]
    assert "model.pt.ep1" in result.out


def decoded_unscored(ctx: Ctx, result: Result) -> None:
    summary = json.loads((ctx.tmp / "decoded" / "summary.json").read_text(encoding="utf-8"))
    assert summary["utterances"] == 4 and summary["scored_utterances"] == 0 and summary["cer"] is None
    assert "no references" in result.out


def decoded(ctx: Ctx, result: Result) -> None:
    assert (ctx.tmp / "decoded" / "summary.json").is_file()


def scp_skipped_bad(ctx: Ctx, result: Result) -> None:
    assert "bad_field" in result.err
    assert len((ctx.tmp / "out" / "wav.scp").read_text(encoding="utf-8").splitlines()) == 1


def last_state_intact(ctx: Ctx, result: Result) -> None:
    loads(ctx.run / "model.pt")
    loads(ctx.run / "model.pt.ep1")
    assert not (ctx.run / "model.pt.ep2").exists()
    assert not list(ctx.run.glob(".model.pt*.tmp")), "a temporary checkpoint was left"


def traceback_shown(ctx: Ctx, result: Result) -> None:
    assert "Traceback (most recent call last)" in result.err


def checked_nothing_written(ctx: Ctx, result: Result) -> None:
    assert "nothing written" in result.out
    assert not ctx.new_run.exists()


# -- conditions ------------------------------------------------------------------------------------

def full_disk_for_checkpoints(ctx: Ctx):
    return disk_full(lambda path: os.path.basename(path).startswith(".model.pt.ep2"))


def full_disk_for_decode(ctx: Ctx):
    return disk_full(lambda path: path.startswith(str(ctx.tmp / ".decoded")))


KEY = r"[a-z_.]+"
CASES = [
    # The whole config is checked before anything is written; messages name the key and its origin.
    Case("override_wrong_type", "asr-train", lambda c: train(c, "++encoder_conf.output_size=abc"), 2,
         r"^asr-train: \+\+encoder_conf\.output_size=abc: encoder_conf\.output_size: must be an integer",
         then=no_new_run),
    Case("override_negative_length", "asr-train", lambda c: train(c, "++dataset_conf.max_source_length=-5"), 2,
         r"\+\+dataset_conf\.max_source_length=-5: dataset_conf\.max_source_length: must be at least 1",
         then=no_new_run),
    Case("schedule_negative_warmup", "asr-train", lambda c: train(c, "++optim_sches.main.conf.warmup_steps=-5"), 2,
         r"\+\+optim_sches\.main\.conf\.warmup_steps=-5: optim_sches\.main\.conf\.warmup_steps: must be",
         then=no_new_run),
    Case("unknown_key_on_command_line", "asr-train", lambda c: train(c, "++train_conf.nax_epoch=5"), 2,
         r"^asr-train: \+\+train_conf\.nax_epoch=5: train_conf\.nax_epoch: unknown key$", then=no_new_run),
    Case("preset_wrong_type_names_line", "asr-train", bad_preset, 2,
         r"preset\.yaml:3: encoder_conf\.num_blocks: must be an integer, got 'many'", then=no_new_run),
    Case("yaml_syntax_error", "asr-train", yaml_syntax_error, 2, r"broken\.yaml: line 3, column 1 invalid YAML"),
    Case("unknown_encoder_key", "asr-train", lambda c: train(c, "++encoder_conf.num_layers=2"), 2,
         r"\+\+encoder_conf\.num_layers=2: encoder_conf\.num_layers: unknown key for model conformer",
         then=no_new_run),
    Case("encoder_heads_do_not_divide", "asr-train", lambda c: train(c, "++encoder_conf.attention_heads=5"), 2,
         r"encoder_conf\.attention_heads: must divide output_size \(32\), got 5", then=no_new_run),
    Case("unknown_optimiser_key", "asr-train", lambda c: train(c, "++optim_conf.momentum=0.9"), 2,
         r"\+\+optim_conf\.momentum=0\.9: optim_sches\.main\.conf\.optim_conf\.momentum: unknown key for "
         r"torch\.optim\.AdamW", then=no_new_run),
    Case("optimiser_value_out_of_range", "asr-train", lambda c: train(c, "++optim_conf.betas=[2.0,0.9]"), 2,
         r"\+\+optim_conf\.betas=\[2\.0,0\.9\]: optim_sches\.main\.conf\.optim_conf: torch\.optim\.AdamW: "
         r"Invalid beta", then=no_new_run),
    Case("check_flag_writes_nothing", "asr-train", lambda c: train(c, "--check"), 0, "",
         then=checked_nothing_written),
    Case("check_flag_finds_errors", "asr-train", lambda c: train(c, "--check", "++model_conf.ctc_weight=2"), 2,
         r"\+\+model_conf\.ctc_weight=2: model_conf\.ctc_weight: must be at most 1\.0, got 2", then=no_new_run),
    # Data lists and paths: checked before anything is written.
    Case("missing_train_list", "asr-train", lambda c: train(c, f"++train_data_set_list=[{c.tmp / 'nope.jsonl'}]"),
         2, r"\+\+train_data_set_list=.*: train_data_set_list: .*nope\.jsonl: no such data list", then=no_new_run),
    Case("empty_train_list", "asr-train", lambda c: with_list(c, "train_data_set_list", ""), 2,
         r"train_data_set_list: .*train_data_set_list\.jsonl: the list is empty", then=no_new_run),
    Case("empty_valid_list", "asr-train", lambda c: with_list(c, "valid_data_set_list", "\n\n"), 2,
         r"valid_data_set_list: .*valid_data_set_list\.jsonl: the list is empty \(leave valid_data_set_list out",
         then=no_new_run),
    Case("unusable_train_list", "asr-train", unusable_list, 2,
         r"^asr-train: error: train_data_set_list: no usable utterances in .*train_data_set_list\.jsonl$",
         then=no_new_run, one_line=False),
    Case("output_dir_is_a_file", "asr-train", output_dir_is_file, 2,
         r"\+\+output_dir=.*: output_dir: .*taken: exists and is not a directory"),
    Case("output_dir_cannot_be_made", "asr-train", output_dir_under_file, 2,
         r"output_dir: .*taken/run: cannot be made \(.*taken is not a directory\)"),
    Case("output_dir_not_writable", "asr-train", output_dir_read_only, 2,
         r"output_dir: .*ro/run: cannot be made \(.*ro is not writable\)"),
    # One job per run directory.
    Case("second_job_refused", "asr-train", lock_held_by_other_process, 2,
         rf"^asr-train: .*run: a job is already training here \(pid \d+ on {re.escape(socket.gethostname())}, "
         r"lock .*run\.lock\)", watch=lambda c: c.run, needs_run=True),
    # Read-only commands never write.
    Case("average_list_keeps_missing_entry", "asr-average", average_list_missing, 0,
         r"^asr-average: .*model\.pt\.ep1: listed in checkpoints\.json \(epoch 1, step 1.*\) but the file is missing$",
         then=index_kept, needs_run=True),
    Case("average_disk_full", "asr-average", lambda c: ["--run", c.run, "--num", "1"], 1,
         r"^asr-average: .*run/model\.pt\.avg1: No space left on device$", watch=lambda c: c.run,
         needs_run=True, around=lambda c: disk_full(lambda path: os.path.basename(path).startswith(".model.pt.avg"))),
    # Lists: bad fields are skipped and counted, as everywhere.
    Case("jsonl2scp_text_source_len", "jsonl2scp", lambda c: jsonl_with(c, "abc"), 0,
         r"bad_field.*source_len must be a whole number of frames ≥ 0, got 'abc'", then=scp_skipped_bad,
         one_line=False),
    Case("jsonl2scp_negative_source_len", "jsonl2scp", lambda c: jsonl_with(c, -5), 0,
         r"bad_field.*source_len must be a whole number of frames ≥ 0, got -5", then=scp_skipped_bad,
         one_line=False),
    # Corrupt checkpoints.
    Case("decode_random_bytes_model", "asr-decode", decode_corrupt_model, 2,
         r"^asr-decode: checkpoint .*model\.pt\.avg1 is unreadable \(torn, corrupt or not a torch checkpoint\): "
         r"\w+: \S.*$", then=no_folder("decoded"), needs_run=True),  # pickle's error depends on the bytes
    Case("resume_from_corrupt_latest_falls_back", "asr-train", resume_corrupt_latest, 0, "",
         then=resumed_from_ep1, needs_run=True),
    # The token list and CMVN a checkpoint was trained with.
    Case("decode_reordered_tokens", "asr-decode", decode_reordered_tokens, 2,
         r"^asr-decode: the token list .*tokens\.txt \(sha256 [0-9a-f]{12}\) is not the one .*model\.pt\.avg1 was "
         r"trained with \(tokens\.txt, sha256 [0-9a-f]{12}\); pass --allow-changed-assets if the change is intended$",
         then=no_folder("decoded"), needs_run=True),
    Case("decode_reordered_tokens_allowed", "asr-decode",
         lambda c: decode_reordered_tokens(c, "--allow-changed-assets"), 0, "", then=decoded, needs_run=True),
    Case("decode_other_cmvn", "asr-decode", decode_other_cmvn, 2,
         r"^asr-decode: the CMVN .*am\.mvn \(sha256 [0-9a-f]{12}\) is not the one .*model\.pt\.avg1 was trained "
         r"with \(am\.mvn, sha256 [0-9a-f]{12}\); pass --allow-changed-assets", then=no_folder("decoded"),
         needs_run=True),
    Case("resume_reordered_tokens", "asr-train", resume_reordered_tokens, 2,
         r"^asr-train: error: the token list .*tokens\.txt .* is not the one .*model\.pt was trained with .*"
         r"set \+\+train_conf\.allow_changed_assets=true", needs_run=True, one_line=False,
         then=lambda c, r: last_state_intact(c, r)),
    Case("resume_changed_lists_reports_oov", "asr-train", resume_other_list, 0, "", then=oov_reported,
         needs_run=True),
    # Outputs: whole or not at all, with the umask's mode.
    Case("decode_disk_full", "asr-decode", decode, 1,
         r"^asr-decode: .*/decoded/(text|utt_scores\.jsonl|summary\.json): No space left on device; "
         r"nothing written$", then=no_folder("decoded"), needs_run=True, around=full_disk_for_decode),
    Case("decode_jsonl_without_targets", "asr-decode", jsonl_without_targets, 0, "", then=decoded_unscored,
         needs_run=True),
    # Run-time failures: exit 1, one line with the path and the cause; the last complete state stays.
    Case("train_disk_full_at_checkpoint", "asr-train", resume, 1,
         r"^asr-train: failed: .*model\.pt\.ep2: No space left on device \(traceback in .*log\.txt\)$",
         then=last_state_intact, needs_run=True, around=full_disk_for_checkpoints, one_line=False),
    Case("debug_flag_shows_traceback", "asr-train", lambda c: train(c, "--debug", "++train_conf.nax_epoch=5"), 2,
         r"train_conf\.nax_epoch: unknown key", then=traceback_shown, one_line=False),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case: Case, request, tmp_path, corpus):
    if case.name == "output_dir_not_writable" and os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    ctx = Ctx(tmp=tmp_path, corpus=corpus)
    ctx.config = write_tiny_config(corpus, ctx.new_run, tmp_path / "fresh.yaml")
    if case.needs_run:
        ctx.run = request.getfixturevalue("run_copy")
    argv = case.argv(ctx)
    watched = case.watch(ctx) if case.watch else None
    before = snapshot(watched) if watched else None
    try:
        if case.around:
            with case.around(ctx):
                result = run_tool(case.tool, argv)
        else:
            result = run_tool(case.tool, argv)
    finally:
        holder = ctx.state.get("holder")
        if holder is not None:
            os.killpg(holder.pid, 9)
            holder.wait()
    assert result.code == case.code, f"exit {result.code}, expected {case.code}\n{result.err}"
    if case.name != "debug_flag_shows_traceback":
        assert "Traceback" not in result.err, result.err
    if case.message:
        matching = [line for line in result.err_lines if re.search(case.message, line)]
        assert matching, f"no stderr line matches {case.message!r}:\n{result.err}"
        if case.one_line:
            assert len(result.err_lines) == 1, f"more than the one error line:\n{result.err}"
    if watched is not None:
        assert snapshot(watched) == before, "the command changed files it must not touch"
    if case.then:
        case.then(ctx, result)


def test_case_count():
    """The note of issue 15 reports this count."""
    assert len(CASES) == 35
