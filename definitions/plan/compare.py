"""``slipway plan``: what a git change does to the pipelines, decided with the rebuild predicate.

Both sides are read without touching the checkout (:mod:`definitions.plan.sides`): each
side's YAML is loaded and checked as ``slipway validate`` loads it, and every asset gets the
code version Dagster would give it. Definitions are compared as resolved data, so a change that only reformats YAML
(comments, key order, whitespace, quoting) is no change.

An asset of the new side is then judged by :func:`assets.automation.staleness.out_of_date`, the core of
the predicate `slipway run` and the automation sensor use, as if the old side had just been
built: a new code version rebuilds it ("definition changed"); a new or possibly new data version
of an input makes it rebuild only if that data changes, which is known when the upstream
runs (a reformatted SQL query that returns the same rows rebuilds nothing below it).

Python files are never imported (a pull request's code is not run by reviewing it):
hand-written assets are compared by the bytes of their files, which is their code version.
"""

from __future__ import annotations

import difflib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assets.automation.staleness import Built, Why, out_of_date
from assets.spec.loader import LoadedPipeline
from definitions.checks import check
from definitions.plan import revisions
from definitions.plan.partition_notes import partition_notes
from definitions.plan.sides import Definition, Side, revision_side, working_side
from definitions.plan.sweep_notes import sweep_notes
from resources.errors import DefinitionError
from stacks import LoadedStack, load_stack


@dataclass(frozen=True)
class AttributeChange:
    """``path: before → after`` (``None`` on a side that does not have it); ``lines`` for edited text."""

    path: str
    before: Any
    after: Any
    lines: tuple[str, ...] = ()


