"""Data validation: the :class:`DataValidator` role and its Great Expectations 1.x implementation."""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from resources.cache import JsonCache, cache
from resources.errors import DefinitionError, ResourceError, did_you_mean
from resources.settings import GreatExpectationsSettings


@dataclass(frozen=True)
class ExpectationResult:
    """The outcome of one expectation on one table."""

    expect: str
    kwargs: dict[str, Any]
    success: bool
    details: dict[str, Any] = field(default_factory=dict)


class DataValidator(dg.ConfigurableResource, ABC):
    """Runs declared expectations on a table."""

    @abstractmethod
    def check(self, expect: str, kwargs: dict[str, Any], where: str) -> None:
        """Raise :class:`DefinitionError` for an unknown expectation or arguments it refuses."""

    @abstractmethod
    def run_expectations(
        self, frame: Any, expectations: list[tuple[str, dict[str, Any]]], name: str
    ) -> list[ExpectationResult]:
        """Run ``(expect, kwargs)`` pairs on ``frame``, one result each, in order."""


def _class_name(expect: str) -> str:
    return "Expect" + "".join(part.capitalize() for part in expect.split("_"))


class GreatExpectationsValidator(DataValidator, GreatExpectationsSettings):
    """Great Expectations 1.x on an ephemeral context (nothing written to disk).

    ``expect: column_values_to_not_be_null`` names ``gx.expectations.ExpectColumnValuesToNotBeNull``;
    the other keys of the YAML item are its arguments.

    Stack YAML::

        data_validator: {type: great_expectations}
    """

    def check(self, expect: str, kwargs: dict[str, Any], where: str) -> None:
        """Whether GX takes ``expect`` with ``kwargs``; :class:`DefinitionError` saying why not.

        GX takes 3 s to import. Its verdict on an expectation depends on nothing but the
        expectation, its arguments and GX's version, so verdicts are kept in a file under
        ``$SLIPWAY_HOME/cache`` named after that version (:func:`_verdicts`): `slipway validate`
        and `slipway plan` on definitions checked before import no GX. Deleting it costs time.
        """
        key = json.dumps([expect, kwargs], sort_keys=True, default=str)
        verdicts = _verdicts()
        if key not in verdicts.known:
            try:
                _expectation(_gx(), expect, kwargs, "")
                verdicts.keep(key, "")
            except DefinitionError as exc:
                verdicts.keep(key, str(exc).removeprefix(": "))
        problem = verdicts.known[key]
        if problem:
            raise DefinitionError(f"{where}: {problem}")

    def run_expectations(  # noqa: D102
        self, frame: Any, expectations: list[tuple[str, dict[str, Any]]], name: str
    ) -> list[ExpectationResult]:
        gx = _gx()
        with _SESSION.lock:
            definition = _SESSION.batch_definition(gx, name)
            try:
                batch = definition.get_batch(batch_parameters={"dataframe": frame})
                suite = gx.ExpectationSuite(name=f"{name}_suite")
                added = [suite.add_expectation(_expectation(gx, e, kwargs, name)) for e, kwargs in expectations]
                outcome = batch.validate(suite, result_format=self.result_format)
            finally:  # the engine keeps the batches it loaded: not the table, once judged
                manager = definition.data_asset.datasource.get_execution_engine().batch_manager
                manager.reset_batch_cache()
                manager.batch_data_cache.clear()
        # GX neither keeps the suite's order in its results nor gives an unsaved suite's
        # expectations ids (all None): match each result to its expectation by configuration.
        by_config: dict[str, list[Any]] = {}
        for item in outcome.results:
            by_config.setdefault(_config_key(item.expectation_config), []).append(item)
        results = []
        for (expect, kwargs), expectation in zip(expectations, added, strict=True):
            matches = by_config.get(_config_key(expectation.configuration))
            if not matches:
                raise ResourceError(f"data validator (great_expectations): no result for {expect} {kwargs} on {name}")
            item = matches.pop(0)  # identical expectations give identical results: any order will do
            details = {k: v for k, v in (item.result or {}).items() if isinstance(v, int | float | str | bool)}
            error = _exception_message(item.exception_info or {})
            if error:
                details["error"] = error
            results.append(ExpectationResult(expect, kwargs, bool(item.success), details))
        return results


def _config_key(config: Any) -> str:
    """An expectation's type and arguments as canonical JSON (without the batch GX adds)."""
    kwargs = {k: v for k, v in dict(config.kwargs).items() if k != "batch_id"}
    return json.dumps([config.type, kwargs], sort_keys=True, default=str)


def _exception_message(info: dict[str, Any]) -> str | None:
    """GX reports errors flat or keyed by metric; return the first message."""
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _verdicts() -> JsonCache:
    return cache(f"gx-{_gx_version()}-verdicts")


@functools.cache
def _gx_version() -> str:
    from importlib.metadata import version

    return version("great_expectations")


def _gx() -> Any:
    import great_expectations as gx

    # GX logs DEBUG lines and draws progress bars by default; neither belongs in a pipeline log.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    return gx


class _Session:
    """One ephemeral GX context per process, and a whole-dataframe batch definition per table name.

    Setting up a context and a data source costs more than validating a small table (~20 ms
    against ~8 ms), and a run of many partitions validates one table per partition: each
    validation gets its own batch of its own frame from the same definition.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.context: Any = None
        self.definitions: dict[str, Any] = {}

    def batch_definition(self, gx: Any, name: str) -> Any:
        """The batch definition of table ``name``, made once (call with :attr:`lock` held)."""
        if self.context is None:
            self.context = _context(gx)
        if name not in self.definitions:
            source = self.context.data_sources.add_pandas(f"{name}_source")
            self.definitions[name] = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        return self.definitions[name]


_SESSION = _Session()


def _context(gx: Any) -> Any:
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def known_expectations(gx: Any) -> list[str]:
    """Snake-case names of the expectations GX ships (``column_values_to_not_be_null``, …)."""
    names = []
    for attr in dir(gx.expectations):
        if attr.startswith("Expect") and attr != "Expectation":
            names.append(re.sub(r"(?<!^)(?=[A-Z])", "_", attr[len("Expect") :]).lower())
    return sorted(names)


def _expectation_class(gx: Any, expect: str, where: str) -> Any:
    cls = getattr(gx.expectations, _class_name(expect), None)
    if cls is None:
        raise DefinitionError(f"{where}: unknown expectation {expect!r}{did_you_mean(expect, known_expectations(gx))}")
    return cls


def _expectation(gx: Any, expect: str, kwargs: dict[str, Any], where: str) -> Any:
    cls = _expectation_class(gx, expect, where)
    try:
        return cls(**kwargs)
    except Exception as exc:  # GX validates arguments with (v1-style) pydantic models
        errors = getattr(exc, "errors", None)
        if callable(errors):
            detail = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] != ("__root__",) else e["msg"]
                for e in errors()
            )
        else:
            detail = str(exc).splitlines()[0]
        raise DefinitionError(f"{where}: expectation {expect}: {detail}") from exc
