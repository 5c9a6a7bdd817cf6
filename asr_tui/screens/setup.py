"""Setup screen: edit an experiment config, preview its lr curves and torchrun command, launch it.

The screen holds one config dict (``engine.config`` schema). Every field edits one dotted key
of it and is checked as it is typed; after each edit the whole config is checked again with
``engine.config.check_config`` (which applies the cross-field rules of ``engine.config_rules``,
so the form refuses what ``asr-train`` refuses) and each problem is shown beside the field it
names. The fields are listed in :mod:`asr_tui.setup_fields`; the Optim and Run tabs are widgets
of their own (:mod:`asr_tui.widgets.setup_optim_tab`, :mod:`asr_tui.widgets.setup_run_tab`).
The screen writes nothing itself: launch posts :class:`LaunchRequested` with the validated
config only when nothing is wrong, and the node scripts are written by the app on
:class:`NodeScriptsRequested`.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.lazy import Lazy
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static, TabbedContent, TabPane

from asr_tui.command import command_text, distributed_conf, port_is_free
from asr_tui.messages import LaunchRequested, NodeScriptsRequested
from asr_tui.screens.navigation import FORM_NAVIGATION
from asr_tui.presets_store import PresetError, config_diff, list_presets, load_preset, model_section
from asr_tui.setup_fields import MODEL_FIELDS, PREVIEW_STEPS, TAB_FIELDS, TABS, tab_of_key
from asr_tui.widgets.form_data_check import DataCheck
from asr_tui.widgets.form_fields import FieldSpec, FormField, get_dotted, pop_dotted, set_dotted
from asr_tui.widgets.form_file_picker import FilePickerScreen
from asr_tui.widgets.form_model_dir import FINETUNE_SUGGESTIONS, LOCKED_KEYS, ModelDirPicker
from asr_tui.widgets.form_optim_sche import OptimScheEditor
from asr_tui.widgets.lr_preview import LrPreview
from asr_tui.widgets.setup_optim_tab import OptimTab
from asr_tui.widgets.setup_run_tab import RunTab
from asr_tui.widgets.setup_tab import SetupTab
from engine.config import (
    CHOICES, DEFAULTS, LIST_KEYS, ConfigError, ConfigIssue, check_config, deep_merge, validate_config,
)


@dataclass
class Problem:
    """Something that blocks launch; ``tab`` is where it is fixed, ``form_field`` its field if shown."""

    message: str
    tab: str
    form_field: FormField | None = None
    key: str | None = None


class SetupScreen(Screen):
    """Forms for the whole experiment config, the lr preview and the torchrun command."""

    CSS_PATH = "setup.tcss"
    BINDINGS = [
        *FORM_NAVIGATION,
        Binding("ctrl+r", "launch", "Launch"),
        Binding("ctrl+y", "copy_command", "Copy cmd"),
        Binding("ctrl+t", "save_scripts", "Node scripts"),
        Binding("ctrl+n", "add_optim_sche", "Add optim"),
        Binding("ctrl+g", "next_problem", "Next problem"),
        Binding("ctrl+o", "open_presets", "Presets"),
        # Priority: the app runs these before it hands on the keys typed after them, and the
        # action moves the focus before returning, so typing straight after F5 goes into F5's
        # first field instead of the field the focus is leaving.
        Binding("alt+right", "cycle_tab(1)", "Next tab", show=False, priority=True),
        Binding("alt+left", "cycle_tab(-1)", "Previous tab", show=False, priority=True),
        *[Binding(f"f{i}", f"show_tab('{tab}')", f"{label.split()[1]} tab", show=False, priority=True)
          for i, (tab, label) in enumerate(TABS, 2)],
    ]

    def __init__(self, config: dict | None = None, preset_path: Path | None = None) -> None:
        super().__init__()
        self.config = deep_merge(DEFAULTS, config or {})
        if config and "optim_sches" in config:
            self.config["optim_sches"] = copy.deepcopy(config["optim_sches"])
        self.baseline = copy.deepcopy(self.config)
        self.preset_path = Path(preset_path) if preset_path else None
        self._unplaced: list[ConfigIssue] = []
        self._top_fields: dict[str, FormField] | None = None
        self._top_fields_mounted = 0
        self.train_stats: dict | None = None
        self._status_text = ""
        # Set when a tab's body is mounted (the first tab is composed, the others are Lazy).
        self._tab_ready: dict[str, asyncio.Event] = {tab: asyncio.Event() for tab, _ in TABS}

    # ---- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # The first tab is composed; the others are Textual Lazy widgets, mounted right after
        # the first frame: the whole form is ~1000 widgets, and composing them all before it
        # would make opening the screen slow over SSH.
        yield Header()
        with TabbedContent(initial="data", id="setup-tabs"):
            for index, (tab, label) in enumerate(TABS):
                with TabPane(label, id=tab):
                    body = self._tab_body(tab)
                    yield body if index == 0 else Lazy(body)
        yield Static("", id="setup-status")
        yield Footer()

    def _tab_body(self, tab: str) -> SetupTab:
        ready = self._tab_ready[tab]
        if tab == "optim":
            return OptimTab(self.config.get("optim_sches") or {}, ready=ready)
        if tab == "run":
            return RunTab("run", ready=ready)
        widgets: list[Widget] = []
        if tab == "model":
            model = self.config.get("model")
            widgets.append(ModelDirPicker(model if model not in CHOICES["model"] else None, id="model-dir"))
            widgets.append(Horizontal(
                Label("model preset", classes="form-label"),
                Select(self._model_preset_options(), prompt="copy the model of a preset…", id="model-preset",
                       compact=True),
                classes="form-row", id="model-preset-row"))
        widgets.extend(self._fields(TAB_FIELDS[tab]))
        if tab == "data":
            widgets.append(DataCheck(id="data-check"))
        return SetupTab(tab, *widgets, ready=ready)

    def tab_mounted(self, tab: str) -> bool:
        return self._tab_ready[tab].is_set()

    @on(SetupTab.Mounted)
    def _tab_body_mounted(self, event: SetupTab.Mounted) -> None:
        """New fields exist: put the problems they show beside them."""
        event.stop()
        if event.tab == "optim":
            self._sync_optim_sches()
        self._config_changed()

    def _fields(self, specs: tuple[FieldSpec, ...]) -> list[FormField]:
        return [FormField(spec, get_dotted(self.config, spec.key, spec.default)) for spec in specs]

    def _model_preset_options(self) -> list[tuple[str, str]]:
        return [(f"{p.name} ({p.source})", str(p.path)) for p in list_presets()]

    def on_mount(self) -> None:
        self._config_changed()
        self._request_data_check()
        self.query(FormField).first().focus_editor()

    def _request_data_check(self) -> None:
        lists = {}
        for key in LIST_KEYS:
            form_field = self.field_for(key)
            if form_field is not None and form_field.parse_error is None:
                lists[key] = list(self.config.get(key) or [])
        self.query_one(DataCheck).request(lists, tokenizer_conf=self.config.get("tokenizer_conf") or {})

    # ---- the config -------------------------------------------------------------------------

    def current_config(self) -> dict:
        """A copy of the form's config as it stands (valid or not)."""
        return copy.deepcopy(self.config)

    def set_baseline(self, config: dict, path: Path | None) -> None:
        """Compare the form with ``config`` from now on (the preset it was just saved as)."""
        self.baseline = copy.deepcopy(config)
        self.preset_path = Path(path) if path else None
        self._refresh_run_tab()

    def top_fields(self) -> dict[str, FormField]:
        """Fields of the config itself by key (not an OptimScheduler's, not the preview steps)."""
        mounted = sum(event.is_set() for event in self._tab_ready.values())
        if self._top_fields is None or self._top_fields_mounted != mounted:  # a tab body came since
            self._top_fields_mounted = mounted
            self._top_fields = {f.spec.key: f for f in self.query(FormField) if f.spec.key != PREVIEW_STEPS.key
                                and not any(isinstance(a, OptimScheEditor) for a in f.ancestors)}
        return self._top_fields

    def optim_tab(self) -> OptimTab | None:
        return self.query_one(OptimTab) if self.tab_mounted("optim") else None

    def editors(self) -> list[OptimScheEditor]:
        tab = self.optim_tab()
        return tab.editors() if tab is not None else []

    def all_fields(self) -> list[FormField]:
        """Every field, without walking the whole DOM (a keystroke re-checks them all)."""
        fields = list(self.top_fields().values())
        for editor in self.editors():
            fields.extend(editor.fields())
        return fields

    def field_for(self, key: str) -> FormField | None:
        """The field that shows the dotted config ``key`` (an OptimScheduler's fields included)."""
        if key.startswith("optim_sches."):
            _, name, *rest = key.split(".", 2)
            for editor in self.editors():
                if editor.sche_name == name:
                    return editor.field_for(rest[0] if rest else "name")
            return None
        return self.top_fields().get(key)

    @on(FormField.Changed)
    def _field_changed(self, event: FormField.Changed) -> None:
        event.stop()
        if event.value is None and event.form_field.spec.omit_empty:
            pop_dotted(self.config, event.key)
        else:
            set_dotted(self.config, event.key, event.value)
        self._config_changed()
        if event.key in LIST_KEYS or event.key.startswith("tokenizer_conf"):
            if event.key == "train_data_set_list":
                self.train_stats = None
            self._request_data_check()

    @on(OptimScheEditor.Changed)
    def _optim_changed(self, event: OptimScheEditor.Changed) -> None:
        event.stop()
        self._sync_optim_sches()
        self._config_changed()

    @on(OptimTab.PreviewStepsChanged)
    def _preview_steps_changed(self, event: OptimTab.PreviewStepsChanged) -> None:
        event.stop()
        self._request_preview()

    def _sync_optim_sches(self) -> None:
        tab = self.optim_tab()
        if tab is not None:
            self.config["optim_sches"] = tab.entries()

    def _config_changed(self) -> None:
        """Re-check the whole config, put each problem beside its field, refresh the command."""
        issues = check_config(self.config)
        tab = self.optim_tab()
        for name in sorted(tab.duplicate_names() if tab is not None else ()):
            issues.append(ConfigIssue(f"optim_sches.{name}", f"two OptimSchedulers are called {name!r}"))
        placed: dict[FormField, str] = {}
        unplaced = []
        for issue in issues:
            form_field = self.field_for(issue.key)
            if form_field is None:
                unplaced.append(issue)
            else:
                placed.setdefault(form_field, f"{form_field.spec.name}: {issue.message}")
        for form_field in self.all_fields():
            form_field.set_config_error(placed.get(form_field))
        self._unplaced = unplaced
        self._refresh_run_tab()
        self._request_preview()

    def problems(self) -> list[Problem]:
        """Every problem that blocks launch: those shown on fields, then those of tabs not opened yet."""
        found = [Problem(f.error, self._tab_of_field(f), form_field=f) for f in self.all_fields() if f.error]
        found.extend(Problem(str(issue), tab_of_key(issue.key), key=issue.key) for issue in self._unplaced)
        return found

    # ---- run tab: problems, command, changes ------------------------------------------------

    def config_path(self) -> Path:
        """Where the app writes config.yaml: RUN/config.yaml, relative to the console's directory."""
        return (Path.cwd() / str(self.config.get("output_dir") or "")).absolute() / "config.yaml"

    def command(self) -> str:
        return command_text(self.config, self.config_path())

    def _refresh_run_tab(self) -> None:
        problems = self.problems()
        if problems:
            first = problems[0]
            status_text = (f"✗ {len(problems)} problem(s) · {first.message} ({dict(TABS)[first.tab]})"
                           " · ctrl+g goes there")
        else:
            status_text = "✓ ready · ctrl+r launches"
        loaded = sum(self.tab_mounted(tab) for tab, _ in TABS)
        if loaded < len(TABS):  # the Lazy tabs are still mounting: what is typed now waits
            status_text = f"loading tabs {loaded}/{len(TABS)} · {status_text}"
        if status_text != self._status_text:  # a repaint per keystroke only when the line changes
            self._status_text = status_text
            status = self.query_one("#setup-status", Static)
            status.update(status_text)
            status.set_class(bool(problems), "-problems")
        if self.query_one(TabbedContent).active != "run" or not self.tab_mounted("run"):
            return  # drawn when the Run tab is shown: layout is the costly part of a keystroke
        dist = distributed_conf(self.config)
        changes = config_diff(self.baseline, self.config)
        source = self.preset_path.name if self.preset_path else "the defaults"
        self.query_one(RunTab).show(
            [f"{p.message} ({dict(TABS)[p.tab]})" for p in problems],
            f"torchrun command (node {dist['node_rank']} of {dist['nnodes']}), select or ctrl+y to copy:",
            self.command(),
            f"{len(changes)} change(s) from {source}" + "".join(
                f"\n  {key}: {old!r} → {new!r}" for key, old, new in changes[:12])
            + ("\n  …" if len(changes) > 12 else ""))

    @staticmethod
    def _tab_of_field(form_field: FormField) -> str:
        for ancestor in form_field.ancestors:
            if isinstance(ancestor, TabPane) and ancestor.id:
                return ancestor.id
        return "run"

    # ---- lr preview -------------------------------------------------------------------------

    def _request_preview(self) -> None:
        """Redraw the lr curves, only while the Optim tab is shown: computing them holds the GIL
        for up to a second, which would make the keys typed in other tabs wait (and reorder)."""
        tab = self.optim_tab()
        if tab is not None and self.query_one(TabbedContent).active == "optim":
            tab.preview(self.config, self.train_stats)

    @on(LrPreview.Computed)
    def _preview_computed(self, event: LrPreview.Computed) -> None:
        """A schedule the engine refuses names its key: show it beside that field."""
        if event.error_key:
            form_field = self.field_for(event.error_key)
            if form_field is not None and form_field.error is None:
                form_field.set_config_error(event.error)
                self._refresh_run_tab()

    # ---- start from a model directory (asr_tui.widgets.form_model_dir) ----------------------

    @on(ModelDirPicker.BrowseRequested)
    def _browse_model_dir(self, event: ModelDirPicker.BrowseRequested) -> None:
        def picked(path: Path | None) -> None:
            if path is not None:
                event.picker.choose(str(path.parent))

        self.app.push_screen(FilePickerScreen(None, suffixes=(".yaml",),
                                              title="Pick the model directory's config.yaml"), picked)

    @on(ModelDirPicker.Chosen)
    def _model_dir_chosen(self, event: ModelDirPicker.Chosen) -> None:
        """Lock the architecture fields to the directory's values (shown), or unlock them."""
        event.stop()
        summary = event.summary
        if summary is None and event.error is None:  # cleared
            self.config["model"] = DEFAULTS["model"]
            self.call_after_refresh(self._lock_fields, {"model": DEFAULTS["model"]}, False)
        elif summary is None:
            self.config["model"] = event.picker.query_one(Input).value.strip()  # the check shows the error
        else:
            self.config["model"] = str(summary.path)
            values = dict(summary.values)
            for key, value in FINETUNE_SUGGESTIONS.items():
                if get_dotted(self.config, key) == get_dotted(DEFAULTS, key):  # only where not chosen already
                    values[key] = value
            self.call_after_refresh(self._lock_fields, values, True)
        self._config_changed()

    def _lock_fields(self, values: dict, locked: bool) -> None:
        for key, value in values.items():
            form_field = self.field_for(key)
            if form_field is None:
                set_dotted(self.config, key, value)
                continue
            if key != "model":  # the model select shows the directory; its value is not an engine name
                form_field.set_value(value)
        for key in LOCKED_KEYS:
            form_field = self.field_for(key)
            if form_field is not None:
                form_field.editor.disabled = locked
                form_field.set_class(locked, "-locked")
        self._config_changed()

    # ---- data lists -------------------------------------------------------------------------

    @on(FormField.BrowseRequested)
    def _browse(self, event: FormField.BrowseRequested) -> None:
        form_field = event.form_field
        current = form_field.value[0] if form_field.value else None

        def picked(path: Path | None) -> None:
            if path is None:
                return
            try:
                shown = str(path.resolve().relative_to(Path.cwd().resolve()))
            except ValueError:
                shown = str(path)
            form_field.set_value([shown])
            form_field.focus_editor()

        self.app.push_screen(FilePickerScreen(Path(current) if current else None), picked)

    @on(DataCheck.Checked)
    def _data_checked(self, event: DataCheck.Checked) -> None:
        if event.list_key == "train_data_set_list":
            self.train_stats = event.stats
            self._request_preview()

    # ---- actions ----------------------------------------------------------------------------

    async def action_show_tab(self, tab: str) -> None:
        """Show a tab and put the keyboard in its first field (F2-F8, alt+arrows)."""
        await self.open_tab(tab)
        first = next(iter(self.query_one(f"TabPane#{tab}", TabPane).query(FormField)), None)
        if first is not None:
            self.set_focus(first.editor)  # at once: widget.focus() would wait for the next keys
        elif tab == "run":
            self.set_focus(self.query_one("#launch", Button))

    async def action_cycle_tab(self, step: int) -> None:
        ids = [tab for tab, _ in TABS]
        current = self.query_one(TabbedContent).active or ids[0]
        await self.action_show_tab(ids[(ids.index(current) + step) % len(ids)])

    async def action_next_problem(self) -> None:
        problems = self.problems()
        if problems:
            await self._go_to(problems[0])
        else:
            self.notify("No problems.")

    async def open_tab(self, tab: str) -> None:
        """Show a tab once its body is mounted (the caller decides where the focus goes)."""
        self.query_one(TabbedContent).active = tab
        await self._tab_ready[tab].wait()
        if tab == "optim":
            self._request_preview()  # at once: TabActivated comes a message later

    async def show_field(self, key: str) -> FormField | None:
        """Show the tab of a dotted config key; returns its field."""
        await self.open_tab(tab_of_key(key))
        return self.field_for(key)

    async def _go_to(self, problem: Problem) -> None:
        """Show the tab of a problem and focus its field."""
        await self.open_tab(problem.tab)
        form_field = problem.form_field or (self.field_for(problem.key) if problem.key else None)
        if form_field is not None:
            self._reveal(form_field)

    def _reveal(self, form_field: FormField) -> None:
        for ancestor in form_field.ancestors:
            collapsible = getattr(ancestor, "collapsed", None)
            if collapsible is True:
                ancestor.collapsed = False
        self.call_after_refresh(form_field.focus_editor)
        self.call_after_refresh(form_field.scroll_visible)

    async def action_open_presets(self) -> None:
        """The app's presets screen (it compares with and saves this form)."""
        await self.app.run_action("presets")

    async def action_launch(self) -> None:
        problems = self.problems()
        if problems:
            self.notify(f"Not launched: {len(problems)} problem(s). {problems[0].message}",
                        severity="error", timeout=8)
            await self._go_to(problems[0])
            return
        try:
            config = validate_config(self.config, "setup form")
        except ConfigError as exc:
            self.notify(f"Not launched: {exc}", severity="error", timeout=8)
            return
        dist = distributed_conf(config)
        if dist["node_rank"] == 0 and not port_is_free(dist["master_port"]):
            port_field = await self.show_field("distributed.master_port")
            message = f"master_port: {dist['master_port']} is in use on this machine (another run?)"
            port_field.set_config_error(message)
            port_field.focus_editor()
            self.notify(f"Not launched: {message}", severity="error", timeout=8)
            return
        self.post_message(LaunchRequested(config))

    def action_copy_command(self) -> None:
        self.app.copy_to_clipboard(self.command())
        self.notify("torchrun command copied (if your terminal blocks OSC 52, select it in the Run tab)")

    def action_save_scripts(self) -> None:
        """Ask the app to write RUN/config.yaml (if new) and run_node{N}.sh for every node."""
        if self.problems():
            self.notify("Fix the problems first: the scripts would run a broken config.", severity="error")
            return
        try:
            config = validate_config(self.config, "setup form")
        except ConfigError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        self.post_message(NodeScriptsRequested(config, self.config_path(), Path.cwd()))

    async def action_add_optim_sche(self) -> None:
        await self.open_tab("optim")
        editor = await self.query_one(OptimTab).add_editor()
        self._sync_optim_sches()
        self._config_changed()
        editor.scroll_visible()

    @on(OptimScheEditor.RemoveRequested)
    async def _remove_optim_sche(self, event: OptimScheEditor.RemoveRequested) -> None:
        event.stop()
        await event.editor.remove()
        self._sync_optim_sches()
        self._config_changed()

    @on(Button.Pressed, "#add-optim")
    async def _add_pressed(self) -> None:
        await self.action_add_optim_sche()

    @on(Button.Pressed, "#launch")
    async def _launch_pressed(self) -> None:
        await self.action_launch()

    @on(Button.Pressed, "#copy")
    def _copy_pressed(self) -> None:
        self.action_copy_command()

    @on(Button.Pressed, "#scripts")
    def _scripts_pressed(self) -> None:
        self.action_save_scripts()

    @on(Select.Changed, "#model-preset")
    def _model_preset_chosen(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is Select.NULL:
            return
        self._apply_model_preset(Path(str(event.value)))

    def _apply_model_preset(self, path: Path) -> None:
        try:
            preset = load_preset(path)
        except PresetError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return
        for key, value in model_section(preset).items():
            self.config[key] = copy.deepcopy(value)
        for spec in MODEL_FIELDS:
            if spec.key.startswith(("model", "encoder_conf", "decoder_conf", "predictor_conf")):
                form_field = self.field_for(spec.key)
                if form_field is not None:
                    form_field.set_value(get_dotted(self.config, spec.key, spec.default))
        self._config_changed()
        self.notify(f"Model settings copied from {path.name}")

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "run":
            self._refresh_run_tab()
        elif event.pane.id == "optim":
            self._request_preview()
