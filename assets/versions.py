"""Version hashes: code versions of definitions, data versions of tables and files.

Staleness, the rebuild rule of ``slipway run`` and automation all read these, so they
must be stable across processes and machines: canonical JSON, no ``hash()``, no pickles.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sysconfig
from pathlib import Path
from typing import Any

from pydantic import BaseModel


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()


_CODE_FIELDS = ("transform", "generator", "train", "estimator")
_LIBRARY_DIRS = tuple(
    str(Path(p).resolve()) for key in ("stdlib", "platstdlib", "purelib", "platlib") if (p := sysconfig.get_path(key))
)


def code_version(kind: str, definition: BaseModel | dict[str, Any]) -> str:
    """Hash of one asset's resolved definition (defaults filled in), independent of the stack.

    Import paths into the project's own code (not installed libraries, which the lock file
    pins) also count by the bytes of their module, so editing a transform rebuilds its dataset.
    """
    payload = definition.model_dump(mode="json") if isinstance(definition, BaseModel) else definition
    code = {path: digest for path in _import_paths(payload) if (digest := source_digest(path))}
    text = json.dumps({"kind": kind, "definition": payload, "code": code}, sort_keys=True, separators=(",", ":"))
    return _digest(text.encode())


def _import_paths(payload: Any) -> list[str]:
    if isinstance(payload, dict):
        found = [v for k, v in payload.items() if k in _CODE_FIELDS and isinstance(v, str) and ("." in v or ":" in v)]
        return found + [p for v in payload.values() for p in _import_paths(v)]
    return []


def source_file(path: str) -> Path | None:
    """The source file of the module ``path`` names, when it is project code (not a library).

    Finds the file without importing the module (only its parent packages); a module inside
    the standard library or site-packages gives None.
    """
    module = path.partition(":")[0] if ":" in path else path.rpartition(".")[0]
    try:
        top = importlib.util.find_spec(module.split(".")[0])
        if top is None or top.origin is None or str(Path(top.origin).resolve()).startswith(_LIBRARY_DIRS):
            return None
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None  # an unknown module is reported when the path is resolved
    if spec is None or spec.origin is None or not Path(spec.origin).is_file():
        return None
    return Path(spec.origin)


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
    """Content hash of a pandas DataFrame: column names, dtypes and every value."""
    import pandas as pd

    h = hashlib.blake2b(digest_size=12)
    h.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()
