"""Passwords out of anything shown or stored.

Two passes. URLs are parsed: in ``scheme://user:password@host``, the password is whatever lies
between the user's ``:`` and the ``@`` that is followed by a host and the end of the authority
(a ``/``, ``?``, ``#``, a quote, a space, the end), so a password may hold any character,
quotes, ``@``, ``:``, ``%``, spaces or unicode, and is still found. And since every secret comes
from the environment, the password of each URL an environment variable holds is hidden wherever
it appears alone too (a driver may quote it without its URL).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from urllib.parse import quote, unquote

_SCHEME = r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://"
_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9\-._~%]*)(?::[0-9]*)?"
_AUTHORITY_END = r"(?=[/?#\s'\"`),;>\]]|$)"
_CREDENTIALS = re.compile(rf"(?P<head>{_SCHEME}[^:/@\s'\"`]*):(?P<password>[^\n]*?)@(?P<host>{_HOST}){_AUTHORITY_END}")
# A password shorter than this is hidden inside URLs only: replacing every "pw" in a text would
# garble it without protecting much.
_SHORTEST_LOOSE = 4


def redact(text: str) -> str:
    """``text`` with the password of every URL in it, and every password of a URL in the environment, as ``***``."""
    text = _CREDENTIALS.sub(lambda m: f"{m.group('head')}:***@{m.group('host')}", text)
    for password in _environment_passwords(frozenset(os.environ.items())):
        if password in text:
            text = text.replace(password, "***")
    return text


def password_of(url: str) -> str | None:
    """The password of ``url`` as written (None when it has none)."""
    found = _CREDENTIALS.search(url)
    return found.group("password") if found else None


def with_encoded_at(url: str) -> str:
    """``url`` with any ``@`` in its password written ``%40``, as a URL must, so that parsers find the host.

    SQLAlchemy (and so MLflow's stores) reads the password up to the first ``@``: ``p@ss@db``
    would connect to host ``ss@db``. Everything else is left as written (``%`` stays an escape).
    """
    found = _CREDENTIALS.search(url)
    if found is None or "@" not in found.group("password"):
        return url
    return url[: found.start("password")] + found.group("password").replace("@", "%40") + url[found.end("password") :]


@lru_cache(maxsize=4)
def _environment_passwords(environment: frozenset[tuple[str, str]]) -> tuple[str, ...]:
    """The passwords of the URLs the environment holds, as written, percent-encoded and decoded; longest first."""
    found: set[str] = set()
    for _, value in environment:
        if "://" not in value or "@" not in value:
            continue
        for match in _CREDENTIALS.finditer(value):
            password = match.group("password")
            found |= {password, quote(password, safe=""), unquote(password)}
    return tuple(sorted((p for p in found if len(p) >= _SHORTEST_LOOSE), key=len, reverse=True))


def safe_cause(cause: BaseException) -> BaseException | None:
    """The cause to chain an error to: ``cause``, or None when its message shows a password.

    Use as ``raise error from safe_cause(exc)``. Dagster stores a failure's whole chain of
    causes, and MLflow's errors repeat the server URL as it was given, credentials included.
    """
    return cause if redact(str(cause)) == str(cause) else None
