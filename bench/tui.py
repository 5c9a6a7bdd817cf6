"""Console figures, one ``name: value`` per line.

first_frame_s: from starting ``asr-tui`` (a fresh interpreter) to its first painted frame
(goal <= 0.3; torch must not be imported), the median of three starts; first_frame_textual_s, the
same for a bare Textual app of the same widgets (header, table, footer): the floor the console's own
start-up adds to, measured in the same run. follow_cpu_fraction: CPU of the console, in cores,
while its monitor follows a run of 8 ranks writing 200 events/s with the health view (the
Resources tab: per-rank memory and CPU charts, and the health line) on show (goal <= 0.03).
attach_1m_events_s: opening the monitor of a run whose log holds 1,000,000 events until the
whole history is on screen (goal <= 1.0). compare_4x100k_s: opening the Compare screen of four
runs of 100,000 events each from the runs list until its first full frame (curves drawn;
goal <= 1.0).
peak_rss_mb: the console's peak resident memory.

    python bench/tui.py [--events 1000000] [--follow-seconds 10] [--rate 200] [--compare-events 100000]

The console runs headless (Textual's headless driver) in a child process per figure; run
directories are made in a temporary folder and removed afterwards. The children compile their
bytecode into that folder (PYTHONPYCACHEPREFIX), and one unmeasured start comes first, so every
figure is that of an installed console's later starts, whether or not the environment sets
PYTHONDONTWRITEBYTECODE.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RANKS = 2  # the big logs (attach, compare)
FOLLOW_RANKS = 8  # the live run followed


def train_line(step: int, when: float, ranks: int = RANKS) -> str:
    """One train event as the engine writes it (compact JSON, a row per rank with its resources)."""
    loss = 3.0 / (1 + step / 5000) + 0.2
    rows = ",".join(
        f'{{"rank":{r},"loss":{loss + 0.01 * r:.5f},"batch_size":24,"data_load_s":0.004,'
        f'"forward_s":0.118,"backward_s":0.207,"optim_s":0.011,"total_s":0.341,"memory_mb":812.4,'
        f'"peak_memory_mb":900.1,"rss_mb":{2100 + r + step % 7:.1f},"cpu_percent":{97.5 + r:.1f}}}'
        for r in range(ranks))
    return (f'{{"event":"train","time":{when:.3f},"epoch":{step // 10000 + 1},"step":{step},'
            f'"lr":{{"main":{1e-3 * min(1.0, step / 25000):.6g}}},"loss":{loss:.5f},'
            f'"acc":{0.9 - 0.8 / (1 + step / 3000):.5f},"grad_norm":{{"main":2.513}},'
            f'"throughput":812.5,"padding_ratio":0.11,"skipped":{{"main":0}},"ranks":[{rows}]}}\n')


def start_fields(steps_per_epoch: int, max_epoch: int, ranks: int = RANKS) -> dict:
    return {"world_size": ranks, "num_params": 30_000_000, "steps_per_epoch": steps_per_epoch,
            "max_epoch": max_epoch, "resumed_from": None, "config": {}}


def make_run(run_dir: Path, events: int, pid: int | None, lr_scale: float = 1.0, ranks: int = RANKS) -> None:
    """A run directory whose log holds ``events`` events (train, with valid and checkpoints).

    The engine's EventWriter writes every event but train (so the log's index is the engine's
    own); the train lines, 99% of the log, are formatted here (train_line) and appended in
    blocks, which makes a million-event log in seconds.
    """
    from engine.events import EventWriter

    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(f"optim_sches:\n  main:\n    optim_conf:\n      lr: {1e-3 * lr_scale}\n")
    record = {"argv": ["bench"], "pid": pid, "pgid": pid, "host": os.uname().nodename,
              "start_time": time.time(), "status": "running", "launched_by": "asr-tui"}
    (run_dir / "run.json").write_text(json.dumps(record))
    now = time.time() - events
    path = run_dir / "events.jsonl"
    with EventWriter(path) as writer, open(path, "ab", buffering=0) as train:
        writer.write("start", time=now, **start_fields(max(1, events // 10), 20, ranks))
        chunk = []
        for index in range(1, events):
            step = index * 10
            if index % 100:
                chunk.append(train_line(step, now + index, ranks))
                continue
            train.write("".join(chunk).encode())
            chunk.clear()
            if index % 1000 == 0:
                writer.write("checkpoint", time=now + index, path=f"model.pt.ep1.{step}", epoch=1, step=step,
                             metric="acc", metrics={"acc": 0.7, "loss": 1.5}, kept=[], deleted=[])
            else:
                writer.write("valid", time=now + index, epoch=1, step=step, loss=1.5, acc=0.7)
        train.write("".join(chunk).encode())


def child_report(**figures) -> None:
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("BENCH " + json.dumps(figures), flush=True)


CHILD_ENV = dict(os.environ)


def run_child(args: list[str], timeout: float = 300) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True,
                         timeout=timeout, cwd=tempfile.gettempdir(), env=CHILD_ENV)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH "):
            return json.loads(line[6:])
    raise RuntimeError(f"bench child {args} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")


# Children: each runs the console headless and reports one figure.

def child_first_frame(root: str, started: float) -> None:
    from asr_tui.app import AsrTuiApp

    class Timed(AsrTuiApp):
        def on_mount(self) -> None:
            # No super().on_mount(): Textual calls every class's on_mount along the MRO, and
            # calling it again here would push a second monitor and double the work measured.
            self.call_after_refresh(self.first_frame)

        def first_frame(self) -> None:
            child_report(first_frame_s=time.time() - started, cpu_s=time.process_time(),
                         torch_imported="torch" in sys.modules)
            self.exit()

    Timed(runs_root=Path(root)).run(headless=True, size=(80, 24))


def child_bare_textual(started: str) -> None:
    """The floor: a Textual app of the widgets the runs list shows first, nothing of ours."""
    from textual.app import App
    from textual.widgets import DataTable, Footer, Header, Static

    class Bare(App):
        def compose(self):
            yield Header()
            yield Static("runs")
            yield DataTable()
            yield Footer()

        def on_mount(self) -> None:
            self.call_after_refresh(self.first_frame)

        def first_frame(self) -> None:
            child_report(first_frame_s=time.time() - float(started), cpu_s=time.process_time())
            self.exit()

    Bare().run(headless=True, size=(80, 24))


def child_follow(run_dir: str, seconds: float, tab: str = "resources") -> None:
    from asr_tui.app import AsrTuiApp
    from asr_tui.screens.monitor import MonitorScreen
    from asr_tui.widgets.chart import MetricChart

    class Following(AsrTuiApp):
        def on_mount(self) -> None:  # AsrTuiApp.on_mount runs too (Textual walks the MRO)
            self.shown_at: float | None = None
            self.waiting = self.set_interval(0.1, self.settle)

        def settle(self) -> None:
            # Measured once the monitor has attached, shown the tab, drawn its charts and
            # imported plotext, then followed a second more: the figure is the steady cost of
            # following, not that of attaching or of drawing a tab the first time (waited for
            # rather than timed, so that a starved machine cannot move them into the window).
            monitor = self.screen
            if not isinstance(monitor, MonitorScreen) or not monitor.attached:
                return
            if self.shown_at is None:
                monitor.action_tab(tab)
                self.shown_at = time.monotonic()
                return
            charts = [c for c in monitor.query_one(f"#{tab}").query(MetricChart) if c.display]
            drawn = all(c._drawn_key is not None for c in charts)
            if drawn and "plotext" in sys.modules and time.monotonic() - self.shown_at > 2.0:
                self.waiting.stop()
                self.begin()

        def begin(self) -> None:
            monitor = self.screen
            self.steps_before = monitor.follower.state.step or 0
            self.cpu_before = time.process_time()
            self.wall_before = time.monotonic()
            self.set_timer(seconds, self.finish)

        def finish(self) -> None:
            cpu = time.process_time() - self.cpu_before
            wall = time.monotonic() - self.wall_before
            followed = (self.screen.follower.state.step or 0) - self.steps_before
            child_report(follow_cpu_fraction=cpu / wall, followed_steps=followed)
            self.exit()

    Following(runs_root=Path(run_dir).parent, run_dir=Path(run_dir)).run(headless=True, size=(120, 40))


def child_attach(run_dir: str) -> None:
    from asr_tui.app import AsrTuiApp
    from asr_tui.screens.monitor import MonitorScreen

    class Attaching(AsrTuiApp):
        def on_mount(self) -> None:  # AsrTuiApp.on_mount runs too (Textual walks the MRO)
            self.opened = time.perf_counter()
            self.cpu_opened = time.process_time()
            self.set_interval(0.1, self.check)

        def check(self) -> None:
            monitor = self.screen
            if isinstance(monitor, MonitorScreen) and monitor.attached:
                state = monitor.follower.state
                child_report(attach_1m_events_s=time.perf_counter() - self.opened,
                             attach_cpu_s=time.process_time() - self.cpu_opened,
                             scan_s=monitor.attach_seconds,
                             steps=state.step, valid_points=state.series["valid/acc"].total_points,
                             checkpoints=len(state.checkpoints))
                self.exit()

    Attaching(runs_root=Path(run_dir).parent, run_dir=Path(run_dir)).run(headless=True, size=(120, 40))


def child_compare(root: str) -> None:
    from asr_tui.app import AsrTuiApp
    from asr_tui.screens.compare import CompareScreen
    from asr_tui.widgets.compare_chart import CompareChart

    run_dirs = sorted(p for p in Path(root).iterdir() if p.is_dir())

    class Comparing(AsrTuiApp):
        def on_mount(self) -> None:  # AsrTuiApp.on_mount runs too (Textual walks the MRO)
            # Compare is opened from the runs list: measured from there, once it is painted.
            self.set_timer(2.0, self.open_compare)

        def open_compare(self) -> None:
            self.opened = time.perf_counter()
            self.cpu_opened = time.process_time()
            self.push_screen(CompareScreen(run_dirs))
            self.check_timer = self.set_interval(0.02, self.check)

        def check(self) -> None:
            screen = self.screen
            if isinstance(screen, CompareScreen) and screen.loaded and all(
                    "no data" not in chart.drawing.plain and chart.drawing.plain
                    for chart in screen.query(CompareChart)):
                self.call_after_refresh(self.drawn, screen)
                self.check_timer.stop()

        def drawn(self, screen) -> None:
            child_report(compare_4x100k_s=time.perf_counter() - self.opened,
                         compare_cpu_s=time.process_time() - self.cpu_opened, load_s=screen.load_seconds,
                         runs=len(screen.runs), steps=[run.state.step for run in screen.runs])
            self.exit()

    Comparing(runs_root=Path(root)).run(headless=True, size=(80, 24))


def writer(run_dir: Path, rate: float, stop_file: Path) -> None:
    """Append ``rate`` train events per second (in batches, as a busy rank 0 would) until told to stop."""
    from engine.events import EventWriter

    step = 0
    with EventWriter(run_dir / "events.jsonl") as events:
        events.write("start", **start_fields(1_000_000, 10, FOLLOW_RANKS))
    with open(run_dir / "events.jsonl", "a", encoding="utf-8") as handle:
        next_at = time.monotonic()
        while not stop_file.exists():
            batch = max(1, int(rate / 20))
            handle.write("".join(train_line(step + i * 10, time.time(), FOLLOW_RANKS) for i in range(batch)))
            handle.flush()
            step += batch * 10
            next_at += batch / rate
            time.sleep(max(0.0, next_at - time.monotonic()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--follow-seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--compare-events", type=int, default=100_000)
    parser.add_argument("--follow-tab", default="resources", choices=("overview", "charts", "log", "resources"),
                        help="the monitor tab on show while following (default: the health view)")
    parser.add_argument("--only", choices=("first_frame", "follow", "attach", "compare"), action="append",
                        help="measure only these figures (repeatable)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        {"first_frame": lambda: child_first_frame(rest[0], float(rest[1])),
         "bare_textual": lambda: child_bare_textual(rest[0]),
         "follow": lambda: child_follow(rest[0], float(rest[1]), *rest[2:]),
         "attach": lambda: child_attach(rest[0]),
         "compare": lambda: child_compare(rest[0])}[kind]()
        return

    started = time.perf_counter()
    sum(range(10**6))
    print(f"# machine: sum(range(10**6)) took {(time.perf_counter() - started) * 1000:.0f} ms "
          f"(about 15 ms on an idle modern core); load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="asr-tui-bench-"))
    CHILD_ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    CHILD_ENV["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    only = set(args.only or ("first_frame", "follow", "attach", "compare"))
    rss = []
    try:
        run_child(["first_frame", str(work / "empty"), repr(time.time())])  # compiles the bytecode
        run_child(["bare_textual", repr(time.time())])
        if "first_frame" in only:
            firsts, bares = [], []
            for _ in range(3):  # alternated, so that a burst of load falls on both
                firsts.append(run_child(["first_frame", str(work / "empty"), repr(time.time())]))
                bares.append(run_child(["bare_textual", repr(time.time())]))
            first = sorted(firsts, key=lambda f: f["first_frame_s"])[1]
            bare = sorted(bares, key=lambda f: f["first_frame_s"])[1]
            print(f"first_frame_s: {first['first_frame_s']:.3f}")
            print(f"first_frame_textual_s: {bare['first_frame_s']:.3f}")
            print(f"# first frame: {first['cpu_s']:.2f} CPU-s of the console, {bare['cpu_s']:.2f} of the bare "
                  f"Textual app (interpreter start included)", file=sys.stderr)
            if any(f["torch_imported"] for f in firsts):
                print("warning: torch was imported at start", file=sys.stderr)
            rss.append(first["peak_rss_mb"])

        if "follow" in only:
            live = work / "live"
            make_run(live, 1000, os.getpid(), ranks=FOLLOW_RANKS)
            stop_file = work / "stop"
            feeder = subprocess.Popen([sys.executable, "-c",
                                       "import sys; sys.path.insert(0, sys.argv[1]); import bench.tui as b; "
                                       "from pathlib import Path; b.writer(Path(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4]))",
                                       str(ROOT), str(live), str(args.rate), str(stop_file)])
            try:
                follow = run_child(["follow", str(live), str(args.follow_seconds), args.follow_tab])
            finally:
                stop_file.touch()
                feeder.wait(30)
            print(f"follow_cpu_fraction: {follow['follow_cpu_fraction']:.3f}")
            rss.append(follow["peak_rss_mb"])
            if follow["followed_steps"] <= 0:
                print("warning: the monitor did not follow the writer", file=sys.stderr)

        if "attach" in only:
            big = work / "big"
            started = time.perf_counter()
            make_run(big, args.events, None)
            size_mb = (big / "events.jsonl").stat().st_size / 1e6
            print(f"# made a log of {args.events} events ({size_mb:.0f} MB) in {time.perf_counter() - started:.1f}s",
                  file=sys.stderr)
            attach = run_child(["attach", str(big)])
            print(f"attach_1m_events_s: {attach['attach_1m_events_s']:.3f}")
            print(f"# attach: {attach['attach_cpu_s']:.2f} CPU-s of the console, history scan {attach['scan_s']:.2f}s; "
                  f"{attach['steps']} steps, {attach['valid_points']} valid points, {attach['checkpoints']} checkpoints",
                  file=sys.stderr)
            rss.append(attach["peak_rss_mb"])
            shutil.rmtree(big)

        if "compare" in only:
            runs = work / "compare"
            for index in range(4):
                make_run(runs / f"run{index}", args.compare_events, None, lr_scale=1 + index)
            compare = run_child(["compare", str(runs)])
            print(f"compare_4x100k_s: {compare['compare_4x100k_s']:.3f}")
            print(f"# compare: {compare['compare_cpu_s']:.2f} CPU-s of the console, reading the runs "
                  f"{compare['load_s']:.2f}s; steps {compare['steps']}", file=sys.stderr)
            rss.append(compare["peak_rss_mb"])
        print(f"peak_rss_mb: {max(rss):.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
