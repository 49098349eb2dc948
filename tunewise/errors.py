"""The one error family: every error a person can act on says what went wrong and what to do.

Raise a :class:`TunewiseError` (or a subclass) with a message and, where there is one, a hint.
It lives at the bottom of the house, so retrieval/ and trainers/, which import nothing above them,
raise the same family as the services. The faces turn it into words at one place each
(``ui/errors.py`` for the web app's handlers and the CLI's ``main``); any other exception is a bug,
logged with its trace and shown as an unexpected error.
"""

from __future__ import annotations


class TunewiseError(Exception):
    """What went wrong (``message``) and what to do about it (``hint``, may be empty)."""

    hint: str = ""

    def __init__(self, message: str = "", hint: str | None = None):
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        message = self.message.rstrip()
        return f"{message}{'' if message.endswith(('.', '!', '?')) else '.'} {self.hint}"

    def user_text(self) -> str:
        """The sentence a person sees: the message, then the hint."""
        text = str(self)
        return text[:1].upper() + text[1:]


class InputError(TunewiseError, ValueError):
    """A value a person gave (a setting, a mode, a file's content) that the code refused. Still a
    ValueError, so callers that validate input keep catching it as one."""
