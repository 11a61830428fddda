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


def test_aliases_within_the_bound_are_read_and_lined():
    text = "base: &b {x: 1, y: [1, 2]}\na: *b\nb: *b\n"
    document, lines = yamlfile.load_with_lines(text)
    assert document == {"base": {"x": 1, "y": [1, 2]}, "a": {"x": 1, "y": [1, 2]}, "b": {"x": 1, "y": [1, 2]}}
    assert lines[("b", "y")] == 1  # the alias's values keep the lines of what it names


@pytest.fixture
def memory_cap():
    """This process may take 1 GB more address space while the test runs: memory without bound fails fast."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    in_use = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (in_use + 2**30, hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("loader", ["fast", "pure"])
def test_an_alias_bomb_is_refused_before_it_is_expanded(loader, monkeypatch, memory_cap):
    if loader == "pure":
        monkeypatch.setattr(yamlfile, "_FAST", None)
    text = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]\n" for n in range(1, 12)
    )
    with pytest.raises(yaml.MarkedYAMLError, match="its aliases expand it to more than 100000 values") as info:
        yamlfile.load_with_lines(text)
    assert info.value.problem_mark.line + 1 == 5  # l4, the first past the bound: 111,111 values


def test_nesting_is_bounded_without_recursion(memory_cap):
    with pytest.raises(yaml.MarkedYAMLError, match="nested deeper than 64 levels"):
        yamlfile.load_with_lines("a: " + "[" * 100_000 + "]" * 100_000)
    assert yamlfile.load_with_lines("a: " + "[" * 63 + "]" * 63)[0]["a"] is not None
