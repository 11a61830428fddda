"""Online serving: MLflow's scoring app for whatever holds an alias, following it as it moves.

Each loaded version is served by MLflow's own pyfunc scoring app
(``mlflow.pyfunc.scoring_server.init``: ``/invocations`` with its JSON and CSV formats,
``/ping``, ``/health``, ``/version``); :class:`Router` is a thin ASGI layer in front of them:

- it sends a request to the version holding the alias (or, for ``weight`` percent of requests,
  to the canary's), and says which answered in ``X-Slipway-Model-Version`` (and
  ``X-Slipway-Alias``, ``X-Slipway-Model``);
- it scores a request with the shadow alias's version too, after answering, and logs both;
- it refuses a body over ``max_bytes`` (413) before reading more of it; nothing is unpickled
  (MLflow parses JSON, CSV or Parquet);
- readiness (``/ping``, ``/health``) fails closed (503, naming the aliases that exist) while no
  version holds the alias.

:class:`Follower` polls the registry: when an alias moves (a promotion, a pin, a ``git revert``
of a pin applied by `slipway run`), it loads the new version beside the old one and swaps the
route in one assignment; requests in flight finish on the old one. A version that fails to
load leaves the old one serving and raises a ``serving`` alert.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from assets.spec.scoring import Serve
from resources.redact import redact

LOGGER = logging.getLogger("slipway.serve")
VERSION_HEADER = b"x-slipway-model-version"
ALIAS_HEADER = b"x-slipway-alias"
MODEL_HEADER = b"x-slipway-model"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# A version that failed to load is tried again after this long, doubling up to the maximum.
RETRY_FIRST_SECONDS = 30.0
RETRY_MAX_SECONDS = 600.0


@dataclass(frozen=True)
class Routes:
    """Which aliases serve: the one that answers, a canary (alias, percent) and a shadow."""

    alias: str
    canary: tuple[str, float] | None = None
    shadow: str | None = None

    @staticmethod
    def of(serve: Serve | None, promote_alias: str, alias: str | None = None) -> Routes:
        """From a model's ``serve:`` block (``alias`` given on the command line wins)."""
        chosen = alias or (serve.alias if serve and serve.alias else promote_alias)
        canary = (serve.canary.alias, serve.canary.weight) if serve and serve.canary else None
        return Routes(chosen, canary, serve.shadow.alias if serve and serve.shadow else None)

    def aliases(self) -> list[str]:
        """Every alias these routes load."""
        found = [self.alias]
        found += [self.canary[0]] if self.canary else []
        found += [self.shadow] if self.shadow else []
        return list(dict.fromkeys(found))


@dataclass(frozen=True)
class Loaded:
    """One loaded version and MLflow's scoring app for it."""

    version: str
    app: Any


