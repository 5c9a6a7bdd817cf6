"""Keys every screen with text fields shares: Esc back, F-key twins of the app's letter keys.

In a form, "u", "n", "p", "q" and "?" type into the focused field, so the footer shows their
twins instead (Esc back, F9 runs, F10 new run, F1 help; ctrl+q quits everywhere, ctrl+p opens the
command palette). The letter bindings are repeated here hidden, so that the footer does not
list keys that would type.
"""

from __future__ import annotations

from textual.binding import Binding

FORM_NAVIGATION = [
    Binding("escape", "app.back", "Back"),
    Binding("f9", "app.runs", "Runs"),
    Binding("f1", "app.help", "Help"),
    *[Binding(key, f"app.{action}", description, show=False)
      for key, action, description in (("q", "quit", "Quit"), ("question_mark", "help", "Help"),
                                       ("n", "new_run", "New run"), ("p", "presets", "Presets"),
                                       ("u", "runs", "Runs"))],
]
