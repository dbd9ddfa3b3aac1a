"""User-facing errors.

Anything the user can cause (a bad path, an unknown class, an unreadable image, a
checkpoint that does not fit) raises `EngineError` with a one-line message that says
what was wrong and what to do. The command line prints it and exits non-zero; the app
shows it in the page. Every other exception is a bug.
"""


class EngineError(Exception):
    """A problem with the user's input, explained in one line."""
