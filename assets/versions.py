"""Version hashes: code versions of definitions, data versions of tables and files.

Staleness, incremental ``slipway run`` and (later) ``slipway plan`` all read these, so they
must be stable across processes and machines: canonical JSON, no ``hash()``, no pickles.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

_CHUNK = 1 << 20


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def code_version(kind: str, definition: BaseModel | dict[str, Any]) -> str:
    """Hash of one asset's resolved definition (defaults filled in), independent of the stack."""
    payload = definition.model_dump(mode="json") if isinstance(definition, BaseModel) else definition
    text = json.dumps({"kind": kind, "definition": payload}, sort_keys=True, separators=(",", ":"))
    return _digest(text.encode())


def files_version(paths: Iterable[Path]) -> str:
    """Hash of the names and bytes of ``paths`` (the input fingerprint of a file source)."""
    h = hashlib.blake2b(digest_size=12)
    for path in sorted(paths):
        h.update(path.name.encode() + b"\0")
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


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
