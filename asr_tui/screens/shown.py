"""Whether a screen is on show, for the screens' periodic work.

Textual's ``Screen.is_current`` also counts the screen just below the top one, which might
show through it: a runs list under the monitor would rescan every run (and rebuild its table
and footer) every two seconds, and a monitor under Compare would draw charts nobody sees.
"""

from __future__ import annotations

from textual.screen import ModalScreen, Screen


def on_show(screen: Screen) -> bool:
    """The top screen, or one seen behind the modal dialogs above it (help, confirm)."""
    if not screen.is_current:
        return False
    stack = screen.app.screen_stack
    above = stack[stack.index(screen) + 1:] if screen in stack else [None]
    return all(isinstance(other, ModalScreen) for other in above)
