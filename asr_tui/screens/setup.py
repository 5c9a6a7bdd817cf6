"""Setup screen: edit an experiment config, preview its lr curves and torchrun command, launch it.

The screen holds one config dict (``engine.config`` schema). Every field edits one dotted key
of it and is checked as it is typed; after each edit the whole config is checked again with
``engine.config.check_config`` (plus the cross-field checks below) and each problem is shown
beside the field it names. Launch posts :class:`LaunchRequested` with the validated config only
when nothing is wrong; the app writes config.yaml and starts the job.
"""

from __future__ import annotations

import asyncio
import copy
import math
from dataclasses import dataclass
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import (
    Button, Footer, Header, Input, Label, Select, Static, TabbedContent, TabPane, TextArea,
)

from asr_tui.command import command_text, distributed_conf, port_is_free, write_node_scripts
from asr_tui.messages import LaunchRequested
from asr_tui.presets_store import PresetError, config_diff, list_presets, load_preset, model_section
from asr_tui.widgets.form_data_check import DataCheck
from asr_tui.widgets.form_fields import (
    FieldSpec, FormField, devices, get_dotted, init_param_spec, integer, mapping, number, number_list, optional_path,
    path_list, pop_dotted, set_dotted, text,
)
from asr_tui.widgets.form_file_picker import FilePickerScreen
from asr_tui.widgets.form_model_dir import FINETUNE_SUGGESTIONS, LOCKED_KEYS, ModelDirPicker
from asr_tui.widgets.form_optim_sche import OptimScheEditor
from asr_tui.widgets.lr_preview import LrPreview
from engine.config import (
    CHOICES, DEFAULTS, LIST_KEYS, ConfigError, ConfigIssue, check_config, deep_merge, dump_config, save_config,
    validate_config,
)

