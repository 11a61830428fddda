"""Resolve ``module:function`` / ``package.module.Class`` import paths written in YAML.

An import path in YAML is code execution, so it must start with a module prefix from the
stack's allow-list before anything is imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from assets.metrics import suggest
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


def check_allowed(path: str, allowed: Sequence[str], where: str) -> None:
    """Raise :class:`DefinitionError` unless ``path`` is on the allow-list."""
    if not is_allowed(path, allowed):
        raise DefinitionError(
            f"{where}: import path {path!r} is outside the stack's allow-list "
            f"({', '.join(allowed)}); add its package to `allowed_imports` in the stack"
        )


def resolve(path: str, allowed: Sequence[str], where: str) -> Any:
    """Import ``path`` (after the allow-list check) and return the object it names."""
    check_allowed(path, allowed, where)
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
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        public = [name for name in dir(module) if not name.startswith("_")]
        if hasattr(module, "__all__"):
            public = list(module.__all__)
        raise DefinitionError(f"{where}: {module_name} has no {attr!r}{suggest(attr, public)}") from exc
