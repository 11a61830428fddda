"""Four processes starting on one brand-new MLflow database all succeed (issue 7, part)."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
from resources import mlflow_client
client = mlflow_client.client(sys.argv[1])
client.search_experiments()
print("ok")
"""


def test_concurrent_first_use_of_a_new_mlflow_database(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    procs = [
        subprocess.Popen([sys.executable, "-c", CODE, uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    failures = [err[-500:] for out, err, code in results if code != 0 or out.strip() != "ok"]
    assert failures == []
