"""``slipway run``: build what the record says is out of date, on the active stack; reuse the rest.

The decision is the shared rebuild predicate (:mod:`assets.automation.rebuild`) evaluated on the stack's
Dagster instance, the same one the UI's automation sensor evaluates; runs go through the
stack's executor and outcomes are read back from the instance's event log. When a rebuilt
asset's data comes out changed, what reads it is decided again in a next round, so a dataset
rebuilt into the same data version retrains nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assets.automation.staleness import said
from assets.spec.loader import LoadedPipeline, load_pipelines
from definitions.checks import check_imports
from definitions.cli.outcomes import AssetOutcome
from definitions.cli.state import NoopCache, exclusive
from definitions.paths import defs_folder
from stacks import LoadedStack, load_stack, slipway_home

__all__ = ["AssetOutcome", "RunReport", "run"]


@dataclass
class RunReport:
    """Everything ``slipway run`` did."""

    stack: str
    outcomes: list[AssetOutcome]
    dagster_run_ids: list[str]
    seconds: float
    # Alias pins: (level, message) per alias set to its pin, moved by hand, or pinned to a missing version.
    aliases: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed or was blocked, and every alias pin could be honoured."""
        pins_ok = all(level != "error" for level, _ in self.aliases)
        return pins_ok and all(o.status in ("built", "reused") for o in self.outcomes)


def resolve_imports(pipelines: list[LoadedPipeline], allowed: Sequence[str], keys: set[str]) -> None:
    """Import what the assets in ``keys`` name, so that a typo fails before anything runs."""
    from assets.spec.imports import import_paths, resolve

    for p in pipelines:
        for found in import_paths(p.spec):
            # A generator names a built-in or a project function, imported when its dataset is read.
            if f"{p.spec.name}/{found.asset}" in keys and found.location[2:] != ("source", "generator"):
                resolve(found.path, allowed, f"{p.where(*found.location)}: pipeline {p.spec.name}", found.kind)


def observe(
    pipelines: list[LoadedPipeline], only: set[str] | None = None, roots: Sequence[str] = ()
) -> dict[str, tuple[str, dict[str, Any]]]:
    """The data version of every observable source, by source asset key (``a/b/data_orders_csv``, ``a/b/query_orders``).

    A ``stat`` per file of a file source; one query per database source (its ``observe``
    query, else its whole result hashed). ``only``: the datasets (``a/b``) whose sources to
    observe (None: all); ``roots``: the stack's data roots.
    """
    from assets.data import sources
    from assets.spec import paths

    found = {}
    for p in pipelines:
        for name, dataset in p.spec.datasets.items():
            if only is not None and f"{p.spec.name}/{name}" not in only:
                continue
            if dataset.source is not None and sources.observable(dataset.source):
                where = f"{p.where('datasets', name, 'source')}: pipeline {p.spec.name}, dataset {name}"
                key = "/".join(paths.source_key_path(p.spec.name, name, dataset.source))
                if dataset.partitions is not None:  # imports Dagster (its partitions): only then
                    from assets.data.partitioning import observe_partitions

                    found[key] = observe_partitions(p.spec.name, name, dataset, p.folder, where, roots)
                else:
                    found[key] = sources.observe(dataset.source, p.folder, where, roots)
    return found


