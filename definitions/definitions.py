"""The Dagster code location, assembled in one place for every door.

`slipway run`, `slipway dev`, `dg`, the UI and sensors all load it from here.

It holds every pipeline under ``defs/`` (YAML components and any hand-written Python asset or
sensor beside them), the active stack's resources and executor, the shared rebuild predicate
on every materializable asset (:mod:`assets.rebuild`) and the automation sensor that
evaluates it. The stack comes from ``$SLIPWAY_STACK`` (default ``local``); the definitions
folder from ``$SLIPWAY_DEFS`` (default ``definitions/defs``), which is how ``--defs`` reaches
``dg`` and the UI too.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import dagster as dg

from assets.loader import discover
from assets.new_files import NEW_FILES_SENSOR, new_files_sensor
from assets.rebuild import Built, rebuild_condition
from assets.retrain import GitChange, retrain_sensor
from definitions.paths import DEFS_DIR, defs_folder
from resources.alerts import Alerter
from resources.artifacts import STORED
from resources.errors import DefinitionError, count
from resources.registry import ModelRegistry
from stacks import LoadedStack, load_stack
from stacks.build import build_resources, executor

AUTOMATION_SENSOR = "slipway_automation"
PINS_SENSOR = "slipway_alias_pins"
RUN_FAILURE_SENSOR = "slipway_run_failures"
SOURCES_SENSOR = NEW_FILES_SENSOR
SOURCE_VERSION_PREFIX = "source-"


class StackStores:
    """Answers, for the rebuild predicate, whether what an asset built is still in the stack's stores."""

    def __init__(self, resources: dict[str, Any], remember: bool = False) -> None:
        """Over the stack's resources (:func:`stacks.build.build_resources`): its IO manager and registry.

        With ``remember``, each answer is kept for the object's life (one `slipway run`, which
        asks about the same outputs several times); the code location's own stores ask anew.
        """
        self.resources = resources
        self.artifact_store = resources["io_manager"]
        self.registry = resources["model_registry"]
        self.remember = remember
        self._answers: dict[tuple[dg.AssetKey, str], str | None] = {}
        # The local files each answer rested on (None: a store that is not local), so that a
        # cache of "nothing to do" can check they are still there without asking the stores.
        self.files: dict[dg.AssetKey, list[str] | None] = {}

    def missing(self, key: dg.AssetKey, built: Built) -> str | None:
        """Why the output ``built`` recorded cannot be reused, or None."""
        if self.remember and (key, built.run_id) in self._answers:
            return self._answers[(key, built.run_id)]
        answer = self._ask(key, built)
        if self.remember:
            self._answers[(key, built.run_id)] = answer
        return answer

    def _ask(self, key: dg.AssetKey, built: Built) -> str | None:
        files: list[str] | None = []
        registered, version = built.metadata.get("registered_model"), built.metadata.get("model_version")
        if registered is not None and version is not None:
            problem, local = self.registry.check(str(registered), str(version))
            if problem is not None:
                return problem
            files = None if local is None else [str(local)]
        if not built.metadata.get(STORED):
            # Not written by the stack's artifact store (another IO manager, a MaterializeResult):
            # there is nothing of ours to check.
            self.files[key] = files
            return None
        path = self.artifact_store.local_path(tuple(key.path), built.run_id)
        if path is None and not self.artifact_store.has(tuple(key.path), built.run_id):
            return f"its stored output (run {built.run_id[:8]}) is gone from the artifact store"
        self.files[key] = None if files is None or path is None else [*files, str(path)]
        return None


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


