"""``slipway repro MODEL@VERSION``: rebuild a registered model from what it recorded, and compare.

A registered version records (as MLflow tags) the commit it was trained from and whether the
tree was dirty, the hash of its definition, the data version of each input, the Slipway
version and the lock file's hash; its training run holds its params and metrics, its split
its seed. Repro:

1. reads those from the registry (``MODEL`` is ``churn.churn_classifier`` or ``churn/churn_classifier``,
   ``VERSION`` a number or an alias such as ``champion``);
2. reads the recorded commit's definitions from git into a temporary folder (``git archive``:
   the checkout, index and HEAD are not touched) and checks that the model's definition there
   hashes to the recorded one;
3. finds the exact data it trained on: the input data version its Dagster run recorded, then the
   materialization of the dataset with that data version, whose table the artifact store keeps
   (every version, until the store is deleted);
4. trains that definition on that data, in this process, with the estimator and any training
   code as installed now, and compares params and metrics with the recorded run.

Exit 0 when params and metrics match exactly; 1 when they differ or the inputs cannot be found.
A dirty recorded tree, another Slipway version or another lock file are warnings: the result
may differ for that reason, and the report says so.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assets.automation.history import materializations, materialized_with, read_recorded
from resources.errors import DefinitionError, SlipwayError
from resources.redact import redact


class ReproError(SlipwayError):
    """A model version that cannot be rebuilt (unknown, no commit, data gone)."""


@dataclass
class Repro:
    """What :func:`repro` found."""

    model: str
    version: str
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when params and metrics came out as recorded."""
        return not self.mismatches


def parse_target(text: str) -> tuple[str, str]:
    """``churn/churn_classifier@3`` -> (``churn.churn_classifier``, ``3``)."""
    name, sep, version = text.partition("@")
    if not sep or not name or not version:
        raise ReproError(f"{text!r}: expected MODEL@VERSION or MODEL@ALIAS, e.g. churn.churn_classifier@champion")
    return name.replace("/", ".", 1) if "/" in name else name, version


def repro(target: str, stack_name: str | None, defs_dir: Path, say: Callable[[str], None] = lambda _: None) -> Repro:
    """Rebuild the model version ``target`` names and compare it with what it recorded."""
    from stacks import load_stack
    from stacks.build import build_resources

    name, wanted = parse_target(target)
    loaded = load_stack(stack_name)
    resources = build_resources(loaded.stack)
    registry, store = resources["model_registry"], resources["io_manager"]
    if wanted[:1] == "v" and wanted[1:].isdigit():  # v3, as Slipway prints versions
        wanted = wanted[1:]
    version = wanted if wanted.isdigit() else registry.aliases(name).get(wanted)
    if version is None:
        raise ReproError(f"{name} has no alias {wanted!r} (or is not registered)")
    tags = registry.version_tags(name, version)
    run = registry.recorded_run(name, version)
    if tags is None or run is None:
        raise ReproError(f"{name} v{version} is not in the registry")
    result = Repro(name, version)
    say(f"{name} v{version}: trained from commit {tags.get('slipway.git_sha', 'unknown')[:12]}")
    spec, asset_key, revision_code = _definition(name, version, tags, defs_dir, result)
    say(f"definition: {asset_key} at {result.lines.pop()}")
    from assets.model.sweep import WINNER_TAG

    if spec.sweep is not None and WINNER_TAG in tags:  # a sweep's version: its winning params, trained alone
        spec = spec.trial(json.loads(tags[WINNER_TAG]))
        say(f"sweep: the winning params {tags[WINNER_TAG]}")
    frames = _recorded_data(loaded, store, spec, asset_key, tags, name, version, say)
    _environment(tags, result)
    trained = _train(spec, frames, loaded.stack.allowed_imports, f"{name} v{version} (repro)", say)
    _compare(run, trained, result)
    if revision_code:
        result.warnings.append(revision_code)
    return result


