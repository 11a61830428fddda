"""Passwords out of anything shown or stored: URLs with credentials have them replaced by ``***``."""

from __future__ import annotations

import re

# scheme://user:password@host — the password is whatever sits between the user's ":" and "@".
_CREDENTIALS = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s'\"]*):(?P<password>[^@\s'\"/]+)@")


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _CREDENTIALS.sub(lambda m: f"{m.group('head')}:***@", text)


def safe_cause(cause: BaseException) -> BaseException | None:
    """The cause to chain an error to: ``cause``, or None when its message shows a password.

    Use as ``raise error from safe_cause(exc)``. Dagster stores a failure's whole chain of
    causes, and MLflow's errors repeat the server URL as it was given, credentials included.
    """
    return cause if redact(str(cause)) == str(cause) else None
