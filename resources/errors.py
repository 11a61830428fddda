"""The Slipway error hierarchy.

Every error Slipway raises on purpose derives from :class:`SlipwayError`, so the CLI can print
one line for it (and a traceback only with ``--verbose``). The message is written for the
person who has to fix it: it names the file (and line), the pipeline or stack component, and
what to do.
"""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable


def count(number: int, noun: str) -> str:
    """``1 model``, ``2 models``: a number with its noun, singular for one."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the choice nearest ``name``, or ``""`` when none is near."""
    close = difflib.get_close_matches(name, sorted(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class SlipwayError(Exception):
    """Root of every error Slipway raises on purpose."""


class DefinitionError(SlipwayError):
    """A pipeline definition (``definitions/defs/**/defs.yaml``) is invalid."""


class StackError(SlipwayError):
    """A stack profile (``stacks/<name>.yaml``) or its environment overrides are invalid."""


class DataError(SlipwayError):
    """Input data is missing or unreadable."""


class RefusedData(DataError):
    """Data that failed a blocking expectation: never stored, and the same data fails the same way."""


class ResourceError(SlipwayError):
    """A stack component failed to set up or to do its work."""


_FULL = "the disk is full"
_IO = "a write failed"
_READ_ONLY = "it is read-only"
_DENIED = "permission denied"
_UNOPENABLE = "a database file cannot be created or opened"
_STORAGE_ERRNOS = {
    errno.ENOSPC: _FULL,
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: _READ_ONLY,
    errno.EACCES: _DENIED,
    errno.EPERM: _DENIED,
}
# Errors that are about where they happen: only Slipway's own storage is this function's business.
_LOCAL_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}
# What SQLite says (through sqlalchemy or sqlite3) for the same causes.
_SQLITE_MESSAGES = {
    "database or disk is full": _FULL,
    "disk I/O error": _IO,
    "attempt to write a readonly database": _READ_ONLY,
    "unable to open database file": _UNOPENABLE,
}


def storage_problem(exc: BaseException, home: str) -> str | None:
    """One line for a failure to write Slipway's own storage (full disk, read-only, no permission).

    Looks through ``exc`` and its causes; None when none of them is such a failure (a file
    outside ``home`` that cannot be read is another error's business). SQLite's messages name
    no file: on a stack whose databases live outside ``home`` the line names ``home`` anyway.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        reason, where = None, home
        if isinstance(current, OSError) and current.errno in _STORAGE_ERRNOS:
            where = str(current.filename or home)
            if current.errno not in _LOCAL_ERRNOS or _within(where, home):
                reason = _STORAGE_ERRNOS[current.errno]
        else:
            text = str(current)
            reason = next((why for marker, why in _SQLITE_MESSAGES.items() if marker in text), None)
        if reason is not None:
            if reason == _IO:
                reason = _FULL if _nearly_full(home) else f"{_IO} (is the disk full?)"
            fix = "Make it writable" if reason in (_READ_ONLY, _DENIED, _UNOPENABLE) else "Free some space"
            at = "" if where == home else f" (SLIPWAY_HOME is {home})"
            return (
                f"cannot write to {where}: {reason}{at}. {fix}, then run again: what earlier runs "
                "stored is kept, and a run cut short is settled by the next one"
            )
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return None


def _within(path: str, home: str) -> bool:
    from pathlib import Path

    resolved, root = Path(path).resolve(), Path(home).resolve()
    return resolved == root or root in resolved.parents


def _nearly_full(path: str) -> bool:
    """True when the file system holding ``path`` (or its nearest existing parent) has under 1 MiB free."""
    import shutil
    from pathlib import Path

    for candidate in (Path(path), *Path(path).parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free < 2**20
    return False
