"""The no-op cache ("nothing to do") rests on Slipway's own code too: upgrading or editing it invalidates it."""

from __future__ import annotations

from definitions.cli import state
from resources.paths import PROJECT_ROOT
from stacks import load_stack


def test_the_no_op_cache_watches_every_package_of_slipway(home, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(state, "file_stamp", lambda path: seen.append(path) or str(path))
    state.NoopCache(home, load_stack(), tmp_path, [], {})
    for module in (
        "assets/automation/rebuild.py",
        "definitions/cli/runner.py",
        "resources/artifacts.py",
        "stacks/config.py",
    ):
        assert PROJECT_ROOT / module in seen, module
