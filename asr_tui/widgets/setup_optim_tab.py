"""The Optim tab of the setup form: one editor per OptimScheduler and the live lr preview.

The tab owns the editors and the preview-steps field. The screen reads :meth:`OptimTab.entries`
(the ``optim_sches`` mapping the editors describe) after each :class:`OptimScheEditor.Changed`
and asks for a preview with :meth:`OptimTab.preview`; the step span comes from
:func:`asr_tui.step_estimate.estimate_steps`, else from the engine's own default (the preview's
worker computes it), and its source is shown as the field's placeholder.
"""

from __future__ import annotations

import copy

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input

from asr_tui.setup_fields import PREVIEW_STEPS
from asr_tui.step_estimate import estimate_steps
from asr_tui.widgets.form_fields import FormField, get_dotted
from asr_tui.widgets.form_optim_sche import OptimScheEditor
from asr_tui.widgets.lr_preview import LrPreview
from asr_tui.widgets.setup_tab import SetupTab
from engine.config import DEFAULTS

DUPLICATE_MARK = "~dup"


def unique_names(names: list[str]) -> list[str]:
    """Config keys for editors named ``names``: a repeated name gets ``~dup``, ``~dup2``, … so that
    no editor's entry replaces another's while the duplicate is being fixed."""
    taken: set[str] = set()
    keys = []
    for name in names:
        key, count = name, 1
        while key in taken:
            key = f"{name}{DUPLICATE_MARK}{count if count > 1 else ''}"
            count += 1
        taken.add(key)
        keys.append(key)
    return keys


class OptimTab(SetupTab):
    """Editors (the first expanded), an add button, then the preview pane."""

    DEFAULT_CSS = """
    OptimTab { overflow-y: hidden; }
    """

    class PreviewStepsChanged(Message):
        """The user typed (or cleared) the preview's step count: preview again."""

    def __init__(self, optim_sches: dict, **kwargs) -> None:
        super().__init__("optim", **kwargs)
        self._initial = optim_sches
        self.preview_steps: int | None = None  # typed by the user; None: estimated
        self._why = ""

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="optim-list"):
            for index, (name, entry) in enumerate(self._initial.items()):
                yield OptimScheEditor(name, entry, collapsed=index > 0)
            yield Button("Add an OptimScheduler (ctrl+n)", id="add-optim", compact=True)
        with Vertical(id="preview-pane"):
            yield FormField(PREVIEW_STEPS, None, id="preview-steps")
            yield LrPreview(id="lr-preview")

    def editors(self) -> list[OptimScheEditor]:
        return list(self.query_one("#optim-list", VerticalScroll).query_children(OptimScheEditor))

    def entries(self) -> dict:
        """The ``optim_sches`` mapping, in editor order (see :func:`unique_names`)."""
        editors = self.editors()
        keys = unique_names([editor.sche_name for editor in editors])
        return {key: copy.deepcopy(editor.entry) for key, editor in zip(keys, editors)}

    def duplicate_names(self) -> set[str]:
        names = [editor.sche_name for editor in self.editors()]
        return {name for name in names if names.count(name) > 1}

    async def add_editor(self) -> OptimScheEditor:
        """A new OptimScheduler with the default settings and the first free ``optim{N}`` name."""
        names = {editor.sche_name for editor in self.editors()}
        name = next(n for n in (f"optim{i}" for i in range(1, 1000)) if n not in names)
        editor = OptimScheEditor(name, copy.deepcopy(DEFAULTS["optim_sches"]["main"]))
        await self.query_one("#optim-list", VerticalScroll).mount(editor, before="#add-optim")
        return editor

    def preview(self, config: dict, train_stats: dict | None) -> None:
        """Redraw the lr curves of ``config`` (after the preview's debounce)."""
        steps, self._why = estimate_steps(config, train_stats)
        if steps is not None:
            self._set_placeholder(steps)
        optim_sches = config.get("optim_sches") or {}
        if optim_sches:
            accum = int(get_dotted(config, "train_conf.accum_grad", 1) or 1)
            self.query_one(LrPreview).request(optim_sches, self.preview_steps or steps, accum,
                                              config.get("train_conf") or {}, config=config,
                                              steps_given=bool(self.preview_steps))

    def _set_placeholder(self, steps: int) -> None:
        self.query_one("#preview-steps", FormField).query_one(Input).placeholder = f"{steps} ({self._why})"

    @on(FormField.Changed)
    def _steps_typed(self, event: FormField.Changed) -> None:
        if event.key != PREVIEW_STEPS.key:
            return
        event.stop()
        self.preview_steps = event.value
        self.post_message(self.PreviewStepsChanged())

    @on(LrPreview.Computed)
    def _computed(self, event: LrPreview.Computed) -> None:
        """The span drawn (the engine's default when nothing was estimated) goes in the placeholder."""
        if self.preview_steps is None and event.total_steps and self._why.startswith("the schedules"):
            self._set_placeholder(event.total_steps)
