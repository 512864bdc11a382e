"""The Exercise lab: the stepper's pass with a tensor or a formula hidden, and a score.

Each question shows the step's context — the formula (unless it is what is asked), the
entries it is computed from — and takes the answer in a field (a value, a shape) or from
a list of four formulas.  Enter checks the answer; Enter again (or `next`) moves on.
Questions come from the engine (`bntui.engine.labs.exercise`); this view only shows them.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, OptionList, Select, Static
from textual.widgets.option_list import Option

from bntui.engine.config import RunConfig
from bntui.engine.labs.exercise import (
    LETTERS,
    AnswerError,
    Exercise,
    Question,
    Verdict,
    make_exercise,
    shape_text,
)
from bntui.ui.form import Note
from bntui.ui.labs import LabView

COUNT = 10  # questions in a set
ROWS = 16  # samples the pass runs on: few enough to work by hand
PLACEHOLDERS = {"value": "a number, e.g. -0.42", "shape": "a shape, e.g. 16x4",
                "formula": "a letter, a–d"}
KIND_OPTIONS = (("mixed", "mixed"), ("values", "value"), ("shapes", "shape"),
                ("formulas", "formula"))


class ExerciseLab(LabView):
    LAB_ID = "exercise"
    TITLE = "Exercise"
    BLURB = ("A tensor or a formula of the pass is hidden: work it out from the ones before "
             "it. Enter checks, Enter again moves on; 'new set' draws new questions from the "
             "network as it is now.")

    DEFAULT_CSS = """
    ExerciseLab #ex-top { height: 3; }
    ExerciseLab #ex-head { width: 1fr; height: 3; padding: 1 1 0 0; }
    ExerciseLab #ex-kind { width: 16; }
    ExerciseLab #ex-body { height: 1fr; }
    ExerciseLab #ex-context { height: auto; }
    ExerciseLab #ex-prompt { height: auto; margin: 1 0 0 0; text-style: bold; }
    ExerciseLab #ex-choices { height: auto; max-height: 6; margin: 1 0 0 0; }
    ExerciseLab #ex-bar { height: 3; }
    ExerciseLab #ex-answer { width: 1fr; max-width: 30; }
    ExerciseLab #ex-bar Button { min-width: 8; margin: 0 0 0 1; }
    ExerciseLab #ex-feedback { margin: 0; height: auto; max-height: 4; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.exercise: Exercise | None = None
        self.current = 0  # index of the question on show
        self.config: RunConfig | None = None
        self.set_number = 0

    def compose(self) -> ComposeResult:
        with Horizontal(id="ex-top"):
            yield Static("preparing questions…", id="ex-head")
            yield Select(KIND_OPTIONS, id="ex-kind", value="mixed", allow_blank=False)
        with VerticalScroll(id="ex-body"):
            yield Static(id="ex-context")
            yield Static(id="ex-prompt")
            yield OptionList(id="ex-choices")
        with Horizontal(id="ex-bar"):
            yield Input(placeholder="your answer", id="ex-answer")
            yield Button("check", id="ex-check", variant="primary")
            yield Button("next", id="ex-next")
            yield Button("new set", id="ex-new")
        yield Note(id="ex-feedback")

    # loading ---------------------------------------------------------------------------
    def load(self, config: RunConfig) -> None:
        self.config = config
        self.set_number = 0
        self._start()

    def _start(self) -> None:
        if self.config is None:
            return
        self.ready = False
        kind = str(self.query_one("#ex-kind", Select).value)
        config, set_number = self.config, self.set_number
        self.in_thread(lambda: self._make(config, set_number, kind), self._show_set,
                       self._failed)

    def _make(self, config: RunConfig, set_number: int, kind: str) -> Exercise:
        """Questions about the app's network as it is now (trained or not), else a fresh
        one built from `config`."""
        from bntui.engine.session import INSPECTION_ROWS, Session

        app_session = getattr(self.app, "session", None)
        same = app_session is not None and app_session.config == config
        session = Session(config, dataset=app_session.dataset if same else None)
        session.inspect_rows = INSPECTION_ROWS  # the stepper's batch, as the app cuts it
        if same:
            with self.app.lock:  # type: ignore[attr-defined]
                state = app_session.network.state()
            session.network.load_state(state)
        X, y = session.inspection_batch()
        return make_exercise(session.network, X, y, count=COUNT, kind=kind,
                             seed=[config.seed, set_number], rows=ROWS)

    def _failed(self, message: str) -> None:
        self.exercise = None
        self.query_one("#ex-head", Static).update("no questions")
        self.query_one("#ex-feedback", Note).error(message)
        self.ready = True

    def _show_set(self, exercise: Exercise) -> None:
        self.exercise = exercise
        self.current = 0
        self._show_question()
        self.ready = True

    # one question ------------------------------------------------------------------------
    @property
    def question(self) -> Question | None:
        return None if self.exercise is None else self.exercise.questions[self.current]

    def _head(self) -> Text:
        ex, q = self.exercise, self.question
        assert ex is not None and q is not None
        t = Text()
        t.append(f"Question {q.number}/{len(ex.questions)}", style="bold")
        t.append(f" · {q.kind} · {q.phase} · {q.where}   ")
        t.append(f"score {ex.right}/{ex.answered}", style="bold cyan")
        return t

    def _context_text(self, q: Question) -> Text:
        t = Text()
        if q.kind != "formula":
            t.append("formula  ", style="grey50")
            t.append(q.formula + "\n", style="bold yellow")
            t.append("why      ", style="grey50")
            t.append(q.explanation + "\n")
        else:
            t.append(f"{q.name} is {shape_text(q.shape)}; its formula is hidden.\n",
                     style="grey70")
        if q.givens:
            t.append("\n" + ("shapes of its inputs" if q.kind == "shape" else "given") + "\n",
                     style="grey50")
            width = max(len(g.label) for g in q.givens)
            for g in q.givens:
                t.append(f"  {g.label:<{width}}", style="bold")
                t.append(f" = {g.text()}\n")
        if q.kind == "value" and q.position:
            t.append("rows and columns count from 0", style="grey50")
        return t

    def _show_question(self) -> None:
        q = self.question
        if q is None:
            return
        self.query_one("#ex-head", Static).update(self._head())
        self.query_one("#ex-context", Static).update(self._context_text(q))
        self.query_one("#ex-prompt", Static).update(q.prompt)
        choices = self.query_one("#ex-choices", OptionList)
        choices.clear_options()
        choices.add_options([Option(f"{LETTERS[k]}) {c}", id=LETTERS[k])
                             for k, c in enumerate(q.choices)])
        choices.display = q.kind == "formula"
        answer = self.query_one("#ex-answer", Input)
        answer.value = ""
        answer.placeholder = PLACEHOLDERS[q.kind]
        self.query_one("#ex-feedback", Note).clear()
        self.query_one("#ex-body", VerticalScroll).scroll_home(animate=False)

    def answered(self) -> bool:
        return self.exercise is not None and self.exercise.verdicts[self.current] is not None

    def submit(self, text: str) -> Verdict | None:
        """Grade `text` as the answer to the question on show (None if it cannot be read)."""
        ex, q = self.exercise, self.question
        if ex is None or q is None:
            return None
        note = self.query_one("#ex-feedback", Note)
        try:
            verdict = ex.answer(q.number, text)
        except AnswerError as exc:
            note.update(Text("? " + str(exc), style="bold yellow"))
            return None
        if verdict.correct:
            note.ok(verdict.message)
        else:
            note.error(verdict.message)
        self.query_one("#ex-head", Static).update(self._head())
        return verdict

    def focus_answer(self) -> None:
        self.query_one("#ex-answer", Input).focus()

    def next_question(self) -> None:
        ex = self.exercise
        if ex is None:
            return
        if self.current + 1 < len(ex.questions):
            self.current += 1
            self._show_question()
            self.focus_answer()
            return
        self.query_one("#ex-feedback", Note).ok(
            f"end of the set: {ex.score_text()} — 'new set' for more")

    def new_set(self) -> None:
        self.set_number += 1
        self._start()

    # events ------------------------------------------------------------------------------
    @on(Input.Submitted, "#ex-answer")
    def _entered(self, event: Input.Submitted) -> None:
        if self.answered():
            self.next_question()
        else:
            self.submit(event.value)

    @on(Button.Pressed, "#ex-check")
    def _check(self) -> None:
        self.submit(self.query_one("#ex-answer", Input).value)

    @on(Button.Pressed, "#ex-next")
    def _next(self) -> None:
        self.next_question()

    @on(Button.Pressed, "#ex-new")
    def _new(self) -> None:
        self.new_set()

    @on(OptionList.OptionSelected, "#ex-choices")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        letter = event.option.id or ""
        self.query_one("#ex-answer", Input).value = letter
        self.submit(letter)

    @on(Select.Changed, "#ex-kind")
    def _kind(self) -> None:
        if self.config is not None and self.exercise is not None:
            self.set_number = 0
            self._start()
