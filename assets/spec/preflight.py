"""Checks of a loaded pipeline that need more than its schema but no run.

``slipway validate`` uses them so that what would only fail at run time fails at once, with
the file and line of the YAML:

- every file source matches at least one file;
- every import path resolves, and an estimator accepts the ``params`` it is given;
- every column a definition names (expectation arguments, drift columns, a model's
  ``target``, ``features`` and ``split.by``) is in the header of each file the dataset reads.

Only headers are read: the first line of a CSV file, the schema of a Parquet file. Columns are
known for file sources and for scikit-learn's bundled datasets (their feature names, plus
``target``, read from the small files scikit-learn ships); they are not checked for a
generator, whose columns are known only once it has run, nor for a dataset with a
``transform``, which may add or drop columns.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

from assets.spec.imports import FUNCTION, resolve
from assets.spec.loader import LoadedPipeline
from assets.spec.metrics import suggest
from assets.spec.model_spec import Model
from assets.spec.partitions import fill
from assets.spec.paths import file_format, source_files
from assets.spec.schema import Dataset
from assets.spec.signatures import estimator_signature
from resources.errors import DataError, DefinitionError, did_you_mean

# Arguments of Great Expectations 1.x expectations that name columns of the table.
COLUMN_KWARGS = ("column", "column_A", "column_B", "column_list")
# Arguments with "column" in their name that do not refer to a column by name
# (``column_index`` is a position; ``column_set`` is what expect_table_columns_to_match_set asserts).
NOT_COLUMN_REFERENCES = ("column_index", "column_set")
# Expectations whose point is whether columns are there: a missing column is their result
# on the data, not a mistake in the definition.
ASSERTS_COLUMNS = ("column_to_exist", "table_columns_to_match_set", "table_columns_to_match_ordered_list")

_HEADER_BYTES = 1 << 20  # a header line longer than 1 MiB is not a header


class Columns:
    """The columns a dataset has, per file it reads, and how to say a column is missing."""

    def __init__(self, headers: dict[str, list[str]]) -> None:
        """``headers`` maps a label (a file, relative to the pipeline when inside it) to its columns."""
        self.headers = headers

    def missing(self, column: str, context: str = "") -> str | None:
        """Why ``column`` is not in every file, or ``None`` when it is."""
        lacking = [label for label, names in self.headers.items() if column not in names]
        if not lacking:
            return None
        shown = ", ".join(lacking[:3]) + (f" and {len(lacking) - 3} more" if len(lacking) > 3 else "")
        known = {name for names in self.headers.values() for name in names}
        # A column that some files have is not a typo: the other files lack it.
        hint = "" if column in known else did_you_mean(column, known)
        return f"column {column!r} is not in {shown}{context}{hint}"


def sklearn_columns(name: str) -> list[str]:
    """The columns of ``load_<name>(as_frame=True).frame``: the feature names, then ``target``."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    return [*bunch.feature_names, "target"]


def check_pipeline(
    pipeline: LoadedPipeline, allowed: Sequence[str], roots: Sequence[str] = (), code: bool = True, data: bool = True
) -> list[str]:
    """Every problem of ``pipeline`` beyond its schema, one ``path:line: pipeline P: ...`` line each.

    ``allowed`` and ``roots`` are the stack's allowed imports and data roots. It imports the
    pipeline's import paths: call it once they have passed the stack's allow-list. Without
    ``code``, only what needs no import and no data file is checked (the queries); without
    ``data``, no data file is read (its columns are the data's business, checked as it lands).
    """
    spec = pipeline.spec
    errors: list[str] = []
    columns: dict[str, Columns | None] = {}
    for name, dataset in spec.datasets.items():
        prefix = f"pipeline {spec.name}: dataset {name}"
        found, problems = _dataset_columns(pipeline, name, dataset, allowed, roots, prefix, code, data)
        columns[name] = found
        errors += problems
        if found is not None:
            lacking = _dataset_column_problems(pipeline, name, dataset, found)
            errors += [f"{where}: {prefix}: {message}" for where, message in lacking]
    for name, model in spec.models.items() if code else ():
        prefix = f"pipeline {spec.name}: model {name}"
        errors += _model_problems(pipeline, name, model, allowed, prefix)
        found = columns.get(model.dataset)
        if found is not None:
            for loc, column in _model_columns(name, model):
                message = found.missing(column, f" (dataset {model.dataset})")
                if message:
                    field = ".".join(part for part in loc[2:] if isinstance(part, str))
                    errors.append(f"{pipeline.where(*loc)}: {prefix}: {field}: {message}")
    return errors