def _definition(name: str, version: str, tags: dict[str, str], defs_dir: Path, result: Repro) -> tuple[Any, str, str]:
    """The model's definition at its recorded commit; checks its hash. Returns (spec, asset key, code warning)."""
    from assets.spec.loader import load_pipelines
    from assets.spec.versions import code_digests, code_version
    from definitions.plan import revisions
    from definitions.plan.sides import revision_digest

    sha, asset_key = tags.get("slipway.git_sha", "unknown"), tags.get("slipway.asset_key")
    if asset_key is None or "/" not in asset_key:
        raise ReproError(f"{name} v{version} recorded no asset key: it was not trained by Slipway")
    if sha == "unknown":
        raise ReproError(f"{name} v{version} recorded no commit: it was trained outside a git repository")
    if tags.get("slipway.git_dirty") == "true":
        result.warnings.append(
            f"v{version} was trained from a tree with uncommitted changes: commit {sha[:12]} may not hold what ran"
        )
    root = revisions.repository(defs_dir)
    try:
        rev = revisions.resolve(root, sha)
    except revisions.GitError as exc:
        raise ReproError(f"{name} v{version} was trained from commit {sha[:12]}, not in {root}: {exc}") from exc
    relative = revisions.relative(root, defs_dir)
    if relative is None:
        raise ReproError(f"{defs_dir} is not inside the git repository {root}")
    pipeline, model_name = asset_key.split("/", 1)
    with tempfile.TemporaryDirectory(prefix="slipway-repro-") as tmp:
        revisions.extract(rev, [relative], Path(tmp))
        folder = Path(tmp) / relative
        try:
            pipelines = load_pipelines(folder) if folder.is_dir() else []
        except DefinitionError as exc:
            raise ReproError(f"the definitions at {rev.label} do not load: {str(exc).splitlines()[0]}") from exc
    found = next((p for p in pipelines if p.spec.name == pipeline), None)
    if found is None or model_name not in found.spec.models:
        raise ReproError(f"commit {rev.label} declares no model {asset_key}")
    spec = found.spec.models[model_name]
    digest = revision_digest(rev, from_revision=True)
    recorded = tags.get("slipway.definition_hash")
    if recorded is not None and code_version("model", spec, digest) != recorded:
        result.warnings.append(
            f"the definition of {asset_key} at {rev.label} does not hash to the recorded {recorded}: "
            "it was trained from other (uncommitted) definitions, or by a Slipway that hashed definitions otherwise"
        )
    then, now = code_digests(spec, digest), code_digests(spec)
    code = ""
    if then != now:
        changed = ", ".join(sorted(p for p in {*then, *now} if then.get(p) != now.get(p)))
        code = f"the training code it names ({changed}) differs at {rev.label} from this checkout; repro ran this one"
    result.lines.append(rev.label)
    return spec, asset_key, code