@dataclass
class AssetChange:
    """An asset the change adds, removes, rebuilds, or may rebuild when its upstream's data changes."""

    key: str
    kind: str
    status: str  # added | removed | changed | stale
    why: list[str]
    where: str
    attributes: list[AttributeChange] = field(default_factory=list)
    code: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """Everything :func:`plan` found, in a stable order."""

    base: Side
    head: Side
    assets: list[AssetChange]
    pins: list[dict[str, Any]]
    stacks: list[dict[str, Any]]
    python: list[dict[str, str]]
    environment: list[str]
    notes: list[str] = field(default_factory=list)
    policies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True when anything differs."""
        return bool(self.assets or self.pins or self.stacks or self.python or self.environment or self.policies)


def plan(spec: str | None, defs_dir: Path, stacks_dir: Path, lock_file: Path) -> Plan:
    """Compare two sides: ``None`` (HEAD and the working tree), ``A`` (A and the working tree) or ``A..B``."""
    root = revisions.repository(defs_dir)
    # A stacks folder or lock file outside this repository (an installed Slipway) is not
    # part of the change: neither side shows it.
    stacks = stacks_dir if revisions.relative(root, stacks_dir) is not None else None
    lock = lock_file if revisions.relative(root, lock_file) is not None else None
    base_name, head_name = _sides(spec)
    base_rev = revisions.resolve(root, base_name)
    head_rev = revisions.resolve(root, head_name) if head_name is not None else None
    checks = _Checks(load_stack())
    with tempfile.TemporaryDirectory(prefix="slipway-plan-") as tmp:
        notes = [
            f"{path} is outside the repository {root}: not compared"
            for path, kept in ((stacks_dir, stacks), (lock_file, lock))
            if kept is None
        ]
        both = head_rev is not None
        # The side under review is checked as `slipway validate` checks it when its files are the
        # work tree's (the default, and CI's BASE..HEAD on a checkout of HEAD); any other revision
        # without importing its code or reading data it does not hold.
        if head_rev is None or revisions.checked_out(head_rev, [revisions.relative(root, defs_dir) or "."]):
            checks.full(defs_dir)
        base = revision_side(base_rev, defs_dir, stacks, lock, Path(tmp) / "base", both, checks.static)
        if head_rev is None:
            head = working_side(root, defs_dir, stacks, lock)
        else:
            head = revision_side(head_rev, defs_dir, stacks, lock, Path(tmp) / "head", both, checks.static)
    found = compare(base, head)
    found.notes = notes
    return found


class _Checks:
    """:func:`definitions.checks.check` of a side, on the active stack (its allow-list and data roots)."""

    def __init__(self, loaded: LoadedStack) -> None:
        self.loaded = loaded

    def full(self, folder: Path) -> None:
        check(folder, self.loaded)

    def static(self, folder: Path, display: Callable[[str], str]) -> list[LoadedPipeline]:
        return check(folder, self.loaded, code=False, display=display)


def _sides(spec: str | None) -> tuple[str, str | None]:
    if not spec:
        return "HEAD", None
    if "..." in spec:
        raise DefinitionError(f"{spec!r}: use A..B (two dots): the plan compares A with B as they are")
    if ".." in spec:
        base, _, head = spec.partition("..")
        return base or "HEAD", head or "HEAD"
    return spec, None


def compare(base: Side, head: Side) -> Plan:
    """The plan from ``base`` to ``head``."""
    changes = _asset_changes(base, head)
    return Plan(
        base,
        head,
        changes,
        _pin_changes(base, head),
        _stack_changes(base.stacks, head.stacks),
        _python_changes(base.python, head.python),
        ["uv.lock changed: library versions differ (nothing rebuilds for that alone)"]
        if base.lock != head.lock and base.lock is not None and head.lock is not None
        else [],
        policies=_policy_changes(base, head),
    )


def _asset_changes(base: Side, head: Side) -> list[AssetChange]:
    changes: dict[str, AssetChange] = {}
    # The data of these (may) change: rebuilt assets, and what rebuilds when their data changes.
    moving: dict[str, str] = {}
    known = {*base.assets, *(p for d in base.assets.values() for p in d.parents)}
    if base.python != head.python:
        # A key no YAML declares and no source is a hand-written asset (or one outside the
        # folder). Its code version is its file's bytes, which plan does not map to keys
        # without importing them: when any hand-written file changed, each may have.
        sources = {s for d in head.assets.values() for s in d.sources}
        moving.update(
            (p, p) for d in head.assets.values() for p in d.parents if p not in head.assets and p not in sources
        )
    for key in _upstream_first(head.assets):
        new = head.assets[key]
        old = base.assets.get(key)
        # As if the base side had just been built: its code versions, its inputs' data.
        built = None if old is None else Built("", 0, old.code_version, None, {p: f"base:{p}" for p in old.parents}, {})
        inputs = {p: (f"head:{p}" if p in moving or p not in known else f"base:{p}") for p in new.parents}
        moved = None
        if new.scores is not None:  # read through the alias: the model's training alone rescores nothing
            model, alias, source = new.scores
            inputs.pop(model)
            moved = _alias_move(base, head, new.scores, model in moving)
            if moved is not None:
                inputs[source] = f"head:{source}"
        reasons = out_of_date(built, new.code_version, inputs)
        files = [] if old is None else _file_changes(base.data, head.data, new.sources)
        kinds = {r.why for r in reasons}
        if files and Why.DEFINITION_CHANGED not in kinds:
            why = [f"its source files changed: {', '.join(files)}"]
            changes[key] = AssetChange(key, new.kind, "changed", why, new.where)
            moving[key] = key
            continue
        if not reasons:
            continue
        if old is None:
            changes[key] = AssetChange(key, new.kind, "added", ["new"], new.where)
            moving[key] = key
            continue
        attributes = _attribute_changes(old.payload, new.payload)
        code = sorted(p for p in {*old.code, *new.code} if old.code.get(p) != new.code.get(p))
        if Why.DEFINITION_CHANGED in kinds:
            why = []
            if attributes:
                why.append("its definition changed")
            if code:
                why.append(f"code it names changed ({', '.join(code)})")
            why += [str(r) for r in reasons if r.why is Why.NEW_INPUT]
            why += [f"its source files changed: {', '.join(files)}"] if files else []
            changes[key] = AssetChange(key, new.kind, "changed", why or ["its definition changed"], new.where)
            changes[key].attributes, changes[key].code = attributes, code
            moving[key] = key
        else:
            alias_source = new.scores[2] if new.scores is not None else None
            parents = [r.subject for r in reasons if r.why is Why.NEW_DATA and r.subject != alias_source]
            upstream = sorted({moving.get(p, p) for p in parents})
            why = [f"if {' or '.join(upstream)} data changes"] if upstream else []
            why += [moved] if moved is not None and any(r.subject == alias_source for r in reasons) else []
            changes[key] = AssetChange(key, new.kind, "stale", why, new.where)
            moving[key] = upstream[0] if upstream else key
    for key in sorted(set(base.assets) - set(head.assets)):
        old = base.assets[key]
        changes[key] = AssetChange(key, old.kind, "removed", ["removed"], old.where)
    partition_notes(base, head, changes)
    sweep_notes(base, head, changes)
    order = {"changed": 0, "added": 1, "removed": 2, "stale": 3}
    return sorted(changes.values(), key=lambda c: (order[c.status], c.key))


def _file_changes(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]], sources: Any) -> list[str]:
    """``path (modified|added|removed)`` for each tracked data file of ``sources`` that differs between the sides."""
    found = []
    for source in sources:
        if source not in before or source not in after:
            continue
        old, new = before[source], after[source]
        for path in sorted({*old, *new}):
            if path not in old:
                found.append(f"{path} (added)")
            elif path not in new:
                found.append(f"{path} (removed)")
            elif old[path] != new[path]:
                found.append(f"{path} (modified)")
    return found


def _upstream_first(assets: dict[str, Definition]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(key: str) -> None:
        if key in seen or key not in assets:
            return
        seen.add(key)
        for parent in assets[key].parents:
            visit(parent)
        order.append(key)

    for key in sorted(assets):
        visit(key)
    return order


_MISSING = object()


def _attribute_changes(before: Any, after: Any, path: str = "") -> list[AttributeChange]:
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for name in [*before, *(k for k in after if k not in before)]:
            sub = f"{path}.{name}" if path else str(name)
            found += _attribute_changes(before.get(name, _MISSING), after.get(name, _MISSING), sub)
        return found
    if before == after:
        return []
    if isinstance(before, list) and isinstance(after, list) and any(isinstance(i, dict) for i in [*before, *after]):
        return _list_changes(path, before, after)
    old = None if before is _MISSING else before
    new = None if after is _MISSING else after
    if isinstance(old, str) and isinstance(new, str) and ("\n" in old or "\n" in new):
        lines = difflib.unified_diff(old.strip().splitlines(), new.strip().splitlines(), lineterm="", n=1)
        shown = [line for line in lines if not line.startswith(("---", "+++"))]
        if old.split() == new.split():  # the diff lines would look the same
            shown = ["(only spaces or line breaks differ)", *shown]
        return [AttributeChange(path, old, new, tuple(shown))]
    return [AttributeChange(path, old, new)]


def _list_changes(path: str, before: list[Any], after: list[Any]) -> list[AttributeChange]:
    """Items of a list of mappings (expectations) removed and added, compared as values."""
    canon = [json.dumps(i, sort_keys=True) for i in before]
    canon_after = [json.dumps(i, sort_keys=True) for i in after]
    removed = [i for i, c in zip(before, canon, strict=True) if c not in canon_after]
    added = [i for i, c in zip(after, canon_after, strict=True) if c not in canon]
    found = [AttributeChange(path, item, None) for item in removed]
    found += [AttributeChange(path, None, item) for item in added]
    return found or [AttributeChange(path, before, after)]  # the same items in another order


def _alias_move(base: Side, head: Side, scores: tuple[str, str, str], retrained: bool) -> str | None:
    """Why the alias a predictions table is scored by moves: a pin changed, or its model retrains; None: it stays."""
    model, alias, _ = scores
    before = base.assets[model].pins.get(alias) if model in base.assets else None
    after = head.assets[model].pins.get(alias) if model in head.assets else None
    if before != after and after is not None:
        return f"rescored: @{alias} of {model} pinned {'v' + str(before) if before else '(unpinned)'} → v{after}"
    # Unpinned (or never pinned): the alias stays where it is until a new version takes it.
    if retrained and after is None:
        return f"rescored if {model}'s new version takes @{alias}"
    return None


def _pin_changes(base: Side, head: Side) -> list[dict[str, Any]]:
    found = []
    for key in sorted(set(base.assets) | set(head.assets)):
        old = base.assets[key].pins if key in base.assets else {}
        new = head.assets[key].pins if key in head.assets else {}
        for alias in sorted(set(old) | set(new)):
            if old.get(alias) != new.get(alias):
                found.append({"model": key, "alias": alias, "before": old.get(alias), "after": new.get(alias)})
    return found


def _policy_changes(base: Side, head: Side) -> list[dict[str, Any]]:
    """Each setting of a model's ``retrain`` policy that differs (it retrains nothing: the sensor follows it)."""
    found = []
    for key in sorted(set(base.assets) & set(head.assets)):
        old, new = base.assets[key].retrain, head.assets[key].retrain
        if old == new:
            continue
        if old is None or new is None:
            found.append({"model": key, "path": "retrain", "before": old, "after": new})
            continue
        found += [
            {"model": key, "path": f"retrain.{c.path}", "before": c.before, "after": c.after}
            for c in _attribute_changes(old, new)
        ]
    return found


def _stack_changes(base: dict[str, Any], head: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for name in sorted(set(base) | set(head)):
        if name not in head:
            found.append({"stack": name, "path": "", "before": "(stack file)", "after": None})
        elif name not in base:
            found.append({"stack": name, "path": "", "before": None, "after": "(stack file)"})
        else:
            found += [
                {"stack": name, "path": c.path, "before": c.before, "after": c.after}
                for c in _attribute_changes(base[name] or {}, head[name] or {})
            ]
    return found


def _python_changes(base: dict[str, str], head: dict[str, str]) -> list[dict[str, str]]:
    found = []
    for path in sorted(set(base) | set(head)):
        if base.get(path) != head.get(path):
            change = "added" if path not in base else "removed" if path not in head else "changed"
            found.append({"file": path, "change": change})
    return found
