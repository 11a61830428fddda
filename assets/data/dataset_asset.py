"""The Dagster asset for one declared dataset, with its expectations as blocking checks."""

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from assets.data import derived, progress, sources
from assets.data.dataset_drift import DRIFT_CHECK, drift_check
from assets.data.failures import recording_failures
from assets.data.outputs import versioned_output
from assets.data.partitioning import partition_source
from assets.data.source_asset import source_key
from assets.spec import compute
from assets.spec.graph import REFS_METADATA, dataset_edges
from assets.spec.imports import resolve
from assets.spec.preflight import expectation_columns
from assets.spec.schema import Dataset, input_name
from assets.spec.versions import code_version, frame_version
from resources.alerts import Alert, Alerter
from resources.drift import DriftDetector
from resources.errors import DataError, RefusedData
from resources.policy import ImportPolicy
from resources.query import QueryEngine
from resources.tables import as_table
from resources.validator import DataValidator, ExpectationResult


def check_name(index: int, expect: str) -> str:
    """The asset check's name for expectation ``index`` (unique even when one repeats)."""
    return f"expect_{index}_{expect}"[:100]


def _check_result(
    index: int, result: ExpectationResult, severity: str, rejected: str | None = None
) -> dg.AssetCheckResult:
    metadata: dict[str, Any] = {f"kwarg_{k}": str(v) for k, v in result.kwargs.items()}
    metadata.update(result.details)
    if rejected is not None:
        metadata["rejected_data_version"] = rejected
    return dg.AssetCheckResult(
        check_name=check_name(index, result.expect),
        passed=result.success,
        severity=dg.AssetCheckSeverity.ERROR if severity == "error" else dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )


#: On a dataset with rolling windows over inputs: each windowed input's key and how many partitions it reads.
WINDOWS_METADATA = "slipway/windows"
#: On a partitioned dataset: how many of its partitions one run may build (``max_partitions_per_run``).
PER_RUN_METADATA = "slipway/max_partitions_per_run"
#: On a partition of a sourced dataset: the fingerprint of the files it read (:func:`files_fingerprint`).
SOURCE_VERSION = "slipway/source_version"


def _files_version(spec: Dataset, partition: str, folder: Path, policy: ImportPolicy, where: str) -> str:
    """The fingerprint of partition ``partition``'s files, as its source's observation computes it."""
    from assets.spec.paths import source_files

    files = source_files(partition_source(spec, partition), folder, where, policy.data_roots)
    return sources.files_fingerprint(files, folder)


def needed_columns(spec: Dataset) -> dict[str, list[str]]:
    """Each column the dataset's expectations and drift check name, with what names it."""
    wanted: dict[str, list[str]] = {}
    for index, _, column in expectation_columns(spec):
        wanted.setdefault(column, []).append(f"expectation {spec.expectations[index].expect}")
    for column in (spec.drift.columns if spec.drift else None) or []:
        wanted.setdefault(column, []).append("the drift check")
    return wanted


