"""`slipway plan`: what a git change does, read from two revisions without touching the checkout.

The JSON of each case is pinned by a golden file under ``tests/golden/plan/``; run with
``SLIPWAY_REGENERATE_GOLDEN=1`` to write them anew (then read the diff before committing).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from gitrepo import commit_all, git, init

from definitions.cli.main import main
from definitions.plan.compare import plan
from definitions.plan.report import as_json, as_markdown, as_table

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "plan"
REGENERATE = os.environ.get("SLIPWAY_REGENERATE_GOLDEN") == "1"

PIPELINE = """\
# Sales: a derived table and a model on it.
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: data/orders.csv}
      expectations:
        - {expect: column_values_to_not_be_null, column: amount}
    daily:
      inputs: [orders]
      sql: |
        select day, sum(amount) as amount, count(*) as n
        from orders
        group by day
  models:
    forecast:
      dataset: daily
      target: amount
      estimator: sklearn.linear_model.Ridge
      params: {alpha: 1.0}
      metrics: [rmse, r2]
      promote:
        gates: {r2: ">= 0.1"}
"""

STACK = """\
orchestrator: {type: in_process}
alerter: {type: log}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one pipeline under defs/ and a stack under stacks/, committed."""
    root = tmp_path / "repo"
    (root / "defs" / "shop" / "data").mkdir(parents=True)
    (root / "stacks").mkdir()
    (root / "defs" / "shop" / "defs.yaml").write_text(PIPELINE)
    (root / "defs" / "shop" / "data" / "orders.csv").write_text("day,amount\n1,10\n2,12\n")
    (root / "stacks" / "local.yaml").write_text(STACK)
    (root / "uv.lock").write_text("version = 1\n")
    init(root)
    return root


def edit(repo: Path, old: str, new: str, path: str = "defs/shop/defs.yaml") -> None:
    file = repo / path
    text = file.read_text()
    assert old in text, old
    file.write_text(text.replace(old, new))


def run_plan(repo: Path, spec: str | None = None):  # noqa: ANN201
    return plan(spec, repo / "defs", repo / "stacks", repo / "uv.lock")


def check_golden(name: str, found, repo: Path) -> dict:  # noqa: ANN001
    """The plan's JSON, with commit hashes replaced, equals tests/golden/plan/<name>.json."""
    text = as_json(found)
    for side in (found.base, found.head):
        if side.commit:
            text = text.replace(side.commit, "<commit>").replace(side.commit[:7], "<sha7>")
    body = json.loads(text)
    path = GOLDEN / f"{name}.json"
    if REGENERATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(body, indent=2) + "\n")
    assert path.exists(), f"no golden file {path}: run with SLIPWAY_REGENERATE_GOLDEN=1"
    assert body == json.loads(path.read_text())
    return body


def test_a_changed_param_rebuilds_only_that_model_with_the_attribute_diff(repo: Path) -> None:
    edit(repo, "alpha: 1.0", "alpha: 2.0")
    found = run_plan(repo)
    body = check_golden("param", found, repo)
    assert [(a["key"], a["status"]) for a in body["assets"]] == [("shop/forecast", "changed")]
    assert body["assets"][0]["attributes"] == [{"path": "params.alpha", "before": 1.0, "after": 2.0, "diff": []}]
    assert body["models"] == [{"key": "shop/forecast", "retrains": "yes"}]
    assert "params.alpha: 1.0 → 2.0" in as_table(found)
    assert "+ params.alpha: 2.0" in as_markdown(found)


def test_an_edited_query_rebuilds_the_dataset_and_its_model_only_if_its_data_changes(repo: Path) -> None:
    edit(repo, "count(*) as n", "count(*) as n_orders")
    body = check_golden("sql", run_plan(repo), repo)
    assert [(a["key"], a["status"], a["why"]) for a in body["assets"]] == [
        ("shop/daily", "changed", ["its definition changed"]),
        ("shop/forecast", "stale", ["if shop/daily data changes"]),
    ]
    assert body["assets"][0]["attributes"][0]["path"] == "sql"
    assert "-select day, sum(amount) as amount, count(*) as n" in body["assets"][0]["attributes"][0]["diff"]
    assert body["models"] == [{"key": "shop/forecast", "retrains": "if_data_changes"}]