DATA_FIELDS = (
    FieldSpec("output_dir", "output_dir", text(), help="the run directory (config.yaml, logs, checkpoints)"),
    FieldSpec("train_data_set_list", "train lists", path_list(), browse=True, placeholder="data/train.jsonl",
              help="FunASR jsonl lists, comma separated"),
    FieldSpec("valid_data_set_list", "valid lists", path_list(), browse=True, placeholder="data/valid.jsonl"),
    FieldSpec("test_data_set_list", "test lists", path_list(), browse=True, placeholder="data/test.jsonl"),
)
MODEL_FIELDS = (
    FieldSpec("model", "model", kind="select", choices=CHOICES["model"]),
    FieldSpec("model_conf.ctc_weight", "ctc_weight", number(minimum=0.0, maximum=1.0),
              help="weight of the CTC loss against the attention loss"),
    FieldSpec("model_conf.lsm_weight", "lsm_weight", number(minimum=0.0, maximum=0.99),
              help="label smoothing of the attention decoder"),
    FieldSpec("encoder_conf", "encoder_conf", mapping(), placeholder="{output_size: 256, num_blocks: 12}"),
    FieldSpec("decoder_conf", "decoder_conf", mapping(), placeholder="{num_blocks: 6}"),
    FieldSpec("predictor_conf", "predictor_conf", mapping(), placeholder="{} (paraformer only)",
              help="paraformer's CIF predictor (FunASR's CifPredictorV2 keys)"),
    FieldSpec("frontend_conf.n_mels", "n_mels", integer(minimum=1), help="Kaldi fbank bins"),
    FieldSpec("frontend_conf.lfr_m", "lfr_m", integer(minimum=1), help="low frame rate: frames stacked"),
    FieldSpec("frontend_conf.lfr_n", "lfr_n", integer(minimum=1), help="low frame rate: frames skipped"),
    FieldSpec("frontend_conf.dither", "dither", number(minimum=0.0)),
    FieldSpec("cmvn", "cmvn", kind="select", choices=CHOICES["cmvn"],
              help="global: statistics of the training list, saved as am.mvn"),
    FieldSpec("specaug_conf", "specaug_conf", mapping(), placeholder="{} (no SpecAugment)"),
    FieldSpec("tokenizer_conf.type", "tokenizer", kind="select", choices=("char", "bpe")),
    FieldSpec("tokenizer_conf.vocab_size", "vocab_size (bpe)", integer(minimum=2, optional=True), omit_empty=True,
              placeholder="needed for bpe", help="sentencepiece vocabulary size, trained on the training text"),
)
BATCHING_FIELDS = (
    FieldSpec("dataset_conf.batch_type", "batch_type", kind="select", choices=CHOICES["dataset_conf.batch_type"],
              help="example: utterances per batch; length/token: frames per batch"),
    FieldSpec("dataset_conf.batch_size", "batch_size", integer(minimum=1)),
    FieldSpec("dataset_conf.num_workers", "num_workers", integer(minimum=0), help="data loader processes per rank"),
    FieldSpec("dataset_conf.min_source_length", "min_source_length", integer(minimum=0),
              help="shorter utterances (frames) are dropped and counted"),
    FieldSpec("dataset_conf.max_source_length", "max_source_length", integer(minimum=1),
              help="longer utterances (frames) are dropped and counted"),
    FieldSpec("dataset_conf.max_target_length", "max_target_length", integer(minimum=1)),
    FieldSpec("dataset_conf.shuffle", "shuffle", kind="switch"),
    FieldSpec("dataset_conf.speed_perturb", "speed_perturb", number_list(optional=True, minimum=0.5, maximum=2.0),
              placeholder="off (e.g. 0.9, 1.0, 1.1)",
              help="training audio played at one of these speeds, drawn per utterance and epoch"),
)
TRAINING_FIELDS = (
    FieldSpec("train_conf.max_epoch", "max_epoch", integer(minimum=1)),
    FieldSpec("train_conf.log_interval", "log_interval", integer(minimum=1), help="updates between train events"),
    FieldSpec("train_conf.validate_interval", "validate_interval", integer(minimum=1)),
    FieldSpec("train_conf.save_checkpoint_interval", "save_checkpoint_interval", integer(minimum=1)),
    FieldSpec("train_conf.keep_nbest_models", "keep_nbest_models", integer(minimum=1)),
    FieldSpec("train_conf.avg_nbest_model", "avg_nbest_model", integer(minimum=0)),
    FieldSpec("train_conf.avg_keep_nbest_models_type", "n-best by", kind="select",
              choices=CHOICES["train_conf.avg_keep_nbest_models_type"]),
    FieldSpec("train_conf.patience", "patience", integer(minimum=0), placeholder="0: off",
              help="stop when the n-best metric has not improved for this many validations"),
    FieldSpec("train_conf.accum_grad", "accum_grad", integer(minimum=1)),
    FieldSpec("train_conf.grad_clip", "grad_clip", number(minimum=0.0, exclusive_min=True, optional=True),
              placeholder="no clipping"),
    FieldSpec("train_conf.use_fp16", "use_fp16", kind="switch"),
    FieldSpec("train_conf.use_bf16", "use_bf16", kind="switch"),
    FieldSpec("train_conf.init_param", "init_param", init_param_spec(), placeholder="start from random weights",
              help="a checkpoint to initialise the model from (fine-tuning); PATH:SRC:DST:EXCLUDE,... filters keys "
                   "(e.g. model.pt:::ctc.ctc_lo,decoder.output_layer,decoder.embed re-initialises the output layers)"),
    FieldSpec("train_conf.ft_factor", "ft_factor", number(minimum=0.0, exclusive_min=True),
              help="scales every lr (fine-tuning)"),
    FieldSpec("seed", "seed", integer(minimum=0)),
    FieldSpec("train_conf.resume", "resume", kind="switch", help="continue from output_dir/model.pt if it exists"),
)
DISTRIBUTED_FIELDS = (
    FieldSpec("distributed.nnodes", "nnodes", integer(minimum=1)),
    FieldSpec("distributed.nproc_per_node", "nproc_per_node", integer(minimum=1), help="processes (GPUs) per node"),
    FieldSpec("distributed.node_rank", "node_rank", integer(minimum=0), help="this machine's rank"),
    FieldSpec("distributed.master_addr", "master_addr", text(no_spaces=True), help="address of node 0"),
    FieldSpec("distributed.master_port", "master_port", integer(minimum=1, maximum=65535)),
    FieldSpec("distributed.devices", "devices", devices(), placeholder="all visible GPUs",
              help="CUDA_VISIBLE_DEVICES for the job"),
    FieldSpec("distributed.backend", "backend", kind="select", choices=CHOICES["distributed.backend"]),
)
PREVIEW_STEPS = FieldSpec("(preview)", "preview steps", integer(minimum=1, maximum=10_000_000, optional=True),
                          placeholder="estimated", help="training steps (batches per rank) to draw")
TAB_FIELDS = {"data": DATA_FIELDS, "model": MODEL_FIELDS, "batching": BATCHING_FIELDS,
              "training": TRAINING_FIELDS, "distributed": DISTRIBUTED_FIELDS}
