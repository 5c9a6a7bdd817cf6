"""The form of one OptimScheduler (SpeeChain ``optim_sches`` entry): optimiser plus schedule.

The general fields (optim_type, optim_conf, optim_loss, updated_modules, step_per_update) are
the same for every entry; the schedule's own fields depend on its ``type`` and are rebuilt when
the type changes. Keys the form has no field for stay in the entry and are editable as one YAML
mapping ("other conf"), so a preset never loses a setting by passing through the form.
"""

from __future__ import annotations

import copy
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Button, Collapsible

from asr_tui.widgets.form_fields import (
    FieldSpec, FormField, get_dotted, identifier, integer, mapping, name_list, number, number_list, pop_dotted, render,
    set_dotted, text,
)

OPTIM_TYPES = ("AdamW", "Adam", "SGD", "RAdam", "NAdam", "Adamax", "Adagrad", "Adadelta", "RMSprop")
LOSS_NAMES = ("loss", "loss_ctc", "loss_att")
MODULE_NAMES = ("encoder", "decoder", "ctc")


def _warmup(minimum: int, default: int) -> FieldSpec:
    return FieldSpec("conf.warmup_steps", "warmup_steps", integer(minimum=minimum), default=default,
                     help="real updates with the lr rising to its peak")


_MAX_UPDATE = FieldSpec("conf.max_update", "max_update", integer(minimum=1, optional=True), omit_empty=True,
                        default=100000, help="real optimiser updates of the whole run")
_MIN_LR = FieldSpec("conf.min_lr", "min_lr", number(minimum=0.0), default=0.0, help="the lr never goes below this")

# The fields of each schedule type: the keyword arguments of its sche_init in engine.optim_sche
# (tests/tui/test_setup_optim.py checks the two agree).
SCHEDULE_FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    "warmuplr": (_warmup(1, 25000),),
    "noam": (
        _warmup(1, 25000),
        FieldSpec("conf.d_model", "d_model", integer(minimum=1, optional=True), omit_empty=True,
                  placeholder="lr is the peak",
                  help="set to scale the peak as d_model^-0.5 (Transformer paper) instead of optim_conf.lr"),
    ),
    "tri_stage": (
        FieldSpec("conf.phase_ratio", "phase_ratio", number_list(3, optional=True, total=1.0, minimum=0.0),
                  omit_empty=True, default=[0.1, 0.4, 0.5], placeholder="or warmup/hold/decay steps below",
                  help="fractions of max_update for warmup, hold and decay (FunASR TriStageLR)"),
        _MAX_UPDATE,
        FieldSpec("conf.warmup_steps", "warmup_steps", integer(minimum=0, optional=True), omit_empty=True,
                  placeholder="from phase_ratio"),
        FieldSpec("conf.hold_steps", "hold_steps", integer(minimum=0, optional=True), omit_empty=True,
                  placeholder="from phase_ratio"),
        FieldSpec("conf.decay_steps", "decay_steps", integer(minimum=0, optional=True), omit_empty=True,
                  placeholder="from phase_ratio"),
        FieldSpec("conf.init_lr_scale", "init_lr_scale", number(minimum=0.0, maximum=1.0), default=0.01,
                  help="lr at the start, as a fraction of the peak"),
        FieldSpec("conf.final_lr_scale", "final_lr_scale", number(minimum=0.0, maximum=1.0, exclusive_min=True),
                  default=0.01, help="lr at the end, as a fraction of the peak"),
    ),
    "cosine": (
        _MAX_UPDATE,
        _warmup(0, 0),
        _MIN_LR,
    ),
    "exponential": (
        FieldSpec("conf.gamma", "gamma", number(minimum=0.0, maximum=1.0, exclusive_min=True), default=0.9999,
                  help="lr multiplier per decay_steps updates after warmup"),
        FieldSpec("conf.decay_steps", "decay_steps", integer(minimum=1), default=1),
        _warmup(0, 0),
        _MIN_LR,
    ),
    "constant": (_warmup(0, 0),),
}

GENERAL_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("name", "name", identifier(), help="the OptimScheduler's name (logged as lr_<name>)"),
    FieldSpec("type", "schedule type", kind="select", choices=tuple(SCHEDULE_FIELDS)),
    FieldSpec("conf.optim_type", "optim_type", kind="select", choices=OPTIM_TYPES, default="AdamW",
              help="a torch.optim class"),
    FieldSpec("conf.optim_conf.lr", "lr", number(minimum=0.0, exclusive_min=True), help="peak learning rate"),
    FieldSpec("conf.optim_conf.weight_decay", "weight_decay", number(minimum=0.0, optional=True),
              omit_empty=True, placeholder="optimiser default"),
    FieldSpec("conf.optim_conf.betas", "betas", number_list(2, optional=True, minimum=0.0, maximum=1.0),
              omit_empty=True, placeholder="optimiser default, e.g. 0.9, 0.98",
              help="Adam-family momentum coefficients"),
    FieldSpec("conf.optim_conf.(other)", "other optim_conf", mapping(), placeholder="{eps: 1.0e-8}",
              help="any other torch.optim argument, as a YAML mapping"),
    FieldSpec("conf.optim_loss", "optim_loss", text(no_spaces=True), suggestions=LOSS_NAMES, default="loss",
              help="which loss this optimiser minimises"),
    FieldSpec("conf.updated_modules", "updated_modules", name_list(), placeholder="all modules",
              suggestions=MODULE_NAMES, help="top-level modules it updates, comma separated; empty = all"),
    FieldSpec("conf.step_per_update", "step_per_update", integer(minimum=1), default=1,
              help="update once every this many training steps"),
)
OTHER_CONF = FieldSpec("conf.(other)", "other conf", mapping(), placeholder="{}",
                       help="schedule arguments this form has no field for, as a YAML mapping")

