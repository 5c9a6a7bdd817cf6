"""The asr-tui application: screen stack, global keys, command palette, and job control.

Screens post messages (asr_tui.messages); this app acts on them: it launches, stops and
resumes jobs through :class:`~asr_tui.launcher.Launcher` in thread workers and opens the
monitor or checkpoint browser of a run. Startup imports neither torch nor plotext, and the
screens not shown first (setup, presets, monitor, checkpoints) and the launcher are imported
when first needed, so the first frame is quick over SSH.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from asr_tui.messages import (
    CompareRequested, LaunchRequested, NodeScriptsRequested, OpenCheckpoints, OpenRun, PresetLoaded,
    ResumeRequested, RunStopRequested,
)
from asr_tui.screens.confirm import ConfirmScreen
from asr_tui.screens.help import HelpScreen
from asr_tui.screens.runs import RunsScreen

if TYPE_CHECKING:
    from asr_tui.launcher import Launcher

REAP_SECONDS = 2.0


class AsrTuiApp(App):
    """Runs list at the bottom of the stack; setup, presets, monitor and checkpoints above it."""

    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "asr-tui"
    # Letter keys where nothing is typed (runs list, monitor, checkpoints); screens with text
    # fields hide them and show the twins instead (asr_tui.screens.navigation.FORM_NAVIGATION).
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("n", "new_run", "New run"),
        Binding("p", "presets", "Presets"),
        Binding("u", "runs", "Runs"),
        Binding("f1", "help", "Help", show=False),
        Binding("f9", "runs", "Runs", show=False),
        Binding("f10", "new_run", "New run", show=False),
    ]

    def __init__(self, runs_root: Path = Path("exp"), preset: dict | None = None,
                 preset_path: Path | None = None, run_dir: Path | None = None,
                 launcher: Launcher | None = None) -> None:
        super().__init__()
        # Absolute: run directories found under the root are handed to the launcher, which
        # resolves a relative checkpoint name against the run directory.
        self.runs_root = Path(runs_root).absolute()
        self.preset = preset
        self.preset_path = preset_path
        self.initial_run = Path(run_dir).absolute() if run_dir else None
        self._launcher = launcher

    @property
    def launcher(self) -> Launcher:
        if self._launcher is None:
            from asr_tui.launcher import Launcher

            self._launcher = Launcher()
        return self._launcher

    def _reap(self) -> None:
        if self._launcher is not None:
            self._launcher.reap()

    def get_default_screen(self) -> Screen:
        return RunsScreen(self.runs_root)

    def on_mount(self) -> None:
        if self.preset is not None:
            from asr_tui.screens.setup import SetupScreen

            self.push_screen(SetupScreen(self.preset, preset_path=self.preset_path))
            self.notify(f"preset {self.preset_path} loaded")
        if self.initial_run is not None:
            from asr_tui.screens.monitor import MonitorScreen

            self.push_screen(MonitorScreen(self.initial_run))
        self.set_interval(REAP_SECONDS, self._reap)

    # Global actions.

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
            return
        app_keys = [(b.key_display or b.key, b.description) for b in self.BINDINGS]
        app_keys.append(("ctrl+p", "Command palette: every action by name"))
        app_keys.append(("/  o  O", "In a table: filter rows, sort by the next column, reverse the order"))
        self.push_screen(HelpScreen(self.screen, app_keys))

    def action_runs(self) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def action_back(self) -> None:
        """One screen back; the runs list is the bottom of the stack."""
        if len(self.screen_stack) > 1:
            self.pop_screen()

    def action_new_run(self) -> None:
        from asr_tui.screens.setup import SetupScreen

        if not isinstance(self.screen, SetupScreen):
            self.push_screen(SetupScreen(self.preset, preset_path=self.preset_path))

    def action_presets(self) -> None:
        from asr_tui.screens.presets import PresetsScreen

        if not isinstance(self.screen, PresetsScreen):
            self.push_screen(PresetsScreen())

    def action_environment(self) -> None:
        from asr_tui.screens.environment import EnvironmentScreen

        if not isinstance(self.screen, EnvironmentScreen):
            self.push_screen(EnvironmentScreen(self.runs_root))

    def _open(self, screen: Screen) -> None:
        """Show ``screen`` directly above the runs list (setup/presets/others are closed)."""
        self.action_runs()
        self.push_screen(screen)

    # Messages from the screens.

    def on_open_run(self, message: OpenRun) -> None:
        from asr_tui.screens.monitor import MonitorScreen

        current = self.screen
        if isinstance(current, MonitorScreen) and current.run_dir == message.run_dir:
            return
        self.push_screen(MonitorScreen(message.run_dir))

    def on_compare_requested(self, message: CompareRequested) -> None:
        from asr_tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(message.run_dirs))

    def on_open_checkpoints(self, message: OpenCheckpoints) -> None:
        from asr_tui.screens.checkpoints import CheckpointsScreen

        self.push_screen(CheckpointsScreen(message.run_dir))

    def on_preset_loaded(self, message: PresetLoaded) -> None:
        from asr_tui.screens.presets import PresetsScreen
        from asr_tui.screens.setup import SetupScreen

        self.preset, self.preset_path = message.config, message.path
        while isinstance(self.screen, (PresetsScreen, SetupScreen)):
            self.pop_screen()
        self.push_screen(SetupScreen(message.config, preset_path=message.path))
        self.notify(f"preset {message.path.name} loaded")

    def on_launch_requested(self, message: LaunchRequested) -> None:
        self._launch(message.config)

    @work(thread=True, group="launch")
    def _launch(self, config: dict) -> None:
        from asr_tui.launcher import LaunchError

        try:
            run_dir = self.launcher.launch(config)
        except (LaunchError, OSError) as exc:
            self.call_from_thread(self.notify, str(exc), title="launch failed", severity="error", timeout=15)
            return
        self.call_from_thread(self._launched, run_dir, "launched")

    def _launched(self, run_dir: Path, what: str) -> None:
        from asr_tui.screens.monitor import MonitorScreen

        self.notify(f"{what} {run_dir}")
        self._open(MonitorScreen(run_dir))

    def on_node_scripts_requested(self, message: NodeScriptsRequested) -> None:
        """Write RUN/config.yaml (if new) and run_node{N}.sh for every node, for the other machines."""
        from asr_tui.command import write_node_scripts
        from engine.config import dump_config, save_config

        config, config_path = message.config, message.config_path
        if config_path.exists() and config_path.read_text(encoding="utf-8") != dump_config(config):
            self.notify(f"{config_path} already holds a different config (an earlier run?): "
                        "choose another output_dir.", severity="error", timeout=10)
            return
        try:
            save_config(config, config_path)
            paths = write_node_scripts(config, config_path, config_path.parent, workdir=message.workdir)
        except OSError as exc:
            self.notify(f"Cannot write the scripts: {exc}", severity="error", timeout=10)
            return
        self.notify(f"Wrote {', '.join(p.name for p in paths)} in {config_path.parent}", timeout=8)

    def on_resume_requested(self, message: ResumeRequested) -> None:
        self.notify(f"resuming {message.run_dir.name} from {message.checkpoint.name} …")
        self._resume(message.run_dir, message.checkpoint)

    @work(thread=True, group="launch")
    def _resume(self, run_dir: Path, checkpoint: Path) -> None:
        from asr_tui.launcher import LaunchError

        try:
            self.launcher.resume(run_dir, checkpoint)
        except (LaunchError, OSError) as exc:
            self.call_from_thread(self.notify, str(exc), title="resume failed", severity="error", timeout=15)
            return
        self.call_from_thread(self._launched, run_dir, f"resumed from {checkpoint.name}:")

    def on_run_stop_requested(self, message: RunStopRequested) -> None:
        run_dir = message.run_dir

        def answered(stop: bool | None) -> None:
            if stop:
                self._stop(run_dir)

        self.push_screen(ConfirmScreen(f"Stop {run_dir.name}?\nSIGTERM to its process group: "
                                       "the engine saves and ends the run.", yes="Stop"), answered)

    def _stop(self, run_dir: Path) -> None:
        from asr_tui.launcher import LaunchError

        try:
            pgid = self.launcher.stop(run_dir)
        except LaunchError as exc:
            self.notify(str(exc), title="stop failed", severity="error", timeout=10)
            return
        self.notify(f"SIGTERM sent to process group {pgid} of {run_dir.name}")

    # Command palette: every binding of the current screen and of the app, plus every run.

    def navigation_commands(self) -> list[SystemCommand]:
        """The screens every other screen can reach, whatever is focused."""
        return [
            SystemCommand("Runs", "the list of runs (u, F9)", self.action_runs),
            SystemCommand("New run", "the setup form (n, F10)", self.action_new_run),
            SystemCommand("Presets", "load a preset into the form, or save the form as one (p)",
                          self.action_presets),
            SystemCommand("Compare runs", "the runs marked in the runs list, side by side",
                          self.action_compare_runs),
            SystemCommand("Environment", "versions, GPUs, NCCL, tools, free disk (asr-train doctor)",
                          self.action_environment),
            SystemCommand("Back", "the screen below this one (Esc)", self.action_back),
        ]

    def action_compare_runs(self) -> None:
        """Compare the runs marked in the runs list (the runs list says how to mark them)."""
        self.action_runs()
        self.call_later(self.screen_stack[0].run_action, "compare")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        navigation = self.navigation_commands()
        yield from navigation
        seen = {command.title for command in navigation}
        for active in screen.active_bindings.values():
            binding = active.binding
            if not binding.description or not active.enabled or binding.description in seen:
                continue
            seen.add(binding.description)
            yield SystemCommand(binding.description, f"key {binding.key_display or binding.key}",
                                partial(self.run_action, binding.action, active.node))
        runs = self.screen_stack[0]
        if isinstance(runs, RunsScreen):
            for summary in runs.summaries.values():
                yield SystemCommand(f"Open run {summary.name}", f"{summary.status}: {summary.run_dir}",
                                    partial(self.post_message, OpenRun(summary.run_dir)), discover=False)
                yield SystemCommand(f"Checkpoints of {summary.name}", str(summary.run_dir),
                                    partial(self.post_message, OpenCheckpoints(summary.run_dir)),
                                    discover=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-tui",
        description="Terminal console to set up, launch and watch ASR training runs.")
    parser.add_argument("--preset", type=Path, help="open the setup form with this preset (YAML)")
    parser.add_argument("--runs-root", type=Path,
                        help="folder holding run directories (default: ./exp, or the parent of the preset's output_dir)")
    parser.add_argument("--run", type=Path, help="open the monitor of this run directory")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    preset = None
    if args.preset is not None:
        from asr_tui.presets_store import PresetError, load_preset

        try:
            preset = load_preset(args.preset)
        except PresetError as exc:
            parser.error(str(exc))
    if args.run is not None and not args.run.is_dir():
        parser.error(f"--run {args.run}: no such run directory")
    runs_root = args.runs_root
    if runs_root is None:
        if args.run is not None:
            runs_root = args.run.resolve().parent
        elif preset is not None:
            runs_root = Path(str(preset.get("output_dir") or "exp/run")).parent
        else:
            runs_root = Path("exp")
    app = AsrTuiApp(runs_root=runs_root, preset=preset, preset_path=args.preset, run_dir=args.run)
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