def test_an_added_expectation_and_a_tightened_gate(repo: Path) -> None:
    edit(
        repo,
        "        - {expect: column_values_to_not_be_null, column: amount}\n",
        "        - {expect: column_values_to_not_be_null, column: amount}\n"
        "        - {expect: column_values_to_be_between, column: amount, min_value: 0}\n",
    )
    edit(repo, 'gates: {r2: ">= 0.1"}', 'gates: {r2: ">= 0.5"}')
    body = check_golden("expectation_gate", run_plan(repo), repo)
    changes = {a["key"]: a["attributes"] for a in body["assets"]}
    assert changes["shop/orders"] == [
        {
            "path": "expectations",
            "before": None,
            "after": {"expect": "column_values_to_be_between", "severity": "error", "column": "amount", "min_value": 0},
            "diff": [],
        }
    ]
    assert changes["shop/forecast"] == [{"path": "promote.gates.r2", "before": ">= 0.1", "after": ">= 0.5", "diff": []}]


def test_a_reformatted_file_is_no_change(repo: Path) -> None:
    text = (repo / "defs/shop/defs.yaml").read_text()
    reformatted = (
        text.replace("# Sales: a derived table and a model on it.\n", "")
        .replace("params: {alpha: 1.0}", "params:\n        alpha: 1.0   # the same, in block style")
        .replace("target: amount", "target: 'amount'")
        .replace("      metrics: [rmse, r2]\n", "")
        .replace("      dataset: daily\n", '      metrics: [rmse, r2]\n      dataset: "daily"\n')
    )
    assert reformatted != text
    (repo / "defs/shop/defs.yaml").write_text(reformatted)
    found = run_plan(repo)
    assert not found.changed
    check_golden("reformat", found, repo)
    assert main(["--defs", str(repo / "defs"), "plan", "--exit-code"]) == 0


def test_a_moved_pin_moves_an_alias_and_retrains_nothing(repo: Path) -> None:
    edit(repo, 'gates: {r2: ">= 0.1"}', 'gates: {r2: ">= 0.1"}\n        pin: {champion: 3}')
    first = commit_all(repo, "pin v3")
    edit(repo, "pin: {champion: 3}", "pin: {champion: 2}")
    body = check_golden("pin", run_plan(repo), repo)
    assert body["assets"] == []
    assert body["pins"] == [{"model": "shop/forecast", "alias": "champion", "before": 3, "after": 2}]
    assert "shop/forecast: champion v3 → v2" in as_table(run_plan(repo))
    # From before any pin: the pin is new, and still nothing rebuilds.
    assert run_plan(repo, f"{first}~1..{first}").pins == [
        {"model": "shop/forecast", "alias": "champion", "before": None, "after": 3}
    ]


def test_a_changed_retrain_policy_is_listed_and_retrains_nothing(repo: Path) -> None:
    edit(repo, "      promote:\n", "      retrain: {on_drift: {threshold: 0.2}, cooldown: 2m}\n      promote:\n")
    first = commit_all(repo, "retrain on drift")
    edit(
        repo,
        "retrain: {on_drift: {threshold: 0.2}, cooldown: 2m}",
        "retrain: {on_drift: {threshold: 0.3}, cooldown: 6h}",
    )
    body = check_golden("policy", run_plan(repo), repo)
    assert body["assets"] == [] and body["summary"]["policies"] == 2
    assert body["policies"] == [
        {"model": "shop/forecast", "path": "retrain.on_drift.threshold", "before": 0.2, "after": 0.3},
        {"model": "shop/forecast", "path": "retrain.cooldown", "before": "2m", "after": "6h"},
    ]
    table = as_table(run_plan(repo))
    assert "2 retrain policy settings change" in table.splitlines()[0]
    assert "shop/forecast: retrain.cooldown: 2m → 6h (no rebuild for the change itself; the retrain sensor" in table
    # Adding the policy: listed as a whole, and the model still does not rebuild.
    added = run_plan(repo, f"{first}~1..{first}")
    assert added.assets == [] and [p["path"] for p in added.policies] == ["retrain"]
    # A default written out is no change.
    commit_all(repo, "policy v2")
    edit(repo, "on_drift: {threshold: 0.3}", "on_drift: {threshold: 0.3, method: psi}")
    assert not run_plan(repo).changed


