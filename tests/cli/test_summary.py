"""`slipway run`'s summary: 100 columns at most, what was built and what serves, MLflow links that open.

The MLflow links point at a UI that answers (a real HTTP server started by the test), or say
how to open one (`slipway dev`) when nothing answers there.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from definitions.cli.outcomes import AssetOutcome
from definitions.cli.report import summary
from definitions.cli.runner import RunReport

RUN_ID = "2dfae4f751a44947a7df3da00631733f"


def _mlflow_run(base: str) -> str:
    """A run's address as a materialization records it."""
    return f"{base}/#/experiments/3/runs/{RUN_ID}?workflowType=machine_learning"


def _report(base: str) -> RunReport:
    reason = "definition changed"
    promotion = "does not beat champion v1: roc_auc 0.8123 vs 0.8234 on 1,204 rows neither trained on"
    outcomes = [
        AssetOutcome("churn/customers", "dataset", "built", 1.38, detail="3000 rows", reason="first build"),
        AssetOutcome(
            "churn/churn_classifier",
            "model",
            "built",
            0.62,
            mlflow_run=_mlflow_run(base),
            model_version="5",
            registered_model="churn.churn_classifier",
            alias="challenger",
            champion="1",
            detail=promotion,
            reason=reason,
        ),
        AssetOutcome(
            "houses/price_model",
            "model",
            "reused",
            mlflow_run=_mlflow_run(base),
            model_version="1",
            alias="champion",
            champion="1",
            detail="gates passed; no champion to beat",
        ),
        AssetOutcome(
            "a_pipeline_with_a_long_name/a_model_with_an_even_longer_name_than_that",
            "model",
            "failed",
            5.8,
            detail="check failed: gate_r2; " + "x" * 150,
            reason=reason,
        ),
    ]
    runs = ["6a0710d2-372c-4e7b-b692-73eacba5d1e8", "7b0710d2-372c-4e7b-b692-73eacba5d1e9"]
    report = RunReport("local", outcomes, runs, 14.1)
    report.aliases = [("warning", "churn.churn_classifier: champion points at v2, but Slipway last set it to v1; " * 2)]
    return report


def _serve(knows: set[str]):
    """An HTTP server standing in for an MLflow UI whose store holds the runs ``knows``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            path, _, query = self.path.partition("?")
            known = not path.startswith("/api/") or query.removeprefix("run_id=") in knows
            self.send_response(200 if known else 404)
            self.end_headers()
            self.wfile.write(b"<html>mlflow</html>" if known else b'{"error_code": "RESOURCE_DOES_NOT_EXIST"}')

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def ui():
    """The MLflow UI of this home's store, up."""
    server = _serve({RUN_ID})
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def other_ui():
    """An MLflow UI on the port, serving another store (another home's `slipway dev`)."""
    server = _serve(set())
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _closed_port() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_the_summary_fits_100_columns(ui):
    text = summary(_report(ui))
    assert max(len(line) for line in text.splitlines()) <= 100, text
    # Nothing is cut: the long detail, the alias warning and both run ids are all there.
    flat = " ".join(line.strip() for line in text.splitlines())
    assert "x" * 60 in flat.replace(" ", "") and "6a0710d2-372c-4e7b-b692-73eacba5d1e8" in flat
    assert "7b0710d2-372c-4e7b-b692-73eacba5d1e9" in flat and "Slipway last set it to v1" in flat


def test_a_model_row_says_what_was_built_and_which_version_is_champion(ui):
    text = summary(_report(ui))
    row = next(line for line in text.splitlines() if line.startswith("churn/churn_classifier "))
    assert "✓ built v5 (challenger)" in row and "champion v1" in row, text
    reused = next(line for line in text.splitlines() if line.startswith("houses/price_model "))
    assert "= reused v1 (champion)" in reused, text


def test_mlflow_links_point_at_a_ui_that_answers(ui):
    text = summary(_report(ui))
    assert f"churn/churn_classifier v5  {ui}/#/models/churn.churn_classifier/versions/5" in text, text
    assert "slipway dev" not in text
    # What this run built is linked; what it reused is not repeated.
    assert text.count(f"{ui}/#/") == 1


def test_mlflow_links_to_a_ui_that_does_not_answer_say_how_to_open_one():
    base = _closed_port()
    text = summary(_report(base))
    assert f"nothing answers at {base}: `slipway dev` starts the MLflow UI there" in text, text
    assert f"{base}/#/models/churn.churn_classifier/versions/5" in text


def test_an_mlflow_ui_of_another_store_is_not_taken_for_this_one(other_ui):
    text = summary(_report(other_ui))
    assert f"mlflow: the MLflow UI at {other_ui} does not have these runs (it serves another store)" in text, text
    assert "`slipway dev --mlflow-port PORT` serves this home's on another port" in " ".join(text.split()), text
