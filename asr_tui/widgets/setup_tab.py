"""A tab of the setup form: its body, mounted lazily, saying when it is in place.

The setup screen wraps every tab but the first in Textual's ``Lazy``, so the first frame
shows quickly and the other tabs mount right after it. A body posts :class:`SetupTab.Mounted`
once its fields exist (the screen then puts each problem beside its field), and sets its
``ready`` event, which an action showing the tab awaits before it moves the focus.
"""

from __future__ import annotations

import asyncio

from textual.containers import VerticalScroll
from textual.message import Message
from textual.widget import Widget


class SetupTab(VerticalScroll):
    """The body of one setup tab; ``tab`` is its TabPane's id."""

    class Mounted(Message):
        """The body of ``tab`` is mounted: its fields can be queried."""

        def __init__(self, tab: str) -> None:
            super().__init__()
            self.tab = tab

    def __init__(self, tab: str, *children: Widget, ready: asyncio.Event | None = None,
                 id: str | None = None) -> None:
        super().__init__(*children, id=id)
        self.tab = tab
        self.ready = ready if ready is not None else asyncio.Event()

    def on_mount(self) -> None:
        self.ready.set()
        self.post_message(self.Mounted(self.tab))
