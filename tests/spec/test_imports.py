"""Import paths from YAML are code execution: what may be named, checked before anything is imported."""

from __future__ import annotations

import sys
import textwrap

import pytest

from assets.spec.imports import ESTIMATOR, FUNCTION, check_allowed, resolve
from assets.spec.versions import code_version, source_file
from resources.errors import DefinitionError

ALLOWED = ["sklearn", "lightgbm", "definitions"]


def test_a_private_segment_is_refused_before_import():
    with pytest.raises(DefinitionError, match=r"names a private module or name \('_testing'\)"):
        check_allowed("sklearn.utils._testing.check_output", ALLOWED, "here", ESTIMATOR)
    with pytest.raises(DefinitionError, match=r"names a private module or name \('_helper'\)"):
        check_allowed("definitions.custom:_helper", ALLOWED, "here", FUNCTION)


def test_a_library_function_is_not_a_transform():
    with pytest.raises(
        DefinitionError, match="function 'sklearn.utils.validation:check_array' is in an installed library"
    ):
        check_allowed("sklearn.utils.validation:check_array", ALLOWED, "here", FUNCTION)
    # Listed by its full name, a library module's functions may be named.
    check_allowed("sklearn.utils.validation:check_array", [*ALLOWED, "sklearn.utils.validation"], "here", FUNCTION)


def test_an_estimator_must_be_an_estimator_class():
    with pytest.raises(DefinitionError, match="is not an estimator class"):
        resolve("sklearn.utils.check_array", ALLOWED, "here", ESTIMATOR)
    assert (
        resolve("sklearn.tree.DecisionTreeClassifier", ALLOWED, "here", ESTIMATOR).__name__ == "DecisionTreeClassifier"
    )


def test_a_re_exported_function_is_refused(tmp_path, monkeypatch):
    (tmp_path / "team_helpers.py").write_text("from os import remove\nfrom shutil import rmtree as wipe\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DefinitionError, match="must be a function defined in team_helpers"):
        resolve("team_helpers:remove", ["team_helpers"], "here", FUNCTION)
    with pytest.raises(
        DefinitionError, match=r"must be a function defined in team_helpers \(it is a function from shutil\)"
    ):
        resolve("team_helpers:wipe", ["team_helpers"], "here", FUNCTION)


def test_code_versions_import_nothing(tmp_path, monkeypatch):
    """A code version is computed when the code location loads (dg, the UI): it must not run a package's code."""
    package = tmp_path / "evilpkg"
    package.mkdir()
    marker = tmp_path / "imported"
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (package / "models.py").write_text(
        textwrap.dedent("""
        class Model:
            def fit(self, x, y): return self
            def predict(self, x): return x
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert source_file("evilpkg.models.Model") == package / "models.py"
    code_version("model", {"estimator": "evilpkg.models.Model"})
    assert not marker.exists() and "evilpkg" not in sys.modules
    with pytest.raises(DefinitionError, match="outside the stack's allow-list"):
        resolve("evilpkg.models.Model", ALLOWED, "here", ESTIMATOR)
    assert not marker.exists()
