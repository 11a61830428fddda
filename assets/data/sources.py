"""Read a dataset's source: files, a bundled scikit-learn dataset, a generator, or a database query."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assets.data import generators
from assets.spec.imports import resolve
from assets.spec.metrics import suggest
from assets.spec.paths import file_format, source_files
from assets.spec.schema import Source
from assets.spec.versions import combine
from resources.errors import DataError, DefinitionError, RefusedData


def observable(source: Source | None) -> bool:
    """True for the sources observed for new data: files and database queries."""
    return source is not None and (source.path is not None or source.sql is not None)


def observe(source: Source, folder: Path, where: str, roots: Sequence[str] = ()) -> tuple[str, dict[str, Any]]:
    """The data version of an observable source and what to show with it."""
    if source.sql is not None:
        return observe_database(source, where)
    return observe_files(source, folder, where, roots)


def observe_database(source: Source, where: str) -> tuple[str, dict[str, Any]]:
    """A hash of the ``observe`` query's result when given, else of the whole query's result.

    The whole result is streamed and hashed without building a table; an ``observe`` query
    (``select max(updated_at), count(*) from t``) makes this as cheap as the database makes it.
    """
    from resources import database

    query = source.observe or source.sql or ""
    said = f"{where}: observe query" if source.observe else where
    version, rows = database.fingerprint(source.connection or "", query, said)
    observed_by = "the observe query" if source.observe else "a hash of the query's result"
    return version, {"observed_by": observed_by, "rows": rows}


def files_fingerprint(files: Sequence[Path], folder: Path) -> str:
    """The data version of a set of files: each one's path, size and modification time.

    A ``stat`` per file and no reading: a landing folder of any size is observed in
    milliseconds, and an added, removed, appended or rewritten file changes it. A file
    rewritten with the same bytes (a fresh checkout, ``touch``) changes it too: the dataset
    is then rebuilt, comes out with the same content hash, and nothing downstream retrains.
    """
    parts = []
    for path in files:
        stat = path.stat()
        name = os.path.relpath(path, folder)
        parts.append(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}")
    return combine(*parts)


def observe_files(source: Source, folder: Path, where: str, roots: Sequence[str] = ()) -> tuple[str, dict[str, Any]]:
    """The fingerprint of a file source and what to show with it (files, bytes)."""
    files = source_files(source, folder, where, roots)
    size = sum(path.stat().st_size for path in files)
    return files_fingerprint(files, folder), {"files": len(files), "bytes": size}


# What a parser's message quotes of the data: a row after "got N" (pyarrow's CSV reader), a
# value in quotes, a row after "line N:" / "row N:".
_QUOTED_DATA = [
    (re.compile(r"(Expected \d+ columns?, got \d+)\s*:.*"), r"\1 (the row is not shown)"),
    (re.compile(r"(invalid value|value|string)\s+'.*?'(?=\s|$|,)"), r"\1 (not shown)"),
    (re.compile(r"((?:line|row) \d+)\s*:.*"), r"\1 (not shown)"),
]


def _without_data(message: str) -> str:
    """``message`` without the data it quotes (see :data:`_QUOTED_DATA`)."""
    for pattern, replacement in _QUOTED_DATA:
        message = pattern.sub(replacement, message)
    return message


def _read_file(path: Path, fmt: str | None) -> Any:
    import pandas as pd

    kind = file_format(path, fmt)
    try:
        frame = pd.read_parquet(path) if kind == "parquet" else pd.read_csv(path, engine="pyarrow")
    except FileNotFoundError as exc:  # gone between listing and reading: tried again
        raise DataError(f"{path}: cannot read as {kind}: {exc.strerror}") from None
    except (OSError, ValueError) as exc:
        # The same bytes fail the same way: refused (held until the files change), not retried.
        # The parser quotes what it read (the row, a value): never echo the data, nor keep the
        # parser's error as the cause, which Dagster would store with the failure.
        message = _without_data(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
        if not str(exc).isprintable() and not str(exc).replace("\n", "").isprintable():
            message = "not text (binary data?)" if kind == "csv" else "not a readable file of this format"
        raise RefusedData(f"{path}: cannot read as {kind}: {message}") from None
    if len(frame) == 0:
        raise RefusedData(f"{path}: no rows (only a header)" if len(frame.columns) else f"{path}: empty file")
    return frame


def _same_columns(files: Sequence[Path], frames: Sequence[Any], folder: Path, where: str) -> None:
    """Every landed file has the first one's columns (in any order); :class:`RefusedData` naming the odd one.

    Concatenated, a file without a column would give that column nulls for its rows, which most
    expectations let through: a batch whose schema changed is refused instead, and the last
    good version stays the one downstream assets read.
    """
    first = set(map(str, frames[0].columns))
    for path, frame in zip(files[1:], frames[1:], strict=True):
        columns = set(map(str, frame.columns))
        if columns != first:
            missing, extra = sorted(first - columns), sorted(columns - first)
            parts = [f"missing {', '.join(missing)}" if missing else "", f"extra {', '.join(extra)}" if extra else ""]
            said = "; ".join(part for part in parts if part)
            raise RefusedData(
                f"{where}: {os.path.relpath(path, folder)} has columns that differ from "
                f"{os.path.relpath(files[0], folder)}'s ({said}); the batch is refused and not stored"
            )


def load(source: Source, folder: Path, where: str, allowed: Sequence[str], roots: Sequence[str] = ()) -> Any:
    """Load the source as a pandas DataFrame."""
    import pandas as pd

    if source.path is not None:
        files = source_files(source, folder, where, roots)
        frames = [_read_file(path, source.format) for path in files]
        _same_columns(files, frames, folder, where)
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if source.sql is not None:
        from resources import database

        return database.read(source.connection or "", source.sql, where)
    if source.sklearn is not None:
        from sklearn import datasets

        loader = getattr(datasets, f"load_{source.sklearn}")
        return loader(as_frame=True).frame
    generator = source.generator or ""
    if ":" in generator or "." in generator:
        fn = resolve(generator, allowed, where)
    elif generator in generators.BUILTIN:
        fn = generators.BUILTIN[generator]
    else:
        raise DefinitionError(
            f"{where}: unknown generator {generator!r}{suggest(generator, generators.BUILTIN)}"
            " (or give an import path module:function)"
        )
    return fn(rows=source.rows or 1000, seed=source.seed or 0, **(source.params or {}))
