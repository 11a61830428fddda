"""`slipway serve` and `slipway predict` on a real trained model: the served version follows its alias.

The server is the real command in a process of its own; the alias is moved by a promotion, by
a pin and by putting the pin back (what a `git revert` of the pin's commit does), each applied
by `slipway run`, while a loop of requests runs: none fails, and each answer names its version.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow_server import free_port

from assets.data.generators import churn
from definitions.cli.runner import run
from definitions.cli.serve import predict
from resources.artifacts import LocalArtifactStore

pytestmark = pytest.mark.slow

SLIPWAY = str(Path(sys.executable).parent / "slipway")
FEATURES = ["tenure", "monthly_charges", "support_calls"]
SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: data/*.csv}
  models:
    clf:
      dataset: orders
      target: churned
      features: [tenure, monthly_charges, support_calls]
      estimator: sklearn.tree.DecisionTreeClassifier
      params: {max_depth: 3, random_state: 0}
      metrics: [roc_auc]
      promote: {gates: {roc_auc: ">= 0.5"}, must_beat: null}
"""


def _start(home: Path, defs_dir: Path, port: int, *extra: str) -> subprocess.Popen:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}, "SLIPWAY_HOME": str(home)}
    command = [SLIPWAY, "--defs", str(defs_dir), "serve", "shop/clf", "--port", str(port), "--poll", "0.3", *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_ready(url: str, server: subprocess.Popen, deadline: float = 300) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        assert server.poll() is None, server.communicate()
        try:
            if httpx.get(f"{url}/ping", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server never became ready")


def _wait_version(url: str, version: str, deadline: float = 120) -> None:
    body = {"dataframe_split": {"columns": FEATURES, "data": [[12, 70.0, 1]]}}
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if httpx.post(f"{url}/invocations", json=body, timeout=30).headers.get("x-slipway-model-version") == version:
            return
        time.sleep(0.1)
    raise AssertionError(f"v{version} never answered")


class _Load:
    """Requests in a loop, from a thread: every status and the version that answered."""

    def __init__(self, url: str) -> None:
        self.url, self.seen, self.stop = url, [], threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        body = {"dataframe_split": {"columns": FEATURES, "data": [[12, 70.0, 1], [40, 20.0, 0]]}}
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                try:
                    answer = client.post(f"{self.url}/invocations", json=body)
                    self.seen.append((answer.status_code, answer.headers.get("x-slipway-model-version")))
                except httpx.HTTPError as exc:
                    self.seen.append((type(exc).__name__, None))

    def __enter__(self) -> _Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def test_the_served_version_follows_the_alias_with_no_failed_request(home, defs_dir, write_pipeline):
    path = write_pipeline("shop", SHOP, {"data/orders.csv": churn(300, seed=1)})
    assert run(defs_dir=defs_dir).ok
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start(home, defs_dir, port)
    try:
        _wait_ready(url, server)
        # MLflow's protocol: JSON and CSV, /version, /health; every answer names its version.
        answer = httpx.post(
            f"{url}/invocations", json={"dataframe_split": {"columns": FEATURES, "data": [[1, 90.0, 5]]}}
        )
        assert answer.status_code == 200 and set(answer.json()["predictions"]) <= {0, 1}
        assert answer.headers["x-slipway-model-version"] == "1" and answer.headers["x-slipway-alias"] == "champion"
        csv = httpx.post(
            f"{url}/invocations",
            content="tenure,monthly_charges,support_calls\n1,90,5\n30,20,0\n",
            headers={"content-type": "text/csv"},
        )
        assert csv.status_code == 200 and len(csv.json()["predictions"]) == 2
        assert httpx.get(f"{url}/health").status_code == 200 and httpx.get(f"{url}/version").status_code == 200
        # A missing column: MLflow's schema check names it, as a 400 with a JSON error.
        bad = httpx.post(f"{url}/invocations", json={"dataframe_split": {"columns": FEATURES[:2], "data": [[1, 90.0]]}})
        assert bad.status_code == 400 and "support_calls" in bad.json()["message"]

        with _Load(url) as load:
            path.write_text(path.read_text().replace("max_depth: 3", "max_depth: 4"))  # promoted: v2
            assert run(defs_dir=defs_dir).ok
            _wait_version(url, "2")
            pinned = path.read_text().replace("must_beat: null}", "must_beat: null, pin: {champion: 1}}")
            path.write_text(pinned)  # a pin moves it back
            assert run(defs_dir=defs_dir).ok
            _wait_version(url, "1")
            path.write_text(pinned.replace("pin: {champion: 1}", "pin: {champion: 2}"))
            assert run(defs_dir=defs_dir).ok
            _wait_version(url, "2")
            path.write_text(pinned)  # the change reverted
            assert run(defs_dir=defs_dir).ok
            _wait_version(url, "1")
            time.sleep(0.5)
        statuses = {status for status, _ in load.seen}
        assert statuses == {200}, [s for s in load.seen if s[0] != 200][:5]
        versions = [v for _, v in load.seen]
        assert len(versions) > 20 and set(versions) == {"1", "2"}
        # The order they answered in: 1, then 2, then 1, 2, 1 (no flapping back between swaps).
        changes = [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]
        assert changes == ["1", "2", "1", "2", "1"], changes
        served = (home / "served" / "shop.clf.jsonl").read_text().splitlines()
        assert len(served) >= len(versions)
    finally:
        server.terminate()
        server.wait(timeout=60)
    # Stopped by SIGTERM: every answered row was written to the served-traffic batches first.
    store = LocalArtifactStore(base_dir=str(home / "artifacts"))
    traffic = store.read_batches(("shop", "served_clf"), store.batches(("shop", "served_clf")))
    assert len(traffic) >= 2 * len(versions)
    assert set(traffic["_version"]) == {"1", "2"} and set(traffic["_role"]) == {"answered"}


def test_readiness_fails_closed_until_the_alias_exists_and_a_busy_port_is_one_line(home, defs_dir, write_pipeline):
    write_pipeline("shop", SHOP, {"data/orders.csv": churn(300, seed=1)})
    assert run(defs_dir=defs_dir).ok
    port = free_port()
    server = _start(home, defs_dir, port, "--alias", "staging")
    try:
        end = time.monotonic() + 300
        while True:
            try:
                ping = httpx.get(f"http://127.0.0.1:{port}/ping", timeout=5)
                break
            except httpx.HTTPError:
                assert time.monotonic() < end and server.poll() is None
                time.sleep(0.2)
        assert ping.status_code == 503
        assert ping.json()["message"] == "shop.clf has no version holding @staging (its aliases: @champion (v1))"
        # The alias appears: the server becomes ready with no restart.
        MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db").set_registered_model_alias("shop.clf", "staging", "1")
        _wait_ready(f"http://127.0.0.1:{port}", server, deadline=60)
        busy = _start(home, defs_dir, port)
        out, err = busy.communicate(timeout=300)
        assert busy.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}: Address already in use; choose another with --port" in err
        assert "Traceback" not in err
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_predict_scores_a_csv_file_with_the_champion(home, defs_dir, write_pipeline, tmp_path):
    write_pipeline("shop", SHOP, {"data/orders.csv": churn(300, seed=1)})
    assert run(defs_dir=defs_dir).ok
    source = tmp_path / "new.csv"
    churn(250, seed=4)[FEATURES].to_csv(source, index=False)
    out, version, rows = predict("shop/clf", source, None, None, chunk_rows=100)
    assert (out, version, rows) == (tmp_path / "new.predictions.csv", "1", 250)
    scored = pd.read_csv(out)
    assert list(scored.columns) == [*FEATURES, "prediction"] and len(scored) == 250
    with pytest.raises(Exception, match="has no alias @staging"):
        predict("shop/clf@staging", source, None, None)


def test_predict_says_what_is_wrong_with_its_files_in_one_line(home, defs_dir, write_pipeline, tmp_path):
    from definitions.cli.serve import ServeError

    write_pipeline("shop", SHOP, {"data/orders.csv": churn(300, seed=1)})
    assert run(defs_dir=defs_dir).ok
    fake = tmp_path / "fake.parquet"
    fake.write_text("not parquet")
    with pytest.raises(ServeError, match="fake.parquet: cannot read as Parquet"):
        predict("shop/clf", fake, None, None)
    good = tmp_path / "good.csv"
    churn(20, seed=4)[FEATURES].to_csv(good, index=False)
    with pytest.raises(ServeError, match="its folder does not exist"):
        predict("shop/clf", good, tmp_path / "missing" / "out.csv", None)
    with pytest.raises(ServeError, match="no such file"):
        predict("shop/clf", tmp_path / "nothing.csv", None, None)
    # A column of whole numbers whose later block holds a fraction (pyarrow reads 1 MB blocks).
    big = tmp_path / "big.csv"
    frame = pd.concat([churn(300, seed=5)[FEATURES]] * 600, ignore_index=True).astype({"monthly_charges": int})
    frame.to_csv(big, index=False)
    with big.open("a") as out:
        out.write("12,70.5,1\n")
    out, version, rows = predict("shop/clf", big, None, None, defs_dir=defs_dir)
    assert rows == 180_001 and version == "1"
