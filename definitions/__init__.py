"""The Slipway code location: declared pipelines (``defs/``), the ``slipway`` CLI and its commands."""
