"""The command line reads as people type it: options after the command, help that says what a command does."""

from __future__ import annotations

import pytest
from test_cli import ORDERS, slipway

# Runs whole pipelines or the CLI in processes of its own: the full tier (CI), not the fast one.
pytestmark = pytest.mark.slow

SHOP = """
type: assets.Pipeline
attributes:
  name: shop
  datasets:
    orders:
      source: {path: data/orders.csv}
"""

COMMANDS = [
    ["validate"],
    ["run"],
    ["plan"],
    ["repro"],
    ["dev"],
    ["demo"],
    ["demo", "drift"],
    ["stack"],
    ["stack", "show"],
]


def test_global_options_are_accepted_after_the_command_too(home, write_pipeline, defs_dir):
    before = slipway("--stack", "k8s", "validate", home=home)
    after = slipway("validate", "--stack", "k8s", home=home)
    assert before.returncode == 0, before.stderr
    assert after.returncode == 0, after.stderr
    assert after.stdout == before.stdout and "stack k8s: ok" in after.stdout
    write_pipeline("shop", SHOP, ORDERS)
    elsewhere = slipway("validate", "--defs", str(defs_dir), "--verbose", home=home)
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert "pipeline shop: ok" in elsewhere.stdout and "pipeline churn" not in elsewhere.stdout
    # Given on both sides, the one after the command wins.
    both = slipway("--stack", "k8s", "validate", "--stack", "local", home=home)
    assert both.returncode == 0 and "stack local: ok" in both.stdout, both.stdout + both.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_each_command_help_says_what_it_does(home, command):
    shown = slipway(*command, "--help", home=home)
    assert shown.returncode == 0, shown.stderr
    # argparse prints the usage, then the description, if there is one, before the arguments.
    after_usage = shown.stdout.split("\n\n")[1]
    assert not after_usage.startswith(("positional arguments:", "options:")), shown.stdout


def test_dev_help_shows_the_default_ports(home):
    shown = slipway("dev", "--help", home=home)
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "Dagster UI port (default: 3000)" in text, shown.stdout
    assert "5000 on the local stack" in text, shown.stdout
