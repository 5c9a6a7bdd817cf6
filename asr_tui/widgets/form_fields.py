"""One labelled config field of a form: parse as typed, say what is wrong beside it.

A :class:`FieldSpec` names the dotted config key, the widget kind and a parser that turns the
typed text into the config value or raises ``ValueError`` with a short reason. The
:class:`FormField` widget shows the value, checks every keystroke with Textual's validator
machinery and posts :class:`FormField.Changed` only for values that parse, so the form's
config never holds a half-typed value. Errors the whole-config check finds (``engine.config``)
are shown on the field too, through :meth:`FormField.set_config_error`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Input, Label, Select, Static, Switch

Parser = Callable[[str], Any]


# ---- parsers: text -> value, or ValueError("what is wrong") ------------------------------------

def integer(minimum: int | None = None, maximum: int | None = None, optional: bool = False) -> Parser:
    if minimum == 1 and maximum is None:
        expected = "a positive integer"
    elif minimum == 0 and maximum is None:
        expected = "an integer ≥ 0"
    elif minimum is not None and maximum is not None:
        expected = f"an integer from {minimum} to {maximum}"
    else:
        expected = "an integer"

    def parse(text: str) -> int | None:
        text = text.strip()
        if not text and optional:
            return None
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"must be {expected}") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise ValueError(f"must be {expected}")
        return value

    return parse


def number(minimum: float | None = None, maximum: float | None = None, exclusive_min: bool = False,
           optional: bool = False) -> Parser:
    bounds = []
    if minimum is not None:
        bounds.append(f"{'>' if exclusive_min else '≥'} {minimum:g}")
    if maximum is not None:
        bounds.append(f"≤ {maximum:g}")
    expected = "a number" + (f" {' and '.join(bounds)}" if bounds else "")

    def parse(text: str) -> float | None:
        text = text.strip()
        if not text and optional:
            return None
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"must be {expected}" + (" (or empty)" if optional else "")) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"must be {expected}")
        too_low = minimum is not None and (value <= minimum if exclusive_min else value < minimum)
        if too_low or (maximum is not None and value > maximum):
            raise ValueError(f"must be {expected}")
        return value

    return parse


def text(optional: bool = False, no_spaces: bool = False) -> Parser:
    def parse(raw: str) -> str | None:
        value = raw.strip()
        if not value:
            if optional:
                return None
            raise ValueError("must not be empty")
        if no_spaces and any(ch.isspace() for ch in value):
            raise ValueError("must not contain spaces")
        return value

    return parse


def identifier() -> Parser:
    """A name used inside dotted keys and metric names: letters, digits, '_' and '-'."""

    def parse(raw: str) -> str:
        value = raw.strip()
        if not value:
            raise ValueError("must not be empty")
        if not value.replace("-", "_").isidentifier():
            raise ValueError("use letters, digits, '_' and '-' only")
        return value

    return parse


def path_list(must_exist: bool = True) -> Parser:
    """Comma-separated paths (data lists); each must exist on this machine."""

    def parse(raw: str) -> list[str]:
        paths = [part.strip() for part in raw.split(",") if part.strip()]
        if must_exist:
            missing = [p for p in paths if not Path(p).expanduser().is_file()]
            if missing:
                raise ValueError(f"no such file: {missing[0]}")
        return paths

    return parse


def optional_path(must_exist: bool = True) -> Parser:
    def parse(raw: str) -> str | None:
        value = raw.strip()
        if not value:
            return None
        if must_exist and not Path(value).expanduser().exists():
            raise ValueError(f"no such file: {value}")
        return value

    return parse


def init_param_spec() -> Parser:
    """``train_conf.init_param``: ``PATH[:SRC[:DST[:EXCLUDE,...]]]`` (the key filter, docs/funasr.md);
    the checkpoint file must exist."""
    def parse(raw: str) -> str | None:
        value = raw.strip()
        if not value:
            return None
        path, *rest = value.split(":")
        if len(rest) > 3:
            raise ValueError("expected PATH[:SRC[:DST[:EXCLUDE,...]]]")
        if not Path(path).expanduser().is_file():
            raise ValueError(f"no such file: {path}")
        return value

    return parse


def number_list(length: int | None = None, optional: bool = False, total: float | None = None,
                minimum: float | None = None, maximum: float | None = None) -> Parser:
    """Comma-separated numbers (betas, phase_ratio), optionally of a fixed length or sum."""

    def parse(raw: str) -> list[float] | None:
        parts = [part.strip() for part in raw.strip().strip("[]()").split(",") if part.strip()]
        if not parts and optional:
            return None
        try:
            values = [float(part) for part in parts]
        except ValueError:
            raise ValueError("must be numbers separated by commas") from None
        if length is not None and len(values) != length:
            raise ValueError(f"must be {length} numbers separated by commas")
        if minimum is not None and any(v < minimum for v in values):
            raise ValueError(f"every number must be ≥ {minimum:g}")
        if maximum is not None and any(v > maximum for v in values):
            raise ValueError(f"every number must be ≤ {maximum:g}")
        if total is not None and abs(sum(values) - total) > 1e-6:
            raise ValueError(f"must add up to {total:g} (now {sum(values):g})")
        return values

    return parse


def name_list(optional: bool = True) -> Parser:
    """Comma-separated identifiers (updated_modules); empty means all (null)."""

    def parse(raw: str) -> list[str] | None:
        names = [part.strip() for part in raw.strip().strip("[]").split(",") if part.strip()]
        if not names:
            if optional:
                return None
            raise ValueError("must name at least one")
        bad = [n for n in names if not n.replace(".", "_").isidentifier()]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a module name")
        return names

    return parse


def devices() -> Parser:
    """GPU ids for CUDA_VISIBLE_DEVICES ("0,1,3"); empty means all visible devices."""

    def parse(raw: str) -> str | None:
        parts = [part.strip() for part in raw.split(",") if part.strip()]
        if not parts:
            return None
        if not all(part.isdigit() for part in parts):
            raise ValueError("must be GPU ids separated by commas (e.g. 0,1) or empty for all")
        if len(set(parts)) != len(parts):
            raise ValueError("lists a device twice")
        return ",".join(parts)

    return parse


def mapping() -> Parser:
    """A YAML flow mapping typed on one line, e.g. ``{output_size: 256, num_blocks: 12}``."""

    def parse(raw: str) -> dict:
        if not raw.strip():
            return {}
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise ValueError(f"{problem} (write a mapping like {{a: 1, b: x}})") from None
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError("must be a mapping like {a: 1, b: x}")
        return value

    return parse


def render(value: Any) -> str:
    """The text a field shows for a config value (the parsers read it back)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip() if value else ""
    if isinstance(value, (list, tuple)):
        return ", ".join(render(v) for v in value)
    return str(value)


