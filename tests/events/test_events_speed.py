"""Benchmark-ish sanity: following a week-long run (1,000,000 events) must stay cheap.

Not a timed assertion (CI machines vary); it prints the figure and checks correctness at scale.
"""

import json
import time

from engine.events import EventReader


def test_read_one_million_events(tmp_path, capsys):
    line = json.dumps({"event": "train", "time": 1.7e9, "epoch": 3, "step": 0, "loss": 12.345,
                       "acc": 0.81, "lr": {"main": 8.1e-4}}, separators=(",", ":"))
    path = tmp_path / "events.jsonl"
    path.write_text((line + "\n") * 1_000_000, encoding="utf-8")
    reader = EventReader(path)
    start = time.perf_counter()
    events = reader.read_new()
    seconds = time.perf_counter() - start
    with capsys.disabled():
        print(f"\nevents_read_1m_s: {seconds:.2f}")
    assert len(events) == 1_000_000 and reader.malformed == 0
    assert events[-1]["lr"] == {"main": 8.1e-4}