_OPTIM_CONF_FIELDS = ("lr", "weight_decay", "betas")
_CONF_FIELDS = ("optim_type", "optim_conf", "optim_loss", "updated_modules", "step_per_update")


def _schedule_keys(kind: str) -> set[str]:
    return {spec.name for spec in SCHEDULE_FIELDS.get(kind, ())}


def other_conf(entry: dict) -> dict:
    known = set(_CONF_FIELDS) | _schedule_keys(entry.get("type", ""))
    return {k: v for k, v in (entry.get("conf") or {}).items() if k not in known}


def other_optim_conf(entry: dict) -> dict:
    optim_conf = get_dotted(entry, "conf.optim_conf", {}) or {}
    return {k: v for k, v in optim_conf.items() if k not in _OPTIM_CONF_FIELDS}


class OptimScheEditor(Vertical):
    """Edits one ``optim_sches`` entry; posts :class:`Changed` after every valid edit."""

    DEFAULT_CSS = """
    OptimScheEditor { height: auto; }
    OptimScheEditor .optim-remove { margin: 0 0 0 24; }
    """

    class EditorMessage(Message):
        """A message about one editor (``message.editor``), which is also its ``control``."""

        def __init__(self, editor: "OptimScheEditor") -> None:
            super().__init__()
            self.editor = editor

        @property
        def control(self) -> "OptimScheEditor":
            return self.editor

    class Changed(EditorMessage):
        """The entry (``editor.entry``) or its name (``editor.sche_name``) changed."""

    class RemoveRequested(EditorMessage):
        """The Remove button was pressed; the screen removes the editor and its entry."""

    def __init__(self, name: str, entry: dict, *, collapsed: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sche_name = name
        self.entry = copy.deepcopy(entry)
        self.entry.setdefault("type", "warmuplr")
        self.entry.setdefault("conf", {})
        self._collapsed = collapsed

    def value_of(self, spec: FieldSpec) -> Any:
        if spec.key == "name":
            return self.sche_name
        if spec is OTHER_CONF:
            return other_conf(self.entry)
        if spec.key == "conf.optim_conf.(other)":
            return other_optim_conf(self.entry)
        return get_dotted(self.entry, spec.key, spec.default)

    def compose(self) -> ComposeResult:
        with Collapsible(title=self.summary(), collapsed=self._collapsed):
            for spec in GENERAL_FIELDS:
                yield FormField(spec, self.value_of(spec))
            with Vertical(classes="schedule-fields"):
                for spec in SCHEDULE_FIELDS.get(self.entry["type"], ()):
                    yield FormField(spec, self.value_of(spec))
            yield FormField(OTHER_CONF, self.value_of(OTHER_CONF))
            yield Button("Remove this OptimScheduler", classes="optim-remove", variant="error", compact=True)

    def summary(self) -> str:
        conf = self.entry.get("conf") or {}
        lr = get_dotted(conf, "optim_conf.lr")
        return f"{self.sche_name}: {self.entry.get('type')} · {conf.get('optim_type', 'AdamW')} lr={render(lr)}"

    def fields(self) -> list[FormField]:
        return list(self.query(FormField))

    def field_for(self, key: str) -> FormField | None:
        """The field showing ``key`` (relative to the entry, e.g. ``conf.step_per_update``)."""
        for form_field in self.query(FormField):
            if form_field.spec.key == key:
                return form_field
        if key.startswith("conf.optim_conf."):
            return self.field_for("conf.optim_conf.(other)")
        if key.startswith("conf.") and key != "conf.(other)":
            return self.field_for("conf.(other)")
        return None

    @on(FormField.Changed)
    async def _field_changed(self, event: FormField.Changed) -> None:
        event.stop()
        key, value = event.key, event.value
        if key == "name":
            self.sche_name = value
        elif key == "type":
            await self._change_type(value)
        elif key == "conf.(other)":
            conf = self.entry["conf"]
            for stale in other_conf(self.entry):
                conf.pop(stale)
            conf.update(value)
        elif key == "conf.optim_conf.(other)":
            optim_conf = self.entry["conf"].setdefault("optim_conf", {})
            for stale in other_optim_conf(self.entry):
                optim_conf.pop(stale)
            optim_conf.update(value)
        elif value is None and event.form_field.spec.omit_empty:
            pop_dotted(self.entry, key)
        else:
            set_dotted(self.entry, key, value)
        self.query_one(Collapsible).title = self.summary()
        self.post_message(self.Changed(self))

    async def _change_type(self, new_type: str) -> None:
        """Swap the schedule's fields: a value the new type also takes with a default is kept
        (warmup_steps from warmuplr to cosine), everything else starts from the new defaults."""
        new_specs = SCHEDULE_FIELDS.get(new_type, ())
        conf = self.entry["conf"]
        kept = {spec.name: conf[spec.name] for spec in new_specs if spec.default is not None and spec.name in conf}
        for key in _schedule_keys(self.entry["type"]):
            conf.pop(key, None)
        for spec in new_specs:
            if spec.default is not None:
                conf[spec.name] = kept.get(spec.name, copy.deepcopy(spec.default))
        self.entry["type"] = new_type
        container = self.query_one(".schedule-fields", Vertical)
        await container.remove_children()
        await container.mount_all([FormField(spec, self.value_of(spec)) for spec in new_specs])
        other = self.field_for("conf.(other)")
        if other is not None:
            other.set_value(other_conf(self.entry))

    @on(Button.Pressed, ".optim-remove")
    def _remove(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.RemoveRequested(self))