@dataclass
class Router:
    """The ASGI app ``slipway serve`` runs (see the module's docstring)."""

    name: str
    routes: Routes
    max_bytes: int = DEFAULT_MAX_BYTES
    seed: int | None = None
    record: Callable[[dict[str, Any]], None] = lambda _: None
    traffic: Any = None  # a TrafficLog (assets.serve.traffic): the rows asked and answered
    on_shutdown: Callable[[], None] | None = None  # run when the server stops (Ctrl-C, SIGTERM)
    slots: dict[str, Loaded] = field(default_factory=dict)
    known: dict[str, str] = field(default_factory=dict)  # every alias of the model, as last read
    _random: random.Random = field(init=False)
    _shadows: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:  # noqa: D105
        self._random = random.Random(self.seed)

    def pick(self) -> tuple[str, Loaded | None]:
        """The alias (and loaded version) that answers the next request."""
        canary = self.routes.canary
        if canary is not None and canary[0] in self.slots and self._random.random() * 100 < canary[1]:
            return canary[0], self.slots[canary[0]]
        return self.routes.alias, self.slots.get(self.routes.alias)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: D102
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            if self._shadows:  # shadows in flight end before the traffic log's last flush
                await asyncio.gather(*self._shadows, return_exceptions=True)
            if self.on_shutdown is not None:  # before the server returns (it re-raises SIGTERM then)
                await asyncio.to_thread(self.on_shutdown)
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        path = scope.get("path", "")
        if path not in ("/invocations", "/ping", "/health", "/version"):
            await _answer(send, 404, {"error_code": "NOT_FOUND", "message": f"no route {path}"})
            return
        if path != "/invocations":
            loaded = self.slots.get(self.routes.alias)
            if loaded is None:
                await _answer(send, 503, self.not_ready())
                return
            await loaded.app(scope, receive, self._headed(send, self.routes.alias, loaded.version))
            return
        body = await _body(scope, receive, self.max_bytes)
        if body is None:
            message = f"request body over {self.max_bytes} bytes"
            await _answer(send, 413, {"error_code": "REQUEST_TOO_LARGE", "message": message})
            return
        alias, loaded = self.pick()
        if loaded is None:
            await _answer(send, 503, self.not_ready())
            return
        started = time.perf_counter()
        status = await _forward(loaded.app, scope, body, self._headed(send, alias, loaded.version))
        self.record(_entry(alias, loaded.version, status[0], started, "answered"))
        shadow = self.routes.shadow
        shadowed = shadow is not None and shadow in self.slots and shadow != alias and status[0] == 200
        request = uuid.uuid4().hex if shadowed else ""
        if self.traffic is not None and status[0] == 200:
            self.traffic.add(body, _content_type(scope), status[1], alias, loaded.version, "answered", request)
        if shadowed:
            task = asyncio.create_task(self._shadow(scope, body, str(shadow), status[1], request))
            self._shadows.add(task)
            task.add_done_callback(self._shadows.discard)

    async def _shadow(self, scope: dict[str, Any], body: bytes, alias: str, answered: bytes, request: str) -> None:
        loaded = self.slots[alias]
        started = time.perf_counter()
        collected: list[bytes] = []

        async def keep(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                collected.append(message.get("body", b""))

        status = await _forward(loaded.app, scope, body, keep)
        if self.traffic is not None and status[0] == 200:
            self.traffic.add(body, _content_type(scope), status[1], alias, loaded.version, "shadow", request)
        entry = _entry(alias, loaded.version, status[0], started, "shadow")
        entry["shadow"], entry["answered"] = (
            b"".join(collected).decode(errors="replace"),
            answered.decode(errors="replace"),
        )
        self.record(entry)

    def _headed(self, send: Any, alias: str, version: str) -> Any:
        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (VERSION_HEADER, version.encode()),
                    (ALIAS_HEADER, alias.encode()),
                    (MODEL_HEADER, self.name.encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        return with_headers

    def not_ready(self) -> dict[str, Any]:
        """The 503 answer while no version holds the alias: it names the aliases that do exist."""
        held = ", ".join(f"@{a} (v{v})" for a, v in sorted(self.known.items()))
        if held:
            message = f"{self.name} has no version holding @{self.routes.alias} (its aliases: {held})"
        else:
            message = f"{self.name} has no aliases: not registered yet? (`slipway run` trains and registers it)"
        return {"error_code": "NOT_READY", "message": message}


def _content_type(scope: dict[str, Any]) -> str:
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"content-type"), "")


async def _body(scope: dict[str, Any], receive: Any, limit: int) -> bytes | None:
    """The request body, or None once it is over ``limit`` bytes (said by Content-Length or counted)."""
    for key, value in scope.get("headers", []):
        if key == b"content-length" and value.isdigit() and int(value) > limit:
            return None
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _forward(app: Any, scope: dict[str, Any], body: bytes, send: Any) -> tuple[int, bytes]:
    """Call ``app`` with ``body`` as the request; its status and response body (also sent to ``send``)."""
    sent = False
    status = [500]
    answer: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # as a server does: nothing more until the client leaves
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def watch(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]
        elif message["type"] == "http.response.body":
            answer.append(message.get("body", b""))
        await send(message)

    await app(scope, receive, watch)
    return status[0], b"".join(answer)