TAB_OF_KEY = {spec.key: tab for tab, specs in TAB_FIELDS.items() for spec in specs}
TABS = (
    ("data", "F2 Data"), ("model", "F3 Model"), ("batching", "F4 Batch"), ("training", "F5 Train"),
    ("optim", "F6 Optim"), ("distributed", "F7 Nodes"), ("run", "F8 Run"),
)
DEFAULT_PREVIEW_STEPS = 100_000


@dataclass
class Problem:
    """Something that blocks launch; ``tab`` is where it is fixed, ``form_field`` its field if shown."""

    message: str
    tab: str
    form_field: FormField | None = None
    key: str | None = None


def tab_of_key(key: str) -> str:
    """The tab holding the field of a dotted config key (the Run tab for keys without a field)."""
    if key.startswith("optim_sches"):
        return "optim"
    return TAB_OF_KEY.get(key, "run")


def cross_field_issues(config: dict) -> list[ConfigIssue]:
    """Problems between fields that the engine would only find at start-up."""
    issues = []
    tokenizer = config.get("tokenizer_conf") or {}
    if tokenizer.get("type") == "bpe" and not tokenizer.get("vocab_size"):
        issues.append(ConfigIssue("tokenizer_conf.vocab_size", "needed for a bpe tokenizer"))
    train = config.get("train_conf") or {}
    keep, avg = train.get("keep_nbest_models"), train.get("avg_nbest_model")
    if isinstance(keep, int) and isinstance(avg, int) and avg > keep:
        issues.append(ConfigIssue("train_conf.avg_nbest_model", f"cannot average more than the {keep} kept"))
    data = config.get("dataset_conf") or {}
    low, high = data.get("min_source_length"), data.get("max_source_length")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        issues.append(ConfigIssue("dataset_conf.min_source_length", f"is above max_source_length ({high})"))
    issues.extend(_optim_overlap_issues(config.get("optim_sches") or {}))
    dist = config.get("distributed") or {}
    gpus = [d for d in str(dist.get("devices") or "").split(",") if d.strip()]
    procs = dist.get("nproc_per_node")
    if gpus and isinstance(procs, int) and len(gpus) < procs:
        issues.append(ConfigIssue("distributed.devices", f"lists {len(gpus)} GPU(s) for nproc_per_node {procs}"))
    return issues


def _optim_overlap_issues(optim_sches: dict) -> list[ConfigIssue]:
    """Several OptimSchedulers must update disjoint modules (the engine refuses overlaps)."""
    if len(optim_sches) < 2:
        return []
    issues, owner = [], {}
    for name, entry in optim_sches.items():
        key = f"optim_sches.{name}.conf.updated_modules"
        modules = ((entry or {}).get("conf") or {}).get("updated_modules")
        if modules is None:
            issues.append(ConfigIssue(key, "with several OptimSchedulers, name the modules each one updates"))
            continue
        for module in [modules] if isinstance(modules, str) else modules:
            if module in owner:
                issues.append(ConfigIssue(key, f"{module} is already updated by {owner[module]}"))
            owner.setdefault(module, name)
    return issues


def estimate_steps(config: dict, train_stats: dict | None) -> tuple[int, str]:
    """Training steps per rank for the whole run, from the training list's size, or a fallback.

    Batches are estimated from the list's utterances (batch_type example) or frames (length /
    token: seconds / frame_shift / lfr_n), split over every rank, times max_epoch.
    """
    train = config.get("train_conf") or {}
    if train_stats and train_stats.get("utterances"):
        data = config.get("dataset_conf") or {}
        frontend = config.get("frontend_conf") or {}
        batch_size = max(int(data.get("batch_size") or 1), 1)
        if data.get("batch_type") == "example":
            per_epoch = train_stats["utterances"] / batch_size
        else:
            frames = train_stats.get("seconds", 0.0) * 1000.0 / float(frontend.get("frame_shift") or 10)
            per_epoch = frames / max(int(frontend.get("lfr_n") or 1), 1) / batch_size
        dist = distributed_conf(config)
        world = max(int(dist["nnodes"]) * int(dist["nproc_per_node"]), 1)
        steps = max(math.ceil(per_epoch / world), 1) * max(int(train.get("max_epoch") or 1), 1)
        return steps, "estimated from the train list"
    accum = max(int(train.get("accum_grad") or 1), 1)
    longest = 0
    for entry in (config.get("optim_sches") or {}).values():
        conf = (entry or {}).get("conf") or {}
        per_update = accum * max(int(conf.get("step_per_update") or 1), 1)
        if isinstance(conf.get("max_update"), int):
            longest = max(longest, conf["max_update"] * per_update)
        elif isinstance(conf.get("warmup_steps"), int):
            longest = max(longest, 4 * conf["warmup_steps"] * per_update)
    if longest:
        return longest, "from the schedules"
    return DEFAULT_PREVIEW_STEPS, "default"


