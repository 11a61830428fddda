"""The serving router: routes, canary weights, shadow, limits and readiness (assets/serve/server.py).

The versions are small ASGI apps that answer with their own name, so what the router did is
visible in every answer; the MLflow scoring app itself is exercised in test_serve.py.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from assets.serve.server import Follower, Loaded, Router, Routes


def _app(name: str, status: int = 200):
    async def app(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        answer = json.dumps({"by": name, "got": body.decode()}).encode()
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": answer})

    return app


def _router(routes: Routes, **slots: str) -> tuple[Router, list[dict]]:
    entries: list[dict] = []
    router = Router("shop.clf", routes, max_bytes=1000, seed=7, record=entries.append)
    router.slots = {alias: Loaded(version, _app(f"{alias}-v{version}")) for alias, version in slots.items()}
    return router, entries


def _post(router: Router, count: int = 1, body: bytes = b'{"inputs": [[1]]}') -> list[httpx.Response]:
    async def go():
        transport = httpx.ASGITransport(app=router)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answers = [await client.post("/invocations", content=body) for _ in range(count)]
            await asyncio.sleep(0.05)  # shadows finish after the answer
            return answers

    return asyncio.run(go())


def _get(router: Router, path: str) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=router)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path)

    return asyncio.run(go())


def test_every_answer_says_which_version_and_alias_answered():
    router, entries = _router(Routes("champion"), champion="3")
    (answer,) = _post(router)
    assert answer.status_code == 200 and answer.json() == {"by": "champion-v3", "got": '{"inputs": [[1]]}'}
    assert answer.headers["x-slipway-model-version"] == "3"
    assert answer.headers["x-slipway-alias"] == "champion"
    assert answer.headers["x-slipway-model"] == "shop.clf"
    assert [(e["alias"], e["version"], e["status"], e["role"]) for e in entries] == [("champion", "3", 200, "answered")]


def test_a_canary_answers_its_weight_of_requests_within_statistical_bounds():
    router, entries = _router(Routes("champion", canary=("challenger", 10)), champion="1", challenger="2")
    answers = _post(router, 2000)
    by_canary = sum(a.headers["x-slipway-alias"] == "challenger" for a in answers)
    # Binomial(2000, 0.1): mean 200, sd 13.4; four sd either way.
    assert 146 <= by_canary <= 254, by_canary
    assert all(
        a.json()["by"] == f"{a.headers['x-slipway-alias']}-v{a.headers['x-slipway-model-version']}" for a in answers
    )
    assert sum(e["alias"] == "challenger" for e in entries) == by_canary
    # The same seed routes the same way.
    again, _ = _router(Routes("champion", canary=("challenger", 10)), champion="1", challenger="2")
    assert [a.headers["x-slipway-alias"] for a in _post(again, 2000)] == [a.headers["x-slipway-alias"] for a in answers]


def test_a_canary_that_is_not_loaded_leaves_every_request_to_the_alias():
    router, _ = _router(Routes("champion", canary=("challenger", 50)), champion="1")
    assert {a.headers["x-slipway-alias"] for a in _post(router, 50)} == {"champion"}


def test_a_shadow_scores_every_request_and_the_answer_is_the_champions():
    router, entries = _router(Routes("champion", shadow="challenger"), champion="1", challenger="2")
    answers = _post(router, 5)
    assert {a.json()["by"] for a in answers} == {"champion-v1"}
    shadows = [e for e in entries if e["role"] == "shadow"]
    assert len(shadows) == 5 and {e["version"] for e in shadows} == {"2"}
    assert json.loads(shadows[0]["shadow"])["by"] == "challenger-v2"
    assert json.loads(shadows[0]["answered"])["by"] == "champion-v1"


def test_readiness_fails_closed_and_names_the_aliases_that_exist():
    router, _ = _router(Routes("champion"))
    router.known = {"challenger": "4"}
    ping = _get(router, "/ping")
    assert ping.status_code == 503
    assert ping.json()["message"] == "shop.clf has no version holding @champion (its aliases: @challenger (v4))"
    (answer,) = _post(router)
    assert answer.status_code == 503
    assert _get(router, "/nowhere").status_code == 404
    router.known = {}
    assert _get(router, "/ping").json()["message"] == (
        "shop.clf has no aliases: not registered yet? (`slipway run` trains and registers it)"
    )


def test_a_request_over_the_limit_is_refused_before_it_is_read_whole():
    router, entries = _router(Routes("champion"), champion="1")
    (answer,) = _post(router, body=b"x" * 1001)
    assert answer.status_code == 413 and answer.json()["error_code"] == "REQUEST_TOO_LARGE"
    assert entries == []


class _Registry:
    def __init__(self):
        self.held = {"champion": "1"}
        self.broken = set()
        self.loads = []

    def aliases(self, name):
        return dict(self.held)

    def load_pyfunc(self, name, version):
        self.loads.append(version)
        if version in self.broken:
            raise OSError("MLmodel is gone")
        return version


class _Alerter:
    def __init__(self):
        self.sent = []

    def send(self, alert, log=None):
        self.sent.append(alert)
        return True


def test_the_follower_swaps_to_the_new_version_and_keeps_the_old_one_when_the_new_does_not_load(monkeypatch):
    from mlflow.pyfunc import scoring_server

    monkeypatch.setattr(scoring_server, "init", lambda model: _app(f"v{model}"))
    registry, alerter = _Registry(), _Alerter()
    router = Router("shop.clf", Routes("champion"))
    follower = Follower(router, registry, alerter)
    follower.refresh()
    assert router.slots["champion"].version == "1"

    registry.held["champion"] = "2"
    follower.refresh()
    assert router.slots["champion"].version == "2" and registry.loads == ["1", "2"]
    follower.refresh()
    assert registry.loads == ["1", "2"]  # nothing moved: nothing loaded

    registry.held["champion"] = "3"
    registry.broken.add("3")
    follower.refresh()
    follower.refresh()
    assert router.slots["champion"].version == "2"  # the old one keeps serving
    assert len(alerter.sent) == 1 and alerter.sent[0].kind == "serving"
    assert (
        "shop.clf v3 took @champion but does not load (OSError: MLmodel is gone); v2 keeps serving"
        in alerter.sent[0].text
    )


def test_the_follower_keeps_serving_when_the_registry_is_down(monkeypatch):
    from mlflow.pyfunc import scoring_server

    monkeypatch.setattr(scoring_server, "init", lambda model: _app(f"v{model}"))
    registry = _Registry()
    router = Router("shop.clf", Routes("champion"))
    follower = Follower(router, registry)
    follower.refresh()
    registry.aliases = lambda name: (_ for _ in ()).throw(ConnectionError("refused"))
    follower.refresh()
    assert router.slots["champion"].version == "1"


def test_the_routes_come_from_the_models_serve_block_and_the_command_line_alias_wins(defs_dir, write_pipeline):
    from definitions.cli.serve import parse_model, routes_for

    write_pipeline(
        "shop",
        """
        type: assets.Pipeline
        attributes:
          name: shop
          datasets:
            orders: {source: {path: data/*.csv}}
          models:
            clf:
              dataset: orders
              target: churned
              estimator: sklearn.tree.DecisionTreeClassifier
              metrics: [roc_auc]
              promote: {alias: best}
              serve: {canary: {alias: challenger, weight: 10}, shadow: {alias: candidate}}
        """,
    )
    assert parse_model("shop/clf@x") == ("shop.clf", "x") and parse_model("shop.clf") == ("shop.clf", None)
    assert routes_for("shop.clf", None, defs_dir) == Routes("best", ("challenger", 10), "candidate")
    assert routes_for("shop.clf", "staging", defs_dir) == Routes("staging", ("challenger", 10), "candidate")
    assert routes_for("other.model", None, defs_dir) == Routes("champion")
    with pytest.raises(Exception, match="expected PIPELINE/MODEL"):
        parse_model("clf")


def test_what_the_follower_logs_and_alerts_names_no_credential(monkeypatch, caplog):
    from mlflow.pyfunc import scoring_server

    monkeypatch.setattr(scoring_server, "init", lambda model: _app(f"v{model}"))
    registry, alerter = _Registry(), _Alerter()
    router = Router("shop.clf", Routes("champion"))
    follower = Follower(router, registry, alerter)

    def broken(name, version):
        raise OSError("cannot reach https://admin:hunter2@mlflow.example/api")

    registry.load_pyfunc = broken
    follower.refresh()
    registry.aliases = lambda name: (_ for _ in ()).throw(ConnectionError("https://admin:hunter2@mlflow.example"))
    follower.refresh()
    said = caplog.text + " ".join(a.text + a.title for a in alerter.sent)
    assert "hunter2" not in said and "mlflow.example" in said


def test_a_deleted_alias_stops_being_served_and_a_failed_version_is_tried_again_later(monkeypatch):
    from mlflow.pyfunc import scoring_server

    monkeypatch.setattr(scoring_server, "init", lambda model: _app(f"v{model}"))
    registry, alerter = _Registry(), _Alerter()
    router = Router("shop.clf", Routes("champion", canary=("challenger", 50)))
    follower = Follower(router, registry, alerter)
    registry.held["challenger"] = "2"
    follower.refresh()
    assert {a: s.version for a, s in router.slots.items()} == {"champion": "1", "challenger": "2"}

    del registry.held["challenger"]  # the canary is stopped by deleting its alias
    follower.refresh()
    assert set(router.slots) == {"champion"}
    del registry.held["champion"]
    follower.refresh()
    assert router.slots == {} and _get(router, "/ping").status_code == 503  # fails closed

    registry.held["champion"] = "3"
    registry.broken.add("3")
    follower.refresh()
    follower.refresh()  # within its wait: not tried again
    assert registry.loads.count("3") == 1 and len(alerter.sent) == 1
    registry.broken.clear()
    follower._failed["3"] = (0.0, 30.0)  # its wait is over
    follower.refresh()
    assert router.slots["champion"].version == "3" and len(alerter.sent) == 1


def test_a_chunked_request_over_the_limit_is_refused_as_it_is_counted():
    router, entries = _router(Routes("champion"), champion="1")

    async def go():
        async def body():
            for _ in range(5):
                yield b"x" * 300  # no Content-Length: counted as it arrives

        transport = httpx.ASGITransport(app=router)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/invocations", content=body())

    answer = asyncio.run(go())
    assert answer.status_code == 413 and entries == []


def test_the_request_path_carries_one_warning_filter_whatever_start_up_left():
    """scikit-learn re-applies every warning filter in each tree's task: serving keeps one."""
    import warnings

    from definitions.cli.processes import quiet_warnings
    from definitions.cli.serve import quiet_for_requests

    with warnings.catch_warnings():
        quiet_warnings()
        warnings.filterwarnings("default", "something", DeprecationWarning)
        assert len(warnings.filters) > 5
        quiet_for_requests()
        assert warnings.filters == [("ignore", None, Warning, None, 0)]
        warnings.warn("said per request", UserWarning, stacklevel=1)  # raises nothing, prints nothing
