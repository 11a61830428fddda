"""One graph, one record: `slipway run`, a UI launch and the automation predicate agree.

A "UI launch" here is what the Dagster UI and `dagster asset materialize` do: a run of the code
location's asset job (from `definitions/definitions.py`) on the stack's instance, with no
`slipway run` in between. "Automation" is `dg.evaluate_automation_conditions` on the same code
location and instance: what the automation sensor would request.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from mlflow import MlflowClient
from summary_rows import row as summary_row
from views import automation_requests, current_table, stack_instance, ui_materialize, ui_observe  # noqa: F401

from assets.automation.sensors import NEW_FILES_SENSOR
from assets.data.generators import churn
from definitions.cli.runner import run
from definitions.definitions import build_definitions
from resources.errors import DefinitionError

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: data/*.csv}
      expectations:
        - {expect: column_values_to_be_between, column: tenure, min_value: 0, max_value: 72}
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


@pytest.fixture
def shop(write_pipeline):
    return write_pipeline("shop", SHOP, {"data/batch_000.csv": churn(300, seed=1)})


def _client(home: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")


def _rows(report) -> dict[str, tuple[str, str]]:
    return {o.key: (o.status, o.detail) for o in report.outcomes}


def test_ui_materialization_then_slipway_run_agree(home, defs_dir, shop, write_pipeline):
    first = run(defs_dir=defs_dir)
    assert [o.status for o in first.outcomes] == ["built", "built"]
    assert run(defs_dir=defs_dir).ok  # leaves the no-op cache in place

    # A changed definition, materialized from the UI, not by `slipway run`.
    write_pipeline("shop", SHOP.replace("max_depth: 3", "max_depth: 4"))
    assert automation_requests(defs_dir) == {"shop/clf"}
    launched = ui_materialize(defs_dir, "shop/clf")
    assert launched.success
    assert automation_requests(defs_dir) == set()

    report = run(defs_dir=defs_dir)
    clf = next(o for o in report.outcomes if o.key == "shop/clf")
    # Reused, and the version and run reused are the UI's, not the older ones.
    assert (clf.status, clf.model_version, clf.dagster_run_id) == ("reused", "2", launched.run_id)
    assert clf.detail == f"unchanged since run {launched.run_id[:8]}"
    assert report.dagster_run_ids == []
    assert len(_client(home).search_model_versions("name='shop.clf'")) == 2  # no duplicate training


def test_new_rows_are_observed_by_every_path(home, defs_dir, shop):
    # Before anything ran, the new-files sensor observes the files (a stat each, no run), and the
    # automation sensor launches no observation run for them.
    defs = build_definitions(defs_dir)
    with stack_instance() as instance:
        first_tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        context = dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
        seen = defs.get_sensor_def(NEW_FILES_SENSOR).evaluate_tick(context)
    assert first_tick.get_num_requested(dg.AssetKey(["shop", "orders", "data_csv"])) == 0
    assert seen.run_requests == [] and "new or changed files in shop/orders/data_csv" in seen.skip_message
    run(defs_dir=defs_dir)
    data = shop.parent / "data" / "batch_000.csv"
    frame = pd.read_csv(data)
    pd.concat([frame, frame.head(1).assign(customer_id=99_999)]).to_csv(data, index=False)

    # The UI's "Observe sources" sees the new file version without loading the data ...
    ui_observe(defs_dir)
    assert automation_requests(defs_dir) == {"shop/orders"}
    # ... and `slipway run` agrees: it rebuilds the dataset, then the model on the new data.
    report = run(defs_dir=defs_dir)
    assert _rows(report)["shop/orders"] == ("built", "301 rows")
    assert _rows(report)["shop/clf"][0] == "built"
    assert automation_requests(defs_dir) == set()
    assert [o.status for o in run(defs_dir=defs_dir).outcomes] == ["reused", "reused"]


def test_touched_file_rebuilds_the_dataset_but_retrains_nothing(home, defs_dir, shop):
    run(defs_dir=defs_dir)
    data = shop.parent / "data" / "batch_000.csv"
    data.write_bytes(data.read_bytes())  # same bytes, new modification time
    report = run(defs_dir=defs_dir)
    assert _rows(report)["shop/orders"][0] == "built"
    assert _rows(report)["shop/clf"] == ("reused", "unchanged (shop/orders rebuilt with the same data)")
    assert automation_requests(defs_dir) == set()


def test_failing_data_is_never_read_downstream_by_any_path(home, defs_dir, shop):
    good = run(defs_dir=defs_dir)
    good_version = good.outcomes[0].data_version
    data = shop.parent / "data" / "batch_000.csv"
    churn(300, seed=2).assign(tenure=-5).to_csv(data, index=False)

    report = run(defs_dir=defs_dir)
    assert _rows(report)["shop/orders"] == (
        "failed",
        "check failed: expect_0_column_values_to_be_between; not stored",
    )
    # The model is not retrained; it stays the model of the last good data.
    assert _rows(report)["shop/clf"] == (
        "reused",
        f"unchanged: shop/orders failed, so it stays on the last good data (run {good.dagster_run_ids[0][:8]})",
    )
    # The stored (served) data is still the last good version.
    from assets.spec.versions import frame_version

    assert frame_version(current_table("shop/orders")) == good_version
    # Automation does not request the model while the blocking check fails.
    assert "shop/clf" not in automation_requests(defs_dir)

    # A UI run of the model alone trains on the last good data.
    launched = ui_materialize(defs_dir, "shop/clf")
    assert launched.success
    version = _client(home).get_model_version("shop.clf", "2")
    assert version.tags["slipway.upstream.shop/orders"] == good_version


def test_a_model_failing_its_gate_is_registered_but_never_served(home, defs_dir, shop, write_pipeline):
    run(defs_dir=defs_dir)
    write_pipeline("shop", SHOP.replace('">= 0.5"', '">= 0.999"'))
    report = run(defs_dir=defs_dir)
    clf = next(o for o in report.outcomes if o.key == "shop/clf")
    assert (clf.status, clf.model_version, clf.alias) == ("failed", "2", None)
    assert clf.detail.startswith("check failed: gate_roc_auc; ") and "not stored" not in clf.detail
    served = current_table("shop/clf")
    assert (served.version, served.gates_passed) == ("1", True)
    # Not retrained on the next run (nothing changed), and still reported as failing.
    again = next(o for o in run(defs_dir=defs_dir).outcomes if o.key == "shop/clf")
    assert again.status == "failed" and "gate_roc_auc" in again.detail
    assert len(_client(home).search_model_versions("name='shop.clf'")) == 2


@pytest.mark.parametrize(
    "loss", ["mlflow database deleted", "tracking uri changed", "version deleted", "files deleted"]
)
def test_a_model_gone_from_the_stores_is_rebuilt_not_reused(home, defs_dir, shop, monkeypatch, loss, tmp_path):
    run(defs_dir=defs_dir)
    assert run(defs_dir=defs_dir).dagster_run_ids == []  # cached no-op
    if loss == "mlflow database deleted":
        (home / "mlflow.db").unlink()
        # A process keeps answering from a deleted SQLite file it has open (MLflow caches its
        # engines per URI), so this case is asked of fresh processes, as a user's next command is.
        done = subprocess.run(
            [sys.executable, "-m", "definitions.cli.main", "--defs", str(defs_dir), "run"],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        row = summary_row(done.stdout, "shop/clf")
        assert "built" in row and "never built" not in row
        assert "shop.clf v1 is not in the registry" in row
        return
    if loss == "tracking uri changed":
        monkeypatch.setenv("SLIPWAY_EXPERIMENT_TRACKER__TRACKING_URI", f"sqlite:///{tmp_path}/other.db")
        expected = f"shop.clf v1 is not in the registry at sqlite:///{tmp_path}/other.db"
    elif loss == "version deleted":
        _client(home).delete_model_version("shop.clf", "1")
        expected = "shop.clf v1 is not in the registry"
    else:
        shutil.rmtree(home / "mlartifacts")
        expected = "the files of shop.clf v1 are gone"
    assert automation_requests(defs_dir) == {"shop/clf"}
    report = run(defs_dir=defs_dir)
    clf = next(o for o in report.outcomes if o.key == "shop/clf")
    fresh_registry = loss in ("mlflow database deleted", "tracking uri changed")
    assert (clf.status, clf.model_version) == ("built", "1" if fresh_registry else "2")
    assert expected in clf.reason
    assert automation_requests(defs_dir) == set()


HAND = '''
import dagster as dg


@dg.asset(key=["hand", "customers"], group_name="hand")
def customers():
    """A hand-written asset: a DataFrame any YAML model can train on."""
    from assets.data.generators import churn

    return churn(200, seed=3)


@dg.sensor(target=[customers])
def hand_sensor():
    return dg.SkipReason("nothing new")
'''


def test_hand_written_assets_and_sensors_are_part_of_the_graph(home, defs_dir, write_pipeline):
    (defs_dir / "hand").mkdir()
    (defs_dir / "hand" / "assets.py").write_text(textwrap.dedent(HAND))
    yaml = SHOP.replace("dataset: orders", "dataset: hand/customers")
    write_pipeline("shop", yaml, {"data/batch_000.csv": churn(100, seed=1)})

    defs = build_definitions(defs_dir)
    assert defs.get_sensor_def("hand_sensor") is not None
    report = run(defs_dir=defs_dir)
    assert _rows(report)["hand/customers"][0] == "built"
    assert _rows(report)["shop/clf"][0] == "built"
    version = _client(home).get_model_version("shop.clf", "1")
    assert "slipway.upstream.hand/customers" in version.tags
    assert [o.status for o in run(defs_dir=defs_dir).outcomes] == ["reused"] * 3

    write_pipeline("shop", yaml.replace("hand/customers", "hand/customer"))
    with pytest.raises(
        DefinitionError, match="model clf: unknown dataset 'hand/customer'; did you mean 'hand/customers'"
    ):
        build_definitions(defs_dir)


def test_the_no_op_path_imports_nothing_heavy(home, defs_dir, shop):
    run(defs_dir=defs_dir)
    code = (
        "import sys; from pathlib import Path; from definitions.cli.runner import run; "
        f"report = run(defs_dir=Path({str(defs_dir)!r})); "
        "print([o.status for o in report.outcomes], "
        "sorted(m for m in ('dagster', 'mlflow', 'sklearn', 'great_expectations') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['reused', 'reused'] []"


def test_the_no_op_cache_is_checked_against_the_instance(home, defs_dir, shop):
    run(defs_dir=defs_dir)
    cache = home / "state" / "noop-local.json"
    assert cache.exists()
    # Wiped from the UI: no event id grows, yet the cache must not answer "reused".
    with stack_instance() as instance:
        instance.wipe_assets([dg.AssetKey(["shop", "clf"])])
    report = run(defs_dir=defs_dir)
    assert _rows(report)["shop/clf"][0] == "built" and report.outcomes[1].reason == "first build"
    assert cache.exists()
    cache.write_text(cache.read_text().replace('"reused"', '"reused", "x": 1'))  # not this version's shape
    assert [o.status for o in run(defs_dir=defs_dir).outcomes] == ["reused", "reused"]
    cache.unlink()
    assert [o.status for o in run(defs_dir=defs_dir).outcomes] == ["reused", "reused"]


def test_a_killed_slipway_run_does_not_hold_its_assets_back(home, defs_dir, shop, write_pipeline):
    """A `slipway run` killed mid-training leaves its Dagster run STARTED; the next one ends it and trains."""
    run(defs_dir=defs_dir)
    write_pipeline("shop", SHOP.replace("max_depth: 3", "max_depth: 4"))
    job = build_definitions(defs_dir).resolve_implicit_global_asset_job_def()
    clf = {dg.AssetKey(["shop", "clf"])}
    with stack_instance() as instance:
        dead = instance.create_run_for_job(
            job, asset_selection=clf, status=dg.DagsterRunStatus.STARTED, tags={"slipway/command": "run"}
        )
        # Re-executed from the UI: it inherits the tags, but it is not a slipway run's to end.
        live = instance.create_run_for_job(
            job,
            asset_selection=clf,
            status=dg.DagsterRunStatus.STARTED,
            tags={"slipway/command": "run", "dagster/parent_run_id": dead.run_id},
        )
        assert automation_requests(defs_dir) == set()  # both count as in progress
    report = run(defs_dir=defs_dir)
    row = _rows(report)["shop/clf"]
    assert row[0] == "not run" and "held back: a run of it is in progress" in row[1]  # as Dagster evaluated it
    with stack_instance() as instance:
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(live.run_id).status == dg.DagsterRunStatus.STARTED
        instance.report_run_failed(instance.get_run_by_id(live.run_id), "test: the UI run ended")
    assert _rows(run(defs_dir=defs_dir))["shop/clf"][0] == "built"


def test_an_edited_hand_written_asset_is_rebuilt_with_what_reads_it(home, defs_dir, write_pipeline):
    (defs_dir / "hand").mkdir()
    module = defs_dir / "hand" / "assets.py"
    module.write_text(textwrap.dedent(HAND))
    write_pipeline(
        "shop", SHOP.replace("dataset: orders", "dataset: hand/customers"), {"data/batch_000.csv": churn(100)}
    )
    run(defs_dir=defs_dir)
    module.write_text(textwrap.dedent(HAND).replace("churn(200, seed=3)", "churn(250, seed=3)"))
    assert automation_requests(defs_dir) == {"hand/customers"}
    report = run(defs_dir=defs_dir)
    assert _rows(report)["hand/customers"][0] == "built" and report.outcomes[0].reason == "definition changed"
    assert len(current_table("hand/customers")) == 250
    assert _rows(report)["shop/clf"][0] == "built"  # its input has new data


def test_refused_data_is_not_tried_again_until_it_changes(home, defs_dir, shop):
    """Automation would otherwise reload a failing dataset on every tick; `slipway run` holds it too."""
    data = shop.parent / "data" / "batch_000.csv"
    churn(300, seed=2).assign(tenure=-5).to_csv(data, index=False)
    first = run(defs_dir=defs_dir)
    assert _rows(first)["shop/orders"][0] == "failed", _rows(first)
    assert automation_requests(defs_dir) == set()

    again = run(defs_dir=defs_dir)
    assert again.dagster_run_ids == []
    status, detail = _rows(again)["shop/orders"]
    assert status == "failed" and not again.ok
    assert detail.startswith(f"failed in run {first.dagster_run_ids[0][:8]} with the same definition and inputs: ")
    assert "blocking expectations failed" in detail
    assert _rows(again)["shop/clf"] == ("blocked", "shop/orders failed")
    assert _rows(run(defs_dir=defs_dir, force=True))["shop/orders"][0] == "failed"  # --force tries it

    churn(300, seed=2).to_csv(data, index=False)  # the data is fixed
    fixed = run(defs_dir=defs_dir)
    assert [o.status for o in fixed.outcomes] == ["built", "built"]
    assert automation_requests(defs_dir) == set()


def test_a_definition_error_is_tried_again(home, defs_dir, write_pipeline, monkeypatch):
    """Only refused data holds an asset: an error that can be fixed outside its definition is retried."""
    monkeypatch.setenv("SLIPWAY_ALLOWED_IMPORTS", '["sklearn", "transforms"]')
    bad = SHOP.replace(
        "source: {path: data/*.csv}",
        "source: {path: data/*.csv}\n      transform: transforms:to_array",
    )
    write_pipeline("shop", bad, {"data/batch_000.csv": churn(100, seed=1)})
    first = run(defs_dir=defs_dir)
    assert _rows(first)["shop/orders"][0] == "failed" and "not a pandas DataFrame" in _rows(first)["shop/orders"][1]
    again = run(defs_dir=defs_dir)
    assert again.dagster_run_ids and _rows(again)["shop/orders"] == _rows(first)["shop/orders"]
    assert automation_requests(defs_dir) == {"shop/orders", "shop/clf"}


EXTERNAL = """
import dagster as dg


@dg.asset(key=["hand", "customers"], group_name="hand")
def customers():
    from assets.data.generators import churn

    return churn(ROWS, seed=3)
"""


def test_the_no_op_cache_watches_hand_written_code_outside_the_folder(
    home, defs_dir, tmp_path, monkeypatch, write_pipeline
):
    library = tmp_path / "library"
    library.mkdir()
    (library / "team_assets.py").write_text(textwrap.dedent(EXTERNAL).replace("ROWS", "200"))
    monkeypatch.syspath_prepend(str(library))
    (defs_dir / "hand").mkdir()
    (defs_dir / "hand" / "assets.py").write_text("from team_assets import customers  # noqa: F401\n")
    write_pipeline(
        "shop", SHOP.replace("dataset: orders", "dataset: hand/customers"), {"data/batch_000.csv": churn(100)}
    )
    run(defs_dir=defs_dir)
    assert run(defs_dir=defs_dir).dagster_run_ids == []  # cached

    (library / "team_assets.py").write_text(textwrap.dedent(EXTERNAL).replace("ROWS", "250"))
    report = run(defs_dir=defs_dir)
    assert _rows(report)["hand/customers"][0] == "built" and report.outcomes[0].reason == "definition changed"
