"""The two sides of `slipway plan`: what a revision or the working tree declares.

A revision is read from git (:mod:`definitions.plan.revisions`) into a temporary folder, the working
tree as it is on disk. Each side's YAML is loaded and checked as ``slipway validate`` loads it
(a side that does not load raises validate's messages, a revision's files named ``REV:path``),
and every asset gets the code version Dagster would give it. Python files are never imported:
hand-written code is kept by the bytes of its files, which is its code version.
"""

from __future__ import annotations

import fnmatch
import hashlib
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from assets.data.sources import observable
from assets.spec.graph import dataset_edges, model_edges, prediction_edges
from assets.spec.loader import LoadedPipeline, load_pipelines
from assets.spec.model_spec import Model
from assets.spec.partitions import Partitions, declaring, fill, placeholders
from assets.spec.paths import source_key_path
from assets.spec.scoring import alias_of, alias_source_name
from assets.spec.sweep_spec import expand
from assets.spec.versions import code_digests, code_version, definition_payload, module_file
from definitions.plan import revisions
from definitions.plan.revisions import Revision
from resources.errors import DefinitionError
from resources.yamlfile import TooBig, problem, read_document

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
    retrain: dict[str, Any] | None = None  # a model's retrain policy (not part of its code version)
    # A predictions table's model key, alias and alias source key: it is rescored when the alias moves.
    scores: tuple[str, str, str] | None = None
    # A partitioned dataset's partitions (its own, or those of the dataset it derives them from), and
    # that dataset's source key and path (the files of `discover: files`).
    partitions: Partitions | None = None
    partition_files: tuple[str, str] | None = None
    # A model's sweep: each trial's id -> (what it trains, as a code version; its params, as people read them).
    trials: dict[str, tuple[str, str]] | None = None
    trials_note: str | None = None


@dataclass
class Side:
    """What one side of a plan declares: YAML assets, hand-written Python, stacks, the lock file."""

    label: str
    commit: str | None
    assets: dict[str, Definition] = field(default_factory=dict)
    python: dict[str, str] = field(default_factory=dict)
    stacks: dict[str, Any] = field(default_factory=dict)
    lock: str | None = None
    # The files tracked in git that each file source reads: source key -> {path in its pipeline folder: blob}.
    data: dict[str, dict[str, str]] = field(default_factory=dict)


# Loads (and checks) the pipelines of a folder, naming files with the given display function.
Loader = Callable[[Path, Callable[[str], str]], list[LoadedPipeline]]


def _plain_loader(folder: Path, display: Callable[[str], str]) -> list[LoadedPipeline]:
    try:
        return load_pipelines(folder)
    except DefinitionError as exc:
        # `slipway validate`'s messages; a revision's files are named ``REV:path``.
        raise DefinitionError(display(str(exc))) from exc


def working_side(
    root: Path, defs_dir: Path, stacks_dir: Path | None, lock_file: Path | None, load: Loader = _plain_loader
) -> Side:
    """The working tree as it is on disk (paths shown relative to the repository ``root``)."""
    side = Side(WORKING_TREE, None)
    if not defs_dir.is_dir():
        raise DefinitionError(f"{defs_dir}: no such definitions folder")
    pipelines = _load(side, defs_dir, lambda text: text, None, load, where=lambda text: _relative_paths(text, root))
    under = revisions.relative(root, defs_dir)
    if under is not None:
        side.data = tracked_data(
            pipelines, revisions.worktree_blobs(root, under), lambda f: revisions.relative(root, f)
        )
    side.python = _python_files(defs_dir)
    side.stacks = _stack_files(stacks_dir) if stacks_dir is not None else {}
    side.lock = _file_digest(lock_file) if lock_file is not None else None
    return side


def revision_side(
    rev: Revision,
    defs_dir: Path,
    stacks_dir: Path | None,
    lock_file: Path | None,
    dest: Path,
    from_revision: bool,
    load: Loader = _plain_loader,
) -> Side:
    """Revision ``rev``, its files written below ``dest``; ``from_revision``: see :func:`revision_digest`."""
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

        pipelines = _load(side, folder, display, revision_digest(rev, from_revision), load)
        side.data = tracked_data(pipelines, revisions.blobs(rev, defs_rel), lambda f: revisions.relative(dest, f))
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
    load: Loader,
    where: Callable[[str], str] | None = None,
) -> list[LoadedPipeline]:
    pipelines = load(folder, display)
    where = where or display
    for p in pipelines:
        for definition in _definitions(p, where, digest):
            side.assets[definition.key] = definition
    return pipelines