def run(
    names: Sequence[str] = (), stack_name: str | None = None, force: bool = False, defs_dir: Path | None = None
) -> RunReport:
    """Materialize the selected pipelines on the stack, incrementally unless ``force``."""
    started = time.perf_counter()
    loaded = load_stack(stack_name)
    folder = (defs_dir or defs_folder()).resolve()
    pipelines = load_pipelines(folder)
    check_imports(pipelines, loaded.stack.allowed_imports)  # nothing imported before the allow-list says so
    home = slipway_home()
    with exclusive(home):
        # Only the sources of the selected pipelines and of the datasets they read from other
        # pipelines: another pipeline's empty landing folder, or its database that is down, is
        # not this run's business. (Names that are not YAML pipelines are groups of hand-written
        # assets; they are checked once the code location is loaded.)
        wanted = read_by(pipelines, names)
        chosen = [p for p in pipelines if wanted is None or any(k.startswith(f"{p.spec.name}/") for k in wanted)]
        # A stack the deployment launches on is read, not fed: this checkout's files and
        # databases are not what its runs read (see Engine.read_only).
        deployed = not loaded.stack.orchestrator.cli_launch
        observed = {} if deployed else observe(chosen, wanted, loaded.stack.data_roots)
        cache = NoopCache(home, loaded, folder, names, observed, _code_files(chosen))
        if not force:
            rows = cache.replay()
            if rows is not None:
                return RunReport(loaded.name, rows, [], time.perf_counter() - started)
        # Before anything is built: every check `slipway validate` makes, with its lines (a
        # misspelled param fails here, not after its upstream datasets were rebuilt).
        from definitions.checks import check

        check(folder, loaded, location=False, data=False)
        return _run_locked(pipelines, loaded, folder, names, force, started, observed, cache)


def read_by(pipelines: list[LoadedPipeline], names: Sequence[str]) -> set[str] | None:
    """The YAML datasets (``p/d``) of the pipelines ``names`` and those they read, directly or not.

    None (observe every source) when no name is given, when a name is not a YAML pipeline or the assets read include
    one no YAML declares: a hand-written asset may read any YAML dataset, which only the loaded
    code location knows.
    """
    from assets.spec.graph import declared, references

    yaml_pipelines = {p.spec.name for p in pipelines}
    if not names or any(name not in yaml_pipelines for name in names):
        return None
    kinds = declared(pipelines)
    reads: dict[str, set[str]] = {}
    for ref in references(pipelines):
        reads.setdefault(ref.owner, set()).add(ref.target)
    found = {key for key in kinds if key.split("/")[0] in names}
    todo = list(found)
    while todo:
        for other in reads.get(todo.pop(), set()) - found:
            if other not in kinds:
                return None
            found.add(other)
            todo.append(other)
    return found


def _code_files(pipelines: list[LoadedPipeline]) -> list[Path]:
    """The project modules the definitions name (transforms, generators, training functions)."""
    from assets.spec.versions import code_files

    return [
        path
        for p in pipelines
        for definition in [*p.spec.datasets.values(), *p.spec.models.values()]
        for path in code_files(definition)
    ]


