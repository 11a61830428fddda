"""Passwords out of anything shown or stored: URLs with credentials have them replaced by ``***``."""

from __future__ import annotations

import re

# scheme://user:password@host — the password is whatever sits between the user's ":" and "@".
_CREDENTIALS = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s'\"]*):(?P<password>[^@\s'\"/]+)@")


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _CREDENTIALS.sub(lambda m: f"{m.group('head')}:***@", text)
