"""User-facing errors of the engine.

Every mistake a learner can make (an unknown dataset, a malformed architecture spec, a
learning rate that is not a positive number, ...) is raised as :class:`BntuiError` with
one line that names what is wrong.  The command line prints that line and exits with
status 2; the app shows it inline.  Anything else escaping the engine is a bug.
"""

from __future__ import annotations


class BntuiError(ValueError):
    """A problem with the user's input, described in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)