def _dataset_columns(
    pipeline: LoadedPipeline,
    name: str,
    dataset: Dataset,
    allowed: Sequence[str],
    roots: Sequence[str],
    prefix: str,
    code: bool = True,
    data: bool = True,
) -> tuple[Columns | None, list[str]]:
    """The dataset's columns (``None`` when unknown before a run) and the problems found on the way."""
    source = dataset.source
    columns: Columns | None = None
    errors: list[str] = []
    if not (code and data):
        pass  # no data file is read, no scikit-learn dataset loaded
    elif source is not None and source.path is not None:
        columns, errors = _file_columns(pipeline, name, dataset, roots, prefix)
    elif source is not None and source.sklearn is not None and not dataset.transform:
        columns = Columns({f"scikit-learn's {source.sklearn}": sklearn_columns(source.sklearn)})
    if source is not None and source.sql is not None:
        from resources.database import check_query as check_database_query

        where = f"{pipeline.where('datasets', name, 'source')}: {prefix}"
        for query, said in ((source.sql, where), (source.observe, f"{where}: observe query")):
            try:
                if query is not None:
                    check_database_query(query, said, source.connection)
            except DefinitionError as exc:
                errors.append(str(exc))
    if dataset.sql is not None:
        from resources.query import check_query

        try:
            check_query(dataset.sql, f"{pipeline.where('datasets', name, 'sql')}: {prefix}")
        except DefinitionError as exc:
            errors.append(str(exc))
    if dataset.transform and code:
        where = pipeline.where("datasets", name, "transform")
        try:  # the message of an import path names the pipeline only, as `slipway run` does
            fn = resolve(dataset.transform, allowed, f"{where}: pipeline {pipeline.spec.name}")
            if dataset.inputs is not None:
                from assets.spec.schema import input_name
                from assets.spec.signatures import check_signature

                names = [input_name(ref) for ref in dataset.inputs]
                check_signature(fn, dataset.transform, names, f"{where}: {prefix}")
        except DefinitionError as exc:
            errors.append(str(exc))
        columns = None  # a transform may add or drop columns
    return columns, errors


def _file_columns(
    pipeline: LoadedPipeline, name: str, dataset: Dataset, roots: Sequence[str], prefix: str
) -> tuple[Columns | None, list[str]]:
    """The header of every file a file source matches, or why there is none to read."""
    where = f"{pipeline.where('datasets', name, 'source', 'path')}: {prefix}"
    assert dataset.source is not None  # a file source
    source = dataset.source
    if dataset.partitions is not None:  # every partition's files; none yet is no mistake (they land later)
        source = source.model_copy(update={"path": fill(source.path or "", "*")})
    try:
        files = source_files(source, pipeline.folder, where, roots)
    except DataError as exc:
        return None, [] if dataset.partitions is not None else [str(exc)]
    except DefinitionError as exc:
        return None, [str(exc)]
    headers: dict[str, list[str]] = {}
    errors: list[str] = []
    for path in files:
        try:
            headers[_label(path, pipeline.folder)] = read_header(path, dataset.source.format)
        except DataError as exc:
            errors.append(f"{where}: {exc}")
    return (Columns(headers) if not errors else None), errors


