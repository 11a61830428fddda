"""The definition model: what a pipeline's YAML says, checked before anything runs.

The schema and its loading, the graph of datasets and models, import paths and estimator
signatures, preflight checks of columns and files, metric names, code and data versions, compute
tags and the lineage of the code (git, lock file). The lowest layer of ``assets``: it imports no
other sub-package, and no Dagster or MLflow at import time where it can be avoided.
"""