def test_added_and_removed_pipelines_and_stack_changes_are_listed_separately(repo: Path) -> None:
    other = PIPELINE.replace("name: shop", "name: shop2").replace("data/orders.csv", "data/../data/orders.csv")
    (repo / "defs" / "shop2").mkdir()
    (repo / "defs" / "shop2" / "defs.yaml").write_text(other)
    (repo / "defs" / "shop2" / "data").symlink_to(repo / "defs" / "shop" / "data")
    edit(repo, "alerter: {type: log}", "alerter: {type: log}\ninstance: {storage: sqlite}", path="stacks/local.yaml")
    base = commit_all(repo, "second pipeline")
    body = check_golden("added_stack", run_plan(repo, "HEAD~1..HEAD"), repo)
    assert {(a["key"], a["status"]) for a in body["assets"]} == {
        ("shop2/orders", "added"),
        ("shop2/daily", "added"),
        ("shop2/forecast", "added"),
    }
    assert body["stacks"] == [{"stack": "local", "path": "instance", "before": None, "after": {"storage": "sqlite"}}]
    (repo / "defs" / "shop2" / "defs.yaml").unlink()
    removed = run_plan(repo, base)
    assert {(a.key, a.status) for a in removed.assets} == {
        ("shop2/orders", "removed"),
        ("shop2/daily", "removed"),
        ("shop2/forecast", "removed"),
    }


def test_plan_reads_revisions_without_touching_the_checkout(repo: Path) -> None:
    edit(repo, "alpha: 1.0", "alpha: 3.0")
    commit_all(repo, "alpha 3")
    edit(repo, "alpha: 3.0", "alpha: 4.0")  # uncommitted work
    status = git(repo, "status", "--porcelain")
    head = git(repo, "rev-parse", "HEAD")
    found = run_plan(repo, "HEAD~1..HEAD")
    assert [(a.path, a.before, a.after) for a in found.assets[0].attributes] == [("params.alpha", 1.0, 3.0)]
    assert [(a.path, a.before, a.after) for a in run_plan(repo, "HEAD~1").assets[0].attributes] == [
        ("params.alpha", 1.0, 4.0)
    ]
    assert git(repo, "status", "--porcelain") == status
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "worktree", "list").count("\n") == 0


