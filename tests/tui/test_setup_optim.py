"""The OptimScheduler form agrees with engine.optim_sche: same schedule types, same keys."""

from __future__ import annotations

import inspect

import pytest

from asr_tui.widgets.form_optim_sche import GENERAL_FIELDS, SCHEDULE_FIELDS
from engine.optim_sche.conf import GENERAL_KEYS
from engine.optim_sche.curve import lr_curve
from engine.optim_sche.registry import SCHEDULERS


def test_every_engine_schedule_has_a_form():
    assert set(SCHEDULE_FIELDS) == set(SCHEDULERS)


@pytest.mark.parametrize("kind", sorted(SCHEDULERS))
def test_schedule_fields_are_sche_init_arguments(kind):
    arguments = set(inspect.signature(SCHEDULERS[kind].sche_init).parameters) - {"self"}
    fields = {spec.name for spec in SCHEDULE_FIELDS[kind]}
    assert fields <= arguments, f"{kind}: the form has keys the engine does not take: {fields - arguments}"


def test_general_fields_are_general_keys():
    conf_keys = {spec.key.split(".")[1] for spec in GENERAL_FIELDS if spec.key.startswith("conf.")}
    assert conf_keys - {"(other)"} <= set(GENERAL_KEYS)


@pytest.mark.parametrize("kind", sorted(SCHEDULERS))
def test_form_defaults_make_a_valid_schedule(kind):
    """A new entry of each type, with the form's defaults, is accepted by the engine as it is."""
    conf = {"optim_type": "AdamW", "optim_conf": {"lr": 0.001}}
    conf.update({spec.name: spec.default for spec in SCHEDULE_FIELDS[kind] if spec.default is not None})
    curves = lr_curve({"main": {"type": kind, "conf": conf}}, 1000)
    assert len(curves["main"]) == 1000 and max(curves["main"]) > 0
