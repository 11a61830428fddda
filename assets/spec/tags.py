"""The names Slipway reads and writes in Dagster's record, in one place.

Dagster's own tags on a materialization (code version, data version, each input's data version)
and Slipway's: the metadata entry holding a model's retrain policy, and the tags a retraining run
carries (its trigger and reason, copied to MLflow by the training).
"""

from __future__ import annotations

CODE_VERSION_TAG = "dagster/code_version"
DATA_VERSION_TAG = "dagster/data_version"
INPUT_VERSION_PREFIX = "dagster/input_data_version/"

RETRAIN_METADATA = "slipway/retrain"
TRIGGER_TAG = "slipway/retrain_trigger"
REASON_TAG = "slipway/retrain_reason"

#: On an alias source asset: the ``registered_model@alias`` whose version it observes.
ALIAS_METADATA = "slipway/alias"
#: On a predictions asset: the ``registered_model@alias`` that scores it. Of its inputs, only
#: the alias source and the dataset make it stale, not the model asset's latest training.
PREDICTIONS_METADATA = "slipway/predictions"
#: On a served-traffic source asset: the ``registered_model`` whose served rows it observes.
SERVED_METADATA = "slipway/served"
#: On a model asset that declares ``serve:``: the block, as JSON (its canary and shadow).
SERVE_METADATA = "slipway/serve"
