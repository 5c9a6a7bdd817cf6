"""Races and re-reads of the console's shared state: each test makes its failure likely."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from asr_tui.launcher import Launcher
from asr_tui.tailer import RunFollower, read_tail_events
from engine.events import EventWriter
from tests.tui.runfactory import RunFactory


@pytest.fixture
def fast_switches():
    """Switch threads every 10 µs instead of 5 ms, so both sides of a race interleave often."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(previous)


class ExitedChild:
    """A Popen whose process has exited: poll() answers its code."""

    def poll(self) -> int:
        return 0


def test_reap_from_the_timer_and_the_launch_worker_at_once(fast_switches):
    """Launcher.reap runs on the UI timer and in the launch worker: a child reaped by one is
    not deleted again by the other (that KeyError closed the app)."""
    launcher = Launcher(cwd=Path.cwd())
    errors: list[BaseException] = []
    reaped: list[int] = []
    rounds = 300

    def reaper(barrier: threading.Barrier) -> None:
        try:
            for _ in range(rounds):
                barrier.wait()
                reaped.append(len(launcher.reap()))
                barrier.wait()
        except BaseException as exc:  # noqa: BLE001 - the test reports whatever broke
            errors.append(exc)
            barrier.abort()

    barrier = threading.Barrier(3)
    threads = [threading.Thread(target=reaper, args=(barrier,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(rounds):
            launcher._children.update({Path(f"/runs/{i}"): ExitedChild() for i in range(200)})
            barrier.wait()
            barrier.wait()  # both reapers are done with this round
    except threading.BrokenBarrierError:
        pass
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(reaped) == rounds * 200  # every child reaped exactly once


def test_follower_starts_over_when_the_log_is_replaced(tmp_path):
    """A replaced events.jsonl is read again from its start: the state is rebuilt from it,
    not added on top (checkpoints, launches and chart points were doubled)."""
    run = RunFactory(tmp_path / "run")
    run.start()
    run.train(200)  # two checkpoints, 20 train points
    run.close()
    follower = RunFollower(run.run_dir)
    follower.attach()
    assert len(follower.state.checkpoints) == 2 and follower.state.launches == 1
    points = len(follower.state.series["train/loss"])
    # The same history written again as a new file (a copy-back, a re-sync), renamed over the old.
    replacement = tmp_path / "run" / "events.jsonl.new"
    original = (tmp_path / "run" / "events.jsonl").read_bytes()
    replacement.write_bytes(original)
    os.replace(replacement, tmp_path / "run" / "events.jsonl")
    update = follower.poll()
    assert len(follower.state.checkpoints) == 2
    assert follower.state.launches == 1
    assert len(follower.state.series["train/loss"]) == points
    assert update.restarted  # the monitor redraws everything


def test_tail_keeps_a_start_event_cut_by_its_first_window(tmp_path):
    """read_tail_events reads back from the end in windows; a `start` whose line begins just
    before the window (so the window's first, cut line holds its "event":"start") is found
    by reading on, not dropped with the cut line."""
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as writer:
        writer.write("train", epoch=1, step=1, loss=1.0)  # an older launch's event
        writer.write("start", world_size=1, num_params=10, steps_per_epoch=5, max_epoch=1,
                     resumed_from=None, config={})
    start_line_at = len(path.read_bytes().rsplit(b"\n", 2)[-2]) + 1  # bytes of the start line + newline
    head = path.stat().st_size - start_line_at
    # Train events after it, the last one padded so that the file ends exactly 64 KiB after the
    # start line's first byte: the first window then begins one byte into the start line.
    with EventWriter(path) as writer:
        step = 2
        while path.stat().st_size - (head + 1) < 64 * 1024 - 400:
            writer.write("train", epoch=1, step=step, loss=1.0)
            step += 1
        writer.write("train", epoch=1, step=step, loss=1.0, note="")
    data = path.read_bytes()
    pad = 64 * 1024 - (len(data) - (head + 1))
    path.write_bytes(data.replace(b'"note":""', b'"note":"' + b"x" * pad + b'"'))
    assert path.stat().st_size - 64 * 1024 == head + 1  # the window starts inside the start line
    events, complete, _ = read_tail_events(path)
    assert complete
    assert events[0]["event"] == "start"
    assert [e["step"] for e in events[1:3]] == [2, 3]


async def test_monitor_overview_reads_the_state_under_the_followers_lock(tmp_path, fast_switches):
    """The poll worker folds events into the follower's dicts while the UI thread draws the
    overview from them: drawing takes follower.lock ("dictionary changed size during iteration")."""
    from textual.app import App

    from asr_tui.screens.monitor import MonitorScreen
    from tests.tui.pilot import wait_for

    run = RunFactory(tmp_path / "run")
    run.start()
    run.train(100)
    run.close()

    class Host(App):
        def on_mount(self) -> None:
            self.push_screen(MonitorScreen(run.run_dir))

    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.attached)
        screen = app.screen
        follower = screen.follower
        stop = threading.Event()

        def poll_worker() -> None:  # changes the state's dicts as RunFollower.poll does, under its lock
            index = 0
            while not stop.is_set():
                with follower.lock:
                    split = f"extra{index % 300}"
                    if split in follower.state.data:  # the dict grows and shrinks, bounded
                        del follower.state.data[split]
                    else:
                        follower.state.apply({"event": "data", "split": split, "utterances": 1,
                                              "hours": 0.1, "dropped": {}, "lists": []})
                index += 1
                time.sleep(0)

        worker = threading.Thread(target=poll_worker)
        worker.start()
        try:
            for _ in range(50):
                screen._show_overview()
        finally:
            stop.set()
            worker.join()
