"""A modal file picker for data lists: Textual's DirectoryTree plus a path you can type.

Over SSH the data often lives far from the working directory, so the typed path is as
important as the tree: Enter on a folder re-roots the tree there, Enter on a file picks it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Label, Static


class ListFileTree(DirectoryTree):
    """Folders and files with the given suffixes; hidden entries left out."""

    def __init__(self, path: Path, suffixes: tuple[str, ...], **kwargs) -> None:
        super().__init__(path, **kwargs)
        self.suffixes = suffixes

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [
            p for p in paths
            if not p.name.startswith(".") and (p.is_dir() or not self.suffixes or p.suffix in self.suffixes)
        ]


class FilePickerScreen(ModalScreen[Path | None]):
    """Pick a file; dismisses with its path, or None on escape."""

    DEFAULT_CSS = """
    FilePickerScreen { align: center middle; }
    FilePickerScreen > Vertical { width: 90%; height: 90%; border: round $accent; background: $surface; }
    FilePickerScreen ListFileTree { height: 1fr; }
    FilePickerScreen #picker-path { width: 1fr; }
    FilePickerScreen #picker-error { color: $error; height: auto; }
    FilePickerScreen .picker-row { height: auto; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("alt+up", "parent", "Parent folder"),
    ]

    def __init__(self, start: Path | None = None, suffixes: tuple[str, ...] = (".jsonl",),
                 title: str = "Pick a data list") -> None:
        super().__init__()
        start = Path(start).expanduser() if start else Path.cwd()
        if start.is_file():
            start = start.parent
        while not start.is_dir() and start != start.parent:
            start = start.parent
        self.start = start.resolve()
        self.suffixes = suffixes
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"{self.title_text} ({', '.join(self.suffixes) or 'any file'}) — Enter picks, Esc cancels")
            with Horizontal(classes="picker-row"):
                yield Input(str(self.start), id="picker-path", compact=True)
                yield Button("Parent", id="picker-parent", compact=True)
            yield Static("", id="picker-error")
            yield ListFileTree(self.start, self.suffixes, id="picker-tree")

    def on_mount(self) -> None:
        self.query_one(ListFileTree).focus()

    def _root_at(self, folder: Path) -> None:
        self.query_one(ListFileTree).path = folder
        self.query_one("#picker-path", Input).value = str(folder)
        self.query_one("#picker-error", Static).update("")

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_parent(self) -> None:
        current = Path(self.query_one(ListFileTree).path)
        self._root_at(current.parent)

    @on(Button.Pressed, "#picker-parent")
    def _parent_pressed(self) -> None:
        self.action_parent()

    @on(Input.Submitted, "#picker-path")
    def _path_typed(self, event: Input.Submitted) -> None:
        path = Path(event.value.strip()).expanduser()
        if path.is_dir():
            self._root_at(path.resolve())
        elif path.is_file():
            self.dismiss(path)
        else:
            self.query_one("#picker-error", Static).update(f"no such file or folder: {path}")

    @on(DirectoryTree.FileSelected)
    def _file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.dismiss(Path(event.path))
