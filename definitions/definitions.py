"""The Dagster code location, assembled in one place for every door.

`slipway run`, `slipway dev`, `dg`, the UI and sensors all load it from here. It assembles; it
decides nothing: the pipelines of the defs folder (:mod:`definitions.loading`), the rule each
asset carries (:mod:`assets.automation.rules`), the URL each served model is served at
(:mod:`assets.serve.deploy`), every sensor (:mod:`assets.automation.sensors`),
and the active stack's resources and executor (:mod:`stacks`). The stack comes from
``$SLIPWAY_STACK`` (default ``local``); the definitions folder from ``$SLIPWAY_DEFS`` (default
``definitions/defs``), which is how ``--defs`` reaches ``dg`` and the UI too.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets.automation.rules import with_rules
from assets.automation.sensors import sensors
from assets.automation.stores import StackStores
from assets.serve.deploy import with_served_urls
from assets.spec.graph import check_definitions
from definitions.loading import load_folder
from definitions.paths import defs_folder
from stacks import LoadedStack, load_stack
from stacks.build import build_resources, executor


def build_definitions(
    folder: Path | None = None,
    loaded: LoadedStack | None = None,
    stores: StackStores | None = None,
) -> dg.Definitions:
    """The code location: the pipelines of ``folder`` on the stack ``loaded`` (defaults: the active ones).

    ``stores`` (over the stack's resources) is what the rebuild predicate asks; made here when
    not given. `slipway run` loads exactly this too.
    """
    loaded = loaded or load_stack()
    pipelines = load_folder((folder or defs_folder()).resolve())
    resources = dict(stores.resources) if stores is not None else build_resources(loaded.stack)
    stores = stores or StackStores(resources)
    defs = dg.Definitions.merge(
        with_served_urls(with_rules(pipelines, stores), loaded.stack.model_deployer),
        dg.Definitions(resources=resources, executor=executor(loaded.stack), sensors=sensors()),
    )
    check_definitions(defs)
    return defs


@dg.definitions
def defs() -> dg.Definitions:
    """The pipelines of the definitions folder on the active stack."""
    return build_definitions()
