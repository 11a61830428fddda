"""A module that fails when imported (a transform module with a bug at its top level)."""

raise RuntimeError("boom at import")
