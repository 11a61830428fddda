"""One cluster session at a time: a second test session or benchmark fails at once, naming the first,
instead of stopping the cluster under it (each begins by stopping whatever cluster runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import kube
import pytest

HERE = Path(__file__).resolve().parent
HOLD = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import kube
with kube.session(Path(sys.argv[2])):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_second_session_fails_at_once_naming_the_first_and_the_lock_ends_with_its_process(tmp_path: Path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(HERE), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(kube.ClusterBusy, match=rf"in use by pid {holder.pid} \(-c "):
            with kube.session(tmp_path):
                pass
        assert (kube.in_use(tmp_path) or "").startswith(f"pid {holder.pid} ")
        # `kube.py stop` (or start, reset) refuses too, unless told --force.
        env = {**os.environ, "SLIPWAY_KUBE_CACHE": str(tmp_path)}
        refused = subprocess.run(
            [sys.executable, str(HERE / "kube.py"), "stop"], env=env, capture_output=True, text=True
        )
        if os.geteuid() == 0:  # it needs root before anything else
            assert refused.returncode == 1 and f"in use by pid {holder.pid}" in refused.stderr, refused.stderr
    finally:
        holder.kill()
        holder.wait()
    # Killed, its lock is gone with it: the next session holds the cluster.
    assert kube.in_use(tmp_path) is None
    with kube.session(tmp_path):
        assert kube.in_use(tmp_path) is not None
