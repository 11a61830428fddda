"""The reference workload in plain Python: the baseline `slipway run` is compared with.

Ingest a CSV (20,000 rows x 20 numeric features) -> RandomForestRegressor(n_estimators=50,
n_jobs=1, random_state=0) on 80 % -> RMSE on 20 % -> per-column two-sample KS between halves.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import train_test_split


def main(path: str) -> None:
    """Run the workload on the CSV at ``path``."""
    frame = pd.read_csv(path, engine="pyarrow")
    x, y = frame.drop(columns=["y"]), frame["y"]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
    model = RandomForestRegressor(n_estimators=50, n_jobs=1, random_state=0).fit(x_train, y_train)
    rmse = float(np.sqrt(np.mean((model.predict(x_test) - y_test) ** 2)))
    half = len(frame) // 2
    drift = {c: ks_2samp(frame[c].iloc[:half], frame[c].iloc[half:]).statistic for c in frame.columns}
    print(f"rmse={rmse:.4f} max_ks={max(drift.values()):.4f}")


if __name__ == "__main__":
    main(sys.argv[1])
