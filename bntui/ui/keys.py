"""Every action of the app with its keys: the one table the key bindings, the footer, the
help screen and the command palette are built from (the panes' number keys come from
`bntui.ui.registry`).  An action missing here is missing everywhere, so none is missing
from one place only.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

from bntui.ui.registry import PANES


@dataclass(frozen=True)
class Key:
    """One action: Textual key names (comma-separated), the action, how it reads."""

    keys: str  # e.g. "n,right"
    action: str  # an `action_…` of the app, with its arguments
    label: str  # the footer's word and the palette's title
    display: str  # how help writes the keys, e.g. "n / →"
    about: str  # one line for help and the palette
    footer: bool = False


KEYS: tuple[Key, ...] = (
    Key("n,right", "next_step", "next", "n / →", "next step of the pass", footer=True),
    Key("b,left", "prev_step", "back", "b / ←", "previous step of the pass", footer=True),
    Key("right_square_bracket", "next_layer", "next layer", "]",
        "first step of the next layer"),
    Key("left_square_bracket", "prev_layer", "previous layer", "[",
        "first step of the previous layer"),
    Key("home", "first_step", "first step", "home", "first step of the pass"),
    Key("end", "last_step", "last step", "end", "last step of the pass"),
    Key("t", "train_step", "train 1", "t", "one training step", footer=True),
    Key("space", "toggle_play", "play", "space", "play / pause training", footer=True),
    Key("r", "reset", "reset", "r", "reset the weights (same seed)"),
    Key("g", "gradcheck", "check", "g", "check every gradient: numerical and autograd",
        footer=True),
    Key("e", "toggle_eval", "train/eval", "e",
        "the stepper's pass: training mode ↔ eval mode (running statistics)"),
    Key("x", "exercise", "exercise", "x", "exercise mode: each step's tensor hidden and asked"),
    Key("v", "toggle_graph", "graph", "v",
        "the stepper's grid ↔ the block's computational graph (this step lit)"),
    Key("i", "inspect", "entry", "i",
        "one entry's arithmetic: its formula with the numbers plugged in (click a cell)"),
    Key("d", "derive", "derive", "d",
        "derive the compact backward of this block's normalization, step by step"),
    Key("w", "tour", "tour", "w", "guided tour of one BatchNorm forward and backward"),
    Key("ctrl+s", "save", "save", "ctrl+s", "save the whole session"),
    Key("ctrl+o", "open", "open", "ctrl+o", "open a saved session"),
    Key("ctrl+e", "export", "export", "ctrl+e",
        "export this walkthrough (Markdown or HTML, with the gradient checks)"),
    Key("question_mark", "help", "help", "?", "help: keys, panes, glossary", footer=True),
    Key("q", "quit", "quit", "q", "quit", footer=True),
)

# keys that only act while something is on (the drill-down, a tour, a text field): in help,
# not the palette
TOUR_KEYS: tuple[Key, ...] = (
    Key("shift+up", "move_entry(-1, 0)", "entry up", "shift+↑", "drill-down: the entry above"),
    Key("shift+down", "move_entry(1, 0)", "entry down", "shift+↓",
        "drill-down: the entry below"),
    Key("shift+left", "move_entry(0, -1)", "entry left", "shift+←",
        "drill-down: the entry to the left"),
    Key("shift+right", "move_entry(0, 1)", "entry right", "shift+→",
        "drill-down: the entry to the right"),
    Key("enter", "tour_next", "next stop", "enter", "tour: the next stop"),
    Key("backspace", "tour_back", "previous stop", "backspace", "tour: the previous stop"),
    Key("escape", "escape", "leave", "escape",
        "leave a text field (the keys go back to the app), or end the tour"),
)


def bindings() -> list[Binding]:
    """The app's key bindings: every action, then one number key per pane."""
    out = [Binding(k.keys, k.action, k.label, show=k.footer, key_display=None)
           for k in (*KEYS, *TOUR_KEYS)]
    out += [Binding(p.key, f"show_tab('{p.id}')", p.title, show=False) for p in PANES]
    return out


def palette() -> list[tuple[str, str, str]]:
    """(title, help, action) for every command-palette entry: each action of `KEYS` and
    each pane of the registry."""
    out = [(f"{k.about[0].upper()}{k.about[1:]} ({k.display})", k.label, k.action)
           for k in KEYS]
    out += [(f"Show {p.title} ({p.key})", p.about, f"show_tab('{p.id}')") for p in PANES]
    out += [(f"{'Tour' if k.action.startswith('tour_') else 'Drill-down'}: {k.label} "
             f"({k.display})", k.about, k.action)
            for k in TOUR_KEYS if k.action != "escape"]
    return out


def help_rows() -> list[tuple[str, str]]:
    """(keys, what they do) for the help screen, panes included."""
    rows = [(k.display, k.about) for k in (*KEYS, *TOUR_KEYS)]
    first, last = PANES[0].key, PANES[-1].key
    rows.insert(6, (f"{first} … {last}", "switch pane (listed below)"))
    rows.append(("ctrl+p", "command palette: every action, searchable"))
    return rows
