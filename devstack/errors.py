"""The one error the local stack raises: what went wrong, and how to fix it, in one line."""

from __future__ import annotations


class StackError(Exception):
    """A stack component could not be planned, started or checked.

    ``str(error)`` is a single line: the cause (naming the component, path, port or key)
    followed by the fix. ``log_tail`` holds the last lines of the component's log, when there
    is one, for the caller to show below that line.
    """

    def __init__(self, cause: str, fix: str = "", *, log_tail: str = "") -> None:
        self.cause = cause
        self.fix = fix
        self.log_tail = log_tail
        super().__init__(f"{cause}; {fix}" if fix else cause)
