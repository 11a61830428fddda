"""What MLflow's errors mean to Slipway, and the one retry they call for.

MLflow's SQL store sets a tag, an alias or a dataset by reading the row and inserting it when
absent: two writers at once both insert, and the second fails on the table's unique key
(reported as RESOURCE_ALREADY_EXISTS, or as a bad request carrying the database's words).
Tried again, the row exists and is updated. Shared by the tracker and the registry.
"""

from __future__ import annotations

from typing import Any


def already_exists(exc: BaseException) -> bool:
    """True when the store refused a create because the row was created meanwhile."""
    code = getattr(exc, "error_code", None)
    if code is not None:
        from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

        if code == ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            return True
    # A unique key violated inside a store that reports it as a bad request (SQLite, PostgreSQL).
    text = str(exc)
    return "UNIQUE constraint failed" in text or "duplicate key value violates unique constraint" in text


def not_found(exc: BaseException) -> bool:
    """True when MLflow answered that what was asked for does not exist."""
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    return bool(getattr(exc, "error_code", None) == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST))


def retried(write: Any, *args: Any) -> Any:
    """Call ``write`` (a set-or-create of one row), again if it lost a race to create the row."""
    from mlflow.exceptions import MlflowException

    for attempt in range(3):
        try:
            return write(*args)
        except MlflowException as exc:
            if attempt == 2 or not already_exists(exc):
                raise
    return None


def registered(client: Any, name: str) -> Any:
    """The registered model ``name``, or None when it does not exist (any other error raises)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if not_found(exc):
            return None
        raise
