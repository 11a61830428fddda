"""YAML that tries to run code: refused by `slipway validate`, `slipway run` and the code location alike."""

from __future__ import annotations

import textwrap

from test_cli import assert_one_line_error, slipway

ATTACK = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {generator: churn, rows: 50}
  models:
    clf:
      dataset: orders
      target: churned
      estimator: sklearn.utils._testing.check_output
      params: {args: [sh, -c, "touch MARKER"]}
      metrics: [accuracy]
"""


def test_a_shell_command_through_a_re_exported_function_never_runs(home, defs_dir, write_pipeline, tmp_path):
    marker = tmp_path / "pwned"
    path = write_pipeline("shop", ATTACK.replace("MARKER", str(marker)))
    expected = (
        f"{path}:11: pipeline shop: import path 'sklearn.utils._testing.check_output' names a private module "
        "or name ('_testing')"
    )
    assert_one_line_error(slipway("--defs", str(defs_dir), "validate", home=home), expected)
    assert_one_line_error(slipway("--defs", str(defs_dir), "run", home=home), expected)
    assert not marker.exists()


def test_loading_the_code_location_imports_nothing_a_definition_names(
    home, defs_dir, write_pipeline, tmp_path, monkeypatch
):
    """What `dg list defs` and the UI do: assemble the code location. No named package's code runs."""
    package = tmp_path / "lib" / "evilpkg"
    package.mkdir(parents=True)
    marker = tmp_path / "imported"
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (package / "models.py").write_text(
        "class Model:\n    def fit(self, x, y): return self\n    def predict(self, x): return x\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    write_pipeline(
        "shop", textwrap.dedent(ATTACK).replace("sklearn.utils._testing.check_output", "evilpkg.models.Model")
    )

    from definitions.definitions import build_definitions

    defs = build_definitions(defs_dir)
    assert defs.resolve_asset_graph().get_all_asset_keys()
    assert not marker.exists()
    result = slipway("--defs", str(defs_dir), "validate", home=home, env={"PYTHONPATH": str(tmp_path / "lib")})
    assert result.returncode == 1 and "outside the stack's allow-list" in result.stderr
    assert not marker.exists()


def test_validate_into_a_closed_pipe_exits_quietly(home, defs_dir):
    """More output than a pipe holds, read by `head -1`: the rest is dropped without a traceback."""
    import subprocess

    from test_cli import REPO, SLIPWAY

    for i in range(800):
        folder = defs_dir / f"p{i:03d}"
        folder.mkdir()
        (folder / "defs.yaml").write_text(
            f"type: assets.Pipeline\nattributes:\n  name: p{i:03d}\n  datasets:\n"
            "    rows: {source: {generator: churn, rows: 10}}\n"
        )
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {SLIPWAY} --defs {defs_dir} validate | head -1"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**__import__("os").environ, "SLIPWAY_HOME": str(home)},
        timeout=120,
    )
    assert done.stdout.startswith("stack local: ok")
    assert done.stderr == ""
    assert done.returncode == 0
