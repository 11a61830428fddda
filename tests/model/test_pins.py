"""Alias pins in git: the registry follows the pins, a `git revert` is a rollback, a hand move is seen."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
from gitrepo import git, init
from mlflow import MlflowClient
from views import stack_instance

from assets.automation.sensors import PINS_SENSOR
from assets.model.pins import ALIAS_CHECK
from definitions.cli.runner import run
from definitions.definitions import build_definitions

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    daily:
      source: {path: data/daily.csv}
  models:
    ridge:
      dataset: daily
      target: amount
      estimator: sklearn.linear_model.Ridge
      params: {alpha: 1.0}
      metrics: [rmse]
      promote: {must_beat: null}
"""


@pytest.fixture
def shop(write_pipeline, defs_dir):
    frame = pd.DataFrame({"day": range(60), "amount": [d * 2.0 + d % 7 for d in range(60)]})
    path = write_pipeline("shop", SHOP, {"data/daily.csv": frame})
    init(defs_dir)
    return path


def pin(defs_dir, write_pipeline, pins: str | None, message: str) -> None:
    text = SHOP if pins is None else SHOP.replace("must_beat: null}", f"must_beat: null, pin: {{{pins}}}}}")
    write_pipeline("shop", text)
    git(defs_dir, "commit", "-qam", message)


def champion(home) -> str | None:
    model = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db").get_registered_model("shop.ridge")
    found = model.aliases.get("champion")
    return None if found is None else str(found)


def alias_checks(home) -> list[tuple[bool, str]]:
    with stack_instance() as instance:
        records = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(["shop", "ridge"]), ALIAS_CHECK), limit=50
        )
        found = []
        for r in reversed(records):
            evaluation = r.event.dagster_event.event_specific_data
            found.append((evaluation.passed, evaluation.description or ""))
        return found


def test_pins_revert_and_promotion_rules(home, defs_dir, shop, write_pipeline):
    for _ in range(3):
        assert run(defs_dir=defs_dir, force=True).ok
    assert champion(home) == "3"  # each new version took it: no pin, nothing to beat

    pin(defs_dir, write_pipeline, "champion: 2", "pin champion to v2")
    report = run(defs_dir=defs_dir)
    assert champion(home) == "2"
    assert report.aliases == [("set", "shop.ridge: champion set to v2 as pinned in git (it was on v3)")]
    assert report.ok and [o.status for o in report.outcomes] == ["reused", "reused"]  # a pin retrains nothing

    pin(defs_dir, write_pipeline, "champion: 3", "pin champion to v3")
    run(defs_dir=defs_dir)
    assert champion(home) == "3"

    git(defs_dir, "revert", "--no-edit", "HEAD")
    report = run(defs_dir=defs_dir)
    assert champion(home) == "2"
    assert report.aliases == [("set", "shop.ridge: champion set to v2 as pinned in git (it was on v3)")]

    # A new version does not take a pinned alias, whatever it scores.
    report = run(defs_dir=defs_dir, force=True)
    ridge = next(o for o in report.outcomes if o.key == "shop/ridge")
    assert (ridge.model_version, ridge.alias) == ("4", "challenger")
    assert "champion is pinned to v2 in git (promote.pin)" in ridge.detail
    assert champion(home) == "2"


