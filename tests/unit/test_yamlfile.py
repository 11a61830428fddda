"""libyaml (when PyYAML has it) reads definitions exactly as the pure-Python loader does."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from resources import yamlfile

REPO = Path(__file__).resolve().parents[2]
TRICKY = [
    "a: 1\nb: [1, 2.5, 'x', \"y\"]\nc: {d: null, e: ~, f: true, g: 0x10, h: 1e3}\n",
    "sql: |\n  select *\n  from t   \n\nnext: >\n  folded\n  text\n",
    "# only a comment\n",
    "list:\n- a\n-   b: 1\n    c: [x, {y: z}]\n",
    "anchors: &a {x: 1}\nref: *a\ndates: 2024-01-02\nstr: '2024-01-02'\n",
    "unicode: 'ünïcödé ✓'\nempty: ''\n",
]


@pytest.mark.skipif(yamlfile._FAST is None, reason="PyYAML without libyaml: the pure-Python loader is the only one")
@pytest.mark.parametrize(
    "text",
    TRICKY + [p.read_text() for p in sorted([*REPO.glob("definitions/defs/*/defs.yaml"), *REPO.glob("stacks/*.yaml")])],
)
def test_libyaml_gives_the_same_documents_and_lines(text):
    assert yamlfile._FAST is not None
    assert yamlfile._parse(yamlfile._FAST, text) == yamlfile._parse(yaml.SafeLoader, text)


def test_a_refused_document_keeps_the_pure_python_message():
    with pytest.raises(yaml.MarkedYAMLError, match=r"found character '\\t' that cannot start any token"):
        yamlfile.load_with_lines("a:\n\t- x\n")
