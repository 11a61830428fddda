"""``slipway demo drift PIPELINE``: land a drifted batch in an example's data, to watch retraining happen.

The batch is a new file where the pipeline's file source looks for batches: a glob
(``data/batch_*.csv`` gets ``data/batch_001.csv``); an existing file is never edited, so
deleting the new files undoes the demo. Its
rows come from the built-in generator whose columns the landed files have (``churn``,
``houses``), with the distributions shifted; id columns (``*_id``) continue after the largest
id landed. The new files are then observed on the stack's instance, so a running ``slipway
dev`` sees the new data at its next tick instead of the next scheduled observation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assets.spec.loader import LoadedPipeline, load_pipelines
from assets.spec.metrics import suggest
from resources.errors import DataError, DefinitionError
from stacks import load_stack


@dataclass(frozen=True)
class Landed:
    """What the demo wrote, and who will notice."""

    dataset: str
    path: Path
    rows: int
    drift: float
    readers: list[str]  # models reading the dataset, with their retrain policy


def drift(
    pipeline: str,
    defs_dir: Path,
    stack: str | None,
    rows: int | None = None,
    shift: float = 1.0,
    say: Callable[[str], None] = lambda _: None,
) -> Landed:
    """Land one drifted batch in ``pipeline``'s landing data and observe it; :class:`DefinitionError` when it cannot."""
    from assets.data import generators
    from assets.spec import paths

    pipelines = load_pipelines(defs_dir)
    found = next((p for p in pipelines if p.spec.name == pipeline), None)
    if found is None:
        names = [p.spec.name for p in pipelines]
        raise DefinitionError(f"no pipeline {pipeline!r} in {defs_dir}{suggest(pipeline, names)}")
    if not 0 < shift <= 3:
        raise DefinitionError(f"--shift {shift}: give a shift between 0 and 3 (1 moves a feature by about its spread)")
    roots = load_stack(stack).stack.data_roots
    for name, dataset in found.spec.datasets.items():
        if dataset.source is None or dataset.source.path is None:
            continue
        where = f"pipeline {pipeline}, dataset {name}"
        files = paths.source_files(dataset.source, found.folder, where, roots)
        target = _next_file(dataset.source.path, found.folder, files)
        if target is None or any(path.suffix.lower() not in (".csv", ".txt") for path in files):
            continue  # the demo adds CSV batch files to a landing folder; it never edits a file

        landed = _read(files)
        builtin = list(generators.BUILTIN.values())
        generator = next((g for g in builtin if set(g(rows=2).columns) == set(landed.columns)), None)
        if generator is None:
            continue
        if rows is None and len(landed) == 0:
            raise DefinitionError(f"{pipeline}/{name}: no rows are landed yet to size the batch; give --rows N")
        count = len(landed) if rows is None else rows
        if count < 1:
            raise DefinitionError(f"--rows {count}: give at least one row")
        batch = generator(rows=count, seed=1000 + len(landed), drift=shift)[list(landed.columns)]
        for column in (c for c in batch.columns if str(c).endswith("_id")):
            start = int(landed[column].max()) + 1 if landed[column].notna().any() else 0
            batch[column] = batch[column] - batch[column].min() + start
        batch.to_csv(target, index=False)
        say(f"{target}: {count} rows drifted by {shift} (dataset {pipeline}/{name})")
        _observe(found, stack, say)
        return Landed(f"{pipeline}/{name}", target, count, shift, _readers(found, name))
    raise DefinitionError(
        f"pipeline {pipeline}: no dataset lands CSV batches in a folder (a glob like data/batch_*.csv) with the "
        f"columns of a built-in generator ({', '.join(generators.BUILTIN)}); the demo adds a batch file there "
        "and never edits an existing file"
    )


def _read(files: list[Path]) -> Any:
    import pandas as pd

    frames = []
    for path in files:
        try:
            frames.append(pd.read_csv(path))
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read as CSV: {str(exc).splitlines()[0]}") from exc
    return pd.concat(frames, ignore_index=True)


def _next_file(pattern: str, folder: Path, files: list[Path]) -> Path | None:
    """The next file a glob like ``data/batch_*.csv`` matches (``batch_001.csv`` after ``batch_000.csv``).

    None for a pattern without one ``*`` (a single file: rows are appended to it).
    """
    if "*" not in pattern or pattern.count("*") > 1 or any(c in pattern for c in "?["):
        return None
    head, tail = pattern.split("*")
    numbers = [int(m.group(1)) for f in files if (m := re.search(r"(\d+)\D*$", f.name))]
    width = max((len(m.group(1)) for f in files if (m := re.search(r"(\d+)\D*$", f.name))), default=3)
    number = max(numbers, default=-1) + 1
    while True:
        path = folder / f"{head}{number:0{width}d}{tail}"
        if not path.exists():
            return path
        number += 1


def _observe(found: LoadedPipeline, stack: str | None, say: Callable[[str], None]) -> None:
    """Record the new data versions of the pipeline's sources on the stack's instance."""
    import dagster as dg

    from assets.automation.staleness import DATA_VERSION_TAG
    from assets.data.sources import observable, observe
    from assets.spec.paths import source_key_path
    from stacks import load_stack
    from stacks.build import open_instance

    loaded = load_stack(stack)
    with open_instance(loaded.stack) as instance:
        for name, dataset in found.spec.datasets.items():
            if not observable(dataset.source) or dataset.source is None or dataset.source.path is None:
                continue
            where = f"pipeline {found.spec.name}, dataset {name}"
            version, metadata = observe(dataset.source, found.folder, where, loaded.stack.data_roots)
            key = dg.AssetKey(source_key_path(found.spec.name, name, dataset.source))
            instance.report_runless_asset_event(
                dg.AssetObservation(asset_key=key, tags={DATA_VERSION_TAG: version}, metadata=metadata)
            )
    say(f"observed on stack {loaded.name}: the sensors of a running `slipway dev` see it at their next tick")


def _readers(found: LoadedPipeline, dataset: str) -> list[str]:
    """The models that read ``dataset`` directly or through derived datasets, each with its retrain policy."""
    reached = {dataset}
    changed = True
    while changed:
        changed = False
        for name, spec in found.spec.datasets.items():
            if name not in reached and any(ref in reached for ref in spec.inputs or []):
                reached.add(name)
                changed = True
    lines = []
    for name, model in found.spec.models.items():
        if model.dataset in reached or model.evaluate_on in reached:
            retrain = model.retrain
            if retrain is None:
                policy = "no retrain policy: it does not retrain by itself"
            else:
                parts = [
                    "on new data" if retrain.on_new_data else "",
                    f"on {trigger.method} drift above {trigger.threshold}" if (trigger := retrain.on_drift) else "",
                    f"on schedule {retrain.schedule!r}" if retrain.schedule else "",
                    f"cooldown {retrain.cooldown}" if retrain.cooldown else "",
                    f"at most {retrain.max_per_day} a day" if retrain.max_per_day else "",
                ]
                policy = "retrains " + ", ".join(p for p in parts if p)
            lines.append(f"{found.spec.name}/{name}: {policy}")
    return lines
