"""The Labs pane: a list of labs on the left, the chosen lab's screen on the right.

The labs are registered in `bntui.ui.labs.lab_views()`.  Only the lab on show is told
about the app's configuration; the others catch up when they are picked.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import var
from textual.widgets import ContentSwitcher, OptionList, Static
from textual.widgets.option_list import Option

from bntui.engine.config import RunConfig
from bntui.engine.session import Session
from bntui.ui.labs import LabView, lab_views
from bntui.ui.live import LiveView, is_live


class LabsPane(LiveView, Horizontal):
    """The app's session and active tab are bound (`BINDS`): a lab computes only once the
    Labs tab is open."""

    BINDS = ("session", "active_tab")
    session: var[Session | None] = var(None, init=False)
    active_tab: var[str] = var("", init=False)

    def __init__(self) -> None:
        super().__init__()
        self.views: list[LabView] = []
        self.config: RunConfig | None = None
        self._loaded: dict[str, RunConfig] = {}

    def compose(self) -> ComposeResult:
        # the lab modules are imported here, when the pane mounts (after the first screen)
        self.views = [cls() for cls in lab_views()]
        for view in self.views:
            view.id = f"lab-{view.LAB_ID}"
        with Vertical(id="lab-side"):
            yield OptionList(*[Option(v.TITLE, id=v.LAB_ID) for v in self.views], id="lab-list")
            yield Static(id="lab-blurb")
        first = self.views[0].id if self.views else None
        with ContentSwitcher(id="lab-switcher", initial=first):
            yield from self.views
        if not self.views:
            yield Static("no labs yet", id="lab-none")

    def on_mount(self) -> None:
        if self.views:
            self.query_one("#lab-list", OptionList).highlighted = 0

    def watch_session(self, session: Session | None) -> None:
        if session is not None:
            self.load(session.config)

    def watch_active_tab(self, tab: str) -> None:
        if tab == "labs":
            self.shown()

    @property
    def current(self) -> LabView | None:
        shown = self.query_one("#lab-switcher", ContentSwitcher).current
        return next((v for v in self.views if v.id == shown), None)

    def load(self, config: RunConfig) -> None:
        """The app's configuration changed (or the pane just mounted)."""
        self.config = config
        self._load_current()

    def shown(self) -> None:
        """The Labs tab was opened: the list takes the keys (↑/↓ pick a lab)."""
        if self.views:
            # once the keys already pressed are done: a focused list would pull the Labs
            # tab back to the front over a tab asked for after it (8 then 1 at once)
            self.app.call_later(self._focus_list)
        self._load_current()

    def _focus_list(self) -> None:
        if self.active_tab == "labs" and is_live(self):
            self.app.set_focus(self.query_one("#lab-list", OptionList))

    def show_lab(self, lab_id: str) -> None:
        for i, view in enumerate(self.views):
            if lab_id == view.LAB_ID:
                self.query_one("#lab-list", OptionList).highlighted = i
                return
        raise KeyError(lab_id)

    def _load_current(self) -> None:
        """Tell the lab on show about the configuration, once the Labs tab is open (a lab
        computes as soon as it is loaded: not at app start, behind another tab)."""
        view = self.current
        if view is None or self.config is None:
            return
        if self.active_tab != "labs":
            return
        self.query_one("#lab-blurb", Static).update(view.BLURB)
        if self._loaded.get(view.LAB_ID) is not self.config:
            self._loaded[view.LAB_ID] = self.config
            view.load(self.config)

    @on(OptionList.OptionHighlighted, "#lab-list")
    def _picked(self, event: OptionList.OptionHighlighted) -> None:
        self.query_one("#lab-switcher", ContentSwitcher).current = f"lab-{event.option.id}"
        self._load_current()
