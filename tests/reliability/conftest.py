"""Fixtures of the reliability suite: a tiny corpus and run, in-process command runs, a full disk.

Commands run in this process through their ``main(argv)`` (stdout/stderr captured, argparse's
SystemExit turned into its exit code), so the suite starts no interpreter but for the one case
that needs a second process (a lock held by another job).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.fixtures.threads import torch_threads
from tests.trainer.tiny import tiny_config

TOOLS = {
    "asr-train": "engine.train:main",
    "asr-data": "engine.data.cli:main",
    "scp2jsonl": "engine.data.cli:scp2jsonl_main",
    "jsonl2scp": "engine.data.cli:jsonl2scp_main",
    "asr-average": "engine.checkpoint.cli:main",
    "asr-decode": "engine.decode.cli:main",
}


PROGRESS_BAR = re.compile(r"\d+%\|.*\| *\d+/\d+ \[")


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        """stderr lines, less progress bars (tqdm's ``NN%|###| n/N [...]``: long work shows progress)."""
        return [line for line in self.err.splitlines() if line.strip() and not PROGRESS_BAR.search(line)]


def run_tool(tool: str, argv: list[str]) -> Result:
    """Run a console script's main in-process; its exit code, stdout and stderr."""
    import importlib

    module, _, name = TOOLS[tool].partition(":")
    main = getattr(importlib.import_module(module), name)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), torch_threads(1):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse errors
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    import logging

    logging.getLogger("engine").handlers.clear()  # handlers bound to the captured stream
    return Result(int(code or 0), out.getvalue(), err.getvalue())


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its sha256: "nothing written, nothing lost" is equality."""
    if not root.exists():
        return {}
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            files[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


@contextlib.contextmanager
def disk_full(matches):
    """Writes to files whose path ``matches(path)`` fail with ENOSPC when they are flushed to disk.

    In-process and without root: ``os.fsync`` (every atomic write and durable event ends with
    it) and ``os.write`` (the event log's appends) raise OSError(ENOSPC) for those files, as a
    full filesystem does; other files are written normally.
    """
    real_fsync, real_write = os.fsync, os.write

    def path_of(fd) -> str:
        try:
            return os.readlink(f"/proc/self/fd/{fd if isinstance(fd, int) else fd.fileno()}")
        except OSError:
            return ""

    def fsync(fd):
        if matches(path_of(fd)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    def write(fd, data):
        if matches(path_of(fd)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    os.fsync, os.write = fsync, write
    try:
        yield
    finally:
        os.fsync, os.write = real_fsync, real_write


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """8 training and 4 validation utterances (espeak-ng, as the demo corpus)."""
    from engine.data.demo import make_demo_corpus

    out = make_demo_corpus(tmp_path_factory.mktemp("rel_corpus"), num_train=8, seed=0, progress=False,
                           num_workers=1)
    valid = out / "valid.jsonl"
    valid.write_text("".join(valid.read_text(encoding="utf-8").splitlines(keepends=True)[:4]), encoding="utf-8")
    return out


def write_tiny_config(corpus: Path, run_dir: Path, path: Path, **sections) -> Path:
    config = tiny_config(corpus, run_dir, **sections)
    config["dataset_conf"]["batch_size"] = 8  # one update per epoch
    config["train_conf"].update({"max_epoch": 1, "validate_interval": 100, "save_checkpoint_interval": 100,
                                 "avg_nbest_model": 1})
    config["specaug_conf"] = {}
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def trained(corpus, tmp_path_factory) -> Path:
    """A finished one-epoch run (model.pt, model.pt.ep1, model.pt.avg1, tokens.txt, am.mvn)."""
    root = tmp_path_factory.mktemp("rel_trained")
    config = write_tiny_config(corpus, root / "run", root / "config.yaml")
    result = run_tool("asr-train", ["--config", config])
    assert result.code == 0, result.err
    return root / "run"


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    """A copy of the trained run that a case may break; its config.yaml points at the copy."""
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    (copy / "run.lock").unlink(missing_ok=True)
    config = yaml.safe_load((copy / "config.yaml").read_text(encoding="utf-8"))
    config["output_dir"] = str(copy)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return copy


def events(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
