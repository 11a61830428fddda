"""Load the active stack: ``stacks/<name>.yaml`` with ``SLIPWAY_…`` environment overrides.

Precedence, highest first: values passed to :func:`load_stack` (``overrides``), environment
variables (``SLIPWAY_EXPERIMENT_TRACKER__TRACKING_URI=…``, nested with ``__``), the stack
file, the defaults of :mod:`stacks.config`. ``${SLIPWAY_HOME}`` (and any other ``${VAR}``) in a
string value is expanded after merging. Secrets never belong in the file: set them in the
environment.
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from resources.errors import StackError, did_you_mean
from resources.paths import slipway_home
from resources.yamlfile import Loc, line_of, problem, read_document
from stacks.config import COMPONENT_TYPES, StackFields

STACKS_DIR = Path(__file__).resolve().parent
ENV_PREFIX = "SLIPWAY_"
# ${VAR}, or ${VAR:-default} (the default when VAR is unset or empty), as in a shell.
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def stack_name(explicit: str | None = None) -> str:
    """The active stack: ``--stack``, else ``$SLIPWAY_STACK``, else ``local``."""
    return explicit or os.environ.get("SLIPWAY_STACK") or "local"


def stack_path(name: str) -> Path:
    """The file of stack ``name`` (a name in ``stacks/`` or a path to a YAML file)."""
    if name.endswith((".yaml", ".yml")) or os.sep in name:
        return Path(name).expanduser().resolve()
    return STACKS_DIR / f"{name}.yaml"


class _StackFileSource(PydanticBaseSettingsSource):
    """Reads the stack YAML file (the lowest-priority source above the defaults)."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # noqa: D102
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class Stack(StackFields, BaseSettings):
    """The resolved stack. Build with :func:`load_stack`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    @classmethod
    def settings_customise_sources(  # noqa: D102
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _StackFileSource(settings_cls, _FILE_DATA.get() or {}))


# The file's data for the Stack being built: settings sources are chosen in a classmethod, so
# load_stack hands the file's contents over in a context variable (safe across threads).
_FILE_DATA: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("slipway_stack_file", default=None)


@dataclass(frozen=True)
class LoadedStack:
    """A validated stack, the file it came from, and the line of each key in that file."""

    name: str
    path: Path
    stack: StackFields
    lines: dict[Loc, int]

    @property
    def reference(self) -> str:
        """What ``SLIPWAY_STACK`` is set to for another process to load this stack (from any folder)."""
        return self.name if self.path.parent == STACKS_DIR else str(self.path)


def _read(path: Path, name: str) -> tuple[dict[str, Any], dict[Loc, int]]:
    if not path.exists():
        available = sorted(p.stem for p in STACKS_DIR.glob("*.yaml"))
        hint = did_you_mean(name, available)
        raise StackError(f"{path}: no such stack {name!r}{hint} (stacks: {', '.join(available)})")
    try:
        data, lines = read_document(path)
    except yaml.MarkedYAMLError as exc:
        raise StackError(problem(path, exc)) from exc
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise StackError(f"{path}:1: a stack is a mapping of components (orchestrator:, experiment_tracker:, …)")
    unknown = sorted(set(data) - set(StackFields.model_fields))
    if unknown:
        messages = []
        for key in unknown:
            hint = _choices(str(key), StackFields.model_fields)
            messages.append(f"{path}:{line_of(lines, (key,))}: stack {name}: unknown component {key!r}{hint}")
        raise StackError("\n".join(messages))
    return data, lines


def _message(err: Any) -> str:
    loc = tuple(str(p) for p in err["loc"])
    chosen = None
    if len(loc) > 1 and loc[1] in COMPONENT_TYPES.get(loc[0], {}):
        chosen = loc[1]
        loc = (loc[0], *loc[2:])  # drop the union tag pydantic adds to the location
    if err["type"] == "union_tag_not_found":
        tag = "storage" if loc[0] == "instance" else "type"
        return f"{loc[0]}: missing `{tag}` (valid: {', '.join(sorted(COMPONENT_TYPES.get(loc[0], {})))})"
    if err["type"] == "union_tag_invalid":
        tag = err["ctx"]["tag"]
        return f"{loc[0]}: unknown type {tag!r}{_choices(tag, COMPONENT_TYPES.get(loc[0], {}))}"
    if err["type"] == "extra_forbidden":
        return f"{'.'.join(loc[:-1])}: unknown key {loc[-1]!r}{_choices(loc[-1], _component_keys(loc[0], chosen))}"
    return f"{'.'.join(loc)}: {err['msg']}"


def _check_env_names(name: str, data: dict[str, Any]) -> None:
    """A nested override (``SLIPWAY_X__Y``) must name a component: pydantic-settings ignores the rest.

    ``SLIPWAY_DRIFT_DETECTOR_BINS`` (one underscore where two belong) would be ignored just as
    silently: a variable that spells a component and one of its keys that way is refused too,
    unless the stack file reads it as ``${…}``.
    """
    messages = []
    read = {var for _, var in _unexpanded(data)}
    for var in sorted(os.environ):
        head, sep, _ = var.upper().partition("__")
        component = head.removeprefix(ENV_PREFIX).lower()
        if sep and head.startswith(ENV_PREFIX) and component not in StackFields.model_fields:
            hint = _choices(component, StackFields.model_fields)
            messages.append(f"env {var}: stack {name}: unknown component {component!r}{hint}")
        elif not sep and head.startswith(ENV_PREFIX) and var not in read:
            for role in COMPONENT_TYPES:
                key = component.removeprefix(f"{role}_")
                if key != component and key in _component_keys(role, None):
                    right = f"{ENV_PREFIX}{role.upper()}__{key.upper()}"
                    messages.append(
                        f"env {var}: stack {name}: a key of a component is set with two underscores: {right}"
                    )
    if messages:
        raise StackError("\n".join(messages))


def _origin(err: Any, path: Path, lines: dict[Loc, int]) -> str:
    """Where a bad value came from: ``env SLIPWAY_…`` when the environment set it, else ``path:line``."""
    loc = [str(p) for p in err["loc"]]
    if len(loc) > 1 and loc[1] in COMPONENT_TYPES.get(loc[0], {}):
        del loc[1]  # the union tag pydantic adds
    env = {k.upper() for k in os.environ}
    for end in range(len(loc), 0, -1):
        var = ENV_PREFIX + "__".join(loc[:end]).upper()
        if var in env:
            return f"env {var}"
    if loc and loc[0] in COMPONENT_TYPES:  # a component whose type the environment chose (or switched)
        tag = f"{ENV_PREFIX}{loc[0]}__{'storage' if loc[0] == 'instance' else 'type'}".upper()
        if tag in env:
            return f"env {tag}"
    key = tuple(loc[:2])
    return f"{path}:{lines.get(key) or lines.get(key[:1]) or 1}"


def _choices(given: str, valid: Iterable[str]) -> str:
    """``"; did you mean 'x'? (valid: a, b)"`` for an unknown name."""
    names = sorted(valid)
    return f"{did_you_mean(given, names)} (valid: {', '.join(names)})"


def _component_keys(component: str, chosen: str | None) -> set[str]:
    """The keys type ``chosen`` of ``component`` accepts (every type's, when none was chosen)."""
    types = COMPONENT_TYPES.get(component)
    if types is None:
        annotation = StackFields.model_fields[component].annotation
        return set(getattr(annotation, "model_fields", {}))
    return {key for name, cls in types.items() if chosen in (None, name) for key in cls.model_fields}


def _value_of(match: re.Match[str], env: dict[str, str]) -> str:
    name, default = match.group(1), match.group(2)
    if default is not None:
        return env.get(name) or default
    return env.get(name, match.group(0))  # left as written when unset: refused, with its line


def _expand(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _VAR.sub(lambda m: _value_of(m, env), value)
    if isinstance(value, list):
        return [_expand(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, env) for k, v in value.items()}
    return value


def _switched_by_env(data: dict[str, Any]) -> dict[str, Any]:
    """The file's components, less those whose implementation the environment switches.

    ``SLIPWAY_EXPERIMENT_TRACKER__TYPE=mlflow_server`` over a file's ``type: mlflow`` starts
    that component from the new type's defaults: the old type's keys (a local artifact folder,
    a UI on localhost) would otherwise be merged into it and silently kept.
    """
    env = {k.upper(): v for k, v in os.environ.items()}
    kept = dict(data)
    for role in COMPONENT_TYPES:
        tag = "storage" if role == "instance" else "type"
        chosen = env.get(f"{ENV_PREFIX}{role}__{tag}".upper())
        current = data.get(role)
        if chosen is not None and isinstance(current, dict) and current.get(tag) != chosen:
            del kept[role]
    return kept


def _refuse_unset(unset: list[tuple[tuple[str, ...], str]], path: Path, name: str, lines: dict[Loc, int]) -> None:
    if unset:
        raise StackError(
            "\n".join(
                f"{path}:{lines.get(key[:2]) or lines.get(key[:1]) or 1}: stack {name}: {'.'.join(key)}: "
                f"${{{var}}} is not set in the environment"
                for key, var in unset
            )
        )


def _unexpanded(value: Any, key: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """``(key, variable)`` for each ``${VAR}`` left in a value after expansion: a variable that is not set."""
    if isinstance(value, str):
        return [(key, m.group(1)) for m in _VAR.finditer(value)]
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in _unexpanded(v, (*key, str(k)))]
    if isinstance(value, list):
        return [found for i, v in enumerate(value) for found in _unexpanded(v, (*key, str(i)))]
    return []


def load_stack(name: str | None = None, overrides: dict[str, Any] | None = None) -> LoadedStack:
    """Load and validate the stack ``name`` (default: ``$SLIPWAY_STACK`` or ``local``)."""
    name = stack_name(name)
    path = stack_path(name)
    data, lines = _read(path, name)
    _check_env_names(name, data)
    env = {**os.environ, "SLIPWAY_HOME": str(slipway_home())}
    # The file's ${VAR}s are expanded before validation (a bucket name from a variable is
    # checked as the bucket name it is), and a variable nobody set is named with its line.
    data = _expand(data, env)
    _refuse_unset(_unexpanded(data), path, name, lines)
    data = _switched_by_env(data)
    # A switched component's keys no longer come from the file: forget their lines.
    lines = {loc: line for loc, line in lines.items() if not loc or loc[0] in data}
    token = _FILE_DATA.set(data)
    try:
        raw = Stack(**(overrides or {}))
    except ValidationError as exc:
        messages = [f"{_origin(err, path, lines)}: stack {name}: {_message(err)}" for err in exc.errors()]
        raise StackError("\n".join(messages)) from exc
    except SettingsError as exc:  # a list or mapping from the environment that is not JSON
        raise StackError(
            f"env: stack {name}: {exc}; a list or mapping set from the environment is JSON, "
            'e.g. SLIPWAY_ALLOWED_IMPORTS=\'["sklearn", "definitions"]\''
        ) from exc
    finally:
        _FILE_DATA.reset(token)
    # Environment overrides are expanded after merging, so they may use ${SLIPWAY_HOME} too.
    expanded = _expand(raw.model_dump(by_alias=True), env)
    _refuse_unset(_unexpanded(expanded), path, name, lines)
    try:
        stack = StackFields.model_validate(expanded)
    except ValidationError as exc:  # an override valid only before expansion
        messages = [f"{_origin(err, path, lines)}: stack {name}: {_message(err)}" for err in exc.errors()]
        raise StackError("\n".join(messages)) from exc
    return LoadedStack(name=name, path=path, stack=stack, lines=lines)


def provenance(loaded: LoadedStack) -> dict[str, str]:
    """For each ``component.key``, where its value came from: env var, file:line, or default."""
    out: dict[str, str] = {}
    env = {k.upper(): k for k in os.environ}
    for component, value in loaded.stack.model_dump().items():
        keys = [(component, k) for k in value] if isinstance(value, dict) else [(component,)]
        for key in keys:
            var = ENV_PREFIX + "__".join(key).upper()
            whole = ENV_PREFIX + component.upper()
            if var in env or whole in env:
                out[".".join(key)] = f"env {var if var in env else whole}"
            elif key in loaded.lines:
                out[".".join(key)] = f"{loaded.path.name}:{loaded.lines[key]}"
            else:
                out[".".join(key)] = "default"
    return out
