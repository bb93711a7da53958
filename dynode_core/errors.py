"""The exceptions DynODE raises on purpose, in one place.

Every error that is the caller's input's fault is a `ValueError` (or `FileNotFoundError` for a missing file),
so `except ValueError` catches them all and the `dynode` command reports them in one line; anything else
that escapes is a bug. `Cancelled` is not an input error: a long operation stopped because its `cancel()`
hook asked it to.
"""

from __future__ import annotations

__all__ = ["Cancelled", "CheckpointError", "VideoError", "GeneratorMismatch", "OutOfRange", "MissingEntry"]


class Cancelled(RuntimeError):
    """Raised when a long operation's `cancel()` hook returns True."""


class CheckpointError(ValueError):
    """A file that is not a generator checkpoint DynODE can read."""


class VideoError(ValueError):
    """A video, GIF or image folder that cannot be read or written as asked."""


class GeneratorMismatch(ValueError):
    """Codes that belong to another generator than the one they are used with (layers, width or weights)."""


class OutOfRange(IndexError, ValueError):
    """An index given by the caller (a layer, a component) outside what the data holds."""


class MissingEntry(KeyError, ValueError):
    """A named entry the caller asked for that a file does not hold."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""