class SetupScreen(Screen):
    """Forms for the whole experiment config, the lr preview and the torchrun command."""

    CSS_PATH = "setup.tcss"
    BINDINGS = [
        Binding("ctrl+r", "launch", "Launch"),
        Binding("ctrl+y", "copy_command", "Copy cmd"),
        Binding("ctrl+t", "save_scripts", "Node scripts"),
        Binding("ctrl+n", "add_optim_sche", "Add optim"),
        Binding("ctrl+g", "next_problem", "Next problem"),
        Binding("ctrl+o", "open_presets", "Presets"),
        Binding("f1", "app.help", "Help", show=False),  # "?" types into the focused field
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
        self.train_stats: dict | None = None
        self._mounted_tabs = {"data"}  # data: its check feeds the lr preview's step estimate
        self._tab_loaded: dict[str, asyncio.Event] = {"data": asyncio.Event()}
        self._tab_loaded["data"].set()
        self._status_text = ""
        self._preview_steps: int | None = None

    # ---- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # A tab's fields are mounted when it is first shown: the whole form is ~1000 widgets,
        # and mounting them all would make opening the screen slow over SSH.
        yield Header()
        with TabbedContent(initial="data", id="setup-tabs"):
            for tab, label in TABS:
                with TabPane(label, id=tab):
                    if tab in self._mounted_tabs:
                        yield from self._tab_content(tab)
        yield Static("", id="setup-status")
        yield Footer()

    def _tab_content(self, tab: str) -> list[Widget]:
        """The widgets of one tab (built explicitly: they are also mounted after compose)."""
        if tab == "optim":
            editors = [OptimScheEditor(name, entry, collapsed=index > 0)
                       for index, (name, entry) in enumerate((self.config.get("optim_sches") or {}).items())]
            return [
                VerticalScroll(*editors, Button("Add an OptimScheduler (ctrl+n)", id="add-optim", compact=True),
                               id="optim-list"),
                Vertical(FormField(PREVIEW_STEPS, self._preview_steps, id="preview-steps"), LrPreview(id="lr-preview"),
                         id="preview-pane"),
            ]
        if tab == "model":
            preset_row = Horizontal(
                Label("model preset", classes="form-label"),
                Select(self._model_preset_options(), prompt="copy the model of a preset…", id="model-preset",
                       compact=True),
                classes="form-row", id="model-preset-row")
            model = self.config.get("model")
            picker = ModelDirPicker(model if model not in CHOICES["model"] else None, id="model-dir")
            return [VerticalScroll(picker, preset_row, *self._fields(MODEL_FIELDS))]
        if tab == "run":
            buttons = Horizontal(
                Button("Launch (ctrl+r)", id="launch", variant="success", compact=True),
                Button("Copy (ctrl+y)", id="copy", compact=True),
                Button("Save node scripts (ctrl+t)", id="scripts", compact=True),
                id="run-buttons")
            return [VerticalScroll(
                Static("", id="problems"),
                Label("", id="command-title"),
                TextArea("", id="command", read_only=True, soft_wrap=True, show_line_numbers=False),
                buttons,
                Static("", id="changes"))]
        extra = [DataCheck(id="data-check")] if tab == "data" else []
        return [VerticalScroll(*self._fields(TAB_FIELDS[tab]), *extra)]

    async def _ensure_tab(self, tab: str) -> None:
        """Mount a tab's content the first time it is needed, then re-place the problems.

        Callers may overlap (a key shows the tab while TabActivated arrives): all of them wait
        for the one mount.
        """
        loaded = self._tab_loaded.get(tab)
        if loaded is None:
            loaded = self._tab_loaded[tab] = asyncio.Event()
            await self.query_one(f"TabPane#{tab}", TabPane).mount_all(self._tab_content(tab))
            self._mounted_tabs.add(tab)
            self._top_fields = None
            loaded.set()
            self._config_changed()
        await loaded.wait()

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
        if self._top_fields is None:
            self._top_fields = {f.spec.key: f for f in self.query(FormField) if f.spec.key != PREVIEW_STEPS.key
                                and not any(isinstance(a, OptimScheEditor) for a in f.ancestors)}
        return self._top_fields

    def editors(self) -> list[OptimScheEditor]:
        if "optim" not in self._mounted_tabs:
            return []
        return list(self.query_one("#optim-list", VerticalScroll).query_children(OptimScheEditor))

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
        if event.key == PREVIEW_STEPS.key:
            self._preview_steps = event.value
            self._request_preview()
            return
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

    def _sync_optim_sches(self) -> None:
        sches: dict = {}
        for editor in self.editors():
            # A duplicate name keeps both entries apart until it is fixed (the check flags it).
            name = editor.sche_name if editor.sche_name not in sches else f"{editor.sche_name}~dup"
            sches[name] = editor.entry
        self.config["optim_sches"] = copy.deepcopy(sches)

    def _config_changed(self) -> None:
        """Re-check the whole config, put each problem beside its field, refresh the command."""
        issues = check_config(self.config) + cross_field_issues(self.config)
        names = [editor.sche_name for editor in self.editors()]
        for name in {n for n in names if names.count(n) > 1}:
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
        if status_text != self._status_text:  # a repaint per keystroke only when the line changes
            self._status_text = status_text
            status = self.query_one("#setup-status", Static)
            status.update(status_text)
            status.set_class(bool(problems), "-problems")
        if self.query_one(TabbedContent).active != "run" or "run" not in self._mounted_tabs:
            return  # drawn when the Run tab is shown: layout is the costly part of a keystroke
        self.query_one("#problems", Static).update(
            "Fix before launch:\n" + "\n".join(f"  • {p.message} ({dict(TABS)[p.tab]})" for p in problems[:20])
            if problems else "✓ The config is complete.")
        dist = distributed_conf(self.config)
        self.query_one("#command-title", Label).update(
            f"torchrun command (node {dist['node_rank']} of {dist['nnodes']}), select or ctrl+y to copy:")
        command = self.query_one("#command", TextArea)
        if command.text != self.command():
            command.load_text(self.command())
        changes = config_diff(self.baseline, self.config)
        source = self.preset_path.name if self.preset_path else "the defaults"
        self.query_one("#changes", Static).update(
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
        if "optim" not in self._mounted_tabs:
            return  # drawn when the Optim tab is first shown
        steps, why = estimate_steps(self.config, self.train_stats)
        self.query_one("#preview-steps", FormField).query_one(Input).placeholder = f"{steps} ({why})"
        optim_sches = self.config.get("optim_sches") or {}
        if optim_sches:
            accum = int(get_dotted(self.config, "train_conf.accum_grad", 1) or 1)
            self.query_one(LrPreview).request(optim_sches, self._preview_steps or steps, accum, config=self.config,
                                              steps_given=bool(self._preview_steps))

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
        """Show a tab with its content mounted (the caller decides where the focus goes)."""
        self.query_one(TabbedContent).active = tab
        await self._ensure_tab(tab)

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
        """Write RUN/config.yaml (if new) and run_node{N}.sh for every node, for the other machines."""
        if self.problems():
            self.notify("Fix the problems first: the scripts would run a broken config.", severity="error")
            return
        try:
            config = validate_config(self.config, "setup form")
        except ConfigError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        config_path = self.config_path()
        if config_path.exists() and config_path.read_text(encoding="utf-8") != dump_config(config):
            self.notify(f"{config_path} already holds a different config (an earlier run?): "
                        "choose another output_dir.", severity="error", timeout=10)
            return
        try:
            save_config(config, config_path)
            paths = write_node_scripts(config, config_path, config_path.parent, workdir=Path.cwd())
        except OSError as exc:
            self.notify(f"Cannot write the scripts: {exc}", severity="error", timeout=10)
            return
        self.notify(f"Wrote {', '.join(p.name for p in paths)} in {config_path.parent}", timeout=8)

    async def action_add_optim_sche(self) -> None:
        await self.open_tab("optim")
        names = {editor.sche_name for editor in self.editors()}
        name = next(n for n in (f"optim{i}" for i in range(1, 1000)) if n not in names)
        template = copy.deepcopy(DEFAULTS["optim_sches"]["main"])
        editor = OptimScheEditor(name, template)
        await self.query_one("#optim-list", VerticalScroll).mount(editor, before="#add-optim")
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
    async def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        tab = event.pane.id or "data"
        await self._ensure_tab(tab)
        if tab == "run":
            self._refresh_run_tab()
