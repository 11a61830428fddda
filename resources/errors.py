"""The Slipway error hierarchy.

Every error Slipway raises on purpose derives from :class:`SlipwayError`, so the CLI can print
one line for it (and a traceback only with ``--verbose``). The message is written for the
person who has to fix it: it names the file (and line), the pipeline or stack component, and
what to do.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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