def _run_locked(
    pipelines: list[LoadedPipeline],
    loaded: LoadedStack,
    folder: Path,
    names: Sequence[str],
    force: bool,
    started: float,
    observed: dict[Any, Any],
    cache: NoopCache,
) -> RunReport:
    from definitions.cli import aliases
    from definitions.cli.execute import Engine

    engine = Engine(loaded, folder)
    try:
        keys = engine.select(names)
        engine.settle_pending(keys)
        # Pins before anything trains: a promotion decided in this run compares with the pinned champion.
        findings = aliases.reconcile(engine, keys, pinned_only=True)
        engine.observe(observed)
        outcomes: dict[Any, AssetOutcome] = {}
        tried: dict[Any, set[str]] = {}  # the partitions this run launched, of each partitioned asset
        run_ids: list[str] = []
        mark = cache.watermark()
        decision = None if force else engine.decide(keys)
        todo = keys if decision is None else decision.todo
        while todo:
            if decision is None:
                reasons = dict.fromkeys(todo, "--force")
            else:
                reasons = {k: said(decision.record.reasons(k, engine.stores)) for k in todo}
            if not run_ids:
                resolve_imports(pipelines, loaded.stack.allowed_imports, {k.to_user_string() for k in todo})
            # Partitioned assets first, a run per partition; what reads them is decided after.
            parted = [k for k in todo if engine.graph.get(k).partitions_def is not None]
            if parted:
                wanted = {k: engine.all_partitions(k) for k in parted} if decision is None else decision.partitions
                for k in parted:
                    tried.setdefault(k, set()).update(wanted.get(k, ()))
                ids, built = engine.launch_partitions(parted, wanted, reasons)
                run_ids += ids
            else:
                run_id, built = engine.launch(todo, reasons)
                run_ids.append(run_id)
            outcomes.update(built)
            # What reads a rebuilt asset is decided again, now that its new data version is known
            # (unless every selected asset ran already: a cold run builds all in one round).
            mark = cache.watermark()
            if all(k in outcomes for k in keys) or any(o.status == "interrupted" for o in built.values()):
                break  # done, or Ctrl-C: nothing more is launched
            if decision is None:  # --force: the rest too, whatever the record says
                todo = [k for k in keys if k not in outcomes]
                continue
            decision = engine.decide(keys)
            todo = [k for k in decision.todo if k not in outcomes]
        if all(k in outcomes for k in keys):
            record = engine.record()
        else:  # decided after the last launch (or never launched): the rows of what waits come from it
            decision = decision or engine.decide(keys)
            record = decision.record
            for key in keys:
                if key not in outcomes:
                    outcomes[key] = _not_launched(engine, decision, key, outcomes)
        for key in keys:  # a refused partition held, not tried in this run: said on its dataset's row
            if record.partitioned(key) and outcomes[key].status != "interrupted":
                held = {p: m for p, m in record.partitions(key).held_now().items() if p not in tried.get(key, ())}
                if held:
                    _say_held(outcomes[key], held, launched=key in tried)
        # Then every model's aliases, as this run's trainings left them: moved by hand?
        findings = _merge(findings, aliases.reconcile(engine, keys))
        aliases.show(engine, list(outcomes.values()))
        report = RunReport(loaded.name, [outcomes[k] for k in keys], run_ids, time.perf_counter() - started)
        report.aliases = [(f.level, f.message) for f in findings]
        _remember(cache, engine, record, keys, report, mark)
        return report
    finally:
        engine.close()


def _say_held(outcome: AssetOutcome, held: dict[str, str], launched: bool) -> None:
    """Say on ``outcome`` which refused partitions are held (their data and definition unchanged).

    Its row fails; what this run did of it (``launched``: partitions built, or one that failed on
    a store) is kept, the held ones said after. A row of what was only reused says them alone.
    """
    first = next(iter(held))
    more = f" (and {len(held) - 1} more)" if len(held) > 1 else ""
    said = (
        f"{held[first]}{more}; not tried again until its files, an input or its definition change "
        "(--force or `slipway backfill --only failed` tries it)"
    )
    if launched or outcome.status not in ("reused", "failed"):
        outcome.detail = f"{outcome.detail}; {said}" if outcome.detail else said
        if outcome.status in ("built", "reused"):
            outcome.status = "failed"
        return
    outcome.status, outcome.detail = "failed", said


def _merge(first: list[Any], second: list[Any]) -> list[Any]:
    """Findings of both reconciles, each message once (a warning before and after the run is one)."""
    seen = {f.message for f in first}
    return first + [f for f in second if f.message not in seen]


def _remember(cache: NoopCache, engine: Any, record: Any, keys: list[Any], report: RunReport, mark: str | None) -> None:
    """Cache "nothing to do" when the run left everything up to date, with the files it rests on."""
    if not report.ok or any(record.reasons(k, engine.stores) for k in keys):
        cache.store(None, None, mark)
        return
    rows = [engine.reused(k, record.built(k)) for k in keys]
    files: list[str] | None = []
    for key in keys:
        # A YAML dataset's stored partitions are not what its rule checks (their files and inputs
        # are, in the observed versions and keys the cache rests on): nothing to check for it. A
        # hand-written partitioned asset's keys are not observed: it is not cached.
        yaml_partitions = record.partitioned(key) and engine.kind(key) == "dataset"  # keys from observed sources
        checked = [] if yaml_partitions else engine.stores.files.get(key)
        if checked is None or files is None:
            files = None
        else:
            files += checked
    cache.store(rows if all(r.status == "reused" for r in rows) else None, files, mark, engine.source_files())