def tracked_data(
    pipelines: list[LoadedPipeline], files: dict[str, str], relative: Callable[[Path], str | None]
) -> dict[str, dict[str, str]]:
    """For each file source, the tracked ``files`` (path from the repository root -> blob) its path matches.

    ``relative`` gives a pipeline folder's path from the repository root. A path outside the
    repository (``${SLIPWAY_HOME}``, an absolute one, a data root) is no file of git's: left out.
    """
    found: dict[str, dict[str, str]] = {}
    by_folder: dict[str, list[str]] = {}  # a file source's pattern names a folder, most often without wildcards
    for file in files:
        by_folder.setdefault(posixpath.dirname(file), []).append(file)
    for p in pipelines:
        folder = relative(p.folder)
        for name, dataset in p.spec.datasets.items():
            path = dataset.source.path if dataset.source is not None else None
            if path is None or folder is None or "${" in path or posixpath.isabs(path):
                continue
            pattern = posixpath.normpath(posixpath.join(folder, fill(path, "*") if placeholders(path) else path))
            where, glob = posixpath.split(pattern)
            candidates = by_folder.get(where, []) if not fnmatch_magic(where) else list(files)
            parts = pattern.split("/")
            key = "/".join(source_key_path(p.spec.name, name, dataset.source))
            found[key] = {
                posixpath.relpath(file, folder or "."): files[file]
                for file in candidates
                if len(file.split("/")) == len(parts)
                and all(fnmatch.fnmatchcase(part, glob) for part, glob in zip(file.split("/"), parts, strict=True))
            }
    return found


def fnmatch_magic(text: str) -> bool:
    """True when ``text`` holds a wildcard (``*``, ``?``, ``[``)."""
    return any(mark in text for mark in "*?[")


def _definitions(
    p: LoadedPipeline, display: Callable[[str], str], digest: Callable[[str], str | None] | None
) -> Iterable[Definition]:
    name = p.spec.name
    owners = declaring(p.spec.datasets)
    for dataset_name, dataset in p.spec.datasets.items():
        owner = p.spec.datasets[owners[dataset_name]] if dataset_name in owners else None
        files = None
        if owner is not None and owner.source is not None and owner.source.path is not None:
            files = ("/".join(source_key_path(name, owners[dataset_name], owner.source)), owner.source.path)
        parents = [edge.target for edge in dataset_edges(name, dataset)]
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
            partitions=owner.partitions if owner is not None else None,
            partition_files=files,
        )
    for model_name, model in p.spec.models.items():
        parents = [edge.target for edge in model_edges(name, model)]
        yield Definition(
            f"{name}/{model_name}",
            "model",
            definition_payload("model", model),
            code_digests(model, digest),
            code_version("model", model, digest),
            tuple(parents),
            dict(model.promote.pin),
            display(p.where("models", model_name)),
            retrain=model.retrain.model_dump(mode="json") if model.retrain else None,
            trials=_trials(model, digest),
            trials_note=expand(model.sweep).note if model.sweep else None,
        )
    for scored_name, scored in p.spec.predictions.items():
        scorer = p.spec.models.get(scored.model)
        alias = alias_of(scored, scorer.promote.alias if scorer else "champion")
        source = f"{name}/{alias_source_name(scored.model, alias)}"
        model_key = f"{name}/{scored.model}"
        parents = [edge.target for edge in prediction_edges(name, scored)]
        yield Definition(
            f"{name}/{scored_name}",
            "predictions",
            definition_payload("predictions", scored),
            code_digests(scored, digest),
            code_version("predictions", scored, digest),
            tuple([*parents, source, model_key]),
            {},
            display(p.where("predictions", scored_name)),
            scores=(model_key, alias, source),
        )


def _trials(model: Model, digest: Callable[[str], str | None] | None) -> dict[str, tuple[str, str]] | None:
    """A sweep's trials: id -> (the code version of the model as the trial trains it, its params)."""
    if model.sweep is None:
        return None
    return {
        t.id: (code_version("model", model.trained_as(t.params), digest), t.label) for t in expand(model.sweep).trials
    }


def revision_digest(rev: Revision, from_revision: bool = False) -> Callable[[str], str | None]:
    """The hash of the project module an import path names, as the file was at ``rev``.

    The module is found as Dagster finds it now (:func:`assets.spec.versions.module_file`); a
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
            found[path.stem] = read_document(path)[0]
        except (UnicodeDecodeError, OSError) as exc:
            raise DefinitionError(f"{path.name}: not a YAML text file ({type(exc).__name__})") from exc
        except TooBig as exc:
            raise DefinitionError(problem(Path(path.name), exc)) from exc
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