# ---- the field --------------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldSpec:
    """A form field: dotted ``key`` (relative to its form), widget ``kind`` and how to parse it.

    ``kind`` is ``input`` (with ``parse``), ``switch`` or ``select`` (with ``choices``).
    ``omit_empty``: an empty value removes the key (the engine's default applies) instead of
    setting it to null.
    """

    key: str
    label: str
    parse: Parser | None = None
    kind: str = "input"
    choices: tuple[Any, ...] = ()
    help: str = ""
    placeholder: str = ""
    suggestions: tuple[str, ...] = ()
    browse: bool = False
    default: Any = None
    omit_empty: bool = False

    @property
    def name(self) -> str:
        return self.key.rsplit(".", 1)[-1]


class _SpecValidator(Validator):
    def __init__(self, spec: FieldSpec) -> None:
        super().__init__()
        self.spec = spec

    def validate(self, value: str) -> ValidationResult:
        try:
            self.spec.parse(value)
        except ValueError as exc:
            return self.failure(f"{self.spec.name}: {exc}")
        return self.success()


class FormField(Vertical):
    """Label + editor + the error line beneath; posts :class:`Changed` with parsed values."""

    DEFAULT_CSS = """
    FormField { height: auto; }
    FormField > .form-row { height: auto; }
    FormField .form-label { width: 24; padding: 0 1 0 0; color: $text-muted; }
    FormField Input, FormField Select { width: 1fr; }
    FormField Switch { width: auto; }
    FormField .form-browse { width: auto; min-width: 8; }
    FormField .form-error { color: $error; padding: 0 0 0 24; display: none; }
    FormField.-has-error .form-error { display: block; }
    FormField.-has-error .form-label { color: $error; }
    """

    class Changed(Message):
        """A field now holds a new, parsed value."""

        def __init__(self, form_field: "FormField", value: Any) -> None:
            super().__init__()
            self.form_field = form_field
            self.value = value

        @property
        def key(self) -> str:
            return self.form_field.spec.key

        @property
        def control(self) -> "FormField":
            return self.form_field

    class BrowseRequested(Message):
        """The field's Browse button was pressed (the screen opens a file picker)."""

        def __init__(self, form_field: "FormField") -> None:
            super().__init__()
            self.form_field = form_field

        @property
        def control(self) -> "FormField":
            return self.form_field

    def __init__(self, spec: FieldSpec, value: Any, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.spec = spec
        self.value = value
        self.parse_error: str | None = None
        self.config_error: str | None = None
        self._text = render(value)
        self._shown_error: str | None = None

    @property
    def error(self) -> str | None:
        return self.parse_error or self.config_error

    def compose(self) -> ComposeResult:
        spec = self.spec
        with Horizontal(classes="form-row"):
            yield Label(spec.label, classes="form-label")
            if spec.kind == "switch":
                yield Switch(bool(self.value), animate=False)
            elif spec.kind == "select":
                choices = list(spec.choices)
                if self.value not in choices:
                    choices.append(self.value)  # an unknown value from a preset stays visible (the check flags it)
                # None (an omit_empty select: the engine's default) is labelled by the placeholder
                yield Select([(render(c) or spec.placeholder or "(none)", c) for c in choices], value=self.value,
                             allow_blank=False, compact=True)
            else:
                yield Input(
                    self._text, placeholder=spec.placeholder, compact=True,
                    validators=[_SpecValidator(spec)], validate_on=["changed", "submitted"],
                    suggester=SuggestFromList(spec.suggestions) if spec.suggestions else None,
                )
                if spec.browse:
                    yield Button("Browse", classes="form-browse", compact=True)
        yield Static("", classes="form-error")

    def on_mount(self) -> None:
        self._show_error()
        if self.spec.help:
            self.query_one(".form-label", Label).tooltip = self.spec.help
        if self.spec.kind == "input":
            self._check_text(self._text)

    @property
    def editor(self) -> Input | Select | Switch:
        return self.query_one(".form-row").children[1]

    def focus_editor(self) -> None:
        self.editor.focus()

    def set_value(self, value: Any) -> None:
        """Show ``value`` in the editor; the change flows back through :class:`Changed`."""
        editor = self.editor
        if isinstance(editor, Input):
            editor.value = render(value)
        elif isinstance(editor, Switch):
            editor.value = bool(value)
        else:
            editor.value = value

    def set_config_error(self, message: str | None) -> None:
        self.config_error = message
        self._show_error()

    def _check_text(self, raw: str) -> bool:
        try:
            value = self.spec.parse(raw)
        except ValueError as exc:
            self.parse_error = f"{self.spec.name}: {exc}"
            self._show_error()
            return False
        self.parse_error = None
        self._show_error()
        changed = raw != self._text or value != self.value
        self._text = raw
        if changed:
            self.value = value
            self.post_message(self.Changed(self, value))
        return True

    def _show_error(self) -> None:
        # Restyling is the costly part of a keystroke in a big form: touch only what changed.
        if self.error == self._shown_error or not self.is_mounted:
            return
        self._shown_error = self.error
        self.set_class(self.error is not None, "-has-error")
        self.query_one(".form-error", Static).update(self.error or "")

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._check_text(event.value)

    @on(Input.Submitted)
    def _input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._check_text(event.value)

    @on(Switch.Changed)
    def _switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        if event.value != self.value:
            self.value = event.value
            self.post_message(self.Changed(self, event.value))

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is not Select.NULL and event.value != self.value:
            self.value = event.value
            self.post_message(self.Changed(self, event.value))

    @on(Button.Pressed, ".form-browse")
    def _browse(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.BrowseRequested(self))


# ---- dotted keys in nested dicts ----------------------------------------------------------------

def get_dotted(config: dict, key: str, default: Any = None) -> Any:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def set_dotted(config: dict, key: str, value: Any) -> None:
    """Set ``a.b.c`` in ``config``, creating the sections on the way."""
    *parents, last = key.split(".")
    node = config
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


def pop_dotted(config: dict, key: str) -> None:
    *parents, last = key.split(".")
    node = get_dotted(config, ".".join(parents)) if parents else config
    if isinstance(node, dict):
        node.pop(last, None)
