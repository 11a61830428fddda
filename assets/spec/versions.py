"""Version hashes: code versions of definitions, data versions of tables and files.

Staleness, the rebuild rule of ``slipway run`` and automation all read these, so they
must be stable across processes and machines: canonical JSON, no ``hash()``, no pickles.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from assets.spec.fields import IMPORT_FIELD_NAMES

if TYPE_CHECKING:
    import dagster as dg


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()


_LIBRARY_DIRS = tuple(
    str(Path(p).resolve()) for key in ("stdlib", "platstdlib", "purelib", "platlib") if (p := sysconfig.get_path(key))
)


def definition_payload(kind: str, definition: BaseModel | dict[str, Any]) -> dict[str, Any]:
    """The resolved definition (defaults filled in) that an asset's code version hashes.

    A model's alias pins (``promote.pin``) are left out: moving a pin moves an alias in the
    registry (:mod:`assets.model.pins`) and must not retrain the model. So are its ``retrain`` policy
    (it decides when the model retrains by itself, not what it is), how it is ``serve``d, and its pod ``resources``
    and query ``limits``: where and how long it may run, not what it computes.
    """
    payload = definition.model_dump(mode="json") if isinstance(definition, BaseModel) else dict(definition)
    if kind == "model" and isinstance(payload.get("promote"), dict):
        payload["promote"] = {k: v for k, v in payload["promote"].items() if k != "pin"}
    if kind == "model":
        payload.pop("retrain", None)
        payload.pop("serve", None)
    payload.pop("resources", None)
    payload.pop("limits", None)
    if isinstance(payload.get("partitions"), dict):
        payload["partitions"] = partitions_shape(payload["partitions"])
    elif kind == "dataset":  # unpartitioned: the code version it had before partitions existed
        payload.pop("partitions", None)
    inputs = payload.get("inputs")
    if isinstance(inputs, dict):  # options only where given: ``{a: null}`` is ``[a]``, as before they existed
        options = {ref: {k: v for k, v in (o or {}).items() if v is not None} for ref, o in inputs.items()}
        payload["inputs"] = options if any(options.values()) else list(inputs)
    if kind == "model" and payload.get("sweep") is None:  # no sweep: as before sweeps existed
        payload.pop("sweep", None)
    elif kind == "model":  # how many trials run at once is not what they compute
        payload["sweep"] = {k: v for k, v in payload["sweep"].items() if k != "parallelism"}
    if kind == "model" and payload.get("window") is None:  # every partition: as before windows existed
        payload.pop("window", None)
    return payload


def partitions_shape(block: dict[str, Any]) -> dict[str, Any]:
    """What of a ``partitions`` block changes what a partition holds: the windows' cron, zone and format.

    Which partitions exist (``start``, ``end``, the static keys, the files found) does not:
    adding a key or extending the range builds the new partitions and leaves the others be.
    """
    time = block.get("time")
    if isinstance(time, dict):
        return {"time": {k: time.get(k) for k in ("cron", "timezone", "format")}}
    return {kind: True for kind in ("static", "discover") if block.get(kind) is not None}


def code_version(
    kind: str, definition: BaseModel | dict[str, Any], digest: Callable[[str], str | None] | None = None
) -> str:
    """Hash of one asset's resolved definition (:func:`definition_payload`), independent of the stack.

    Import paths into the project's own code (not installed libraries, which the lock file
    pins) also count by the bytes of their module, so editing a transform rebuilds its dataset.
    ``digest`` hashes the module an import path names (default :func:`source_digest`, the
    files as they are now; `slipway plan` passes one that reads a git revision).
    """
    payload = definition_payload(kind, definition)
    code = code_digests(payload, digest)
    text = json.dumps({"kind": kind, "definition": payload, "code": code}, sort_keys=True, separators=(",", ":"))
    return _digest(text.encode())


def code_digests(
    definition: BaseModel | dict[str, Any], digest: Callable[[str], str | None] | None = None
) -> dict[str, str]:
    """Import path -> hash of its module's source, for the project code a definition names."""
    payload = definition.model_dump(mode="json") if isinstance(definition, BaseModel) else definition
    digest = digest or source_digest
    return {path: found for path in _import_paths(payload) if (found := digest(path))}


