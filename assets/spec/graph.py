"""The graph the YAML declares: which asset reads which, checked for unknown references and cycles.

A dataset's ``inputs`` and a model's ``dataset`` and ``evaluate_on`` name a dataset of the
same pipeline (``customers``) or any asset of the code location by key (``churn/customers``,
``team/raw_events``). References into YAML pipelines are checked here, without Dagster, so
``slipway validate`` finds them at once; a key no YAML pipeline declares may be a hand-written
asset, which only the loaded code location knows (:func:`definitions.definitions.build_definitions`
checks those with the same messages).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from resources.errors import DefinitionError, did_you_mean

if TYPE_CHECKING:
    import dagster as dg

    from assets.spec.loader import LoadedPipeline

REFS_METADATA = "slipway/refs"


@dataclass(frozen=True)
class Reference:
    """One edge as written: ``owner`` (an asset key ``p/name``) reads ``target`` (a key), at ``where``."""

    owner: str
    target: str
    where: str
    what: str


def key_of(pipeline: str, ref: str) -> str:
    """The asset key (``a/b``) a reference names: ``customers`` in pipeline churn is ``churn/customers``."""
    return ref if "/" in ref else f"{pipeline}/{ref}"


@dataclass(frozen=True)
class Edge:
    """One input a definition declares: where in it (``("inputs", 0)``), as written, and the key it names."""

    field: tuple[str | int, ...]
    ref: str
    target: str
    what: str  # input | dataset | evaluation dataset


def dataset_edges(pipeline: str, dataset: Any) -> list[Edge]:
    """The inputs of a dataset of ``pipeline``: each of ``inputs``, in order (the one place they are read)."""
    keyed = isinstance(dataset.inputs, dict)  # ``inputs: {events: {window: 7}}``: located by key
    return [
        Edge(("inputs", ref if keyed else i), ref, key_of(pipeline, ref), "input")
        for i, ref in enumerate(dataset.inputs or [])
    ]


def model_edges(pipeline: str, model: Any) -> list[Edge]:
    """The inputs of a model of ``pipeline``: its ``dataset``, then its ``evaluate_on`` when it has one."""
    found = [Edge(("dataset",), model.dataset, key_of(pipeline, model.dataset), "dataset")]
    if model.evaluate_on is not None:
        target = key_of(pipeline, model.evaluate_on)
        found.append(Edge(("evaluate_on",), model.evaluate_on, target, "evaluation dataset"))
    return found


def prediction_edges(pipeline: str, prediction: Any) -> list[Edge]:
    """The input of a prediction table of ``pipeline``: the ``dataset`` it scores."""
    return [Edge(("dataset",), prediction.dataset, key_of(pipeline, prediction.dataset), "dataset")]


def references(pipelines: Iterable[LoadedPipeline]) -> list[Reference]:
    """Every edge the YAML declares, with the file and line that declares it."""
    found = []
    for p in pipelines:
        name = p.spec.name
        for dataset_name, dataset in p.spec.datasets.items():
            for edge in dataset_edges(name, dataset):
                where = f"{p.where('datasets', dataset_name, *edge.field)}: pipeline {name}: dataset {dataset_name}"
                found.append(Reference(f"{name}/{dataset_name}", edge.target, where, edge.what))
        for model_name, model in p.spec.models.items():
            for edge in model_edges(name, model):
                where = f"{p.where('models', model_name, *edge.field)}: pipeline {name}: model {model_name}"
                found.append(Reference(f"{name}/{model_name}", edge.target, where, edge.what))
        for scored_name, scored in p.spec.predictions.items():
            for edge in prediction_edges(name, scored):
                line = p.where("predictions", scored_name, *edge.field)
                where = f"{line}: pipeline {name}: predictions {scored_name}"
                found.append(Reference(f"{name}/{scored_name}", edge.target, where, edge.what))
    return found


def declared(pipelines: Iterable[LoadedPipeline]) -> dict[str, str]:
    """Every asset key the YAML declares, with its kind (``dataset``, ``model`` or ``predictions``)."""
    kinds = {}
    for p in pipelines:
        kinds.update({f"{p.spec.name}/{n}": "dataset" for n in p.spec.datasets})
        kinds.update({f"{p.spec.name}/{n}": "model" for n in p.spec.models})
        kinds.update({f"{p.spec.name}/{n}": "predictions" for n in p.spec.predictions})
    return kinds


def reference_problems(refs: Iterable[Reference], kinds: Mapping[str, str], others: Iterable[str] | None) -> list[str]:
    """Unknown references (with did-you-mean) and references to models, one line each.

    ``others`` are the keys of the code location's other assets (hand-written ones); None when
    they are not known yet, and then a key no YAML declares is not reported.
    """
    other_keys = set(others) if others is not None else None
    known = set(kinds) | (other_keys or set())
    datasets = {k for k, kind in kinds.items() if kind in ("dataset", "predictions")} | (other_keys or set())
    errors = []
    for ref in refs:
        if kinds.get(ref.target) == "model":
            errors.append(f"{ref.where}: {ref.what} {ref.target!r} is a model; only datasets (tables) can be read")
        elif ref.target not in known and other_keys is not None:
            errors.append(f"{ref.where}: unknown {ref.what} {ref.target!r}{did_you_mean(ref.target, datasets)}")
    return errors


def unresolved(refs: Iterable[Reference], kinds: Mapping[str, str]) -> list[Reference]:
    """The references to keys no YAML pipeline declares (hand-written assets, or mistakes)."""
    return [ref for ref in refs if ref.target not in kinds]


def find_cycle(parents: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle of the graph ``key -> the keys it reads``, as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(parents):
        if start in state:
            continue
        path: list[str] = []
        stack: list[tuple[str, list[str]]] = [(start, sorted(parents.get(start, ())))]
        state[start] = 1
        path.append(start)
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            child = todo.pop(0)
            if state.get(child) == 1:
                return [*path[path.index(child) :], child]
            if child not in state:
                state[child] = 1
                path.append(child)
                stack.append((child, sorted(parents.get(child, ()))))
    return None


def cycle_problem(parents: Mapping[str, Iterable[str]], where: Mapping[str, str]) -> str | None:
    """``path:line: ... a cycle: a -> b -> a`` for the first cycle found, or None."""
    cycle = find_cycle(parents)
    if cycle is None:
        return None
    return f"{where.get(cycle[0], cycle[0])}: a cycle: {' -> '.join(cycle)}; an asset cannot read itself"


def yaml_parents(refs: Iterable[Reference]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """``key -> keys it reads`` and ``key -> where its first reference is written``."""
    parents: dict[str, list[str]] = {}
    where: dict[str, str] = {}
    for ref in refs:
        parents.setdefault(ref.owner, []).append(ref.target)
        where.setdefault(ref.owner, ref.where)
    return parents, where


def check(pipelines: list[LoadedPipeline], others: Iterable[str] | None = None) -> list[str]:
    """Every reference and cycle problem of the YAML pipelines (see :func:`reference_problems`)."""
    refs = references(pipelines)
    kinds = declared(pipelines)
    errors = reference_problems(refs, kinds, others)
    parents, where = yaml_parents(refs)
    cycle = cycle_problem(parents, where)
    return errors + ([cycle] if cycle else [])


def refs_metadata(refs: Iterable[Reference], owner: str) -> dict[str, dict[str, str]]:
    """``owner``'s references to keys (``a/b``), as asset metadata the code location checks.

    :func:`from_metadata` reads them back, so the messages are those of ``slipway validate``.
    """
    return {ref.target: {"where": ref.where, "what": ref.what} for ref in refs if ref.owner == owner}


def from_metadata(owner: str, value: Any) -> list[Reference]:
    """The references :func:`refs_metadata` stored on ``owner``."""
    value = getattr(value, "value", value)
    if not isinstance(value, dict):
        return []
    return [Reference(owner, target, str(v.get("where")), str(v.get("what"))) for target, v in value.items()]


def check_definitions(defs: dg.Definitions) -> None:
    """Every asset a YAML dataset or model reads exists and is a table (did-you-mean otherwise); no cycles.

    The same checks as ``slipway validate``'s, now that hand-written
    assets are known too.
    """
    import dagster as dg

    refs: list[Reference] = []
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
                found = from_metadata(owner, spec.metadata.get(REFS_METADATA))
                refs += found
                if found:
                    where[owner] = found[0].where
        elif isinstance(item, dg.SourceAsset):
            kinds[item.key.to_user_string()] = "dataset"
    errors = reference_problems(refs, kinds, others={k for k, kind in kinds.items() if kind == "dataset"})
    if not errors:
        cycle = cycle_problem(parents, where)
        errors = [cycle] if cycle else []
    if errors:
        raise DefinitionError("\n".join(errors))