def _table(
    spec: Dataset,
    frames: dict[str, Any],
    engine: QueryEngine,
    policy: ImportPolicy,
    folder: Path,
    where: str,
    here: Callable[..., str],
    partition: str | None = None,
) -> Any:
    """The dataset's table: derived from ``frames`` (its inputs), or read from its source (a ``partition``'s files)."""
    # Slipway's store never hands a list; Dagster does, empty, for an input whose source an op
    # selection of the asset job left out (tests/data/test_op_selection.py).
    unloaded = [name for name, frame in frames.items() if isinstance(frame, list)]
    if unloaded:
        raise DataError(
            f"{here('inputs')}: {where}: input{'s' if len(unloaded) > 1 else ''} {', '.join(unloaded)} "
            f"{'were' if len(unloaded) > 1 else 'was'} not loaded: Dagster passes an empty list for each when the "
            "asset job runs as an op selection (dagster job launch -o); select assets instead (the UI, "
            "dagster asset materialize --select, slipway run)"
        )
    if spec.sql is not None:
        limits = spec.limits
        return engine.run(
            spec.sql,
            frames,
            f"{here('sql')}: {where}",
            memory_limit=limits.memory if limits else None,
            timeout_seconds=limits.timeout_seconds() if limits else None,
        )
    if spec.inputs is not None:
        fn = resolve(spec.transform or "", policy.allowed, where)
        return derived.run_transform(fn, spec.transform or "", frames, f"{here('transform')}: {where}")
    assert spec.source is not None  # a dataset has inputs or a source (schema)
    # A database query's errors name its line (a file source's name the file they are about).
    shown = f"{here('source')}: {where}" if spec.source.sql else where
    source = spec.source if partition is None else partition_source(spec, partition)
    frame = sources.load(source, folder, shown, policy.allowed, policy.data_roots)
    if spec.transform:
        fn = resolve(spec.transform, policy.allowed, where)
        return derived.call_transform(fn, spec.transform, f"{here('transform')}: {where}", frame)
    # A generator may return a keyed index: the table stored, and hashed, is the same plain table.
    try:
        return as_table(frame)
    except DataError as exc:
        raise DataError(f"{here('source')}: {where}: the source's table: {exc}") from exc


def _windows_read(read: dict[str, list[str]]) -> dict[str, str]:
    """``window/events: 2026-01-04 … 2026-01-10 (7 partitions)``: which partitions each rolling window read."""
    found = {}
    for name, keys in read.items():
        span = keys[0] if len(keys) == 1 else f"{keys[0]} … {keys[-1]}" if keys else "none"
        found[f"window/{name}"] = f"{span} ({len(keys)} partition{'s' if len(keys) != 1 else ''})"
    return found


def _check_specs(
    key: dg.AssetKey, spec: Dataset, partitions: dg.PartitionsDefinition | None
) -> list[dg.AssetCheckSpec]:
    """A blocking (or warning) check per expectation, and the drift check; per partition when partitioned."""
    with warnings.catch_warnings():  # a partitioned check is a preview of Dagster's: used on purpose
        warnings.simplefilter("ignore")
        check_specs = [
            dg.AssetCheckSpec(
                check_name(i, e.expect),
                asset=key,
                blocking=e.severity == "error",
                description=f"expect {e.expect} {e.kwargs}",
                partitions_def=partitions,
            )
            for i, e in enumerate(spec.expectations)
        ]
        if spec.drift:
            check_specs.append(
                dg.AssetCheckSpec(
                    DRIFT_CHECK,
                    asset=key,
                    description=f"{spec.drift.method} drift, older vs newer half of rows",
                    partitions_def=partitions,
                )
            )
        return check_specs


#: What a dataset's step is given besides its inputs and alerter.
Resources = tuple[DataValidator, DriftDetector, QueryEngine, ImportPolicy]


def _inputs(edges: Any, windows: dict[str, int]) -> dict[str, dg.AssetIn]:
    """Each input by name; a rolling window's reads partitions t-N+1 … t of it (fewer at the first ones)."""
    return {
        input_name(edge.ref): dg.AssetIn(
            key=dg.AssetKey(edge.target.split("/")),
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=1 - windows[edge.ref], allow_nonexistent_upstream_partitions=True
            )
            if edge.ref in windows
            else None,
        )
        for edge in edges
    }


