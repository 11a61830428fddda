"""Sweeps through `slipway run`: trials as steps cached in MLflow, the winner trained, gated and promoted."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import sweep_model
from mlflow import MlflowClient
from views import stack_instance

from assets.data.generators import regression
from assets.spec.tags import REASON_TAG, TRIGGER_TAG
from definitions.cli.runner import run
from definitions.definitions import build_definitions

# Runs whole pipelines: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

LAB = """
type: assets.Pipeline
attributes:
  name: lab
  datasets:
    rows:
      source: {path: data/*.csv}
  models:
    tree:
      dataset: rows
      target: y
      train: sweep_model:fit
      params: {random_state: 0}
      metrics: [rmse, r2]
      promote: {gates: {r2: ">= GATE"}}
      retrain: {on_new_data: true, sweep: SWEEP}
      sweep:
        params: {max_depth: DEPTHS, min_samples_leaf: [1, 20]}
        select: {metric: r2}
        min_success_ratio: RATIO
"""


@pytest.fixture
def fits(home, monkeypatch, tmp_path) -> Path:
    log = tmp_path / "fits.jsonl"
    log.touch()
    monkeypatch.setenv("SWEEP_MODEL_LOG", str(log))
    monkeypatch.delenv("SWEEP_MODEL_FAIL_DEPTH", raising=False)
    monkeypatch.delenv("SWEEP_MODEL_STORE_DOWN_DEPTH", raising=False)
    monkeypatch.setenv("SLIPWAY_ALLOWED_IMPORTS", '["sklearn", "sweep_model"]')
    return log


@pytest.fixture
def lab(write_pipeline, fits):
    def write(depths="[1, 2, 3]", ratio="1.0", gate="0", sweep="true", data=None):
        text = LAB.replace("DEPTHS", depths).replace("RATIO", ratio).replace("GATE", gate).replace("SWEEP", sweep)
        return write_pipeline("lab", text, data if data is not None else {"data/batch_0.csv": regression(400, 1, 4)})

    return write


def _client(home: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")


def _trial_runs(home: Path) -> list:
    client = _client(home)
    experiment = client.get_experiment_by_name("lab")
    return [r for r in client.search_runs([experiment.experiment_id]) if "slipway.trial" in r.data.tags]


def _tree(report):
    return next(o for o in report.outcomes if o.key == "lab/tree")


def _materialization(run_id: str) -> dict:
    with stack_instance() as instance:
        (entry,) = [
            e
            for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
            if e.dagster_event.asset_key == dg.AssetKey(["lab", "tree"])
        ]
    metadata = entry.dagster_event.step_materialization_data.materialization.metadata
    return {k: getattr(v, "value", getattr(v, "data", v)) for k, v in metadata.items()}


def _winner(home: Path) -> dict:
    """The swept params of the latest registered version."""
    latest = max(_client(home).search_model_versions("name = 'lab.tree'"), key=lambda v: int(v.version))
    return json.loads(latest.tags["slipway.sweep.params"])


def _trained_trials(fits: Path, since: int = 0) -> list[dict]:
    """The fits of trials (a winner's training is the last fit of its run and has the winner's params)."""
    return sweep_model.fits(fits)[since:]


def test_a_sweep_trains_each_trial_once_and_registers_the_best_under_one_parent_run(home, defs_dir, lab, fits):
    lab()
    report = run(defs_dir=defs_dir)
    tree = _tree(report)
    assert tree.status == "built" and tree.alias == "champion", tree.detail
    # Six trials; the registered version is the winning trial's own model (same process: not fitted again).
    assert len(sweep_model.fits(fits)) == 6
    trials = _trial_runs(home)
    assert len(trials) == 6 and {r.info.status for r in trials} == {"FINISHED"}
    best = max(trials, key=lambda r: r.data.metrics["r2"])
    client = _client(home)
    (version,) = client.search_model_versions("name = 'lab.tree'")
    parent = client.get_run(version.run_id)
    # Each trial is nested under the run that registered the version; it records the winner.
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent.info.run_id}
    assert json.loads(version.tags["slipway.sweep.params"]) == json.loads(best.data.tags["slipway.trial_params"])
    assert parent.data.tags["slipway.sweep.winner_run"] == best.info.run_id
    assert parent.data.metrics["r2"] == pytest.approx(best.data.metrics["r2"])
    assert parent.data.params["max_depth"] == best.data.params["max_depth"]
    # The UI: how many trials, the winner's params and score, the parent run and the scores.
    shown = _materialization(tree.dagster_run_id)
    assert shown["sweep"] == "6 trials: 6 trained, 0 cached, 0 failed"
    assert shown["sweep_trials"] == 6
    assert shown["sweep_params"] == json.loads(best.data.tags["slipway.trial_params"])
    assert shown["sweep_winner_r2"] == pytest.approx(best.data.metrics["r2"])
    assert parent.info.run_id in shown["sweep_parent_run"]
    assert shown["sweep_plot"].endswith("/artifacts/sweep/scores.html?workflowType=machine_learning")
    winner_line = next(line for line in shown["sweep_scores"].splitlines() if "(winner)" in line)
    assert best.data.tags["slipway.trial"] in winner_line
    assert "<svg" in (Path(parent.info.artifact_uri.removeprefix("file://")) / "sweep" / "scores.html").read_text()
    # Nothing changed: nothing trains.
    again = run(defs_dir=defs_dir)
    assert _tree(again).status == "reused" and len(sweep_model.fits(fits)) == 6


def test_adding_two_grid_points_trains_two_trials(home, defs_dir, lab, fits):
    lab()
    run(defs_dir=defs_dir)
    before = len(sweep_model.fits(fits))
    lab(depths="[1, 2, 3, 5]")
    report = run(defs_dir=defs_dir)
    assert _tree(report).status == "built", _tree(report).detail
    new = _trained_trials(fits, before)
    # Two new trials (depth 5 with each leaf size); the winner is fitted again only if it is a cached trial.
    assert sorted(f["params"]["min_samples_leaf"] for f in new[:2]) == [1, 20]
    assert all(f["params"]["max_depth"] == 5 for f in new[:2])
    assert len(new) == (2 if _winner(home)["max_depth"] == 5 else 3)
    assert _materialization(_tree(report).dagster_run_id)["sweep"] == "8 trials: 2 trained, 6 cached, 0 failed"


def test_a_failing_trial_fails_alone_and_is_retried_alone(home, defs_dir, lab, fits, monkeypatch):
    lab(ratio="0.5")
    monkeypatch.setenv("SWEEP_MODEL_FAIL_DEPTH", "3")
    report = run(defs_dir=defs_dir)
    assert _tree(report).status == "built", _tree(report).detail
    assert _materialization(_tree(report).dagster_run_id)["sweep"] == "6 trials: 4 trained, 0 cached, 2 failed"
    failed = [r for r in _trial_runs(home) if r.info.status == "FAILED"]
    assert len(failed) == 2
    assert {r.data.tags["slipway.trial_error"] for r in failed} == {"ValueError: depth 3 refused"}
    before = len(sweep_model.fits(fits))
    monkeypatch.delenv("SWEEP_MODEL_FAIL_DEPTH")
    again = run(defs_dir=defs_dir, force=True)
    new = _trained_trials(fits, before)
    assert [f["params"]["max_depth"] for f in new[:2]] == [3, 3]  # the two, then a cached winner fitted again
    assert len(new) == (2 if _winner(home)["max_depth"] == 3 else 3)
    assert _materialization(_tree(again).dagster_run_id)["sweep"] == "6 trials: 2 trained, 4 cached, 0 failed"


def test_a_sweep_below_its_success_ratio_fails_with_the_trials_errors_and_registers_nothing(
    home, defs_dir, lab, fits, monkeypatch
):
    lab(ratio="0.8")
    monkeypatch.setenv("SWEEP_MODEL_FAIL_DEPTH", "3")
    report = run(defs_dir=defs_dir)
    tree = _tree(report)
    assert tree.status == "failed"
    assert (
        "the sweep failed: 4 of 6 trials succeeded, min_success_ratio 0.8 needs 5; 2 trials" in tree.detail
        and "ValueError: depth 3 refused" in tree.detail
    ), tree.detail
    assert _client(home).search_model_versions("name = 'lab.tree'") == []


def test_the_winner_goes_through_the_gates_and_the_champion_comparison(home, defs_dir, lab, fits):
    lab(gate="0.999")
    gated = _tree(run(defs_dir=defs_dir))
    # As any training whose gate fails: registered, no alias, its blocking check failed.
    assert gated.status == "failed" and "gate failed: r2=" in gated.detail, gated.detail
    (version,) = _client(home).search_model_versions("name = 'lab.tree'")
    assert version.aliases == [] and "slipway.sweep.params" in version.tags
    lab(gate="0")
    first = _tree(run(defs_dir=defs_dir))
    assert first.alias == "champion", first.detail  # every trial was cached: only the winner trained
    again = _tree(run(defs_dir=defs_dir, force=True))
    assert again.alias == "challenger" and "does not beat champion v2" in again.detail, again.detail


def _retrain(defs_dir: Path) -> dg.ExecuteInProcessResult:
    """A retrain of the model as its policy launches one (the retrain sensor's tags)."""
    defs = build_definitions(defs_dir)
    job = defs.resolve_implicit_global_asset_job_def()
    with stack_instance() as instance:
        return job.execute_in_process(
            instance=instance,
            asset_selection=[dg.AssetKey(["lab", "rows"]), dg.AssetKey(["lab", "tree"])],
            tags={TRIGGER_TAG: "new_data", REASON_TAG: "new_data: lab/rows has new data"},
        )


@pytest.mark.parametrize("sweep", ["true", "false"])
def test_a_retrain_reruns_the_sweep_unless_the_model_says_to_train_the_last_winner_alone(
    home, defs_dir, lab, fits, sweep
):
    folder = lab(sweep=sweep).parent
    run(defs_dir=defs_dir)
    client = _client(home)
    (first,) = client.search_model_versions("name = 'lab.tree'")
    winner = json.loads(first.tags["slipway.sweep.params"])
    before = len(sweep_model.fits(fits))
    regression(300, 2, 4).to_csv(folder / "data" / "batch_1.csv", index=False)
    assert _retrain(defs_dir).success
    new = _trained_trials(fits, before)
    latest = max(client.search_model_versions("name = 'lab.tree'"), key=lambda v: int(v.version))
    assert str(latest.version) == "2" and latest.tags["slipway.retrain_trigger"] == "new_data"
    if sweep == "false":
        assert [{k: f["params"][k] for k in winner} for f in new] == [winner]  # the last winner, alone
        assert json.loads(latest.tags["slipway.sweep.params"]) == winner
    else:
        assert len(new) == 6  # six trials on the new data (the winner's model is its trial's)


@pytest.mark.parametrize("parallelism", [1, 2])
def test_trials_in_step_processes_never_run_more_at_once_than_the_sweep_allows(
    home, defs_dir, lab, fits, monkeypatch, tmp_path, parallelism
):
    folder = lab(depths="[1, 2]").parent
    text = (folder / "defs.yaml").read_text()
    (folder / "defs.yaml").write_text(
        text.replace("min_success_ratio:", f"parallelism: {parallelism}\n        min_success_ratio:")
    )
    local = (Path(__file__).resolve().parents[2] / "stacks" / "local.yaml").read_text()
    stack = tmp_path / "multiprocess.yaml"
    stack.write_text(
        local.replace(
            "orchestrator:        {type: in_process}", "orchestrator: {type: multiprocess, max_concurrent: 4}"
        )
    )
    monkeypatch.setenv("SWEEP_MODEL_SECONDS", "0.5")
    report = run(defs_dir=defs_dir, stack_name=str(stack))
    assert _tree(report).status == "built", _tree(report).detail
    trials = sweep_model.fits(fits)[:-1]  # the last fit is the winner's, fitted again in its own step process
    assert len(trials) == 4 and len({f["pid"] for f in trials}) == 4  # each trial in a step process of its own
    # Most fits under way at one time (an end and a start at the same instant: the end first).
    edges = sorted([(f["start"], 1) for f in trials] + [(f["end"], -1) for f in trials])
    alive = [sum(step for _, step in edges[: i + 1]) for i in range(len(edges))]
    assert max(alive) <= parallelism
    # The bound is the trials' pool, whose slots `slipway run` set to the sweep's parallelism.
    with stack_instance() as instance:
        assert instance.event_log_storage.get_concurrency_info("slipway-sweep-lab.tree").slot_count == parallelism


def test_a_sweep_slot_left_by_a_killed_run_does_not_hold_the_next_sweep(home, defs_dir, lab, fits):
    import threading

    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

    lab(depths="[1, 2]")
    run(defs_dir=defs_dir)
    lab(depths="[1, 2, 3]")
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        # What a `slipway run` killed among its trials leaves: its run STARTED, a trial slot claimed.
        dead = DagsterRun(
            job_name="__ASSET_JOB",
            run_id="killed-run",
            status=DagsterRunStatus.STARTED,
            tags={"slipway/command": "run"},
        )
        instance.add_run(dead)
        assert instance.event_log_storage.claim_concurrency_slot("slipway-sweep-lab.tree", "killed-run", "s").is_claimed
    reports = []
    worker = threading.Thread(target=lambda: reports.append(run(defs_dir=defs_dir)), daemon=True)
    worker.start()
    worker.join(timeout=600)  # a hang guard: a loaded machine is slow, not stuck
    assert not worker.is_alive(), "the sweep waited for a slot held by a dead run"
    assert _tree(reports[0]).status == "built"


def test_a_sweep_on_a_window_trains_every_trial_on_the_window_alone(home, defs_dir, write_pipeline, fits):
    text = LAB.replace(
        "source: {path: data/*.csv}", 'source: {path: "data/{day}.csv"}\n      partitions: {discover: files}'
    )
    text = text.replace("      dataset: rows\n", "      dataset: rows\n      window: 2\n")
    text = text.replace("DEPTHS", "[1, 2]").replace("RATIO", "1.0").replace("GATE", "0").replace("SWEEP", "true")
    days = {f"data/d{i}.csv": regression(100, i, 4) for i in range(4)}
    write_pipeline("lab", text, days)
    report = run(defs_dir=defs_dir)
    assert _tree(report).status == "built", _tree(report).detail
    # Each trial, and the winner, trained on the last 2 files' rows (80 % of 200 by the split), not all 400.
    assert {f["rows"] for f in sweep_model.fits(fits)} <= set(range(140, 181))


def test_a_store_error_in_a_trial_fails_the_model_saying_so(home, defs_dir, lab, fits, monkeypatch):
    lab(ratio="0.5")
    monkeypatch.setenv("SWEEP_MODEL_STORE_DOWN_DEPTH", "2")
    tree = _tree(run(defs_dir=defs_dir))
    # Not a trial's own failure (the ratio does not absorb it): the step fails, and the model's row says why.
    assert tree.status == "failed" and "cannot log: database is locked" in tree.detail, (tree.status, tree.detail)
    assert _client(home).search_model_versions("name = 'lab.tree'") == []
