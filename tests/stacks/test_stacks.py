"""Stack loading: file, environment overrides, precedence, errors that list valid choices."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from resources.errors import StackError
from stacks import load_stack, provenance
from stacks.build import instance_config


def write_stack(tmp_path: Path, text: str) -> str:
    path = tmp_path / "mystack.yaml"
    path.write_text(text)
    return str(path)


def test_local_stack_defaults_live_under_home(home):
    loaded = load_stack()
    assert loaded.name == "local"
    assert loaded.stack.experiment_tracker.tracking_uri == f"sqlite:///{home}/mlflow.db"
    assert loaded.stack.artifact_store.base_dir == f"{home}/artifacts"
    assert loaded.stack.instance.base_dir == f"{home}/dagster"
    assert instance_config(loaded.stack)["telemetry"] == {"enabled": False}


def test_env_overrides_file_and_file_overrides_defaults(home, monkeypatch, tmp_path):
    path = write_stack(
        tmp_path,
        "experiment_tracker: {type: mlflow, ui_url: http://file}\ndrift_detector: {type: statistical, bins: 7}\n",
    )
    loaded = load_stack(path)
    assert loaded.stack.experiment_tracker.ui_url == "http://file"
    assert loaded.stack.drift_detector.bins == 7
    assert loaded.stack.model_registry.type == "mlflow"  # default
    monkeypatch.setenv("SLIPWAY_EXPERIMENT_TRACKER__UI_URL", "http://env")
    loaded = load_stack(path)
    assert loaded.stack.experiment_tracker.ui_url == "http://env"
    assert loaded.stack.drift_detector.bins == 7  # the file's value survives a sibling override
    sources = provenance(loaded)
    assert sources["experiment_tracker.ui_url"] == "env SLIPWAY_EXPERIMENT_TRACKER__UI_URL"
    assert sources["drift_detector.bins"] == "mystack.yaml:2"
    assert sources["model_registry.type"] == "default"


def test_explicit_overrides_beat_env(home, monkeypatch):
    monkeypatch.setenv("SLIPWAY_DRIFT_DETECTOR__BINS", "5")
    assert load_stack().stack.drift_detector.bins == 5
    assert load_stack(overrides={"drift_detector": {"bins": 9}}).stack.drift_detector.bins == 9


def test_slipway_stack_env_picks_the_file(home, monkeypatch, tmp_path):
    monkeypatch.setenv("SLIPWAY_STACK", write_stack(tmp_path, "allowed_imports: [sklearn]\n"))
    assert load_stack().stack.allowed_imports == ["sklearn"]


def test_unknown_component_type_lists_valid_ones(home, tmp_path):
    path = write_stack(tmp_path, "orchestrator: {type: in_process}\nexperiment_tracker: {type: mlfow}\n")
    with pytest.raises(
        StackError,
        match=re.escape(
            f"{path}:2: stack {path}: experiment_tracker: unknown type 'mlfow'; did you mean 'mlflow'? (valid: mlflow, mlflow_server)"
        ),
    ):
        load_stack(path)


def test_unknown_component_and_key(home, tmp_path):
    path = write_stack(tmp_path, "orchestrator: {type: in_process}\nexperiment_traker: {type: mlflow}\n")
    with pytest.raises(
        StackError,
        match=re.escape(
            f"{path}:2: stack {path}: unknown component 'experiment_traker'; did you mean 'experiment_tracker'? (valid: alerter, allowed_imports, artifact_store"
        ),
    ):
        load_stack(path)
    path = write_stack(tmp_path, "drift_detector: {type: statistical}\nartifact_store: {type: local, bucket: x}\n")
    with pytest.raises(
        StackError,
        match=re.escape(f"{path}:2: stack {path}: artifact_store: unknown key 'bucket' (valid: base_dir, type)"),
    ):
        load_stack(path)
    path = write_stack(tmp_path, "instance: {storage: sqlite, basedir: /x}\n")
    with pytest.raises(
        StackError,
        match=re.escape(
            f"{path}:1: stack {path}: instance: unknown key 'basedir'; did you mean 'base_dir'? (valid: base_dir, capture_compute_logs, storage)"
        ),
    ):
        load_stack(path)
    path = write_stack(tmp_path, "drift_detector: {bins: 3}\n")
    with pytest.raises(
        StackError, match=re.escape(f"{path}:1: stack {path}: drift_detector: missing `type` (valid: statistical)")
    ):
        load_stack(path)


def test_missing_stack_suggests(home):
    with pytest.raises(StackError, match=r"no such stack 'locl'; did you mean 'local'\? \(stacks: k8s, local\)"):
        load_stack("locl")


def test_malformed_stack_yaml(home, tmp_path):
    path = write_stack(tmp_path, "orchestrator: {type: in_process\n")
    with pytest.raises(StackError, match=re.escape(f"{path}:2: malformed YAML")):
        load_stack(path)


def test_a_bad_environment_override_is_blamed_on_the_variable_not_a_file_line(home, monkeypatch):
    monkeypatch.setenv("SLIPWAY_EXPERIMENT_TRACKER__TRAKING_URI", "sqlite:///x.db")
    with pytest.raises(StackError) as raised:
        load_stack()
    assert str(raised.value) == (
        "env SLIPWAY_EXPERIMENT_TRACKER__TRAKING_URI: stack local: experiment_tracker: unknown key 'traking_uri'; "
        "did you mean 'tracking_uri'? (valid: artifact_location, serialization, skops_trusted_types, tracking_uri, "
        "type, ui_url)"
    )
    monkeypatch.delenv("SLIPWAY_EXPERIMENT_TRACKER__TRAKING_URI")
    monkeypatch.setenv("SLIPWAY_DATA_VALIDATOR__RESULT_FORMAT", "FULL")
    with pytest.raises(StackError, match=re.escape("env SLIPWAY_DATA_VALIDATOR__RESULT_FORMAT: stack local: data_")):
        load_stack()


def test_an_override_of_an_unknown_component_is_an_error_not_ignored(home, monkeypatch):
    monkeypatch.setenv("SLIPWAY_EXPERIMENT_TRAKER__TRACKING_URI", "sqlite:///x.db")
    with pytest.raises(
        StackError,
        match=re.escape(
            "env SLIPWAY_EXPERIMENT_TRAKER__TRACKING_URI: stack local: unknown component 'experiment_traker'; "
            "did you mean 'experiment_tracker'?"
        ),
    ):
        load_stack()


def test_the_alerter_is_log_by_default_and_a_webhook_by_environment(home, monkeypatch):
    from resources.alerts import LogAlerter, WebhookAlerter
    from stacks.build import build_resources

    assert isinstance(build_resources(load_stack().stack)["alerter"], LogAlerter)
    monkeypatch.setenv("SLIPWAY_ALERTER__TYPE", "webhook")
    monkeypatch.setenv("SLIPWAY_ALERTER__URL_ENV", "TEAM_HOOK")
    monkeypatch.setenv("SLIPWAY_ALERTER__RETRIES", "4")
    alerter = build_resources(load_stack().stack)["alerter"]
    assert isinstance(alerter, WebhookAlerter) and (alerter.url_env, alerter.retries) == ("TEAM_HOOK", 4)


def test_a_webhook_url_cannot_sit_in_the_stack_file(home, tmp_path):
    path = tmp_path / "mystack.yaml"
    path.write_text("alerter: {type: webhook, url_env: 'https://hooks.slack.com/services/T0/B0/x'}\n")
    with pytest.raises(StackError, match=r"mystack.yaml:1: .*alerter.url_env: String should match pattern") as err:
        load_stack(str(path))
    assert "hooks.slack.com" not in str(err.value)
    path.write_text("alerter: {type: webhook, url: 'https://hooks.slack.com/services/T0/B0/x'}\n")
    with pytest.raises(StackError, match="url"):
        load_stack(str(path))


# --- the registry of implementations ----------------------------------------------------------


def test_every_role_s_union_is_the_registry_s_implementations():
    import typing

    from stacks.config import COMPONENT_TYPES, StackFields

    for role, types in COMPONENT_TYPES.items():
        annotation = StackFields.model_fields[role].annotation
        members = set(typing.get_args(annotation)) or {annotation}
        assert members == set(types.values()), role


def test_each_implementation_s_settings_are_declared_once_and_shared_with_its_resource():
    import importlib

    from stacks.config import COMPONENT_TYPES

    for role, types in COMPONENT_TYPES.items():
        for name, config in types.items():
            if not config.resource:
                continue
            module, _, cls = config.resource.partition(":")
            resource = getattr(importlib.import_module(module), cls)
            settings = set(config.model_fields) - {"type"}
            assert settings <= set(resource.model_fields), f"{role}.{name}"
            # Inherited from the same settings class, not written twice.
            shared = [b for b in config.__mro__ if b in resource.__mro__ and b.__module__ == "resources.settings"]
            assert shared and settings <= set(shared[0].model_fields), f"{role}.{name}"


def test_the_k8s_stack_loads_offline_and_builds_its_implementations(home, monkeypatch):
    from resources.artifacts import S3ArtifactStore
    from resources.tracker import MlflowTracker
    from stacks.build import build_resources

    monkeypatch.delenv("DAGSTER_PG_PASSWORD", raising=False)
    loaded = load_stack("k8s")
    stack = loaded.stack
    assert (stack.orchestrator.type, stack.instance.storage, stack.artifact_store.type) == ("k8s_job", "postgres", "s3")
    resources = build_resources(stack)
    assert isinstance(resources["io_manager"], S3ArtifactStore) and resources["io_manager"].bucket == "slipway"
    tracker = resources["experiment_tracker"]
    assert isinstance(tracker, MlflowTracker) and tracker.tracking_uri == tracker.ui_url == "http://slipway-mlflow:5000"
    assert tracker.artifact_location is None  # the server's (S3) destination
    assert stack.orchestrator.executor().name == "k8s_job"
    # The password is named, never written: Dagster reads it from the environment.
    database = instance_config(stack)["storage"]["postgres"]["postgres_db"]
    assert database["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    # Opening the instance needs it, and says so.
    from stacks.build import prepare_instance

    with pytest.raises(
        StackError, match=r"instance.password_env: the environment variable DAGSTER_PG_PASSWORD is not set"
    ):
        prepare_instance(stack)


def test_a_variable_the_stack_file_uses_but_nobody_set_is_named_with_its_line(home, tmp_path, monkeypatch):
    monkeypatch.delenv("TEAM_BUCKET", raising=False)
    path = write_stack(
        tmp_path, "drift_detector: {type: statistical}\nartifact_store: {type: s3, bucket: '${TEAM_BUCKET}'}\n"
    )
    with pytest.raises(
        StackError, match=re.escape(f"{path}:2: stack {path}: artifact_store.bucket: ${{TEAM_BUCKET}} is not set")
    ):
        load_stack(path)
    monkeypatch.setenv("TEAM_BUCKET", "team-models")
    assert load_stack(path).stack.artifact_store.bucket == "team-models"
    monkeypatch.setenv("TEAM_BUCKET", "Not A Bucket")  # valid only after expansion: still checked
    with pytest.raises(StackError, match=r"artifact_store.bucket: String should match pattern"):
        load_stack(path)


def test_a_tracking_server_url_with_a_password_is_refused(home, tmp_path):
    path = write_stack(
        tmp_path, "experiment_tracker: {type: mlflow_server, tracking_uri: 'http://ml:hunter2@mlflow:5000'}\n"
    )
    with pytest.raises(StackError) as caught:
        load_stack(path)
    assert "MLFLOW_TRACKING_PASSWORD" in str(caught.value)


def test_an_unreachable_postgres_instance_is_one_line_naming_it(home, tmp_path, monkeypatch):
    from mlflow_server import free_port

    from stacks.build import open_instance

    port = free_port()
    monkeypatch.setenv("PG_SECRET", "hunter2-secret")
    path = write_stack(
        tmp_path,
        f"instance: {{storage: postgres, hostname: 127.0.0.1, port: {port}, db_name: d, username: u, password_env: PG_SECRET}}\n",
    )
    from resources.errors import ResourceError

    with pytest.raises(ResourceError) as caught:
        open_instance(load_stack(path).stack)
    message = str(caught.value)
    assert message.startswith(f"dagster instance (postgresql://u@127.0.0.1:{port}/d): cannot open it after ")
    assert "hunter2" not in message and "\n" not in message


def test_switching_a_type_from_the_environment_keeps_none_of_the_file_s_old_keys(home, monkeypatch):
    monkeypatch.setenv("SLIPWAY_EXPERIMENT_TRACKER__TYPE", "mlflow_server")
    monkeypatch.setenv("SLIPWAY_EXPERIMENT_TRACKER__TRACKING_URI", "http://mlflow:5000")
    loaded = load_stack()
    tracker = loaded.stack.experiment_tracker
    # local.yaml's local artifact folder and localhost UI are not carried over to the server.
    assert (tracker.type, tracker.artifact_location, tracker.ui_url) == ("mlflow_server", None, "http://mlflow:5000")
    assert provenance(loaded)["experiment_tracker.artifact_location"] == "default"
    monkeypatch.setenv("SLIPWAY_EXPERIMENT_TRACKER__ARTIFACT_LOCATION", "/home/me/mlartifacts")
    with pytest.raises(StackError, match=r"env SLIPWAY_EXPERIMENT_TRACKER__ARTIFACT_LOCATION: .*String should match"):
        load_stack()


def test_an_instance_override_without_storage_is_sqlite(home, monkeypatch, tmp_path):
    monkeypatch.setenv("SLIPWAY_INSTANCE__BASE_DIR", str(tmp_path / "d"))
    stack = load_stack(write_stack(tmp_path, "drift_detector: {type: statistical}\n")).stack
    assert (stack.instance.storage, stack.instance.base_dir) == ("sqlite", str(tmp_path / "d"))


def test_no_credentials_in_an_s3_endpoint_or_postgres_params(home, tmp_path):
    bad_endpoint = write_stack(
        tmp_path, "artifact_store: {type: s3, bucket: b-1, endpoint_url: 'http://k:s3cret@minio:9000'}\n"
    )
    with pytest.raises(StackError, match=r"artifact_store.endpoint_url: String should match pattern"):
        load_stack(bad_endpoint)
    bad_params = write_stack(tmp_path, "instance: {storage: postgres, params: {password: s3cret}}\n")
    with pytest.raises(StackError, match=r"params.password: a password is never a setting"):
        load_stack(bad_params)


def test_a_pod_per_step_needs_stores_every_pod_shares(home, tmp_path):
    path = write_stack(tmp_path, "orchestrator: {type: k8s_job}\nartifact_store: {type: s3, bucket: b-1}\n")
    with pytest.raises(StackError, match=r"instance.storage: the k8s_job orchestrator runs each step in a pod"):
        load_stack(path)


def test_a_variable_may_have_a_default_and_a_pod_size_may_be_an_unquoted_number(home, tmp_path, monkeypatch):
    monkeypatch.delenv("TEAM_PREFIX", raising=False)
    path = write_stack(tmp_path, "artifact_store: {type: s3, bucket: b-1, prefix: '${TEAM_PREFIX:-shared}/x'}\n")
    assert load_stack(path).stack.artifact_store.prefix == "shared/x"
    monkeypatch.setenv("TEAM_PREFIX", "ml")
    assert load_stack(path).stack.artifact_store.prefix == "ml/x"

    from assets.spec.compute import ComputeResources, op_tags

    sized = ComputeResources.model_validate({"cpu": 2, "memory": "1Gi", "cpu_limit": 2.5})
    assert (sized.cpu, sized.cpu_limit) == ("2", "2.5")
    # A limit alone is the request too (the chart's default request could be above it).
    alone = op_tags(ComputeResources(cpu_limit="250m"))["dagster-k8s/config"]["container_config"]["resources"]
    assert alone == {"requests": {"cpu": "250m"}, "limits": {"cpu": "250m"}}
    with pytest.raises(ValueError, match="gpu"):
        ComputeResources.model_validate({"gpu": True})


def test_one_underscore_where_two_belong_is_refused_not_ignored(home, monkeypatch, tmp_path):
    monkeypatch.setenv("SLIPWAY_DRIFT_DETECTOR_BINS", "20")
    with pytest.raises(
        StackError, match=r"env SLIPWAY_DRIFT_DETECTOR_BINS: .* two underscores: SLIPWAY_DRIFT_DETECTOR__BINS"
    ):
        load_stack()
    # A variable the stack file reads by name is the file's business.
    monkeypatch.delenv("SLIPWAY_DRIFT_DETECTOR_BINS")
    monkeypatch.setenv("SLIPWAY_ARTIFACT_STORE_BUCKET", "team-b")
    path = write_stack(tmp_path, "artifact_store: {type: s3, bucket: '${SLIPWAY_ARTIFACT_STORE_BUCKET}'}\n")
    assert load_stack(path).stack.artifact_store.bucket == "team-b"
