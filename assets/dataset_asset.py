"""The Dagster asset for one declared dataset, with its expectations as blocking checks."""

from pathlib import Path
from typing import Any

import dagster as dg

from assets import progress, sources
from assets.imports import resolve
from assets.outputs import versioned_output
from assets.schema import Dataset
from assets.versions import code_version, frame_version
from resources.drift import DriftDetector
from resources.errors import DataError, DefinitionError
from resources.policy import ImportPolicy
from resources.validator import DataValidator, ExpectationResult


def check_name(index: int, expect: str) -> str:
    """The asset check's name for expectation ``index`` (unique even when one repeats)."""
    return f"expect_{index}_{expect}"[:100]


DRIFT_CHECK = "drift"


def _check_result(index: int, result: ExpectationResult, severity: str) -> dg.AssetCheckResult:
    metadata: dict[str, Any] = {f"kwarg_{k}": str(v) for k, v in result.kwargs.items()}
    metadata.update(result.details)
    return dg.AssetCheckResult(
        check_name=check_name(index, result.expect),
        passed=result.success,
        severity=dg.AssetCheckSeverity.ERROR if severity == "error" else dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )


def build_dataset_asset(pipeline: str, name: str, spec: Dataset, folder: Path) -> dg.AssetsDefinition:
    """One asset ``pipeline/name`` that loads, transforms, versions and checks the dataset."""
    key = dg.AssetKey([pipeline, name])
    where = f"pipeline {pipeline}, dataset {name}"
    checks = [
        dg.AssetCheckSpec(
            check_name(i, e.expect),
            asset=key,
            blocking=e.severity == "error",
            description=f"expect {e.expect} {e.kwargs}",
        )
        for i, e in enumerate(spec.expectations)
    ]
    if spec.drift:
        checks.append(
            dg.AssetCheckSpec(
                DRIFT_CHECK, asset=key, description=f"{spec.drift.method} drift, older vs newer half of rows"
            )
        )

    @dg.asset(
        key=key,
        group_name=pipeline,
        code_version=code_version("dataset", spec),
        description=spec.description or f"Dataset {name} of pipeline {pipeline}",
        check_specs=checks,
        kinds={"pandas"},
        metadata={"slipway/pipeline": pipeline, "slipway/source": spec.source.model_dump_json()},
    )
    def _dataset(
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
        summary = [f"{len(frame)} rows"]
        if spec.expectations:
            results = data_validator.run_expectations(
                frame, [(e.expect, e.kwargs) for e in spec.expectations], f"{pipeline}_{name}"
            )
            failed = sum(not r.success for r in results)
            summary.append(f"{len(results) - failed}/{len(results)} expectations passed")
            for index, (expectation, result) in enumerate(zip(spec.expectations, results, strict=True)):
                if not result.success:
                    context.log.warning(
                        f"{where}: expectation {result.expect} {result.kwargs} failed: {result.details}"
                    )
                yield _check_result(index, result, expectation.severity)
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

    return _dataset
