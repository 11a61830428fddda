"""The two UIs tell one story: `slipway dev` on the test's home, its pages read in headless Chromium.

One session, as a user's first hour goes: `slipway run` twice (v1 champion, then v2 challenger;
the summary fits 100 columns and says how to open the MLflow UI), `slipway dev` starts, then a
drifted batch lands, its dataset is rebuilt (its drift check fails) and the retrain sensor
retrains the model. The pages:

- the challenger's asset page names the champion and links its MLflow version page (item 7);
- the retrain sensor's page shows, in each tick's row, why it skipped, or the trigger and the
  reason of the run it requested (item 8);
- the dataset's checks say what drifted (item 8);
- the MLflow version page served by dev links to the Dagster run, whose page answers (item 6).

Each page is screenshot (``$SLIPWAY_SCREENSHOTS`` keeps copies to look at).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid

import pytest
from chromium import anchors, dom, needs_chromium, screenshot, text
from summary_rows import row
from test_cli import REPO, SLIPWAY
from test_dev import MARKER, _free_port, _graphql, _kill_marked, _start_dev, _stop, _wait_http
from views import ui_materialize, ui_observe

from assets.data.generators import churn

pytestmark = [pytest.mark.slow, needs_chromium]

SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    customers:
      source: {path: data/batch_*.csv}
      drift: {method: psi, threshold: 0.2, columns: [tenure, monthly_charges]}
  models:
    clf:
      dataset: customers
      target: churned
      features: [tenure, monthly_charges, support_calls]
      estimator: sklearn.linear_model.LogisticRegression
      split: {test_size: 0.25, by: customer_id}
      metrics: [roc_auc]
      retrain: {on_new_data: true}
"""
TICKS = """
query($selector: InstigationSelector!) {
  instigationStateOrError(instigationSelector: $selector) {
    ... on InstigationState { ticks(limit: 50) { tickId status cursor skipReason runIds } }
  }
}
"""
RUN = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def _slipway(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([SLIPWAY, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _ticks(port: int, selector: dict, wanted, deadline: float) -> list[dict]:
    """The sensor's ticks that are ``wanted`` (newest first), once there is one."""
    while True:
        ticks = _graphql(port, TICKS, {"selector": selector})["instigationStateOrError"]["ticks"]
        found = [t for t in ticks if wanted(t)]
        if found:
            return found
        assert time.monotonic() < deadline, ticks
        time.sleep(2)


def _run_status(port: int, run_id: str, deadline: float) -> str:
    while (status := _graphql(port, RUN, {"id": run_id})["runOrError"]["status"]) not in ("SUCCESS", "FAILURE"):
        assert time.monotonic() < deadline, status
        time.sleep(1)
    return status


def test_the_dagster_and_mlflow_uis_tell_one_story(home, defs_dir, write_pipeline, tmp_path, monkeypatch):
    dagster_port, mlflow_port = _free_port(), _free_port()
    dagster_ui, mlflow_ui = f"http://127.0.0.1:{dagster_port}", f"http://127.0.0.1:{mlflow_port}"
    links = {"SLIPWAY_DAGSTER_UI_URL": dagster_ui, "SLIPWAY_EXPERIMENT_TRACKER__UI_URL": mlflow_ui}
    for name, value in links.items():
        monkeypatch.setenv(name, value)  # for what this process builds (the drifted batch's dataset)
    env = {**os.environ, "SLIPWAY_HOME": str(home), "SLIPWAY_DEFS": str(defs_dir)}
    write_pipeline("shop", SHOP, {"data/batch_000.csv": churn(500, seed=3)})

    # The summary: 100 columns, what was built and which version serves, how to open the MLflow UI.
    _slipway(env, "run")
    forced = _slipway(env, "run", "--force").stdout
    assert max(len(line) for line in forced.splitlines()) <= 100, forced
    clf = row(forced, "shop/clf")
    assert "✓ built v2 (challenger)" in clf and "champion v1" in clf, forced
    assert f"nothing answers at {mlflow_ui}: `slipway dev` starts the MLflow UI there" in forced, forced

    marker, log = uuid.uuid4().hex, tmp_path / "dev.log"
    proc = _start_dev(log, {**env, MARKER: marker}, "--port", str(dagster_port), "--mlflow-port", str(mlflow_port))
    try:
        assert _wait_http(f"{mlflow_ui}/health", 120) == 200
        assert _wait_http(f"{dagster_ui}/server_info", 180) == 200
        nodes = _graphql(
            dagster_port, "{ repositoriesOrError { ... on RepositoryConnection { nodes { location { name } } } } }"
        )
        location = nodes["repositoriesOrError"]["nodes"][0]["location"]["name"]
        selector = {"repositoryLocationName": location, "repositoryName": "__repository__", "name": "slipway_retrain"}
        skipped = _ticks(dagster_port, selector, lambda t: t["status"] == "SKIPPED", time.monotonic() + 120)

        # Item 7: the challenger's page names the champion and links its MLflow version page.
        asset_page = f"{dagster_ui}/assets/shop/clf"
        linked = anchors(dom(asset_page))
        assert linked.get(f"{mlflow_ui}/#/models/shop.clf/versions/1") == "shop.clf v1", linked
        screenshot(asset_page, tmp_path / "dagster-model-asset.png", size=(1600, 1400))

        # A drifted batch lands and its dataset is rebuilt (its own drift check fails: a warning);
        # the retrain sensor retrains the model for the new data.
        churn(500, seed=4, drift=1.5, id_offset=10_000).to_csv(defs_dir / "shop/data/batch_001.csv", index=False)
        ui_observe(defs_dir)
        assert ui_materialize(defs_dir, "shop/customers").success
        (tick,) = _ticks(dagster_port, selector, lambda t: t["runIds"], time.monotonic() + 240)[:1]
        assert _run_status(dagster_port, tick["runIds"][0], time.monotonic() + 240) == "SUCCESS"
        assert tick["cursor"] == "shop/clf: retrain: new_data: shop/customers has new data", tick

        # Item 8: each tick's row says why, without a click: the skipped ones and the one that retrained.
        sensor_page = f"{dagster_ui}/locations/{location}/sensors/slipway_retrain"
        said = text(dom(sensor_page))
        assert tick["cursor"] in said and skipped[0]["skipReason"] in said, sensor_page
        assert skipped[0]["skipReason"] == skipped[0]["cursor"] == "shop/clf: idle: trained on the newest data"
        screenshot(sensor_page, tmp_path / "dagster-retrain-sensor.png", size=(1600, 1100))

        # Item 8: the dataset's failing drift check says what drifted.
        checks_page = f"{dagster_ui}/assets/shop/customers?view=checks"
        assert "is above its threshold 0.2" in text(dom(checks_page)), checks_page
        screenshot(checks_page, tmp_path / "dagster-dataset-checks.png", size=(1600, 1000))

        # Item 6: MLflow (served by dev) links to the Dagster run, whose page answers there.
        version_page = f"{mlflow_ui}/#/models/shop.clf/versions/1"
        run_link = next(href for href in anchors(dom(version_page)) if href.startswith(f"{dagster_ui}/runs/"))
        screenshot(version_page, tmp_path / "mlflow-version-1.png")
        assert run_link.rsplit("/", 1)[1][:8] in text(dom(run_link)), run_link
        screenshot(run_link, tmp_path / "dagster-run-from-mlflow.png", size=(1600, 1000))

        # Item 11: with the MLflow UI up, the summary's link points at it, and opens the run there.
        forced = _slipway(env, "run", "--force").stdout
        assert max(len(line) for line in forced.splitlines()) <= 100, forced
        assert f"mlflow: the MLflow UI at {mlflow_ui}" in forced and "slipway dev" not in forced, forced
        link = re.search(rf"shop/clf v(\d+) +({re.escape(mlflow_ui)}/#/models/shop.clf/versions/(\d+))", forced)
        assert link and link[1] == link[3], forced
        page = text(dom(link[2]))
        assert f"Version {link[1]}" in page, link[2]
        assert re.search(r"Trained by Dagster run [0-9a-f]{8} for asset shop/clf", page), link[2]
        screenshot(link[2], tmp_path / "mlflow-version-from-summary.png")

        assert _stop(proc, signal.SIGINT) < 10
    finally:
        left = _kill_marked(marker)
    assert not left, f"still running: {left}"