def _missing(record: Any, upstream: str) -> str:
    """`` 1 of 5 partitions: 2026-01-05 (its files have not landed)``: which partitions of ``upstream`` are missing."""
    import dagster as dg

    key = dg.AssetKey.from_user_string(upstream)
    if not record.partitioned(key):
        return ""
    partitions = record.partitions(key)
    every = partitions.keys()
    missing = [p for p in every if p not in partitions.built]
    if not missing:
        return ""
    shown = missing[0] if len(missing) == 1 else f"{missing[0]} … {missing[-1]}"
    waiting = record.waiting(key, missing)
    why = ""
    if waiting == set(missing):
        why = f" ({'its' if len(missing) == 1 else 'their'} files have not landed)"
    elif waiting:
        why = f" ({len(waiting)} of them wait for files)"
    return f" {len(missing)} of {len(every)} partition{'s' if len(every) != 1 else ''}: {shown}{why}"


def _not_launched(engine: Any, decision: Any, key: Any, outcomes: dict[Any, AssetOutcome]) -> AssetOutcome:
    """The row of an asset this run did not launch: reused, or what held it back.

    What held it is Dagster's evaluation of its rule (``decision.holds``), except an upstream
    that failed in this very run, which the run's own outcomes show.
    """
    from assets.automation.holds import Hold

    record = decision.record
    built = record.built(key)
    reasons = record.reasons(key, engine.stores)
    name, kind = key.to_user_string(), engine.kind(key)
    parents = sorted(engine.graph.get(key).parent_keys, key=lambda k: k.to_user_string())
    troubled = [p for p in parents if p in outcomes and outcomes[p].status in ("failed", "blocked", "interrupted")]
    if troubled and (built is None or reasons):
        upstream = outcomes[troubled[0]]
        return AssetOutcome(name, kind, "blocked", detail=f"{upstream.key} {upstream.status}")
    held = decision.holds.get(key)
    if held is not None and held.hold is Hold.UPSTREAM_CHECK_FAILED:
        detail = f"{held.upstream} has not passed blocking check {held.detail}"
        return AssetOutcome(name, kind, "blocked", detail=detail)
    if held is not None and held.hold is Hold.UPSTREAM_MISSING:
        return AssetOutcome(
            name, kind, "blocked", detail=f"{held.upstream} is missing{_missing(record, held.upstream)}"
        )
    if held is not None and held.hold is Hold.FAILED_BEFORE:
        detail = f"{held.detail}; not tried again until its definition or an input changes (--force tries it)"
        return AssetOutcome(name, kind, "failed", detail=detail)
    if built is None or reasons:
        detail = (said(reasons) or "never built") + (_waits(held) if held is not None else "")
        return AssetOutcome(name, kind, "not run", detail=detail)
    outcome = engine.reused(key, built)
    rebuilt = [p.to_user_string() for p in parents if p in outcomes and outcomes[p].status == "built"]
    if rebuilt and outcome.status == "reused":
        outcome.detail = f"unchanged ({', '.join(rebuilt)} rebuilt with the same data)"
    elif troubled and outcome.status == "reused":
        names = ", ".join(outcomes[p].key for p in troubled)
        outcome.detail = f"unchanged: {names} failed, so it stays on the last good data (run {built.run_id[:8]})"
    return outcome


def _waits(held: Any) -> str:
    """What an out-of-date asset waits for, as the end of its row (empty when nothing is said)."""
    from assets.automation.holds import Hold

    if held.hold is Hold.RUNNING:
        return "; held back: a run of it is in progress"
    if held.hold is Hold.UPSTREAM_RUNNING:
        return f"; held back: a run of {held.upstream or 'an upstream'} is in progress"
    if held.hold is Hold.OWN_CONDITION:
        return f"; held back by its automation condition ({held.detail})"
    return ""
