"""Messages the console's screens post to the app (and to each other).

Screens never launch, stop or open things themselves: they post one of these and the app,
which owns the launcher and the screen stack, acts on it. That keeps each screen testable
on its own (a test only checks which message was posted).
"""

from __future__ import annotations

from pathlib import Path

from textual.message import Message


class LaunchRequested(Message):
    """Setup → app: write ``config`` as RUN/config.yaml and start the job.

    ``config`` is the full experiment dict (``engine.config`` schema); its ``output_dir``
    is the run directory.
    """

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = config


class PresetLoaded(Message):
    """Presets → app / Setup: ``config`` was read from the preset file ``path``."""

    def __init__(self, config: dict, path: Path) -> None:
        super().__init__()
        self.config = config
        self.path = Path(path)


class OpenRun(Message):
    """Runs → app: open the monitor of the run directory ``run_dir``."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)


class OpenCheckpoints(Message):
    """Monitor / Runs → app: open the checkpoint browser of ``run_dir``."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)


class ResumeRequested(Message):
    """Checkpoints / Monitor → app: relaunch ``run_dir`` from ``checkpoint``.

    The app relaunches with ``++train_conf.resume_from=<checkpoint>`` and opens the monitor.
    """

    def __init__(self, run_dir: Path, checkpoint: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.checkpoint = Path(checkpoint)


class RunStopRequested(Message):
    """Monitor / Runs → app: stop the job of ``run_dir`` (SIGTERM to its process group)."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)


class NodeScriptsRequested(Message):
    """Setup → app: write ``config`` as ``config_path`` (unless the same config is there) and a
    ``run_node{N}.sh`` per node beside it, each running from ``workdir``."""

    def __init__(self, config: dict, config_path: Path, workdir: Path) -> None:
        super().__init__()
        self.config = config
        self.config_path = Path(config_path)
        self.workdir = Path(workdir)


class CompareRequested(Message):
    """Runs (marked runs) / palette → app: open the Compare screen of ``run_dirs`` (two or more)."""

    def __init__(self, run_dirs: list[Path]) -> None:
        super().__init__()
        self.run_dirs = [Path(d) for d in run_dirs]
