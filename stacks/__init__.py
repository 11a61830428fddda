"""Stack profiles (``local.yaml``, …) and the code that loads, validates and builds them."""

from stacks.loader import LoadedStack, Stack, load_stack, provenance, slipway_home, stack_name

__all__ = ["LoadedStack", "Stack", "load_stack", "provenance", "slipway_home", "stack_name"]