def build_definitions(
    folder: Path | None = None,
    loaded: LoadedStack | None = None,
    stores: StackStores | None = None,
    asked: bool = False,
) -> dg.Definitions:
    """The code location: the pipelines of ``folder`` on the stack ``loaded`` (defaults: the active ones).

    ``stores`` (over the stack's resources) is what the rebuild predicate asks; made here when not given.
    By itself (``asked`` false: deployed, the UI, sensors) a model is rebuilt for what git changed
    and retrains on new data only by its retrain policy (:mod:`assets.retrain`); ``asked`` (a person
    running `slipway run`) rebuilds whatever is out of date.
    """
    loaded = loaded or load_stack()
    with warnings.catch_warnings():
        # Dagster's own component loading uses its beta/preview classes (code references,
        # module loaders) and would warn about them on every load.
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        warnings.simplefilter("ignore", category=dg.PreviewWarning)
        pipelines = _load_folder_or_explain((folder or defs_folder()).resolve())
    resources = dict(stores.resources) if stores is not None else build_resources(loaded.stack)
    stores = stores or StackStores(resources)
    condition = rebuild_condition(stores)
    model_condition = condition if asked else (condition & GitChange(stores)).with_label("slipway rebuild (models)")
    materializable = {
        key: item
        for item in pipelines.assets or []
        if isinstance(item, dg.AssetsDefinition) and item.is_materializable
        for key in item.keys
    }

    def carry_the_rule(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key not in materializable:
            return spec
        if spec.automation_condition is None:
            is_model = "slipway/registered_model" in spec.metadata
            spec = spec.replace_attributes(automation_condition=model_condition if is_model else condition)
        if spec.code_version is None:
            # A hand-written asset without a code version: the bytes of the file that defines
            # it stand in, so that editing it counts as a changed definition.
            version = source_version(materializable[spec.key])
            if version is not None:
                spec = spec.replace_attributes(code_version=version)
        return spec

    # Observable sources are SourceAssets, which map_asset_specs refuses; they keep no condition.
    pipelines = pipelines.permissive_map_resolved_asset_specs(selection=None, func=carry_the_rule)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=dg.BetaWarning)  # use_user_code_server is beta
        sensor = dg.AutomationConditionSensorDefinition(
            AUTOMATION_SENSOR,
            target=dg.AssetSelection.all(include_sources=True),
            # The predicate reads the stack's stores, so it is evaluated in the code server.
            use_user_code_server=True,
            description="Rebuilds what is out of date (slipway's rebuild predicate).",
            # On when deployed (and in `slipway dev`): a merged change rebuilds what it touches
            # without anyone finding a toggle.
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
    defs = dg.Definitions.merge(
        pipelines,
        dg.Definitions(
            resources=resources,
            executor=executor(loaded.stack),
            sensors=[sensor, alias_pins_sensor(), retrain_sensor(), run_failure_sensor(), new_files_sensor()],
        ),
    )
    _check_inputs(defs)
    return defs


def alias_pins_sensor() -> dg.SensorDefinition:
    """The reconcile step of alias pins (:mod:`assets.pins`), deployed: on by default, once a minute.

    One registry read per tick (every registered model's aliases in one search); it moves an
    alias only where git pins it elsewhere, and records what it found on the model assets.
    """
    from assets import pins

    @dg.sensor(
        name=PINS_SENSOR,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Keeps model aliases where git pins them (promote.pin); reports aliases moved by hand.",
    )
    def _pins(context: dg.SensorEvaluationContext, model_registry: ModelRegistry) -> dg.SensorResult | dg.SkipReason:
        graph = context.repository_def.asset_graph  # type: ignore[union-attr]
        models = pins.models_of(graph, graph.materializable_asset_keys)
        findings = pins.reconcile(model_registry, models)
        events = pins.evaluations(context.instance, findings, [m.asset for m in models])
        if not events and findings:
            said = f"{count(len(models), 'model')}: {count(len(findings), 'alias finding')}"
            return dg.SkipReason(f"{said}, unchanged since reported")
        if not events:
            return dg.SkipReason(f"{count(len(models), 'model')}: every alias is where git and Slipway put it")
        for finding in findings:
            context.log.info(finding.message)
        return dg.SensorResult(asset_events=events)

    return _pins


def run_failure_sensor() -> dg.SensorDefinition:
    """Alerts (the stack's alerter) on every failed run of the code location; on by default.

    A run launched by `slipway run` is left to it: the command alerts on its own failed runs,
    so a failure is alerted once whether the daemon runs or not.
    """

    @dg.run_failure_sensor(
        name=RUN_FAILURE_SENSOR,
        default_status=dg.DefaultSensorStatus.RUNNING,
        monitor_all_code_locations=False,
        description="Alerts on failed runs (the stack's alerter).",
    )
    def _failed(context: dg.RunFailureSensorContext, alerter: Alerter) -> None:
        run = context.dagster_run
        if run.tags.get("slipway/command") == "run" and "dagster/parent_run_id" not in run.tags:
            return
        errors = [
            e for step in context.get_step_failure_events() if (e := getattr(step.event_specific_data, "error", None))
        ]
        if refused_only(errors):
            return
        message = root_message(errors[0]) if errors else context.failure_event.message or ""
        alerter.send(run_failure_alert(run, message), context.log)

    return _failed


def step_error(error: Any) -> Any:
    """What a step itself raised, from Dagster's wrapped error: the first Slipway error in the chain, or the last."""
    from resources import errors

    ours = {name for name, value in vars(errors).items() if isinstance(value, type) and issubclass(value, Exception)}
    innermost = error
    while error is not None:
        if getattr(error, "cls_name", None) in ours:
            return error
        innermost = error
        error = getattr(error, "cause", None)
    return innermost


def root_message(error: Any) -> str:
    """The first line of what a step raised (:func:`step_error`)."""
    text = str(getattr(step_error(error), "message", "") or "").strip()
    return text.splitlines()[0] if text else ""


def refused_only(errors: list[Any]) -> bool:
    """True when every failed step refused its data: the dataset alerted each already."""
    return bool(errors) and all(getattr(step_error(e), "cls_name", None) == "RefusedData" for e in errors)


def run_failure_alert(run: Any, message: str) -> Any:
    """The alert for a failed run: which run, which assets, the first line of why."""
    from resources.alerts import Alert

    assets = ", ".join(sorted(k.to_user_string() for k in run.asset_selection or ())) or run.job_name
    first = (message or "failed").strip().splitlines()[0][:300]
    trigger = run.tags.get("slipway/retrain_trigger")
    fields = {"run": run.run_id[:8], **({"retrain trigger": trigger} if trigger else {})}
    return Alert("run_failed", f"run {run.run_id[:8]} failed ({assets})", first, fields=fields, run_id=run.run_id)


def source_version(item: dg.AssetsDefinition) -> str | None:
    """A code version for a hand-written asset: a hash of the source file of its function."""
    path = source_file(item)
    try:
        data = Path(path).read_bytes() if path else None
    except OSError:
        return None
    return None if data is None else SOURCE_VERSION_PREFIX + hashlib.blake2b(data, digest_size=12).hexdigest()


def source_file(item: dg.AssetsDefinition) -> str | None:
    """The file that defines a hand-written asset's function (decorators unwrapped), if any."""
    function = getattr(getattr(item.node_def, "compute_fn", None), "decorated_fn", None)
    try:
        return inspect.getsourcefile(inspect.unwrap(function)) if function is not None else None
    except TypeError:
        return None


def _check_inputs(defs: dg.Definitions) -> None:
    """Every asset a YAML dataset or model reads exists and is a table (did-you-mean otherwise); no cycles.

    The same checks as ``slipway validate``'s (:mod:`assets.graph`), now that hand-written
    assets are known too.
    """
    from assets import graph

    refs: list[graph.Reference] = []
    kinds: dict[str, str] = {}
    parents: dict[str, list[str]] = {}
    where: dict[str, str] = {}
    for item in defs.assets or []:
        if isinstance(item, dg.AssetsDefinition):
            for key in item.keys:
                owner = key.to_user_string()
                spec = item.specs_by_key[key]
                parents[owner] = [dep.asset_key.to_user_string() for dep in spec.deps]
                kinds[owner] = "model" if "slipway/registered_model" in spec.metadata else "dataset"
                found = graph.from_metadata(owner, spec.metadata.get(graph.REFS_METADATA))
                refs += found
                if found:
                    where[owner] = found[0].where
        elif isinstance(item, dg.SourceAsset):
            kinds[item.key.to_user_string()] = "dataset"
    errors = graph.reference_problems(refs, kinds, others={k for k, kind in kinds.items() if kind == "dataset"})
    if not errors:
        cycle = graph.cycle_problem(parents, where)
        errors = [cycle] if cycle else []
    if errors:
        raise DefinitionError("\n".join(errors))


@dg.definitions
def defs() -> dg.Definitions:
    """The pipelines of the definitions folder on the active stack."""
    return build_definitions()