def expectation_columns(dataset: Dataset) -> Iterator[tuple[int, str, str]]:
    """``(expectation index, argument, column)`` for every column the dataset's expectations name."""
    for index, expectation in enumerate(dataset.expectations):
        if expectation.expect in ASSERTS_COLUMNS:
            continue
        for key, value in expectation.kwargs.items():
            if key in COLUMN_KWARGS:
                yield from (
                    (index, key, c) for c in (value if isinstance(value, list) else [value]) if isinstance(c, str)
                )


def _dataset_column_problems(
    pipeline: LoadedPipeline, name: str, dataset: Dataset, columns: Columns
) -> Iterator[tuple[str, str]]:
    for index, key, column in expectation_columns(dataset):
        message = columns.missing(column)
        if message:
            where = pipeline.where("datasets", name, "expectations", index, key)
            yield where, f"expectation {dataset.expectations[index].expect}: {message}"
    drift_columns = (dataset.drift.columns if dataset.drift else None) or []
    for index, column in enumerate(drift_columns):
        message = columns.missing(column)
        if message:
            yield pipeline.where("datasets", name, "drift", "columns", index), f"drift: {message}"


def _model_columns(name: str, model: Model) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """``(location, column)`` for every column the model names."""
    yield ("models", name, "target"), model.target
    for index, column in enumerate(model.features or []):
        yield ("models", name, "features", index), column
    if model.split.by is not None:
        yield ("models", name, "split", "by"), model.split.by
    drift = model.retrain.on_drift if model.retrain else None
    for index, column in enumerate((drift.features if drift else None) or []):
        yield ("models", name, "retrain", "on_drift", "features", index), column


def _model_problems(
    pipeline: LoadedPipeline, name: str, model: Model, allowed: Sequence[str], prefix: str
) -> list[str]:
    """An import path that does not resolve, or params its estimator refuses."""
    field = "estimator" if model.estimator else "train"
    where = f"{pipeline.where('models', name, field)}: pipeline {pipeline.spec.name}"
    try:
        if not model.estimator:
            resolve(model.train or "", allowed, where, FUNCTION)
            return []
        signature = estimator_signature(model.estimator, allowed, where)
    except DefinitionError as exc:
        return [str(exc)]
    accepted, owner = signature.accepted, signature.owner
    if accepted is None:
        return []
    problems = [
        f"{pipeline.where('models', name, 'params', key)}: {prefix}: params: "
        f"{owner} has no parameter {key!r}{suggest(key, accepted)}"
        for key in model.params
        if key not in accepted
    ]
    at = pipeline.where("models", name, "params" if model.params else "estimator")
    swept = model.sweep.params if model.sweep is not None else {}
    problems += [
        f"{at}: {prefix}: params: {model.estimator} needs {key!r}, which params does not give (an estimator "
        "that needs other estimators is built by a training function, `train:`)"
        for key in signature.required
        if key not in model.params and key not in swept
    ]
    if model.sweep is not None:
        from assets.spec.sweep_check import sweep_problems

        problems += sweep_problems(pipeline, name, model, (accepted, owner), allowed, prefix)
    return problems


def _label(path: Path, folder: Path) -> str:
    return str(path.relative_to(folder)) if path.is_relative_to(folder) else str(path)


def read_header(path: Path, fmt: str | None) -> list[str]:
    """The column names of a CSV or Parquet file, read without loading its rows.

    A Parquet file written by pandas lists its named index among its columns; pandas reads it
    back as the index, so it is left out, as it is from the loaded frame.
    """
    if file_format(path, fmt) == "parquet":
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path)
        except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
            raise DataError(f"cannot read the Parquet schema of {path}: {exc}") from exc
        index = {c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)}
        return [name for name in schema.names if name not in index]
    try:
        with path.open("rb") as stream:
            first = stream.readline(_HEADER_BYTES).decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the header of {path}: {exc}") from exc
    header = next(csv.reader([first]), [])
    if not header:
        raise DataError(f"{path} is empty: a CSV file needs a header line")
    return header
