"""YAML that tries to run code: refused by `slipway validate`, `slipway run` and the code location alike."""

from __future__ import annotations

import textwrap

import pytest
from test_cli import assert_one_line_error, slipway

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

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


def _bomb(levels: int = 9, width: int = 10) -> str:
    """About 700 bytes that expand to width**levels values: each level an alias list of the one before."""
    lines = [
        "type: assets.Pipeline",
        "attributes:",
        "  name: bomb",
        "  datasets:",
        "    d: {source: {generator: churn}}",
    ]
    lines.append(f"l0: &l0 [{', '.join(['x'] * width)}]")
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def _limited(*args: str, home, seconds: int = 300):
    """`slipway` with its address space capped at 3 GB: memory without bound fails instead of taking the machine."""
    import resource
    import subprocess

    from test_cli import REPO, SLIPWAY

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))

    env = {**__import__("os").environ, "SLIPWAY_HOME": str(home)}
    return subprocess.run(
        [SLIPWAY, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=seconds, preexec_fn=cap
    )


def test_an_alias_bomb_is_refused_in_one_line_by_validate_and_run(home, defs_dir):
    text = _bomb()
    assert len(text.encode()) < 800
    (defs_dir / "bomb").mkdir()
    path = defs_dir / "bomb" / "defs.yaml"
    path.write_text(text)
    expected = (
        f"{path}:10: its aliases expand it to more than 100000 values; "
        "write the repeated parts out, or repeat them less"
    )
    for command in ("validate", "run"):
        assert_one_line_error(_limited("--defs", str(defs_dir), command, home=home), expected)


def test_the_code_location_refuses_an_alias_bomb_before_dagster_reads_it(home, defs_dir):
    """What the UI and `dg` load: Dagster's own YAML reading would expand the aliases too."""
    import resource
    import subprocess
    import sys

    (defs_dir / "bomb").mkdir()
    (defs_dir / "bomb" / "defs.yaml").write_text(_bomb())
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))\n"
        "from pathlib import Path\nfrom definitions.definitions import build_definitions\n"
        "from resources.errors import DefinitionError\n"
        f"try:\n    build_definitions(Path({str(defs_dir)!r}))\nexcept DefinitionError as exc:\n    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "SLIPWAY_HOME": str(home)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith(
        "its aliases expand it to more than 100000 values; write the repeated parts out, or repeat them less"
    )
    assert resource  # the cap is set in the child


def test_deep_nesting_is_one_line_not_a_recursion_traceback(home, defs_dir):
    (defs_dir / "deep").mkdir()
    path = defs_dir / "deep" / "defs.yaml"
    path.write_text("type: assets.Pipeline\nattributes:\n  name: deep\n  x: " + "[" * 5000 + "]" * 5000 + "\n")
    expected = f"{path}:4: nested deeper than 64 levels"
    assert_one_line_error(slipway("--defs", str(defs_dir), "validate", home=home), expected)


def test_a_huge_definition_file_is_refused_by_its_size(home, defs_dir):
    (defs_dir / "huge").mkdir()
    path = defs_dir / "huge" / "defs.yaml"
    path.write_text("type: assets.Pipeline\nattributes:\n  name: huge\n" + "# padding\n" * 200_000)
    expected = f"{path}: {path.stat().st_size} bytes; a definition file may hold at most 1000000"
    assert_one_line_error(slipway("--defs", str(defs_dir), "validate", home=home), expected)


def test_many_errors_print_the_first_fifty_and_a_count(home, defs_dir):
    (defs_dir / "many").mkdir()
    path = defs_dir / "many" / "defs.yaml"
    datasets = "".join(f"    d{i}: {{source: {{generator: churn}}, colour: red}}\n" for i in range(300))
    path.write_text("type: assets.Pipeline\nattributes:\n  name: many\n  datasets:\n" + datasets)
    result = slipway("--defs", str(defs_dir), "validate", home=home)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = result.stderr.splitlines()
    assert len(errors) == 51, result.stderr[-500:]
    assert errors[0].startswith(f"error: {path}:5: pipeline many: datasets.d0: unknown key 'colour'; valid: ")
    assert errors[-1] == "error: ... and 250 more (`slipway --verbose` shows every one)"
    verbose = slipway("--verbose", "--defs", str(defs_dir), "validate", home=home)
    assert len([line for line in verbose.stderr.splitlines() if line.startswith("error: ")]) == 300
