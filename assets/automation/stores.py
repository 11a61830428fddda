"""Whether what an asset built is still in the stack's stores: the rebuild predicate's question.

The record (Dagster's) says which run built an output and which model version it registered;
the stores say whether those are still there. A lost output is out of date.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from assets.automation.staleness import Built
from resources.artifacts import STORED


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
