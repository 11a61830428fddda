"""Stack components: Dagster resources behind small abstract roles.

Each role is an abstract ``ConfigurableResource`` (a noun: ``ExperimentTracker``); each
implementation adds a prefix (``MlflowTracker``) and is named in stack YAML by the same name in
snake_case (``type: mlflow``). Modules are imported lazily by the stack builder so that a
command that needs no MLflow or Great Expectations never imports them.
"""

from resources.errors import DataError, DefinitionError, ResourceError, SlipwayError, StackError

__all__ = ["DataError", "DefinitionError", "ResourceError", "SlipwayError", "StackError"]
