"""The Dagster asset for one declared dataset, with its expectations as blocking checks."""

import warnings
from pathlib import Path
from typing import Any

import dagster as dg

from assets import progress, sources
from assets.imports import resolve
from assets.outputs import versioned_output
from assets.rebuild import recording_failures
from assets.schema import Dataset
from assets.versions import code_version, frame_version
from resources.drift import DriftDetector
from resources.errors import DataError, DefinitionError, RefusedData
from resources.policy import ImportPolicy
from resources.validator import DataValidator, ExpectationResult


def check_name(index: int, expect: str) -> str:
    """The asset check's name for expectation ``index`` (unique even when one repeats)."""
    return f"expect_{index}_{expect}"[:100]


DRIFT_CHECK = "drift"


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


OBSERVE_SCHEDULE = "*/5 * * * *"


def source_key(pipeline: str, name: str) -> dg.AssetKey:
    """The key of the observable source asset of dataset ``name``'s files."""
    return dg.AssetKey(sources.source_key_path(pipeline, name))


def build_source_asset(pipeline: str, name: str, spec: Dataset, folder: Path) -> dg.SourceAsset:
    """The files of a dataset's file source, observed by a cheap fingerprint (no data is read).

    Its data version is :func:`assets.sources.files_fingerprint`: names, sizes and modification
    times. Observing it (``slipway run`` does before deciding; the UI's "Observe sources" too)
    marks the dataset unsynced when files are added, removed or rewritten.
    """
    where = f"pipeline {pipeline}, dataset {name}"

    def _files() -> dg.ObserveResult:
        version, metadata = sources.observe_files(spec.source, folder, where)
        return dg.ObserveResult(data_version=dg.DataVersion(version), metadata=metadata)

    # Observable source assets are marked beta; they are what makes new files visible
    # without loading them, so they are used on purpose.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        return dg.observable_source_asset(
            key=source_key(pipeline, name),
            group_name=pipeline,
            # With the automation sensor on, the files are observed once at first and then every
            # few minutes: a stat per file, no data read (`slipway run` observes them itself).
            automation_condition=(
                dg.AutomationCondition.missing() | dg.AutomationCondition.cron_tick_passed(OBSERVE_SCHEDULE)
            ).with_label(f"observe: first, then on {OBSERVE_SCHEDULE}"),
            description=f"The files of dataset {name} ({spec.source.path})",
            metadata={"slipway/files": spec.source.path, "slipway/folder": str(folder)},
        )(_files)


def build_dataset_asset(pipeline: str, name: str, spec: Dataset, folder: Path) -> dg.AssetsDefinition:
    """One asset ``pipeline/name`` that loads, transforms, versions and checks the dataset."""
    key = dg.AssetKey([pipeline, name])
    where = f"pipeline {pipeline}, dataset {name}"
    check_specs = [
        dg.AssetCheckSpec(
            check_name(i, e.expect),
            asset=key,
            blocking=e.severity == "error",
            description=f"expect {e.expect} {e.kwargs}",
        )
        for i, e in enumerate(spec.expectations)
    ]
    if spec.drift:
        check_specs.append(
            dg.AssetCheckSpec(
                DRIFT_CHECK, asset=key, description=f"{spec.drift.method} drift, older vs newer half of rows"
            )
        )

    def _build(
        context: dg.AssetExecutionContext,
        data_validator: DataValidator,
        drift_detector: DriftDetector,
        import_policy: ImportPolicy,
    ) -> Any:
        progress.started(f"{pipeline}/{name}", "loading")
        frame = sources.load(spec.source, folder, where, import_policy.allowed)
        if spec.transform:
            frame = resolve(spec.transform, import_policy.allowed, where)(frame)
            if not hasattr(frame, "dtypes"):
                raise DefinitionError(
                    f"{where}: transform {spec.transform} returned a {type(frame).__name__}, not a DataFrame"
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
                progress.finished(f"{pipeline}/{name}", ", ".join([*summary, "not stored"]))
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
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(str(c), str(t)) for c, t in frame.dtypes.items()]
                ),
            },
        )
        yield from checks
        if spec.drift:
            half = len(frame) // 2
            missing = [c for c in spec.drift.columns or [] if c not in frame.columns]
            if missing:
                raise DataError(f"{where}: drift columns {missing} are not in the dataset")
            scored = frame[spec.drift.columns] if spec.drift.columns else frame
            scores = drift_detector.scores(scored.iloc[:half], scored.iloc[half:], spec.drift.method)
            worst = max(scores.values(), default=0.0)
            summary.append(f"{spec.drift.method} drift {worst:.3f} (threshold {spec.drift.threshold})")
            yield dg.AssetCheckResult(
                check_name=DRIFT_CHECK,
                passed=worst <= spec.drift.threshold,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "max_score": worst,
                    "threshold": spec.drift.threshold,
                    **{f"score_{c}": s for c, s in scores.items()},
                },
            )
        progress.finished(f"{pipeline}/{name}", ", ".join(summary))

    @dg.asset(
        key=key,
        group_name=pipeline,
        code_version=code_version("dataset", spec),
        description=spec.description or f"Dataset {name} of pipeline {pipeline}",
        check_specs=check_specs,
        kinds={"pandas"},
        deps=[source_key(pipeline, name)] if spec.source.path is not None else [],
        metadata={"slipway/pipeline": pipeline, "slipway/source": spec.source.model_dump_json()},
    )
    def _dataset(
        context: dg.AssetExecutionContext,
        data_validator: DataValidator,
        drift_detector: DriftDetector,
        import_policy: ImportPolicy,
    ) -> Any:
        yield from recording_failures(context, key, _build(context, data_validator, drift_detector, import_policy))

    return _dataset
