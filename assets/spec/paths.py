"""Where a source's files are: the one variable a path may name, the project, the allowed roots.

Pure path logic (no reading): the preflight checks and the dataset's source both resolve files
here, so a check and a build see the same files.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path

from assets.spec.schema import Source
from resources.errors import DataError, DefinitionError
from resources.paths import slipway_home


def _expand(pattern: str, folder: Path) -> Path:
    # ${SLIPWAY_HOME} is the one variable a path may name (the schema refuses any other): nothing
    # from the environment reaches a path, so no error or record can carry a secret through one.
    path = Path(pattern.replace("${SLIPWAY_HOME}", str(slipway_home())))
    return path if path.is_absolute() else folder / path


def project_root(folder: Path) -> Path:
    """The project of a pipeline folder: the nearest folder above it with ``.git`` or ``pyproject.toml``.

    A definitions folder in no project (a scratch folder given with ``--defs``) is its own.
    """
    folder = folder.resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists() or (candidate / "pyproject.toml").exists():
            return candidate
    return folder.parent


def _within(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def source_files(source: Source, folder: Path, where: str, roots: Sequence[str] = ()) -> list[Path]:
    """The files a file source matches, sorted; :class:`DataError` when there are none.

    A source reads the files of its project (:func:`project_root`), of ``SLIPWAY_HOME`` and of
    the stack's ``data_roots`` only: a path that leads elsewhere (``/etc/passwd``, ``../..``),
    or a matched file that is a link leading elsewhere, is a :class:`DefinitionError`, said
    before anything outside is listed or read.
    """
    pattern = _expand(source.path or "", folder)
    project = project_root(folder)
    allowed = [project, slipway_home(), *(Path(root).resolve() for root in roots)]
    outside = (
        f"leads outside the project ({project}); a file source reads the files of its project, of "
        "SLIPWAY_HOME, or of a folder the stack lists in data_roots"
    )
    fixed = Path(*pattern.parts[: _first_magic(pattern)])  # the part before any wildcard
    if not _within(fixed.resolve(), allowed):
        raise DefinitionError(f"{where}: source path {source.path!r} {outside}")
    files = sorted(Path(p) for p in glob.glob(str(pattern)) if Path(p).is_file())
    for path in files:
        if not _within(path.resolve(), allowed):
            raise DefinitionError(f"{where}: {os.path.relpath(path, folder)} is a link that {outside}")
    if not files:
        raise DataError(
            f"{where}: no file matches {source.path!r} (looked for {pattern}); "
            "check the path, which is relative to the pipeline's folder"
        )
    return files


def _first_magic(pattern: Path) -> int:
    """How many parts of ``pattern`` come before its first glob part."""
    return next((i for i, part in enumerate(pattern.parts) if glob.has_magic(part)), len(pattern.parts))


_NAME_LENGTH = 64


def source_key_path(pipeline: str, dataset: str, source: Source | None = None) -> list[str]:
    """The asset key path of the observable source of a dataset's files (or database query).

    Its last part names what it observes, as the lineage graph shows it: the path
    (``data/orders.csv`` -> ``data_orders_csv``, ``${SLIPWAY_HOME}`` read as ``home``) or the
    table a query reads from (``query_crm_customers``), cut to its last 64 characters.
    """
    if source is not None and source.sql is not None:
        table = re.search(r"\bfrom\s+([A-Za-z_][\w.]*)", source.sql, re.IGNORECASE)
        return [pipeline, dataset, _name(f"query {table.group(1)}" if table else "query")]
    path = source.path if source is not None and source.path is not None else "files"
    return [pipeline, dataset, _name(path.replace("${SLIPWAY_HOME}", "home"))]


def _name(text: str) -> str:
    # Dagster's names are [A-Za-z0-9_]+: every other run of characters becomes one underscore.
    name = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "files"
    return name[-_NAME_LENGTH:].lstrip("_")


def file_format(path: Path, fmt: str | None) -> str:
    """``csv`` or ``parquet``: the source's ``format``, else the file's extension."""
    kind = fmt or path.suffix.lstrip(".").lower()
    if kind in ("parquet", "pq"):
        return "parquet"
    if kind in ("csv", "txt"):
        return "csv"
    raise DataError(f"{path}: unknown file format {kind!r}; set `format: csv` or `format: parquet`")
