"""What an estimator class takes, kept per installed library version: checking params imports nothing twice.

`slipway validate`, each side of `slipway plan` and `slipway run` check a model's ``params``
against its estimator's signature, which needs the class, and importing scikit-learn takes a
second and a half. A class from an installed library (not the project's own code) answers the
same for as long as the library's version and place do not change, so its signature is kept in
``$SLIPWAY_HOME/cache/estimators.json`` (:mod:`resources.cache`) with both, and used only while
both match; the project's own modules are always imported (their code changes without a version).
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from assets.spec.imports import ESTIMATOR, check_allowed, resolve
from resources.cache import cache
from resources.errors import DefinitionError


@dataclass(frozen=True)
class Signature:
    """An estimator's name, the keyword arguments it takes (None: any) and those it cannot go without."""

    owner: str
    accepted: list[str] | None
    required: list[str]


def estimator_signature(path: str, allowed: Sequence[str], where: str) -> Signature:
    """The :class:`Signature` of the estimator at import path ``path``; ``DefinitionError`` when it does not resolve."""
    check_allowed(path, allowed, where, ESTIMATOR)  # nothing is answered for a path off the allow-list
    install = _installed(path)
    kept = cache("estimators")
    entry = kept.known.get(path)
    if install is not None and isinstance(entry, dict) and entry.get("install") == install:
        return Signature(entry["owner"], entry["accepted"], entry["required"])
    target = resolve(path, allowed, where, ESTIMATOR)
    found = Signature(getattr(target, "__name__", path), parameters(target), required(target))
    if install is not None:
        kept.keep(path, {"install": install, **found.__dict__})
    return found


def _installed(path: str) -> list[str] | None:
    """``[origin, distribution, version]`` of the library ``path`` is in; None for the project's own code."""
    return _installed_top(path.partition(":")[0].split(".")[0])


@functools.cache
def _installed_top(top: str) -> list[str] | None:
    from importlib import metadata

    try:
        spec = importlib.util.find_spec(top)  # a top-level name: found, not imported
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    if origin is None or "site-packages" not in origin and "dist-packages" not in origin:
        return None
    names = _distributions().get(top) or []
    if not names:
        return None
    try:
        return [origin, names[0], metadata.version(names[0])]
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def _distributions() -> dict[str, list[str]]:
    from importlib import metadata

    return dict(metadata.packages_distributions())


def required(estimator: Any) -> list[str]:
    """The arguments ``estimator(...)`` cannot be called without (``steps`` of a scikit-learn Pipeline)."""
    try:
        signature = inspect.signature(estimator)
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in signature.parameters.values() if p.kind in kinds and p.default is p.empty]


def parameters(estimator: Any) -> list[str] | None:
    """The keyword arguments ``estimator(...)`` takes; ``None`` when it takes any (``**kwargs``).

    scikit-learn's ``get_params`` reads the same signature (``_get_param_names``).
    """
    try:
        signature = inspect.signature(estimator)
    except (TypeError, ValueError):  # no signature to read (a builtin): nothing can be checked
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return None
    return [p.name for p in signature.parameters.values() if p.kind in kinds]


def check_signature(fn: Callable[..., Any], path: str, names: list[str], where: str) -> None:
    """:class:`DefinitionError` unless ``fn`` can be called with ``names`` as keyword arguments."""
    import inspect

    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to read: the call itself will tell
        return
    try:
        signature.bind(**dict.fromkeys(names))
    except TypeError as exc:
        call = ", ".join(f"{n}=..." for n in names)
        raise DefinitionError(
            f"{where}: transform {path} is called with its inputs by name, {path.split(':')[-1]}({call}), "
            f"but it takes ({', '.join(signature.parameters)}): {exc}"
        ) from None
