"""A batch dropped into a landing folder is seen at the next tick, and a tick with nothing new launches nothing."""

from __future__ import annotations

import datetime
import time

import dagster as dg
import pandas as pd
import pytest
from views import stack_instance

from assets.automation.sensors import NEW_FILES_SENSOR
from definitions.cli.runner import run
from definitions.definitions import build_definitions

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: data/batch_*.csv}
"""
FILES = dg.AssetKey(["shop", "orders", "data_batch_csv"])


def _batch(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"a": range(rows), "b": range(rows)})


def _observations(instance: dg.DagsterInstance) -> list[str]:
    records = instance.fetch_observations(FILES, limit=100).records
    return [r.event_log_entry.asset_observation.tags["dagster/data_version"] for r in reversed(records)]


def _tick(defs_dir):  # noqa: ANN001, ANN202
    defs = build_definitions(defs_dir)
    sensor = defs.get_sensor_def(NEW_FILES_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING and sensor.minimum_interval_seconds <= 30
    with stack_instance() as instance:
        context = dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
        result = sensor.evaluate_tick(context)
        return result, _observations(instance)


def test_a_new_batch_is_observed_at_the_next_tick_without_a_run(home, defs_dir, write_pipeline):
    write_pipeline("shop", SHOP, {"data/batch_1.csv": _batch(10)})
    assert run(defs_dir=defs_dir).ok
    with stack_instance() as instance:
        before = _observations(instance)
        runs = len(instance.get_runs())
    assert len(before) == 1

    result, seen = _tick(defs_dir)
    assert result.run_requests == [] and seen == before  # nothing new: nothing recorded, nothing launched
    assert result.skip_message == "1 file source: no new or changed files"

    time.sleep(0.01)
    _batch(5).to_csv(defs_dir / "shop" / "data" / "batch_2.csv", index=False)
    result, seen = _tick(defs_dir)
    assert result.run_requests == []
    assert len(seen) == 2 and seen[-1] != seen[0]
    assert result.skip_message == "1 file source: new or changed files in shop/orders/data_batch_csv (2 files)"
    with stack_instance() as instance:
        assert len(instance.get_runs()) == runs  # observed without a run


def test_the_automation_sensor_launches_no_observation_of_a_file_source_once_observed(home, defs_dir, write_pipeline):
    write_pipeline("shop", SHOP, {"data/batch_1.csv": _batch(10)})
    assert run(defs_dir=defs_dir).ok
    defs = build_definitions(defs_dir)
    now = datetime.datetime.now(datetime.UTC)
    selection = dg.AssetSelection.assets(FILES)
    with stack_instance() as instance:
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
        for hours in (1, 2):  # past cron ticks: no observation run is launched for files
            later = dg.evaluate_automation_conditions(
                defs=defs,
                instance=instance,
                asset_selection=selection,
                cursor=first.cursor,
                evaluation_time=now + datetime.timedelta(hours=hours),
            )
            assert later.get_num_requested(FILES) == 0
    assert first.get_num_requested(FILES) == 0
