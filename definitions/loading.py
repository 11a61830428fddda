"""Loading the defs folder: YAML components and hand-written Python, the way Dagster's ``dg`` does.

A definitions folder other than the project's own (``--defs``) is loaded as the defs module of a
project rooted at its parent. Every load reads the files as they are now (a reload drops the
modules a previous load imported), and a file that fails to import is one line naming it.
"""

from __future__ import annotations

import hashlib
import sys
import types
import warnings
from pathlib import Path

import dagster as dg

from assets.spec.loader import discover
from definitions.paths import DEFS_DIR
from resources.errors import DefinitionError


def _forget_modules(package: str) -> None:
    """Drop the imported modules under ``package``, so that a new load reads the files as they are now."""
    for name in [m for m in list(sys.modules) if m.startswith(f"{package}.")]:  # a snapshot: other threads import
        sys.modules.pop(name, None)


def _load_folder_or_explain(folder: Path) -> dg.Definitions:
    """:func:`_load_folder`; a Python file that fails to import is a one-line DefinitionError.

    Every ``defs.yaml`` is first checked against the bounds on a document (size, nesting,
    aliases): Dagster reads the files before Slipway's loader does, and would expand an alias
    bomb in its own walks.
    """
    from resources.yamlfile import check_bounds

    for path in discover(folder) if folder.is_dir() else ():
        check_bounds(path)
    try:
        return _load_folder(folder)
    except DefinitionError:
        raise
    except Exception as exc:
        root: BaseException = exc
        while root.__cause__ is not None or (root.__context__ is not None and not root.__suppress_context__):
            root = root.__cause__ or root.__context__  # type: ignore[assignment]
            if isinstance(root, DefinitionError):
                raise root from exc
        if isinstance(root, SyntaxError) and root.filename:
            where = f"{root.filename}:{root.lineno}"
        else:
            where = str(folder)
        message = str(root).splitlines()[0] if str(root) else ""
        raise DefinitionError(f"{where}: the definitions do not load: {type(root).__name__}: {message}") from exc


def _load_folder(folder: Path) -> dg.Definitions:
    if folder == DEFS_DIR:
        _forget_modules("definitions.defs")
        return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    if not folder.is_dir():
        raise DefinitionError(f"{folder}: no such definitions folder")
    # Another folder (``--defs``) is loaded the same way, as the defs module of a project
    # rooted at its parent: YAML components and Python files alike.
    name = "slipway_defs_" + hashlib.blake2b(str(folder).encode(), digest_size=6).hexdigest()
    _forget_modules(name)
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name)
        module.__path__ = [str(folder)]
        module.__file__ = str(folder / "__init__.py")
        sys.modules[name] = module
    from dagster.components.core.component_tree import ComponentTree

    return ComponentTree.from_module(module, folder.parent).build_defs()


def load_folder(folder: Path) -> dg.Definitions:
    """The definitions of ``folder`` (:func:`_load_folder_or_explain`), without Dagster's warnings about itself."""
    with warnings.catch_warnings():
        # Dagster's own component loading uses its beta/preview classes (code references,
        # module loaders) and would warn about them on every load.
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        warnings.simplefilter("ignore", category=dg.PreviewWarning)
        return _load_folder_or_explain(folder)
