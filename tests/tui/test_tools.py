"""Helper commands run by the console: progress lines, cancellation of a stubborn child."""

import sys
import time

from asr_tui.tools import ToolRun


def test_progress_line_follows_carriage_returns(tmp_path):
    script = "import sys,time\nfor i in (10, 60, 100):\n    print(f'\\rdecoding {i}%', end='', file=sys.stderr, flush=True)\n"
    run = ToolRun([sys.executable, "-c", script], tmp_path / "tool.log").start()
    assert run.wait(30) == 0
    assert run.progress_line() == "decoding 100%"
    assert run.tail(1) == ["decoding 100%"]


def test_cancel_kills_a_child_that_ignores_sigterm(tmp_path):
    script = "import signal,time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)\n"
    run = ToolRun([sys.executable, "-c", script], tmp_path / "tool.log").start()
    deadline = time.monotonic() + 30
    while "ready" not in run.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    run.cancel(grace_s=0.5)
    assert run.poll() is not None and run.poll() < 0
    assert time.monotonic() - started < 10
