"""User-facing errors of the engine.

Every mistake a learner can make (an unknown dataset, a malformed architecture spec, a
learning rate that is not a positive number, ...) is raised as :class:`BntuiError` with
one line that names what is wrong.  The command line prints that line and exits with
status 2 (1 for :class:`Diverged`); the app shows it inline.  Anything else escaping
the engine is a bug.
"""

from __future__ import annotations


class BntuiError(ValueError):
    """A problem with the user's input, described in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)


class Diverged(BntuiError):
    """Training turned the loss, the parameters, the running statistics or the optimizer's
    state non-finite: the command line exits with status 1 (not 2: the input was
    well-formed, the run diverged)."""
