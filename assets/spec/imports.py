"""Resolve ``module:function`` / ``package.module.Class`` import paths written in YAML.

An import path in YAML is code execution. Before anything is imported (not even a parent
package), a path must:

- start with a module prefix from the stack's ``allowed_imports``;
- have no private segment (``sklearn.utils._testing``, ``mod:_helper``);
- for a function (``train``, ``transform``, ``generator``): live in the project's own code, or
  in a module listed in ``allowed_imports`` by its full name (a library prefix such as
  ``sklearn`` admits its estimator classes, not every function it re-exports).

Once imported, an ``estimator`` must be a class with ``fit`` and ``predict`` defined under an
allowed prefix, and a function must be a plain function defined in the module named (not
re-exported there from elsewhere, as ``os.remove`` can be).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from assets.spec.fields import ESTIMATOR, FUNCTION, IMPORT_FIELDS
from assets.spec.metrics import suggest
from resources.errors import DefinitionError


def split_path(path: str) -> tuple[str, str]:
    """``"a.b:c"`` or ``"a.b.c"`` -> ``("a.b", "c")``."""
    if ":" in path:
        module, _, attr = path.partition(":")
    else:
        module, _, attr = path.rpartition(".")
    return module, attr


def is_allowed(path: str, allowed: Sequence[str]) -> bool:
    """True when the module of ``path`` is one of ``allowed`` or inside one of them."""
    module, _ = split_path(path)
    return any(module == prefix or module.startswith(prefix + ".") for prefix in allowed)


@dataclass(frozen=True)
class ImportPath:
    """One import path a pipeline's YAML names: where (``("models", "clf", "estimator")``), what and which kind."""

    location: tuple[str, ...]
    path: str
    kind: str  # ESTIMATOR | FUNCTION

    @property
    def asset(self) -> str:
        """The name of the dataset or model it belongs to."""
        return self.location[1]


def import_paths(spec: Any) -> list[ImportPath]:
    """Every import path of a pipeline spec (:data:`assets.spec.fields.IMPORT_FIELDS`), in its order."""
    found = []
    for (section, *fields), kind in IMPORT_FIELDS.items():
        for name, definition in getattr(spec, section).items():
            value: Any = definition
            for field in fields:
                value = getattr(value, field, None) if value is not None else None
            if isinstance(value, str) and value:
                found.append(ImportPath((section, name, *fields), value, kind))
    return found


def check_allowed(path: str, allowed: Sequence[str], where: str, kind: str = FUNCTION) -> None:
    """Raise :class:`DefinitionError` unless ``path`` may be imported as a ``kind``; imports nothing."""
    if not is_allowed(path, allowed):
        raise DefinitionError(
            f"{where}: import path {path!r} is outside the stack's allow-list "
            f"({', '.join(allowed)}); add its package to `allowed_imports` in the stack"
        )
    module, attr = split_path(path)
    private = [part for part in [*module.split("."), attr] if part.startswith("_")]
    if private:
        raise DefinitionError(f"{where}: import path {path!r} names a private module or name ({private[0]!r})")
    if kind == FUNCTION and module not in allowed and not is_project_module(module):
        if module_file_of(module) is None:
            raise DefinitionError(f"{where}: cannot import {path!r}: no module {module!r} in the project")
        raise DefinitionError(
            f"{where}: function {path!r} is in an installed library; functions must come from the project's "
            f"own modules, or from a module listed by its full name in `allowed_imports` (e.g. {module!r})"
        )


def module_file_of(module: str) -> Any:
    """:func:`assets.spec.versions.module_file` (imports nothing)."""
    from assets.spec.versions import module_file

    return module_file(module)


def is_project_module(module: str) -> bool:
    """True when ``module`` is a file of this project (not the standard library or site-packages); imports nothing."""
    from assets.spec.versions import module_file

    found = module_file(module)
    return found is not None and not found.is_library


def resolve(path: str, allowed: Sequence[str], where: str, kind: str = FUNCTION) -> Any:
    """Import ``path`` (after :func:`check_allowed`) and return the object it names, checked for ``kind``."""
    check_allowed(path, allowed, where, kind)
    found = _import(path, where)
    _check_kind(path, found, allowed, where, kind)
    return found


def _check_kind(path: str, found: Any, allowed: Sequence[str], where: str, kind: str) -> None:
    module, _ = split_path(path)
    defined_in = getattr(found, "__module__", None) or "?"
    if kind == ESTIMATOR:
        if not inspect.isclass(found) or not (
            callable(getattr(found, "fit", None)) and callable(getattr(found, "predict", None))
        ):
            raise DefinitionError(
                f"{where}: estimator {path!r} is not an estimator class (a class with fit and predict)"
            )
        if not any(defined_in == p or defined_in.startswith(p + ".") for p in allowed):
            raise DefinitionError(
                f"{where}: estimator {path!r} is defined in {defined_in}, which is outside the stack's allow-list"
            )
    elif not inspect.isfunction(found) or defined_in != module:
        what = "a function" if inspect.isfunction(found) else type(found).__name__
        raise DefinitionError(
            f"{where}: {path!r} must be a function defined in {module} (it is {what} from {defined_in})"
        )


def _import(path: str, where: str) -> Any:
    module_name, attr = split_path(path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        hint = ""
        parent, _, last = missing.rpartition(".")
        if parent:
            try:
                siblings = [m for m in dir(importlib.import_module(parent)) if not m.startswith("_")]
                hint = suggest(last, siblings) if siblings else ""
            except ImportError:
                hint = ""
        raise DefinitionError(f"{where}: cannot import {path!r}: no module {missing!r}{hint}") from exc
    except (Exception, SystemExit) as exc:  # the module itself fails: a syntax error, an error at its top level
        from resources.redact import redact, safe_cause

        raise DefinitionError(f"{where}: cannot import {path!r}: {redact(_import_failure(exc))}") from safe_cause(exc)
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        public = [name for name in dir(module) if not name.startswith("_")]
        if hasattr(module, "__all__"):
            public = list(module.__all__)
        raise DefinitionError(f"{where}: {module_name} has no {attr!r}{suggest(attr, public)}") from exc


def _import_failure(exc: BaseException) -> str:
    """``Type: message (file.py, line N)`` for an exception raised while importing a module.

    The place is the last frame in the project's own code (not the standard library or an
    installed package that the module called into), else the last frame.
    """
    import os
    import sysconfig
    import traceback

    message = str(exc).splitlines()[0] if str(exc) else ""
    if isinstance(exc, SyntaxError):
        message = exc.msg or message
        filename, line = exc.filename, exc.lineno
    else:
        libraries = tuple(
            str(os.path.realpath(p))
            for key in ("stdlib", "platstdlib", "purelib", "platlib")
            if (p := sysconfig.get_path(key))
        )
        frames = traceback.extract_tb(exc.__traceback__)
        own = [
            f
            for f in frames
            if not os.path.realpath(f.filename).startswith(libraries) and not f.filename.startswith("<")
        ]
        chosen = (own or frames)[-1] if frames else None
        filename, line = (chosen.filename, chosen.lineno) if chosen else (None, None)
    place = f" ({os.path.basename(filename)}, line {line})" if filename and line else ""
    return f"{type(exc).__name__}: {message}{place}"