def _recorded_data(
    loaded: Any,
    store: Any,
    spec: Any,
    asset_key: str,
    tags: dict[str, str],
    name: str,
    version: str,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The tables the version trained (and was scored) on, read back from the artifact store."""
    import dagster as dg

    from assets.spec.graph import key_of
    from assets.spec.tags import DATA_VERSION_TAG, INPUT_VERSION_PREFIX
    from resources.partitioned import PARTITIONS_READ
    from stacks.build import open_instance

    pipeline = asset_key.split("/")[0]
    wanted = {"frame": key_of(pipeline, spec.dataset)}
    if spec.evaluate_on:
        wanted["evaluation"] = key_of(pipeline, spec.evaluate_on)
    run_id = tags.get("slipway.dagster_run_id")
    frames: dict[str, Any] = {}
    with open_instance(loaded.stack) as instance:
        inputs, metadata = _inputs_of(instance, dg.AssetKey.from_user_string(asset_key), run_id)
        for role, key in wanted.items():
            recorded = tags.get(f"slipway.upstream.{key}")
            read = metadata.get(PARTITIONS_READ) if role == "frame" else None
            if recorded is not None and isinstance(read, list) and read:
                frames[role] = _read_partitions(store, key, read, recorded, f"{name} v{version}")
                say(f"data: {key} version {recorded} ({len(read)} partitions, {len(frames[role])} rows)")
                continue
            data_version = inputs.get(f"{INPUT_VERSION_PREFIX}{key}")
            runs = materialized_with(instance, dg.AssetKey.from_user_string(key), data_version, DATA_VERSION_TAG)
            if recorded is None or not runs:
                raise ReproError(
                    f"{name} v{version}: the data it trained on ({key}, data version {recorded or 'not recorded'}) "
                    "is not in this instance's record (another SLIPWAY_HOME or stack?)"
                )
            frame, stored_by = _read_any(store, key, runs, recorded, f"{name} v{version}")
            say(f"data: {key} version {recorded} (stored by run {stored_by[:8]}, {len(frame)} rows)")
            frames[role] = frame
    return frames


def _inputs_of(instance: Any, key: Any, run_id: str | None) -> tuple[dict[str, str], dict[str, Any]]:
    """The tags (input data versions among them) and metadata of ``key``'s materialization in run ``run_id``."""
    for record in materializations(instance, key) if run_id else ():
        if record.run_id == run_id and record.asset_materialization is not None:
            materialization = record.asset_materialization
            metadata = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
            return dict(materialization.tags or {}), metadata
    return {}, {}


def _read_partitions(store: Any, key: str, read: list[dict[str, Any]], recorded: str, what: str) -> Any:
    """The partitions a model read, each as the run that stored it, in the order read; checked against its hash."""
    import dagster as dg
    import pandas as pd

    from assets.spec.versions import frame_version
    from resources.errors import ResourceError
    from resources.partitioned import partition_path

    asset_key = dg.AssetKey.from_user_string(key)
    try:
        frames = [store.read_version(partition_path(asset_key, p["partition"]), str(p["run"])) for p in read]
    except ResourceError:
        raise  # the store is down, not the data gone
    except Exception as exc:
        raise ReproError(f"{what}: the data it trained on is no longer stored: {str(exc).splitlines()[0]}") from None
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if frame_version(frame) != recorded:
        raise ReproError(
            f"{what}: the {len(read)} partitions of {key} it read are not the data it recorded ({recorded})"
        )
    return frame


def _read_any(store: Any, key: str, runs: list[str], recorded: str, what: str) -> tuple[Any, str]:
    """The first stored copy of the recorded data among ``runs`` that reads back with its content hash."""
    try:
        return read_recorded(store, key, runs, recorded)
    except LookupError as exc:
        raise ReproError(f"{what}: the data it trained on is no longer stored: {exc}") from None


def _environment(tags: dict[str, str], result: Repro) -> None:
    from assets.spec.lineage import lock_hash, slipway_version

    if tags.get("slipway.lock_hash") not in (None, lock_hash()):
        result.warnings.append("uv.lock differs from the one it was trained with: library versions may change results")
    if tags.get("slipway.version") not in (None, slipway_version()):
        result.warnings.append(f"trained by Slipway {tags['slipway.version']}, rebuilt by {slipway_version()}")


def _train(spec: Any, frames: dict[str, Any], allowed: Any, where: str, say: Callable[[str], None]) -> Any:
    from assets.model import training
    from assets.spec.imports import ESTIMATOR, FUNCTION, check_allowed

    if spec.estimator:
        check_allowed(spec.estimator, allowed, where, ESTIMATOR)
    if spec.train:
        check_allowed(spec.train, allowed, where, FUNCTION)
    fit_fn = training.learner(spec, allowed, where)
    say("training ...")
    try:
        return training.train(frames["frame"], spec, fit_fn, where, frames.get("evaluation"))
    except SlipwayError:
        raise
    except Exception as exc:
        raise ReproError(redact(f"{where}: training failed: {type(exc).__name__}: {exc}".splitlines()[0])) from exc


def _compare(run: tuple[dict[str, str], dict[str, float]], trained: Any, result: Repro) -> None:
    params, metrics = run
    for key in sorted(set(params) | set(trained.params)):
        rebuilt = str(trained.params[key])[:6000] if key in trained.params else None
        if params.get(key) != rebuilt:
            result.mismatches.append(f"param {key}: recorded {params.get(key)!r}, rebuilt {rebuilt!r}")
    for key in sorted(trained.metrics):
        then, now = metrics.get(key), float(trained.metrics[key])
        if then is not None and (then == now or (math.isnan(then) and math.isnan(now))):
            result.lines.append(f"metric {key}: {now!r} (as recorded)")
        else:
            result.mismatches.append(f"metric {key}: recorded {then!r}, rebuilt {now!r}")
    differ = sum(m.startswith("param ") for m in result.mismatches)
    result.lines.append(f"params: {len(trained.params)} compared, {differ} differ")