def test_exit_codes_and_output_formats(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    defs = str(repo / "defs")
    assert main(["--defs", defs, "plan", "--exit-code"]) == 0
    assert "no changes" in capsys.readouterr().out
    edit(repo, "alpha: 1.0", "alpha: 2.0")
    assert main(["--defs", defs, "plan", "--exit-code"]) == 2
    assert main(["--defs", defs, "plan"]) == 0
    capsys.readouterr()
    assert main(["--defs", defs, "plan", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["schema_version"] == 1
    assert main(["--defs", defs, "plan", "--markdown"]) == 0
    assert capsys.readouterr().out.startswith("### slipway plan: 1 rebuild, 1 model retrains")


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def test_bad_input_is_one_line_each(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    defs = str(repo / "defs")
    assert one_line_error(capsys, ["--defs", defs, "plan", "nope"]) == f"error: unknown revision 'nope' in {repo}\n"
    assert one_line_error(capsys, ["--defs", defs, "plan", "nope..HEAD"]).startswith("error: unknown revision 'nope'")
    assert (
        one_line_error(capsys, ["--defs", defs, "plan", "--", "--output=x"])
        == "error: '--output=x' is not a revision\n"
    )
    outside = tmp_path / "plain" / "defs"
    outside.mkdir(parents=True)
    assert one_line_error(capsys, ["--defs", str(outside), "plan"]) == (
        f"error: {outside} is not in a git repository (slipway plan and repro compare git revisions)\n"
    )
    assert one_line_error(capsys, ["--defs", str(tmp_path / "missing"), "plan"]) == (
        f"error: {tmp_path / 'missing'}: no such folder\n"
    )


def test_a_shallow_clone_missing_the_base_says_how_to_fetch_it(repo: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    edit(repo, "alpha: 1.0", "alpha: 2.0")
    commit_all(repo, "second")
    clone = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)], check=True, capture_output=True
    )
    first = git(repo, "rev-parse", "HEAD~1")
    err = one_line_error(capsys, ["--defs", str(clone / "defs"), "plan", f"{first}..HEAD"])
    assert err == (
        f"error: unknown revision '{first}': this is a shallow clone and it may lie outside the history fetched "
        "(run `git fetch --unshallow`, or fetch the base branch, e.g. `git fetch origin main`)\n"
    )


def test_a_side_that_does_not_load_says_what_validate_says(repo: Path, capsys) -> None:  # noqa: ANN001
    edit(repo, "target: amount", "target: amount\n      estimatr: x")
    err = one_line_error(capsys, ["--defs", str(repo / "defs"), "plan"])
    validate_err = one_line_error(capsys, ["--defs", str(repo / "defs"), "validate"])
    assert err == validate_err
    assert f"{repo}/defs/shop/defs.yaml:20: pipeline shop: models.forecast: unknown key 'estimatr'; did you mean" in err
    commit_all(repo, "broken")
    edit(repo, "      estimatr: x\n", "")
    err = one_line_error(capsys, ["--defs", str(repo / "defs"), "plan"])
    assert err == validate_err.replace(f"{repo}/", "HEAD:")


def test_hand_written_code_and_the_lock_file_are_listed(repo: Path) -> None:
    (repo / "defs" / "team").mkdir()
    (repo / "defs" / "team" / "assets.py").write_text("X = 1\n")
    commit_all(repo, "hand-written")
    (repo / "defs" / "team" / "assets.py").write_text("X = 2\n")
    (repo / "uv.lock").write_text("version = 2\n")
    found = run_plan(repo)
    assert found.python == [{"file": "team/assets.py", "change": "changed"}]
    assert found.environment == ["uv.lock changed: library versions differ (nothing rebuilds for that alone)"]
    assert found.assets == [] and found.changed


def test_a_usage_error_exits_1_not_the_2_that_means_changes(repo: Path, capsys) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit) as exited:
        main(["--defs", str(repo / "defs"), "plan", "--exit-code", "--jsno"])
    assert exited.value.code == 1


def test_a_change_to_hand_written_code_makes_what_reads_it_stale(repo: Path) -> None:
    (repo / "defs" / "team").mkdir()
    hand_written = (
        "import dagster as dg\nimport pandas as pd\n\n\n@dg.asset(key=['team', 'raw'])\n"
        "def raw():\n    return pd.DataFrame({'day': [1], 'amount': [X]})\n\n\nX = 1\n"
    )
    (repo / "defs" / "team" / "assets.py").write_text(hand_written)
    edit(repo, "      inputs: [orders]\n", "      inputs: [orders, team/raw]\n")
    commit_all(repo, "reads a hand-written asset")
    (repo / "defs" / "team" / "assets.py").write_text(hand_written.replace("X = 1", "X = 2"))
    found = run_plan(repo)
    assert [(c.key, c.status, c.why) for c in found.assets] == [
        ("shop/daily", "stale", ["if team/raw data changes"]),
        ("shop/forecast", "stale", ["if team/raw data changes"]),
    ]


def test_a_symlinked_definition_is_read_the_same_on_both_sides(repo: Path) -> None:
    (repo / "shared").mkdir()
    (repo / "defs" / "shop" / "defs.yaml").rename(repo / "shared" / "shop.yaml")
    (repo / "defs" / "shop" / "defs.yaml").symlink_to("../../shared/shop.yaml")
    commit_all(repo, "shared definition")
    assert not run_plan(repo, "HEAD~1..HEAD").changed
    assert not run_plan(repo).changed
    edit(repo, "alpha: 1.0", "alpha: 2.0", path="shared/shop.yaml")
    commit_all(repo, "edit through the link")
    assert [(c.key, c.status) for c in run_plan(repo, "HEAD~1..HEAD").assets] == [("shop/forecast", "changed")]


def test_a_stack_file_that_is_not_text_is_one_line(repo: Path, capsys) -> None:  # noqa: ANN001
    (repo / "stacks" / "local.yaml").write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(Exception) as raised:
        run_plan(repo)
    assert type(raised.value).__name__ == "DefinitionError"
    assert str(raised.value).startswith("local.yaml: not a YAML text file")


def test_reserved_alias_names_are_refused() -> None:
    from pydantic import ValidationError

    from assets.spec.model_spec import Promote

    for alias in ("latest", "v2"):
        with pytest.raises(ValidationError, match="reserved"):
            Promote(pin={alias: 1})
        with pytest.raises(ValidationError, match="reserved"):
            Promote(alias=alias)


def test_a_whitespace_only_query_edit_says_so(repo: Path) -> None:
    edit(repo, "        group by day\n", "        group by day   \n")
    (change,) = run_plan(repo).assets[0].attributes
    assert change.lines[0] == "(only spaces or line breaks differ)"


def test_stacks_and_lock_outside_the_repository_are_noted_not_compared(repo: Path, tmp_path: Path) -> None:
    found = plan(None, repo / "defs", tmp_path / "elsewhere" / "stacks", tmp_path / "elsewhere" / "uv.lock")
    assert found.notes == [
        f"{tmp_path / 'elsewhere' / 'stacks'} is outside the repository {repo}: not compared",
        f"{tmp_path / 'elsewhere' / 'uv.lock'} is outside the repository {repo}: not compared",
    ]
    assert found.stacks == [] and not found.changed


def test_rows_appended_to_a_tracked_data_file_rebuild_its_dataset_and_what_reads_it(repo: Path) -> None:
    with (repo / "defs" / "shop" / "data" / "orders.csv").open("a") as stream:
        stream.write("3,14\n")
    found = run_plan(repo)
    assert [(c.key, c.status, c.why) for c in found.assets] == [
        ("shop/orders", "changed", ["its source files changed: data/orders.csv (modified)"]),
        ("shop/daily", "stale", ["if shop/orders data changes"]),
        ("shop/forecast", "stale", ["if shop/orders data changes"]),
    ]
    assert found.changed
    assert "shop/orders" in as_table(found) and "data/orders.csv (modified)" in as_markdown(found)
    assert main(["--defs", str(repo / "defs"), "plan", "--exit-code"]) == 2

    # Committed, as a pull request shows it; then a file added to a glob, and one removed.
    commit_all(repo, "more orders")
    assert [(c.key, c.why) for c in run_plan(repo, "HEAD~1..HEAD").assets][0] == (
        "shop/orders",
        ["its source files changed: data/orders.csv (modified)"],
    )
    edit(repo, "source: {path: data/orders.csv}", "source: {path: data/*.csv}")
    commit_all(repo, "a landing folder")
    (repo / "defs" / "shop" / "data" / "more.csv").write_text("day,amount\n4,1\n")
    commit_all(repo, "a new batch")
    assert [(c.key, c.why) for c in run_plan(repo, "HEAD~1..HEAD").assets][0] == (
        "shop/orders",
        ["its source files changed: data/more.csv (added)"],
    )
    (repo / "defs" / "shop" / "data" / "orders.csv").unlink()
    assert [(c.key, c.why) for c in run_plan(repo).assets][0] == (
        "shop/orders",
        ["its source files changed: data/orders.csv (removed)"],
    )


def test_an_untouched_data_file_changes_nothing(repo: Path) -> None:
    (repo / "defs" / "shop" / "data" / "orders.csv").touch()  # same bytes, a new modification time
    assert not run_plan(repo).changed


def test_removing_a_pin_says_the_alias_stays_where_it_is(repo: Path) -> None:
    edit(repo, 'gates: {r2: ">= 0.1"}', 'gates: {r2: ">= 0.1"}\n        pin: {champion: 2}')
    commit_all(repo, "pin")
    edit(repo, 'gates: {r2: ">= 0.1"}\n        pin: {champion: 2}', 'gates: {r2: ">= 0.1"}')
    found = run_plan(repo)
    assert found.pins == [{"model": "shop/forecast", "alias": "champion", "before": 2, "after": None}]
    line = "shop/forecast: champion no longer pinned: stays on v2 (unless moved since) until a promotion moves it"
    assert line in as_table(found) and line in as_markdown(found)


PREDICTIONS = """\
  predictions:
    forecasted:
      model: forecast
      dataset: daily
"""


def test_predictions_are_rescored_when_a_pin_moves_their_alias_or_their_model_retrains(repo: Path) -> None:
    file = repo / "defs" / "shop" / "defs.yaml"
    file.write_text(PIPELINE + PREDICTIONS)
    commit_all(repo, "predictions")

    # Its model retrains: rescored only if the new version is promoted.
    file.write_text(PIPELINE.replace("alpha: 1.0", "alpha: 2.0") + PREDICTIONS)
    rows = {a.key: (a.status, a.why) for a in run_plan(repo).assets}
    assert rows["shop/forecast"][0] == "changed"
    assert rows["shop/forecasted"] == ("stale", ["rescored if shop/forecast's new version takes @champion"])
    file.write_text(PIPELINE + PREDICTIONS)

    edit(repo, 'gates: {r2: ">= 0.1"}', 'gates: {r2: ">= 0.1"}\n        pin: {champion: 3}')
    rows = {a.key: (a.status, a.why) for a in run_plan(repo).assets}
    assert rows == {"shop/forecasted": ("stale", ["rescored: @champion of shop/forecast pinned (unpinned) → v3"])}
    commit_all(repo, "pin v3")
    edit(repo, "pin: {champion: 3}", "pin: {champion: 2}")
    rows = {a.key: (a.status, a.why) for a in run_plan(repo).assets}
    assert rows == {"shop/forecasted": ("stale", ["rescored: @champion of shop/forecast pinned v3 → v2"])}
    assert "rescored: @champion of shop/forecast pinned v3 → v2" in as_table(run_plan(repo))

    # Pinned, a retraining moves nothing: nothing to rescore.
    commit_all(repo, "pin v2")
    edit(repo, "alpha: 1.0", "alpha: 2.0")
    rows = {a.key: (a.status, a.why) for a in run_plan(repo).assets}
    assert "shop/forecasted" not in rows and rows["shop/forecast"][0] == "changed"
    # The pin removed: the alias stays on v2 (plan's pin line says so), nothing is rescored.
    edit(repo, "alpha: 2.0", "alpha: 1.0")
    edit(repo, "\n        pin: {champion: 2}", "")
    found = run_plan(repo)
    assert "shop/forecasted" not in {a.key for a in found.assets}
    assert found.pins == [{"model": "shop/forecast", "alias": "champion", "before": 2, "after": None}]


def test_a_sweep_lists_its_new_invalidated_and_cached_trials(repo: Path) -> None:
    edit(
        repo,
        "      params: {alpha: 1.0}\n",
        "      params: {fit_intercept: true}\n      sweep: {params: {alpha: [0.1, 1.0]}}\n",
    )
    commit_all(repo, "a sweep")
    edit(repo, "alpha: [0.1, 1.0]", "alpha: [0.1, 1.0, 3.0, 10.0]")
    (forecast,) = [a for a in run_plan(repo).assets if a.key == "shop/forecast"]
    assert forecast.status == "changed"
    assert forecast.why[1:] == [
        "sweep: 4 trials: 2 new, 0 invalidated, 2 cached (if its data is the same)",
        f"new trials: {_trial_ids(3.0)} (alpha=3.0), {_trial_ids(10.0)} (alpha=10.0)",
    ]
    # A change to what every trial trains invalidates each of them.
    edit(repo, "fit_intercept: true", "fit_intercept: false")
    (forecast,) = [a for a in run_plan(repo).assets if a.key == "shop/forecast"]
    assert forecast.why[1] == "sweep: 4 trials: 2 new, 2 invalidated, 0 cached (if its data is the same)"
    assert forecast.why[3].startswith("invalidated (the model's definition or code changed): ")
    # New data: every trial trains again.
    edit(repo, "fit_intercept: false", "fit_intercept: true")
    edit(repo, "alpha: [0.1, 1.0, 3.0, 10.0]", "alpha: [0.1, 1.0]")
    edit(repo, "2,12\n", "2,12\n3,14\n", "defs/shop/data/orders.csv")
    (forecast,) = [a for a in run_plan(repo).assets if a.key == "shop/forecast"]
    assert forecast.status == "stale" and "sweep: if the data changes, all 2 trials train" in forecast.why


def _trial_ids(alpha: float) -> str:
    from assets.spec.sweep_spec import trial_id

    return trial_id({"alpha": alpha})