def test_a_hand_moved_alias_is_set_back_where_pinned_and_shown_where_not(home, defs_dir, shop, write_pipeline):
    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
    run(defs_dir=defs_dir)
    run(defs_dir=defs_dir, force=True)
    assert champion(home) == "2"
    assert [passed for passed, _ in alias_checks(home)] == [True, True]  # each training decided the aliases

    # Not pinned: the move is reported once, on the asset, and left alone.
    client.set_registered_model_alias("shop.ridge", "champion", "1")
    report = run(defs_dir=defs_dir)
    message = (
        "shop.ridge: champion points at v1, but Slipway last set it to v2: it was moved outside git; "
        "pin it in promote.pin to make git decide"
    )
    assert report.aliases == [("warning", message)] and report.ok
    assert champion(home) == "1"
    assert alias_checks(home)[-1] == (False, message)
    client.set_registered_model_tag("shop.ridge", "note", "touch")  # the MLflow store changes: no cached no-op
    run(defs_dir=defs_dir)
    assert len(alias_checks(home)) == 3  # not reported twice
    defs = build_definitions(defs_dir)
    with stack_instance() as instance:
        context = dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
        skipped = defs.get_sensor_def(PINS_SENSOR)(context)
    assert isinstance(skipped, dg.SkipReason)
    assert skipped.skip_message == "1 model: 1 alias finding, unchanged since reported"

    # Pinned: set back, by `slipway run` and by the sensor.
    pin(defs_dir, write_pipeline, "champion: 2", "pin v2")
    assert run(defs_dir=defs_dir).aliases == [
        ("set", "shop.ridge: champion set to v2 as pinned in git (it had been moved outside git to v1)")
    ]
    assert champion(home) == "2"
    client.set_registered_model_alias("shop.ridge", "champion", "1")
    defs = build_definitions(defs_dir)
    sensor = defs.get_sensor_def(PINS_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with stack_instance() as instance:
        context = dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
        result = sensor(context)
    assert champion(home) == "2"
    assert isinstance(result, dg.SensorResult)
    assert [e.passed for e in result.asset_events] == [True]
    with stack_instance() as instance:
        context = dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
        assert isinstance(sensor(context), dg.SkipReason)  # nothing to do: a cheap tick


def test_a_pin_to_a_version_that_does_not_exist_fails_the_run_with_one_line(home, defs_dir, shop, write_pipeline):
    run(defs_dir=defs_dir)
    pin(defs_dir, write_pipeline, "champion: 7", "pin v7")
    report = run(defs_dir=defs_dir)
    assert report.aliases == [
        ("error", "shop.ridge: promote.pin sets champion to v7, which is not registered; champion stays on v1")
    ]
    assert not report.ok
    assert champion(home) == "1"


def test_the_summary_labels_alias_errors_and_shows_aliases_as_they_are_now(home, defs_dir, shop, write_pipeline):
    from definitions.cli.report import summary

    run(defs_dir=defs_dir)
    run(defs_dir=defs_dir, force=True)
    pin(defs_dir, write_pipeline, "champion: 1", "pin v1")
    report = run(defs_dir=defs_dir)
    ridge = next(o for o in report.outcomes if o.key == "shop/ridge")
    assert (ridge.status, ridge.model_version, ridge.alias) == ("reused", "2", None)  # v2 no longer holds champion
    pin(defs_dir, write_pipeline, "champion: 9", "pin v9")
    text = summary(run(defs_dir=defs_dir))
    assert "alias error: shop.ridge: promote.pin sets champion to v9, which is not registered" in text


def test_a_training_does_not_clear_a_hand_move_it_did_not_undo(home, defs_dir, shop, write_pipeline):
    client = MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
    text = SHOP.replace("promote: {must_beat: null}", "promote: {must_beat: champion}")
    write_pipeline("shop", text)
    run(defs_dir=defs_dir)
    run(defs_dir=defs_dir, force=True)  # the same scores: v2 does not beat v1, it becomes challenger
    assert champion(home) == "1"
    client.set_registered_model_alias("shop.ridge", "champion", "2")
    run(defs_dir=defs_dir)
    assert alias_checks(home)[-1][0] is False
    run(defs_dir=defs_dir, force=True)  # v3 becomes challenger; champion is still where a hand put it
    assert champion(home) == "2"
    passed, message = alias_checks(home)[-1]
    assert passed is False and "champion points at v2, but Slipway last set it to v1" in message


def test_a_registry_that_is_down_does_not_stop_the_datasets(home, defs_dir, shop, monkeypatch, write_pipeline):
    from mlflow_server import free_port

    # A server that is not there: requests are retried a bounded number of times, then fail. The
    # retries are MLflow's own (as many as Slipway sets); only the waits between them are cut here,
    # as a user may (they are what took this test 40 s, not what it checks).
    url = f"http://user:hunter2@127.0.0.1:{free_port()}"
    monkeypatch.setenv("SLIPWAY_MODEL_REGISTRY__REGISTRY_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    report = run(defs_dir=defs_dir)
    assert [(o.key, o.status) for o in report.outcomes][0] == ("shop/daily", "built")
    # The model failed on the registry (after MLflow's retries): it is not asked again, and the
    # line says which store could not be reached, and why.
    ((level, line),) = report.aliases
    assert level == "warning" and line.endswith('Connection refused")) (earlier in this run)'), line
    assert line.startswith("alias pins not checked: model registry (mlflow at http://user:***@127.0.0.1:"), line
    assert "hunter2" not in line
    # With a pin, it is asked before training: the line says why.
    write_pipeline("shop", SHOP.replace("must_beat: null}", "must_beat: null, pin: {champion: 1}}"))
    report = run(defs_dir=defs_dir)
    assert report.aliases[0][0] == "warning"
    assert report.aliases[0][1].startswith(
        "alias pins not checked: model registry (mlflow at http://user:***@127.0.0.1:"
    )
    assert "hunter2" not in report.aliases[0][1]


def test_removing_the_last_pin_says_the_alias_stays_where_it_is_once(home, defs_dir, shop, write_pipeline):
    for _ in range(2):
        assert run(defs_dir=defs_dir, force=True).ok
    pin(defs_dir, write_pipeline, "champion: 1", "pin champion to v1")
    assert run(defs_dir=defs_dir).aliases == [("set", "shop.ridge: champion set to v1 as pinned in git (it was on v2)")]
    assert run(defs_dir=defs_dir).aliases == []

    pin(defs_dir, write_pipeline, None, "unpin champion")
    report = run(defs_dir=defs_dir)
    assert report.aliases == [
        ("set", "shop.ridge: champion no longer pinned: stays on v1; promotions move it from now on")
    ]
    assert report.ok and champion(home) == "1"
    assert run(defs_dir=defs_dir).aliases == []  # said once
