"""When a view may draw: the one guard between the app's state and the widgets that show it.

The app's state is pushed down to the views by Textual's data binding (`BINDS`), and a
watcher that draws queries the view's own widgets (`query_one("#play")`).  Those widgets
are there only while the view is *live*: mounted (its `compose` has run, so its children
exist) in an app that is running and not closing.  A view is not live before it mounts
(the panes behind the first screen mount just after it, while keys may already be
arriving) and from the moment the app starts to close (quitting, a crash, the terminal or
the browser tab gone), when Textual takes the widgets down while the workers' last
messages still change the state.

`LiveView` makes every `watch_…` method of a view do nothing while the view is not live.
Nothing is lost by it: when a view mounts, the binding sets every bound value again (with
its watchers), so the view draws the state as it is by then.  Methods the app calls on a
view directly (a pane's note) take `when_live` one by one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from textual.app import App
from textual.widget import Widget

F = TypeVar("F", bound=Callable[..., Any])


def app_closing(app: App[Any]) -> bool:
    """The app is quitting, has crashed or has lost its terminal (Textual sets a return
    code on `exit()` and on an unhandled exception, and stops running when it shuts down)."""
    return not app.is_running or app.return_code is not None


def is_live(widget: Widget) -> bool:
    """`widget` is mounted in a running app that is not closing: its children can be
    queried and drawn on."""
    return widget.is_mounted and widget.is_attached and not app_closing(widget.app)


def when_live(method: F) -> F:
    """A widget's method that queries its children: it does nothing (returns None) while
    the widget is not live."""

    @functools.wraps(method)
    def run(self: Widget, *args: Any, **kwargs: Any) -> Any:
        if not is_live(self):
            return None
        return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]


class LiveView:
    """A mixin for the widgets the app's state is bound to (`class TrainingPane(LiveView,
    Vertical)`): every `watch_…` method the class defines runs only while it is live
    (see `when_live`)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if name.startswith("watch_") and callable(value):
                setattr(cls, name, when_live(value))
