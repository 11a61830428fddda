"""Any folder is a home, or is refused in one line before anything is written beside it."""

from __future__ import annotations

import pytest
from test_cli import assert_one_line_error, slipway

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["run#1", "q?x=1", "%41"])
def test_a_home_with_url_syntax_is_refused_and_nothing_is_left_beside_it(tmp_path, name):
    parent = tmp_path / "homes"
    parent.mkdir()
    home = parent / name
    for command in (["run", "houses"], ["validate"], ["stack", "show"]):
        result = slipway(*command, home=home)
        assert_one_line_error(
            result,
            f"SLIPWAY_HOME={home}: a home may not hold '?', '#' or '%' (the SQLite URLs of Dagster and MLflow "
            "would read them as URL syntax); choose another folder",
        )
    assert list(parent.iterdir()) == []


def test_a_home_that_is_a_file_is_refused_in_one_line(tmp_path):
    home = tmp_path / "home"
    home.write_text("not a folder")
    assert_one_line_error(slipway("run", "houses", home=home), f"SLIPWAY_HOME={home} is a file, not a folder")
    inside = home / "deeper"
    assert_one_line_error(
        slipway("run", "houses", home=inside), f"SLIPWAY_HOME={inside}: {home} is a file, not a folder"
    )


@pytest.mark.parametrize("name", ["sp ace quo'te;x", "ünï@x:y[a]"])
def test_a_home_with_other_characters_works(tmp_path, name):
    parent = tmp_path / "homes"
    parent.mkdir()
    home = parent / name
    result = slipway("run", "houses", home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "houses/price_model" in result.stdout
    again = slipway("run", "houses", home=home)
    assert again.returncode == 0 and "reused" in again.stdout, again.stdout
    assert [p.name for p in parent.iterdir()] == [name]
