"""raydist's own errors. The CLI prints their message on one line (what failed, which input,
what to do) and exits with their code: 1 for a failure at run time, 2 for bad usage. Anything
else that escapes a command is a bug: one line on the console, the traceback in the log."""

from __future__ import annotations


class RaydistError(Exception):
    """A failure the user can act on; the message says how."""

    exit_code = 1


class UsageError(RaydistError, ValueError):
    """Bad options or arguments, found before any work."""

    exit_code = 2