def build_dataset_asset(
    pipeline: str,
    name: str,
    spec: Dataset,
    folder: Path,
    at: Callable[..., str] | None = None,
    refs: Mapping[str, Any] | None = None,
    partitions: dg.PartitionsDefinition | None = None,
    per_run: int = 1,
    windows: dict[str, int] | None = None,
) -> dg.AssetsDefinition:
    """One asset ``pipeline/name`` that loads (or derives), transforms, versions and checks the dataset.

    ``at(*loc)`` is the ``path:line`` of a key under the dataset in its YAML, for messages;
    ``refs`` are its references to other pipelines' assets (:func:`assets.spec.graph.refs_metadata`).
    With ``partitions``, each partition is built, checked, versioned and stored on its own: a
    sourced one reads its partition's files only and records their fingerprint
    (:data:`SOURCE_VERSION`), which Dagster does not record for partitions of a source. A run over a
    range of partitions (up to ``per_run``, :data:`PER_RUN_METADATA`) builds each of them alone
    (:mod:`assets.data.batches`). ``windows``: how many partitions each rolling window reads.
    """
    key = dg.AssetKey([pipeline, name])
    base = f"pipeline {pipeline}, dataset {name}"
    here = at or (lambda *loc: str(folder / "defs.yaml"))
    edges = dataset_edges(pipeline, spec)
    windows = windows or {}  # each rolling window's number of partitions (assets.data.partitioning.window_counts)
    inputs = _inputs(edges, windows)
    # A query or transform that drops a column a check needs is a mistake in the definition, said
    # at once; a source's own columns are data, judged by the expectations themselves.
    wanted = needed_columns(spec) if spec.sql or spec.transform else {}
    blocking = any(e.severity == "error" for e in spec.expectations)
    # Data is refused by a blocking expectation, or by a landed file whose columns differ.
    refuses = blocking or (spec.source is not None and spec.source.path is not None)
    made_by = f"the table that transform {spec.transform} returned" if spec.transform else "the query's table"
    check_specs = _check_specs(key, spec, partitions)

    def _build(
        context: dg.AssetExecutionContext,
        data_validator: DataValidator,
        drift_detector: DriftDetector,
        query_engine: QueryEngine,
        import_policy: ImportPolicy,
        frames: dict[str, Any],
        alerter: Alerter,
        partition: str | None,
        windows_read: dict[str, list[str]],
    ) -> Any:
        where = f"{base}, partition {partition}" if partition is not None else base
        shown = f"{pipeline}/{name}" + (f"[{partition}]" if partition is not None else "")
        progress.started(shown, "deriving" if spec.inputs else "loading")
        # Before reading: a file rewritten while it is read leaves the partition stale, not current.
        read = _files_version(spec, partition, folder, import_policy, where) if partition and spec.source else None
        frame = _table(spec, frames, query_engine, import_policy, folder, where, here, partition)
        lacking = derived.missing_columns(frame, wanted)
        if lacking:
            raise DataError(
                f"{here()}: {where}: {made_by} has no column {', '.join(lacking)}; "
                f"it has {', '.join(map(str, frame.columns))}"
            )
        version = frame_version(frame)
        checks: list[dg.AssetCheckResult] = []
        summary = [f"{len(frame)} rows"]
        if spec.expectations:
            results = data_validator.run_expectations(
                frame, [(e.expect, e.kwargs) for e in spec.expectations], f"{pipeline}_{name}"
            )
            failed = [
                check_name(i, r.expect)
                for i, (e, r) in enumerate(zip(spec.expectations, results, strict=True))
                if not r.success and e.severity == "error"
            ]
            summary.append(f"{sum(r.success for r in results)}/{len(results)} expectations passed")
            for index, (expectation, result) in enumerate(zip(spec.expectations, results, strict=True)):
                if not result.success:
                    context.log.warning(
                        f"{where}: expectation {result.expect} {result.kwargs} failed: {result.details}"
                    )
                checks.append(_check_result(index, result, expectation.severity, version if failed else None))
            if failed:
                progress.finished(shown, ", ".join([*summary, "not stored"]))
                # Blocking means the data is never stored: the last good version stays the one
                # downstream assets read, by every launch path. The check results are recorded
                # (on the rejected data version) before the step fails.
                yield from checks
                raise RefusedData(
                    f"{where}: blocking expectations failed: {', '.join(failed)}; "
                    f"data version {version} ({len(frame)} rows) was not stored"
                )
        yield versioned_output(
            frame,
            version,
            {
                "rows": dg.MetadataValue.int(len(frame)),
                "columns": dg.MetadataValue.int(len(frame.columns)),
                "data_version": version,
                **({SOURCE_VERSION: read} if read is not None else {}),
                **_windows_read(windows_read),
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(str(c), str(t)) for c, t in frame.dtypes.items()]
                ),
            },
        )
        yield from checks
        if spec.drift:
            drifted, alert, said = drift_check(
                spec.drift, frame, drift_detector, where, key.to_user_string(), context.run.run_id
            )
            summary.append(said)
            yield drifted
            if alert is not None:
                alerter.send(alert, context.log)
        progress.finished(shown, ", ".join(summary))

    windowed = [input_name(e.ref) for e in edges if e.ref in windows]

    def _build_range(
        context: dg.AssetExecutionContext, resources: Resources, frames: dict[str, Any], alerter: Alerter
    ) -> Any:
        """Each partition of the run's range built alone (:func:`assets.data.batches.build_partitions`)."""
        from assets.data import batches

        assert partitions is not None

        def build(partition: str, given: dict[str, Any], read: dict[str, list[str]]) -> Any:
            return _build(context, *resources, given, alerter, partition, {n: read[n] for n in windowed if n in read})

        parents = batches.parents(inputs, source_key(pipeline, name, spec) if sources.observable(spec.source) else None)
        reads = batches.input_reads(partitions, inputs, context.instance)
        refused = batches.refusal(context, key, alerter)
        yield from batches.build_partitions(context, key, build, frames, reads, parents, refused)

    @dg.asset(
        key=key,
        group_name=pipeline,
        code_version=code_version("dataset", spec),
        description=spec.description or f"Dataset {name} of pipeline {pipeline}",
        check_specs=check_specs,
        kinds={"duckdb"} if spec.sql else {"pandas"},
        op_tags=compute.op_tags(spec.resources),
        ins=inputs,
        partitions_def=partitions,
        # A run over several partitions records each itself (assets.data.batches), not as one output.
        output_required=partitions is None,
        deps=[source_key(pipeline, name, spec)] if sources.observable(spec.source) else [],
        metadata={
            "slipway/pipeline": pipeline,
            **({"slipway/source": spec.source.model_dump_json()} if spec.source else {}),
            **({"slipway/sql": spec.sql} if spec.sql else {}),
            **({REFS_METADATA: dict(refs)} if refs else {}),
            **({WINDOWS_METADATA: {e.target: windows[e.ref] for e in edges if e.ref in windows}} if windows else {}),
            **({PER_RUN_METADATA: per_run} if partitions is not None else {}),
        },
    )
    def _dataset(
        context: dg.AssetExecutionContext,
        data_validator: DataValidator,
        drift_detector: DriftDetector,
        query_engine: QueryEngine,
        import_policy: ImportPolicy,
        alerter: Alerter,
        **frames: Any,
    ) -> Any:
        resources: Resources = (data_validator, drift_detector, query_engine, import_policy)
        if partitions is not None and context.has_partition_key_range:  # several partitions: each alone
            yield from _build_range(context, resources, frames, alerter)
            return
        partition = context.partition_key if partitions is not None else None
        read = {n: list(context.asset_partition_keys_for_input(n)) for n in windowed} if partition is not None else {}
        steps = _build(context, *resources, frames, alerter, partition, read)
        try:
            # Refused data (a partition's too) is held until its definition or an input changes.
            yield from recording_failures(context, key, steps, can_refuse=refuses)
        except RefusedData as exc:
            # Alerted here, once: the run failure alert leaves refused data to this one.
            text = str(exc).splitlines()[0]
            alerter.send(
                Alert("check_failed", f"{key.to_user_string()}: data refused", text, key.to_user_string()), context.log
            )
            raise

    return _dataset
