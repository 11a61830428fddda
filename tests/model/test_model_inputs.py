"""A model's estimator and features are checked before and during training, with lines that name the fix."""

from __future__ import annotations

import pytest
from graph_cases import CRM, failed_details, shop, validate_error

from assets.data.generators import churn
from definitions.cli.runner import run

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow


@pytest.fixture
def crm(write_pipeline, monkeypatch):
    return write_pipeline("crm", CRM, {"data/customers.csv": churn(80, seed=1)})


def test_validate_names_a_required_constructor_argument_the_params_do_not_give(home, defs_dir, crm, write_pipeline):
    path = shop(
        write_pipeline,
        "orders:\n  inputs: [crm/customers]\n  sql: select * from customers\n",
        """
        clf:
          dataset: orders
          target: churned
          estimator: sklearn.pipeline.Pipeline
          metrics: [accuracy]
        """,
    )
    assert validate_error(defs_dir) == (
        f"{path}:12: pipeline shop: model clf: params: sklearn.pipeline.Pipeline needs 'steps', which params "
        "does not give (an estimator that needs other estimators is built by a training function, `train:`)"
    )


def test_a_feature_with_missing_values_is_named_when_the_estimator_takes_none(home, defs_dir, crm, write_pipeline):
    path = shop(
        write_pipeline,
        """
        orders:
          inputs: [crm/customers]
          sql: >-
            select customer_id, tenure, churned, cast(null as double) as empty,
            case when tenure > 60 then null else monthly_charges end as charges from customers
        """,
        """
        clf:
          dataset: orders
          target: churned
          features: [tenure, empty, charges]
          estimator: sklearn.linear_model.LogisticRegression
          split: {test_size: 0.25, seed: 0, by: customer_id}
          metrics: [accuracy]
        """,
    )
    failed = failed_details(run(defs_dir=defs_dir))
    assert list(failed) == ["shop/clf"]
    message = failed["shop/clf"]
    assert message.startswith(f"{path}:12: pipeline shop, model clf: ") or message.startswith(
        "pipeline shop, model clf: "
    ), message
    assert (
        "sklearn.linear_model.LogisticRegression takes no missing values (NaN): feature 'empty' is missing in all "
        in message
    )
    assert "; feature 'charges' is missing in " in message
    assert message.endswith("fill them in the dataset (coalesce in its sql, a transform) or leave the features out")
