"""Pipeline definitions: one folder per pipeline, each with a ``defs.yaml``."""
