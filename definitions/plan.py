"""``slipway plan``: what a git change does to the pipelines, decided with the rebuild predicate.

Both sides are read without touching the checkout: a revision is read from git
(:mod:`definitions.revisions`) into a temporary folder, the working tree as it is on disk.
Each side's YAML is loaded and checked as ``slipway validate`` loads it (a side that does not
load is an error with the same message), and every asset gets the code version Dagster would
give it. Definitions are compared as resolved data, so a change that only reformats YAML
(comments, key order, whitespace, quoting) is no change.

An asset of the new side is then judged by :func:`assets.staleness.out_of_date`, the core of
the predicate `slipway run` and the automation sensor use, as if the old side had just been
built: a new code version rebuilds it ("definition changed"); a new or possibly new data version
of an input makes it rebuild only if that data changes, which is known when the upstream
runs (a reformatted SQL query that returns the same rows rebuilds nothing below it).

Python files are never imported here (a pull request's code is not run by reviewing it):
hand-written assets are compared by the bytes of their files, which is their code version.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from assets.graph import key_of
from assets.loader import LoadedPipeline, load_pipelines
from assets.sources import observable, source_key_path
from assets.staleness import Built, out_of_date
from assets.versions import code_digests, code_version, definition_payload, module_file
from definitions import revisions
from definitions.revisions import Revision
from resources.errors import DefinitionError

WORKING_TREE = "working tree"


@dataclass(frozen=True)
class Definition:
    """One YAML asset as a side declares it."""

    key: str
    kind: str
    payload: dict[str, Any]
    code: dict[str, str]
    code_version: str
    parents: tuple[str, ...]
    pins: dict[str, int]
    where: str
    sources: tuple[str, ...] = ()


@dataclass
class Side:
    """What one side of a plan declares: YAML assets, hand-written Python, stacks, the lock file."""

    label: str
    commit: str | None
    assets: dict[str, Definition] = field(default_factory=dict)
    python: dict[str, str] = field(default_factory=dict)
    stacks: dict[str, Any] = field(default_factory=dict)
    lock: str | None = None


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

    @property
    def changed(self) -> bool:
        """True when anything differs."""
        return bool(self.assets or self.pins or self.stacks or self.python or self.environment)


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
    with tempfile.TemporaryDirectory(prefix="slipway-plan-") as tmp:
        notes = [
            f"{path} is outside the repository {root}: not compared"
            for path, kept in ((stacks_dir, stacks), (lock_file, lock))
            if kept is None
        ]
        both = head_rev is not None
        base = _revision_side(base_rev, defs_dir, stacks, lock, Path(tmp) / "base", both)
        if head_rev is None:
            head = _working_side(root, defs_dir, stacks, lock)
        else:
            head = _revision_side(head_rev, defs_dir, stacks, lock, Path(tmp) / "head", both)
    found = compare(base, head)
    found.notes = notes
    return found


def _sides(spec: str | None) -> tuple[str, str | None]:
    if not spec:
        return "HEAD", None
    if "..." in spec:
        raise DefinitionError(f"{spec!r}: use A..B (two dots): the plan compares A with B as they are")
    if ".." in spec:
        base, _, head = spec.partition("..")
        return base or "HEAD", head or "HEAD"
    return spec, None


def _working_side(root: Path, defs_dir: Path, stacks_dir: Path | None, lock_file: Path | None) -> Side:
    side = Side(WORKING_TREE, None)
    if not defs_dir.is_dir():
        raise DefinitionError(f"{defs_dir}: no such definitions folder")
    _load(side, defs_dir, lambda text: text, digest=None, where=lambda text: _relative_paths(text, root))
    side.python = _python_files(defs_dir)
    side.stacks = _stack_files(stacks_dir) if stacks_dir is not None else {}
    side.lock = _file_digest(lock_file) if lock_file is not None else None
    return side


def _revision_side(
    rev: Revision, defs_dir: Path, stacks_dir: Path | None, lock_file: Path | None, dest: Path, from_revision: bool
) -> Side:
    defs_rel = revisions.relative(rev.root, defs_dir)
    if defs_rel is None:
        raise DefinitionError(f"{defs_dir} is not inside the git repository {rev.root}")
    stacks_rel = revisions.relative(rev.root, stacks_dir) if stacks_dir is not None else None
    lock_rel = revisions.relative(rev.root, lock_file) if lock_file is not None else None
    revisions.extract(rev, [p for p in (defs_rel, stacks_rel) if p is not None], dest)
    side = Side(rev.label, rev.sha)
    folder = dest / defs_rel
    if folder.is_dir():

        def display(text: str) -> str:
            return text.replace(f"{dest}/", f"{rev.name}:")

        _load(side, folder, display, digest=revision_digest(rev, from_revision))
        side.python = _python_files(folder)
    if stacks_rel is not None:
        side.stacks = _stack_files(dest / stacks_rel)
    if lock_rel is not None:
        data = revisions.read(rev, lock_rel)
        side.lock = None if data is None else _bytes_digest(data)
    return side


def _load(
    side: Side,
    folder: Path,
    display: Callable[[str], str],
    digest: Callable[[str], str | None] | None,
    where: Callable[[str], str] | None = None,
) -> None:
    try:
        pipelines = load_pipelines(folder)
    except DefinitionError as exc:
        # `slipway validate`'s messages; a revision's files are named ``REV:path``.
        raise DefinitionError(display(str(exc))) from exc
    where = where or display
    for p in pipelines:
        for definition in _definitions(p, where, digest):
            side.assets[definition.key] = definition


def _definitions(
    p: LoadedPipeline, display: Callable[[str], str], digest: Callable[[str], str | None] | None
) -> Iterable[Definition]:
    name = p.spec.name
    for dataset_name, dataset in p.spec.datasets.items():
        parents = [key_of(name, ref) for ref in dataset.inputs or []]
        sources = []
        if dataset.source is not None and observable(dataset.source):
            sources.append("/".join(source_key_path(name, dataset_name, dataset.source)))
        yield Definition(
            f"{name}/{dataset_name}",
            "dataset",
            definition_payload("dataset", dataset),
            code_digests(dataset, digest),
            code_version("dataset", dataset, digest),
            tuple(parents + sources),
            {},
            display(p.where("datasets", dataset_name)),
            tuple(sources),
        )
    for model_name, model in p.spec.models.items():
        parents = [key_of(name, model.dataset)]
        if model.evaluate_on:
            parents.append(key_of(name, model.evaluate_on))
        yield Definition(
            f"{name}/{model_name}",
            "model",
            definition_payload("model", model),
            code_digests(model, digest),
            code_version("model", model, digest),
            tuple(parents),
            dict(model.promote.pin),
            display(p.where("models", model_name)),
        )


def revision_digest(rev: Revision, from_revision: bool = False) -> Callable[[str], str | None]:
    """The hash of the project module an import path names, as the file was at ``rev``.

    The module is found as Dagster finds it now (:func:`assets.versions.module_file`); a
    project file inside the repository is read from the revision, anything else (a library,
    a file outside the repository) is the same on both sides. A module that cannot be found
    now counts as no code, as it does for the working tree, unless ``from_revision``: then
    (two revisions compared, or a model's recorded commit) it is looked for in the revision,
    as ``a/b.py`` or ``a/b/__init__.py`` from the repository root.
    """
    cache: dict[str, str | None] = {}

    def digest(path: str) -> str | None:
        module = path.partition(":")[0] if ":" in path else path.rpartition(".")[0]
        if module not in cache:
            found = module_file(module)
            if found is None and from_revision:
                base = module.replace(".", "/")
                data = revisions.read(rev, f"{base}.py") or revisions.read(rev, f"{base}/__init__.py")
                cache[module] = None if data is None else _bytes_digest(data)
            elif found is None or found.is_library:
                cache[module] = None
            else:
                relative = revisions.relative(rev.root, found.path)
                if relative is None:
                    cache[module] = _file_digest(found.path)
                else:
                    data = revisions.read(rev, relative)
                    cache[module] = None if data is None else _bytes_digest(data)
        return cache[module]

    return digest


def _relative_paths(text: str, root: Path) -> str:
    return text.replace(f"{root}/", "")


def _python_files(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): _bytes_digest(path.read_bytes())
        for path in sorted(folder.rglob("*.py"))
        if "__pycache__" not in path.parts and path.stat().st_size > 0
    }


def _stack_files(folder: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []:
        try:
            found[path.stem] = yaml.safe_load(path.read_text())
        except (UnicodeDecodeError, OSError) as exc:
            raise DefinitionError(f"{path.name}: not a YAML text file ({type(exc).__name__})") from exc
        except yaml.YAMLError as exc:
            line = str(exc).splitlines()[0]
            raise DefinitionError(f"{path.name}: malformed YAML: {line}") from exc
    return found


def _file_digest(path: Path) -> str | None:
    try:
        return _bytes_digest(path.read_bytes())
    except OSError:
        return None


def _bytes_digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()


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
        reasons = out_of_date(built, new.code_version, inputs)
        if not reasons:
            continue
        if old is None:
            changes[key] = AssetChange(key, new.kind, "added", ["new"], new.where)
            moving[key] = key
            continue
        attributes = _attribute_changes(old.payload, new.payload)
        code = sorted(p for p in {*old.code, *new.code} if old.code.get(p) != new.code.get(p))
        if "definition changed" in reasons:
            why = []
            if attributes:
                why.append("its definition changed")
            if code:
                why.append(f"code it names changed ({', '.join(code)})")
            why += [f"{r.removesuffix(' is a new input')} is a new input" for r in reasons if r.endswith("new input")]
            changes[key] = AssetChange(key, new.kind, "changed", why or ["its definition changed"], new.where)
            changes[key].attributes, changes[key].code = attributes, code
            moving[key] = key
        else:
            parents = [r.removesuffix(" has new data") for r in reasons if r.endswith(" has new data")]
            upstream = sorted({moving.get(p, p) for p in parents})
            why = [f"if {' or '.join(upstream)} data changes"]
            changes[key] = AssetChange(key, new.kind, "stale", why, new.where)
            moving[key] = upstream[0]
    for key in sorted(set(base.assets) - set(head.assets)):
        old = base.assets[key]
        changes[key] = AssetChange(key, old.kind, "removed", ["removed"], old.where)
    order = {"changed": 0, "added": 1, "removed": 2, "stale": 3}
    return sorted(changes.values(), key=lambda c: (order[c.status], c.key))


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


def _pin_changes(base: Side, head: Side) -> list[dict[str, Any]]:
    found = []
    for key in sorted(set(base.assets) | set(head.assets)):
        old = base.assets[key].pins if key in base.assets else {}
        new = head.assets[key].pins if key in head.assets else {}
        for alias in sorted(set(old) | set(new)):
            if old.get(alias) != new.get(alias):
                found.append({"model": key, "alias": alias, "before": old.get(alias), "after": new.get(alias)})
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