def _import_paths(payload: Any) -> list[str]:
    if isinstance(payload, dict):
        found = [
            v for k, v in payload.items() if k in IMPORT_FIELD_NAMES and isinstance(v, str) and ("." in v or ":" in v)
        ]
        return found + [p for v in payload.values() for p in _import_paths(v)]
    return []


@dataclass(frozen=True)
class ModuleFile:
    """Where a module's source is, and whether that is an installed library."""

    path: Path
    is_library: bool


def module_file(module: str) -> ModuleFile | None:
    """The source file of ``module``, found without importing it or any parent package.

    Only the top-level name is looked up (which imports nothing); the rest of the dotted path
    is followed on disk. None for a module that cannot be found this way (unknown, compiled, a
    namespace package).
    """
    parts = module.split(".")
    try:
        top = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return None
    if top is None:
        return None
    found: Path | None = None
    if len(parts) == 1:
        found = Path(top.origin) if top.origin and Path(top.origin).is_file() else None
    else:
        locations = [Path(p) for p in top.submodule_search_locations or []]
        for index, part in enumerate(parts[1:], start=1):
            last = index == len(parts) - 1
            packages = [loc / part for loc in locations if (loc / part).is_dir()]
            modules = [loc / f"{part}.py" for loc in locations if (loc / f"{part}.py").is_file()]
            if last:
                inits = [pkg / "__init__.py" for pkg in packages if (pkg / "__init__.py").is_file()]
                candidates = inits or modules
                found = candidates[0] if candidates else None
            locations = packages
    if found is None:
        return None
    return ModuleFile(found, str(found.resolve()).startswith(_LIBRARY_DIRS))


def source_file(path: str) -> Path | None:
    """The source file of the module ``path`` names, when it is project code (not a library).

    Imports nothing (:func:`module_file`): computing a code version must not run the code of a
    package before its import path is checked against the stack's allow-list.
    """
    module = path.partition(":")[0] if ":" in path else path.rpartition(".")[0]
    found = module_file(module)
    return None if found is None or found.is_library else found.path


def source_digest(path: str) -> str | None:
    """Hash of the source file of the module ``path`` names, when it is project code."""
    origin = source_file(path)
    return None if origin is None else _digest(origin.read_bytes())


def code_files(definition: BaseModel | dict[str, Any]) -> list[Path]:
    """The project's own source files that a definition's import paths name."""
    payload = definition.model_dump(mode="json") if isinstance(definition, BaseModel) else definition
    return [origin for path in _import_paths(payload) if (origin := source_file(path)) is not None]


def combine(*parts: str) -> str:
    """Hash of several version strings, order-sensitive."""
    return _digest("\0".join(parts).encode())


def frame_version(frame: Any) -> str:
    """Content hash of a pandas DataFrame: column names, dtypes and its rows, in any order.

    Each row is hashed, and the row hashes are sorted before they are combined: a table is the
    multiset of its rows. A SQL result without ``ORDER BY`` (a join, a ``group by``) comes back
    in an order DuckDB or a database does not promise, and must not look like new data each time;
    a repeated row still counts.
    """
    import numpy as np
    import pandas as pd

    h = hashlib.blake2b(digest_size=12)
    h.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    h.update(np.sort(pd.util.hash_pandas_object(frame, index=False).to_numpy()).tobytes())
    return h.hexdigest()


SOURCE_VERSION_PREFIX = "source-"


def source_version(item: dg.AssetsDefinition) -> str | None:
    """A code version for a hand-written asset: a hash of the source file of its function."""
    path = asset_source_file(item)
    try:
        data = Path(path).read_bytes() if path else None
    except OSError:
        return None
    return None if data is None else SOURCE_VERSION_PREFIX + hashlib.blake2b(data, digest_size=12).hexdigest()


def asset_source_file(item: dg.AssetsDefinition) -> str | None:
    """The file that defines a hand-written asset's function (decorators unwrapped), if any."""
    function = getattr(getattr(item.node_def, "compute_fn", None), "decorated_fn", None)
    try:
        return inspect.getsourcefile(inspect.unwrap(function)) if function is not None else None
    except TypeError:
        return None