async def _answer(send: Any, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _entry(alias: str, version: str, status: int, started: float, role: str) -> dict[str, Any]:
    return {
        "time": time.time(),
        "alias": alias,
        "version": version,
        "status": status,
        "role": role,
        "ms": round((time.perf_counter() - started) * 1000, 3),
    }


class Follower:
    """Keeps :attr:`Router.slots` on the versions the registry's aliases hold (see the module's docstring)."""

    def __init__(self, router: Router, registry: Any, alerter: Any = None, poll_seconds: float = 5.0) -> None:
        """``registry`` answers ``aliases(name)`` and ``load_pyfunc(name, version)``."""
        self.router, self.registry, self.alerter, self.poll = router, registry, alerter, poll_seconds
        # version -> (when it may be tried again, the wait before that): a failed load is retried, alerted once.
        self._failed: dict[str, tuple[float, float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        """Read the aliases once; load and swap in each version that moved."""
        name = self.router.name
        try:
            known = {a: str(v) for a, v in self.registry.aliases(name).items()}
        except Exception as exc:  # the registry is down: keep serving what is loaded
            LOGGER.warning(redact(f"{name}: cannot read its aliases ({exc}); serving what is loaded"))
            return
        self.router.known = known
        loaded_versions = {slot.version: slot for slot in self.router.slots.values()}
        for alias in self.router.routes.aliases():
            version = known.get(alias)
            current = self.router.slots.get(alias)
            if version is None:
                if current is not None:  # the alias was deleted: nothing serves it (readiness fails closed)
                    del self.router.slots[alias]
                    LOGGER.warning(f"{name}@{alias}: the alias is gone; v{current.version} no longer serves it")
                continue
            if current is not None and current.version == version:
                continue
            slot = loaded_versions.get(version) or self._load(alias, version)
            if slot is not None:
                self.router.slots[alias] = slot  # one assignment: the next request uses it
                loaded_versions[version] = slot
                was = f"v{current.version}" if current else "nothing"
                LOGGER.info(f"{name}@{alias}: serving v{version} (was {was})")
                if current is not None and gc.get_freeze_count():
                    # `slipway serve` froze what it loaded first: let the version it replaced be collected.
                    gc.unfreeze()
                    gc.collect()
                    gc.freeze()

    def _load(self, alias: str, version: str) -> Loaded | None:
        from mlflow.pyfunc import scoring_server

        name = self.router.name
        failed = self._failed.get(version)
        if failed is not None and time.monotonic() < failed[0]:
            return None  # tried again once its wait is over (a store that was down for a moment)
        try:
            app = scoring_server.init(self.registry.load_pyfunc(name, version))
        except Exception as exc:
            wait = min(RETRY_MAX_SECONDS, 2 * failed[1]) if failed else RETRY_FIRST_SECONDS
            self._failed[version] = (time.monotonic() + wait, wait)
            current = self.router.slots.get(alias)
            keeps = f"v{current.version} keeps serving" if current else "nothing serves it"
            why = redact(f"{type(exc).__name__}: {exc}")
            text = f"{name} v{version} took @{alias} but does not load ({why}); {keeps}; tried again in {wait:g} s"
            LOGGER.error(text)
            if self.alerter is not None and failed is None:  # one alert per version
                from resources.alerts import Alert

                self.alerter.send(Alert("serving", f"{name}@{alias}: v{version} does not load", text))
            return None
        self._failed.pop(version, None)
        return Loaded(version, app)

    def start(self) -> None:
        """Refresh every ``poll_seconds`` on a daemon thread."""

        def loop() -> None:
            while not self._stop.wait(self.poll):
                self.refresh()

        self._thread = threading.Thread(target=loop, name="slipway-serve-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop refreshing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll + 5)
