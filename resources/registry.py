"""Model registry: the :class:`ModelRegistry` role and its MLflow implementation."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, NamedTuple

import dagster as dg

# The tag on a version whose training died before Dagster recorded it (assets.model.recovery).
ABANDONED_TAG = "slipway.abandoned"
# A registered model's tag ``slipway.alias.<alias>``: the version Slipway last pointed the alias
# at. An alias that points elsewhere was moved outside Slipway (by hand, in the MLflow UI).
ALIAS_RECORD_PREFIX = "slipway.alias."
# A registered model's tag ``slipway.pinned.<alias>``: the version git pinned the alias to, kept
# while the pin is in git, so that removing the pin can be said (the alias stays where it is).
PIN_RECORD_PREFIX = "slipway.pinned."


class AliasState(NamedTuple):
    """A registered model's aliases, the versions Slipway last set them to, and the pins it last honoured."""

    aliases: dict[str, str]
    recorded: dict[str, str]
    pinned: dict[str, str]


NO_ALIASES = AliasState({}, {}, {})
# On a version that will move an alias, from its registration until its alias has moved: on a
# registry no promotion lock reaches (an MLflow server shared by several homes), a later version
# waits for every earlier one that still has it (:meth:`ModelRegistry.wait_turn`).
PROMOTING_TAG = "slipway.promoting"
# How long a version waits for the earlier promotions; one registered this long before it has died.
TURN_SECONDS = 120.0


class ModelRegistry(dg.ConfigurableResource, ABC):
    """Registered model versions and the aliases (``champion``, ``challenger``) that point at them."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the registry is, as its errors (and the tracker's, on the same store) name it; redacted."""

    @abstractmethod
    def register(
        self,
        name: str,
        model_uri: str,
        run_id: str,
        tags: dict[str, str],
        takes_turn: bool = False,
        description: str = "",
    ) -> str:
        """Create a new version of ``name`` from ``model_uri`` (and ``name`` itself if new); return the version.

        ``takes_turn``: the version will move an alias, after :meth:`wait_turn` and before
        :meth:`end_turn`. ``description``: markdown shown on the version's page. A registered
        model created at the same moment by another training is not an error.
        """

    @abstractmethod
    def wait_turn(self, name: str, version: str) -> list[str]:
        """Wait until every earlier version of ``name`` that is moving an alias has finished.

        Registration hands out version numbers one at a time, so they order the promotions of
        trainings that share a registry: ``version`` moves its alias only after the earlier ones
        moved theirs, and decides against what they left. A store the promotion lock covers
        needs no wait. Returns the earlier versions given up on: still promoting after
        :data:`TURN_SECONDS` (their training died; :mod:`assets.model.recovery` abandons them).
        """

    @abstractmethod
    def end_turn(self, name: str, version: str) -> None:
        """``version`` has moved its alias (or decided not to): the next version may move one."""

    @abstractmethod
    def aliases(self, name: str) -> dict[str, str]:
        """Every alias of ``name`` and the version it points at (empty when the model does not exist).

        Any other failure (the registry is down, refuses, times out) raises
        :class:`ResourceError`: "no champion" must never be a guess.
        """

    @abstractmethod
    def version_tags(self, name: str, version: str) -> dict[str, str] | None:
        """The tags of one version (what it recorded about its training); None when it does not exist."""

    @abstractmethod
    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point ``alias`` at ``version``, and record that Slipway did (:data:`ALIAS_RECORD_PREFIX`)."""

    @abstractmethod
    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias`` from ``name`` (and Slipway's record of it)."""

    @abstractmethod
    def record_pin(self, name: str, alias: str, version: str | None) -> None:
        """Record that git pins ``alias`` of ``name`` to ``version`` (None: no longer pinned)."""

    @abstractmethod
    def alias_states(self, names: list[str]) -> dict[str, AliasState]:
        """For each registered model of ``names``: its aliases, and the versions Slipway last set them to.

        Read in as few calls as the registry allows (MLflow: one search); a model not
        registered yet is absent.
        """

    @abstractmethod
    def recorded_run(self, name: str, version: str) -> tuple[dict[str, str], dict[str, float]] | None:
        """The params and metrics the training run of a version logged; None when the version does not exist."""

    @abstractmethod
    def versions_of_run(self, name: str, run_id: str) -> list[str]:
        """The versions of ``name`` registered from tracker run ``run_id``."""

    @abstractmethod
    def tag_version(self, name: str, version: str, tags: dict[str, str]) -> None:
        """Add tags to a version (gate results, promotion decision)."""

    @abstractmethod
    def run_file(self, name: str, version: str, path: str) -> bytes | None:
        """The artifact ``path`` of the run that made version ``version``; None when it has none."""

    @abstractmethod
    def load(self, name: str, version: str) -> Any:
        """Load a registered version as a native (scikit-learn API) model."""

    @abstractmethod
    def load_pyfunc(self, name: str, version: str) -> Any:
        """Load a registered version as an MLflow pyfunc model (with its signature), for serving."""

    @abstractmethod
    def unloadable(self, name: str, version: str) -> str | None:
        """Why the model of ``version`` can no longer be loaded (deleted, abandoned, its files gone), or None.

        It looks for the model's files (its ``MLmodel``), it does not load the model. Registry
        and store errors other than "not found" raise :class:`ResourceError`.
        """

    @abstractmethod
    def promotion_lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Hold the lock under which ``name``'s aliases are read, compared and moved."""

    @abstractmethod
    def check(self, name: str, version: str) -> tuple[str | None, Path | None]:
        """Whether version ``version`` of ``name`` can be reused: (why not, or None; its local files).

        The files are the local folder holding the version (None when the store is not local).
        Registry errors other than "not found" raise :class:`ResourceError`.
        """
