"""The monitor's health line: what :mod:`asr_tui.health` finds wrong with the job, or that all is well."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

from asr_tui.health import Finding


def health_text(findings: list[Finding], judged: bool = True) -> Text:
    """One line per finding (the first two), each naming the rank and the figure."""
    if not judged:
        return Text("health: waiting for train events", style="dim")
    if not findings:
        return Text("health ok", style="dim green")
    text = Text()
    for index, finding in enumerate(findings[:2]):
        if index:
            text.append("\n")
        text.append("⚠ ", style="bold yellow")
        text.append(finding.message, style="yellow")
    if len(findings) > 2:
        text.append(f"  (+{len(findings) - 2}: {', '.join(f.short for f in findings[2:])})", style="yellow")
    return text


class HealthLine(Static):
    """Shows the findings of a follower's run; :meth:`show` is called after each poll."""

    DEFAULT_CSS = """
    HealthLine { height: auto; max-height: 2; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(health_text([], judged=False), **kwargs)
        self.findings: list[Finding] = []
        self._shown: Text | None = None

    def show(self, follower, running: bool, now: float | None = None) -> None:
        """Judge the run (under the follower's lock: its poll thread feeds the events)."""
        with follower.lock:
            health = follower.state.health
            self.findings = health.findings(now=time.time() if now is None else now, alive=running)
            judged = bool(health.train)
        text = health_text(self.findings, judged)
        if text != self._shown:
            self._shown = text
            self.update(text)
