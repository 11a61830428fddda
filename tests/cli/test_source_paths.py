"""A file source reads the files of its project (or of SLIPWAY_HOME, or of a folder the stack lists), nothing else.

Its path expands no environment variable but ``${SLIPWAY_HOME}``, so no error, log or record can
carry a secret through it; no error quotes a line of the data it could not read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from summary_rows import rows
from test_cli import assert_one_line_error, slipway

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

PIPELINE = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: "PATH"}
"""


def _write(defs_dir: Path, path: str, files: dict[str, str] | None = None) -> Path:
    folder = defs_dir / "shop"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "defs.yaml").write_text(PIPELINE.lstrip().replace("PATH", path))
    for name, text in (files or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder / "defs.yaml"


def _outside(path: Path, shown: str, root: Path, command: str = "run") -> str:
    said = "pipeline shop: dataset orders" if command == "validate" else "pipeline shop, dataset orders"
    return (
        f"{path}:6: {said}: source path {shown!r} leads outside the project ({root}); "
        "a file source reads the files of its project, of SLIPWAY_HOME, or of a folder the stack lists in data_roots"
    )


def _stored_bytes(home: Path) -> bytes:
    """Every byte Dagster's and MLflow's SQLite files and the artifact store hold under ``home``."""
    found = b""
    for file in home.rglob("*") if home.exists() else []:
        if file.is_file():
            found += file.read_bytes()
    return found


def test_a_system_file_is_never_read_by_an_absolute_or_a_relative_path(home, defs_dir):
    passwd = Path("/etc/passwd").read_text().splitlines()[0]
    for given in ("/etc/passwd", "../../../../../../../../etc/passwd"):
        path = _write(defs_dir, given)
        for command in ("validate", "run"):
            result = slipway("--defs", str(defs_dir), command, home=home)
            assert_one_line_error(result, _outside(path, given, defs_dir, command))
            assert passwd not in result.stdout + result.stderr
    assert passwd.encode() not in _stored_bytes(home)


def test_a_link_inside_the_project_that_leads_out_is_refused(home, defs_dir):
    path = _write(defs_dir, "data/*.csv")
    (path.parent / "data").mkdir()
    (path.parent / "data" / "a.csv").symlink_to("/etc/passwd")
    for command, said in (("validate", "pipeline shop: dataset orders"), ("run", "pipeline shop, dataset orders")):
        expected = (
            f"{path}:6: {said}: data/a.csv is a link that leads outside the project ({defs_dir}); a file source "
            "reads the files of its project, of SLIPWAY_HOME, or of a folder the stack lists in data_roots"
        )
        assert_one_line_error(slipway("--defs", str(defs_dir), command, home=home), expected)


def test_an_environment_variable_in_a_path_is_refused_and_its_value_never_shown(home, defs_dir):
    secret = "postgresql://crm:hunter2-path@db.internal:5432/crm"
    path = _write(defs_dir, "data/${CRM_DATABASE_URL}.csv")
    expected = (
        f"{path}:6: pipeline shop: datasets.orders.source.path: only ${{SLIPWAY_HOME}} is expanded in a path; "
        "$CRM_DATABASE_URL is not (a path never reads the environment)"
    )
    for command in ("validate", "run"):
        result = slipway("--defs", str(defs_dir), command, home=home, env={"CRM_DATABASE_URL": secret})
        assert_one_line_error(result, expected)
        assert "hunter2" not in result.stdout + result.stderr
    for given in ("data/$API_TOKEN.csv", "data/~${HOME}/x.csv"):
        _write(defs_dir, given)
        result = slipway("--defs", str(defs_dir), "run", home=home, env={"API_TOKEN": "tok-hunter2"})
        assert result.returncode == 1 and "hunter2" not in result.stdout + result.stderr
        assert "only ${SLIPWAY_HOME} is expanded in a path" in result.stderr
    assert b"hunter2" not in _stored_bytes(home)


def test_slipway_home_and_a_data_root_of_the_stack_are_readable(home, defs_dir, tmp_path):
    landing = tmp_path / "mnt" / "landing"
    landing.mkdir(parents=True)
    pd.DataFrame({"a": [1, 2, 3]}).to_csv(landing / "orders.csv", index=False)
    path = _write(defs_dir, str(landing / "orders.csv"))
    assert_one_line_error(
        slipway("--defs", str(defs_dir), "validate", home=home),
        _outside(path, str(landing / "orders.csv"), defs_dir, "validate"),
    )
    roots = {"SLIPWAY_DATA_ROOTS": json.dumps([str(tmp_path / "mnt")])}
    assert slipway("--defs", str(defs_dir), "validate", home=home, env=roots).returncode == 0
    result = slipway("--defs", str(defs_dir), "run", home=home, env=roots)
    assert result.returncode == 0, result.stderr

    (home / "inbox").mkdir(parents=True)
    pd.DataFrame({"a": [4]}).to_csv(home / "inbox" / "orders.csv", index=False)
    _write(defs_dir, "${SLIPWAY_HOME}/inbox/orders.csv")
    result = slipway("--defs", str(defs_dir), "run", home=home)
    assert result.returncode == 0, result.stderr


def test_a_file_that_does_not_parse_is_refused_without_quoting_its_lines(home, defs_dir):
    line = "root:x:0:0:the-secret-line:/root:/bin/bash"
    _write(defs_dir, "data/orders.csv", {"data/orders.csv": f"a,b\n1,2\n{line},3,4\n"})
    assert slipway("--defs", str(defs_dir), "validate", home=home).returncode == 0  # its header is fine
    result = slipway("--defs", str(defs_dir), "run", home=home)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    said = " ".join(rows(result.stdout))  # the summary's details wrap
    assert "cannot read as csv: CSV parse error: Expected 2 columns, got 3 (the row is not shown)" in said
    assert "the-secret-line" not in result.stdout + result.stderr
    assert b"the-secret-line" not in _stored_bytes(home)  # nor in Dagster's event log, nor any alert
