"""Seeded synthetic data generators for the examples, the tests and the benchmark.

Each generator is a pure function of ``(rows, seed, **params)`` so that its output, and so the
dataset's data version, depends only on the definition. ``drift`` shifts the distributions,
to produce batches that a drift check should flag.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def churn(rows: int, seed: int = 0, drift: float = 0.0, id_offset: int = 0) -> Any:
    """Telecom-style customers with a binary ``churned`` label (about a quarter churn)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 12.0 * max(0.2, 1 - 0.5 * drift), rows).clip(0, 72).round()  # any drift in 0..3
    monthly = rng.normal(65 + 25 * drift, 20, rows).clip(15, 150).round(2)
    support_calls = rng.poisson(1.2 + 2.0 * drift, rows)
    contract_months = rng.choice([1, 12, 24], rows, p=[0.5, 0.3, 0.2])
    logit = -1.0 - 0.06 * tenure + 0.025 * (monthly - 65) + 0.55 * support_calls - 0.05 * contract_months
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "customer_id": np.arange(id_offset, id_offset + rows),
            "tenure": tenure,
            "monthly_charges": monthly,
            "support_calls": support_calls,
            "contract_months": contract_months,
            "churned": churned,
        }
    )


def churn_events(customers: Any, seed: int = 0) -> Any:
    """Account events of ``customers`` (a :func:`churn` table) over 30 days: logins and failed payments.

    Customers who churn log in less and fail more payments, so features counted from these
    events carry signal beyond the customer table's.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    churned = customers["churned"].to_numpy()
    ids = customers["customer_id"].to_numpy()
    parts = []
    for kind, rate in (("login", 3.0 - 1.2 * churned), ("payment_failed", 0.25 + 0.5 * churned)):
        counts = rng.poisson(rate)
        who = np.repeat(ids, counts)
        parts.append(pd.DataFrame({"customer_id": who, "kind": kind, "day": rng.integers(1, 31, len(who))}))
    return pd.concat(parts, ignore_index=True).sort_values(["customer_id", "day", "kind"], ignore_index=True)


def houses(rows: int, seed: int = 0, drift: float = 0.0) -> Any:
    """Houses with a ``price`` that depends non-linearly on size, age and location."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    sqft = rng.normal(1800 * (1 + drift), 550, rows).clip(400, 6000).round()
    bedrooms = (sqft / 650 + rng.normal(0, 0.7, rows)).clip(1, 7).round()
    age = rng.uniform(0, 90, rows).round()
    distance = rng.gamma(2.0, 6.0, rows).round(2)
    lot = (sqft * rng.uniform(1.5, 6.0, rows)).round()
    price = (
        120 * sqft
        + 9000 * bedrooms
        - 900 * age
        + 6 * age**2
        - 5200 * np.log1p(distance) * 10
        + 4 * lot
        + rng.normal(0, 25_000, rows)
    ).clip(30_000)
    return pd.DataFrame(
        {
            "sqft": sqft,
            "bedrooms": bedrooms,
            "age": age,
            "distance_km": distance,
            "lot_sqft": lot,
            "price": price.round(),
        }
    )


def regression(rows: int, seed: int = 0, features: int = 20, drift: float = 0.0) -> Any:
    """``features`` numeric columns ``x0..`` and a noisy non-linear ``y`` (the benchmark's shape)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(drift, 1.0, (rows, features))
    weights = rng.normal(0, 1, features)
    y = x @ weights + np.sin(x[:, 0] * 2) * 3 + x[:, 1] * x[:, 2] + rng.normal(0, 0.5, rows)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(features)])
    frame["y"] = y
    return frame


BUILTIN: dict[str, Callable[..., Any]] = {"churn": churn, "houses": houses, "regression": regression}
