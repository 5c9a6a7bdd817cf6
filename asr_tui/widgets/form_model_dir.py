"""Setup's "start from a model directory" row: a FunASR model directory to fine-tune.

Choosing one (typed, or Browse to its config.yaml) reads it with the engine's torch-free
``engine.funasr`` modules: the architecture it builds, the parameter count, what will load
(model.pt, the token list, am.mvn) and the fine-tuning defaults suggested for it. The screen
locks the architecture fields to the directory's values; clearing the path unlocks them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, Label, Static

from engine.funasr.config_map import FunASRConfigError
from engine.funasr.model_dir import read_model_dir
from engine.funasr.param_count import count_params

# What a fine-tuning run usually wants: a tenth of the schedule's lr (ft_factor scales every
# OptimScheduler, and the lr preview shows it), and a fresh warm-up: a model directory's model.pt
# carries no optimiser step to continue from.
FINETUNE_SUGGESTIONS = {"train_conf.ft_factor": 0.1, "train_conf.warmup_from": "zero"}
# Dotted keys whose fields the directory decides (shown, read-only).
LOCKED_KEYS = ("model", "encoder_conf", "decoder_conf", "frontend_conf.n_mels", "frontend_conf.lfr_m",
               "frontend_conf.lfr_n", "cmvn", "tokenizer_conf.type", "tokenizer_conf.vocab_size",
               "tokenizer_conf.english")


@dataclass
class ModelDirSummary:
    path: Path
    funasr_model: str
    engine: dict
    num_params: int | None
    loads: list[str]
    values: dict = field(default_factory=dict)   # dotted key -> value the directory sets

    def describe(self) -> Text:
        enc = self.engine.get("encoder_conf", {})
        text = Text(f"{self.funasr_model}", style="bold")
        shape = ", ".join(f"{k} {enc[k]}" for k in ("output_size", "num_blocks", "attention_heads") if k in enc)
        text.append(f" ({shape})" if shape else "")
        if self.num_params is not None:
            text.append(f" · {self.num_params:,} parameters")
        text.append("\nwill load: " + "; ".join(self.loads), style="green")
        text.append("\narchitecture fields are the directory's (read-only); suggested: "
                    + ", ".join(f"{k.split('.')[-1]} {v}" for k, v in FINETUNE_SUGGESTIONS.items()),
                    style="dim")
        return text


def summarize(path: Path) -> ModelDirSummary:
    """Read ``path`` (torch-free); FunASRConfigError names the file or key that is wrong."""
    model_dir = read_model_dir(path)
    engine = model_dir.engine
    size = model_dir.model_file.stat().st_size / 2**20
    loads = [f"{model_dir.model_file.name} ({size:.1f} MiB, every weight)",
             f"{model_dir.token_file.name} ({model_dir.vocab_size} tokens)"]
    if model_dir.cmvn_file is not None:
        loads.append(f"{model_dir.cmvn_file.name} ({model_dir.input_dim}-dim CMVN)")
    values = {"encoder_conf": engine["encoder_conf"], "decoder_conf": engine["decoder_conf"],
              "cmvn": engine["cmvn"], "tokenizer_conf.type": engine["tokenizer_conf"]["type"],
              # the directory's token list says letters or words (engine.data.tokenizer.load_tokenizer)
              "tokenizer_conf.english": None}
    for key in ("n_mels", "lfr_m", "lfr_n"):
        values[f"frontend_conf.{key}"] = engine["frontend_conf"][key]
    for key, value in engine.get("model_conf", {}).items():
        values[f"model_conf.{key}"] = value
    return ModelDirSummary(path=model_dir.path, funasr_model=model_dir.funasr_model, engine=engine,
                           num_params=count_params(engine, model_dir.input_dim, model_dir.vocab_size),
                           loads=loads, values=values)


class ModelDirPicker(Vertical):
    """Path + Browse + Clear, and what the chosen directory will give the run."""

    DEFAULT_CSS = """
    ModelDirPicker { height: auto; margin: 0 0 1 0; }
    ModelDirPicker > .form-row { height: auto; }
    ModelDirPicker .form-label { width: 24; padding: 0 1 0 0; color: $text-muted; }
    ModelDirPicker Input { width: 1fr; }
    ModelDirPicker Button { width: auto; min-width: 8; }
    ModelDirPicker #model-dir-summary { padding: 0 0 0 24; height: auto; }
    """

    class Chosen(Message):
        """A directory was chosen (``summary``), or cleared (``summary`` None); ``error`` if unusable."""

        def __init__(self, picker: "ModelDirPicker", summary: ModelDirSummary | None, error: str | None) -> None:
            super().__init__()
            self.picker = picker
            self.summary = summary
            self.error = error

        @property
        def control(self) -> "ModelDirPicker":
            return self.picker

    class BrowseRequested(Message):
        def __init__(self, picker: "ModelDirPicker") -> None:
            super().__init__()
            self.picker = picker

    def __init__(self, path: str | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.initial = path or ""
        self.summary: ModelDirSummary | None = None
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label("start from model dir", classes="form-label")
            yield Input(self.initial, placeholder="a FunASR model directory (config.yaml, model.pt, tokens, am.mvn)",
                        compact=True, id="model-dir-path")
            yield Button("Browse", id="model-dir-browse", compact=True)
            yield Button("Clear", id="model-dir-clear", compact=True)
        yield Static("", id="model-dir-summary")

    def on_mount(self) -> None:
        self.query_one(".form-label", Label).tooltip = (
            "fine-tune a pretrained FunASR model (as funasr-train ++model=DIR): its architecture, weights, "
            "tokens and CMVN; data, batching, OptimSchedulers and train_conf stay this experiment's")
        if self.initial:
            self.choose(self.initial)

    def choose(self, raw: str) -> None:
        """Read the directory typed or picked and tell the screen."""
        raw = raw.strip()
        self.query_one("#model-dir-path", Input).value = raw
        summary_widget = self.query_one("#model-dir-summary", Static)
        if not raw:
            self.summary, self.error = None, None
            summary_widget.update("")
            self.post_message(self.Chosen(self, None, None))
            return
        try:
            self.summary, self.error = summarize(Path(raw).expanduser()), None
            summary_widget.update(self.summary.describe())
        except (FunASRConfigError, OSError) as error:
            self.summary, self.error = None, str(error)
            summary_widget.update(Text(str(error), style="bold red"))
        self.post_message(self.Chosen(self, self.summary, self.error))

    @on(Input.Submitted, "#model-dir-path")
    def _typed(self, event: Input.Submitted) -> None:
        event.stop()
        self.choose(event.value)

    @on(Button.Pressed, "#model-dir-browse")
    def _browse(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.BrowseRequested(self))

    @on(Button.Pressed, "#model-dir-clear")
    def _clear(self, event: Button.Pressed) -> None:
        event.stop()
        self.choose("")
