"""Textual's Footer, rebuilt only when the keys it shows change.

Textual's own rebuilds every key (a widget each, styled anew) at each bindings signal of its
screen: a focus move, the screen's resume and suspend, a table's cursor. Opening a screen
rebuilds it three times, and a screen under another one rebuilds its hidden footer too.
Profiles of the monitor's attach and of Compare's first frame put these rebuilds first among
the UI thread's costs, so this footer coalesces the signals of one refresh into one check
and rebuilds only when the shown keys differ from those on screen.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer as TextualFooter


class Footer(TextualFooter):
    """A drop-in Footer: same keys, same look, fewer rebuilds."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shown_keys: tuple | None = None
        self._check_pending = False

    def shown_keys(self) -> tuple:
        """What compose() draws: the shown bindings with their state, and the palette key."""
        active = self.screen.active_bindings
        keys = tuple((binding.key, binding.action, binding.description, binding.key_display, binding.group,
                      enabled, tooltip)
                     for _, binding, enabled, tooltip in active.values() if binding.show)
        palette = active.get(self.app.COMMAND_PALETTE_BINDING)
        return keys, palette and palette[2:], self.show_command_palette, self.app.ENABLE_COMMAND_PALETTE

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus or not self.is_attached or screen is not self.screen:
            return
        if not self._check_pending:  # several signals in one refresh: one check
            self._check_pending = True
            self.call_after_refresh(self._recompose_if_changed)

    async def _recompose_if_changed(self) -> None:
        self._check_pending = False
        if not self.is_attached:
            return
        keys = self.shown_keys()
        if keys != self._shown_keys:
            self._shown_keys = keys
            await self.recompose()
