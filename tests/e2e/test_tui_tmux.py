"""Drive the installed ``asr-tui`` inside tmux, by keys only, through a whole experiment.

Load the shipped demo preset from the presets screen, type a short schedule and two processes
into the setup form's fields, launch it as a 2-process CPU torchrun job, drop the terminal (as a
lost SSH connection does) and open a new console on the running job, watch the rank table and
the charts fill, stop it, resume it with one key, let it finish, average checkpoints and decode
the test split, then go back to the runs list and compare it with a run started from a script
(``asr-train --config``) -- reading the terminal with capture-pane at 80x24 as a user over SSH would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ASR_TUI = BIN / "asr-tui"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
    pytest.mark.skipif(not ASR_TUI.exists(), reason="asr-tui is not installed in this environment"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Tmux:
    """One detached tmux session running a command; keys in, screen text out."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str], width=80, height=24):
        self.name = f"asr-tui-e2e-{uuid.uuid4().hex[:8]}"
        self.socket = ["-L", self.name]  # a private tmux server: nothing shared with the user's
        env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        subprocess.run(["tmux", *self.socket, "new-session", "-d", "-s", self.name, "-x", str(width),
                        "-y", str(height), "-c", str(cwd), *env_args, *command], check=True)

    def keys(self, *keys: str) -> None:
        for key in keys:
            subprocess.run(["tmux", *self.socket, "send-keys", "-t", self.name, key], check=True)
            time.sleep(0.15)

    def type(self, text: str) -> None:
        """Type ``text`` literally, as characters (not key names)."""
        subprocess.run(["tmux", *self.socket, "send-keys", "-t", self.name, "-l", text], check=True)
        time.sleep(0.15)

    def show_tab(self, key: str, first_label: str) -> None:
        """Press a tab's F-key and wait until its first field shows and the app has settled.

        Textual resolves Home or ctrl+k (Input bindings) only after the key has bubbled up
        through the widgets' queues, so while the app is busy mounting a tab a typed character
        can overtake them; a person looks before typing, and so does this.
        """
        self.keys(key)
        self.wait_for(first_label)
        time.sleep(1.0)

    def fill(self, *fields: tuple[str, str] | None) -> None:
        """Type into the focused field, then into each next one (Tab): a (label, value) replaces
        the field's text and waits until the screen shows the value beside its label (typed
        again if a key was overtaken); None leaves a field as it is. At the end every value
        must still show: a Tab overtaken by the keys after it would have typed into the field
        it was leaving."""
        shown = {label: re.compile(rf"^\s*{re.escape(label[:20])}\S*\s+{re.escape(value)}(\s|$)", re.M)
                 for label, value in filter(None, fields)}
        for index, field in enumerate(fields):
            if index:
                self.keys("Tab")
                # The focus moves when the app gets to the Tab; capture-pane does not show where
                # the focus is, so give a loaded machine (many runs at once) a second for it.
                time.sleep(1.0)
            if field is None:
                continue
            label, value = field
            for _ in range(3):
                self.keys("Home", "C-k")
                self.type(value)
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and not shown[label].search(self.screen()):
                    time.sleep(0.2)
                if shown[label].search(self.screen()):
                    break
            else:
                raise AssertionError(f"{label} does not show {value!r}; screen:\n{self.screen()}")
        screen = self.screen()
        wrong = [label for label, pattern in shown.items() if not pattern.search(screen)]
        assert not wrong, f"{wrong} changed while the next fields were typed; screen:\n{screen}"

    def screen(self) -> str:
        out = subprocess.run(["tmux", *self.socket, "capture-pane", "-p", "-t", self.name],
                             capture_output=True, text=True)
        return out.stdout

    def wait_for(self, *texts: str, timeout: float = 60.0, absent: str | None = None) -> str:
        """Wait until every text is on screen (and ``absent`` is not); returns the screen."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if all(text in screen for text in texts) and (absent is None or absent not in screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout}s for {texts!r}; screen:\n{screen}")
            time.sleep(0.3)

    def close(self) -> None:
        subprocess.run(["tmux", *self.socket, "kill-server"], capture_output=True)


def events(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_events(run_dir: Path, condition, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while not condition(found := events(run_dir)):
        if time.monotonic() > deadline:
            raise AssertionError(f"events of {run_dir}: {[e['event'] for e in found][-20:]}")
        time.sleep(0.3)
    return found


def wait_file(path: Path, timeout: float) -> Path:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} was not written in {timeout}s")
        time.sleep(0.3)
    return path


def stop_leftover_job(run_dir: Path) -> None:
    """A failed test must not leave its detached torchrun job behind."""
    try:
        record = json.loads((run_dir / "run.json").read_text())
        os.killpg(record["pgid"], signal.SIGKILL)
    except (OSError, ValueError, KeyError, TypeError):
        pass


def test_whole_experiment_by_keys(tmp_path):
    started = time.monotonic()
    subprocess.run([str(BIN / "asr-data"), "demo", "--out", str(tmp_path / "data" / "demo"),
                    "--num-train", "40"], check=True, capture_output=True, timeout=120)
    port = free_port()
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "TERM": "xterm-256color",
           "OMP_NUM_THREADS": "1", "PATH": os.environ.get("PATH", "")}
    if os.environ.get("PYTHONPATH"):  # a checkout put before the installed package: the console runs it
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    tmux = Tmux([str(ASR_TUI), "--runs-root", "exp"], cwd=tmp_path, env=env)
    run_dir = tmp_path / "exp" / "e2e"
    script_dir = tmp_path / "exp" / "script"
    script_run = None
    try:
        tmux.wait_for("Runs under", "No runs under")
        # A second run, started from a script while the form is filled in (one short epoch), to
        # compare with at the end: the console lists and compares runs it did not launch.
        with open(tmp_path / "script.log", "wb") as log:
            script_run = subprocess.Popen(
                [str(BIN / "asr-train"), "--config", str(ROOT / "presets" / "conformer-demo.yaml"),
                 "++output_dir=exp/script", "++train_conf.max_epoch=1", "++train_conf.log_interval=1",
                 "++train_conf.validate_interval=4", "++train_conf.save_checkpoint_interval=4",
                 "++dataset_conf.batch_size=1500"],
                cwd=tmp_path, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        # Load the shipped demo preset from the presets screen.
        tmux.keys("p")
        tmux.wait_for("conformer-demo  shipped")
        for _ in range(20):  # down the list until the preview's title names it
            if "conformer-demo · " in tmux.screen():
                break
            tmux.keys("Down")
            time.sleep(0.3)
        tmux.wait_for("conformer-demo · ")
        tmux.keys("Enter")
        # The form's other tabs mount right after its first frame (its status line says so):
        # a person waits for them before typing, and so does this.
        tmux.wait_for("F8 Run", "exp/conformer-demo", " · ctrl+", absent="loading tabs", timeout=120)
        # Type a short run into the form: F2..F7 show a tab with the cursor in its first field.
        tmux.show_tab("F2", "output_dir")
        tmux.fill(("output_dir", "exp/e2e"))
        tmux.show_tab("F4", "batch_type")
        tmux.fill(None, ("batch_size", "1500"))
        tmux.show_tab("F5", "max_epoch")
        tmux.fill(("max_epoch", "6"), ("log_interval", "1"), ("validate_interval", "4"),
                  ("save_checkpoint_interval", "4"))
        tmux.show_tab("F7", "nnodes")
        tmux.fill(None, ("nproc_per_node", "2"), None, None, ("master_port", str(port)))
        tmux.keys("F8")
        tmux.wait_for("The config is complete", "torch.distributed.run", "--nproc_per_node")
        tmux.keys("C-r")
        tmux.wait_for("Monitor e2e", "launched")
        config = yaml.safe_load(wait_file(run_dir / "config.yaml", 30).read_text())
        assert config["output_dir"] == "exp/e2e"
        assert config["dataset_conf"]["batch_size"] == 1500
        assert {k: config["train_conf"][k] for k in ("max_epoch", "log_interval", "validate_interval",
                                                      "save_checkpoint_interval")} == {
            "max_epoch": 6, "log_interval": 1, "validate_interval": 4, "save_checkpoint_interval": 4}
        assert config["distributed"]["nproc_per_node"] == 2
        assert config["distributed"]["master_port"] == port
        assert config["encoder_conf"]["num_blocks"] == 3  # the rest is the demo preset's
        # The SSH connection drops: the terminal hangs up on the console; the job runs on, and a
        # new console lists it as running and opens its monitor.
        tmux.wait_for("running")
        tmux.close()
        os.kill(json.loads((run_dir / "run.json").read_text())["pid"], 0)
        tmux = Tmux([str(ASR_TUI), "--runs-root", "exp"], cwd=tmp_path, env=env)
        tmux.wait_for("Runs under", "e2e", "running")
        tmux.keys("Enter")
        tmux.wait_for("Monitor e2e")
        # The monitor: per-rank rows and charts fill while the job runs.
        tmux.wait_for("running", "batch size", timeout=90)
        screen = tmux.wait_for("memory mb", timeout=60)
        assert screen.count("\n 0 ") + screen.count("\n 1 ") >= 2 or " 1     " in screen
        tmux.keys("2")
        tmux.wait_for("loss", "┤", timeout=30)
        # Stop: SIGTERM to the process group; the engine saves and ends the run as stopped.
        tmux.keys("s")
        tmux.wait_for("Stop e2e?")
        tmux.keys("y")
        tmux.wait_for("stopped", timeout=60)
        found = wait_events(run_dir, lambda ev: ev and ev[-1]["event"] == "end", 30)
        assert found[-1]["status"] == "stopped"
        assert (run_dir / "model.pt").exists()
        # Resume with one key, from model.pt; let it finish.
        tmux.keys("r")
        tmux.wait_for("resumed from model.pt", timeout=60)
        found = wait_events(run_dir, lambda ev: sum(e["event"] == "start" for e in ev) == 2, 60)
        starts = [e for e in found if e["event"] == "start"]
        assert starts[1]["resumed_from"] and starts[1]["resumed_from"].endswith("model.pt")
        tmux.wait_for("finished", timeout=150)
        # Checkpoints: the n-best are marked; average them, then decode the test split.
        tmux.keys("c")
        screen = tmux.wait_for("n-best: 3 by valid acc", "model.pt.ep")
        assert screen.count("●") >= 2
        tmux.keys("a")
        tmux.wait_for("Average", "checkpoints into model.pt.avg")
        tmux.keys("y")
        tmux.wait_for("averaging", ": done", timeout=90)
        averages = [e for e in events(run_dir) if e["event"] == "average"]
        assert len(averages) >= 2  # the run's own at its end, and ours
        tmux.keys("d")  # the cursor is on the new average
        tmux.wait_for("Decode with model.pt.avg", "data/demo/test.jsonl")
        tmux.keys("Enter")
        screen = tmux.wait_for("CER", "WER", "utts", timeout=120)
        summaries = list((run_dir / "decode").glob("*/summary.json"))
        assert len(summaries) == 1
        summary = json.loads(summaries[0].read_text())
        assert summary["utterances"] == 20 and summary["mode"] == "ctc_greedy"
        assert f"{summary['cer'] * 100:.2f}%" in screen
        # Back to the runs list (u), mark both runs (space moves on), compare them (v).
        assert script_run.wait(timeout=120) == 0, (tmp_path / "script.log").read_text()[-2000:]
        tmux.keys("u")
        tmux.wait_for("Runs under", "script", timeout=30)
        screen = tmux.wait_for("e2e", "script", absent="running", timeout=30)
        assert screen.count("finished") >= 2
        tmux.keys("Home", "space", "space", "v")
        tmux.wait_for("e2e (finished)", "script (finished)", "x: update step", timeout=60)
        tmux.wait_for("train loss", "┤", timeout=30)  # the curves, on shared axes
        tmux.keys("2")  # best figures: the e2e run's decode is there, the script run has none
        screen = tmux.wait_for("best CER", f"{summary['cer'] * 100:.2f}", timeout=30)
        tmux.keys("3")  # the config diff: only the keys that differ
        screen = tmux.wait_for("train_conf.max_epoch", timeout=30)
        assert re.search(r"^\s*train_conf\.max_epoch\s+6\s+1\s*$", screen, re.M), screen
        assert re.search(r"^\s*distributed\.nproc_per_node\s+2\s+1\s*$", screen, re.M), screen
        assert not re.search(r"^\s*(output_dir|encoder_conf\S*)\s", screen, re.M), screen  # equal or left out
        tmux.keys("q")
    finally:
        tmux.close()
        stop_leftover_job(run_dir)
        if script_run is not None and script_run.poll() is None:
            os.killpg(script_run.pid, signal.SIGKILL)
    assert time.monotonic() - started < 300
