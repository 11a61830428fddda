"""The Helm chart's values, typed: the models behind ``helm/slipway/values.schema.json``.

The chart's ``stack:`` section is :class:`stacks.config.StackFields`, the model that validates
stack files, so ``helm lint`` refuses what ``slipway`` would refuse. The rest describes the
deployment around it (image, code server, MLflow server, secrets by reference). Every field is
required: ``values.yaml`` holds the defaults (and reads as their documentation), Helm merges a
user's values over it, and the schema checks the result.

Regenerate the schema after changing a model (or the stack's)::

    python -m stacks.chart --write      # writes helm/slipway/values.schema.json
    python -m stacks.chart --check      # exits 1 when the committed file is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from stacks import json_schema
from stacks.config import StackFields

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "helm" / "slipway" / "values.schema.json"

#: A Kubernetes quantity (``250m``, ``1.5``, ``2Gi``); a bare number is read as one too.
Quantity = (
    Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")]
    | Annotated[float, Field(ge=0)]
)
# Every string a template puts in a manifest is quoted there, and every one that Kubernetes or a
# command line gives a meaning is held to its grammar here, so a bad value is refused with its
# path before it reaches a manifest (a newline in image.tag once added a postStart command).
# The patterns are RE2 (Helm) and Rust regex (pydantic) alike: `$` is the end of the text, and
# `.` never matches a newline.
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$")]
#: A Kubernetes object name (DNS-1123 subdomain), or empty for "none".
ObjectName = Annotated[str, StringConstraints(pattern=r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)?$")]
#: A DNS-1123 label (what a release-derived object name is made of), or empty for "the default".
NameOverride = Annotated[str, StringConstraints(pattern=r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$")]
SecretKey = Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z0-9]+$")]
_LABEL_KEY = (
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
#: A label or annotation key: a qualified name with an optional DNS-subdomain prefix (example.com/name).
LabelKey = Annotated[str, StringConstraints(pattern=rf"^{_LABEL_KEY}$")]
#: A label value: up to 63 letters, digits, `-`, `_` and `.`, starting and ending alphanumeric; may be empty.
LabelValue = Annotated[str, StringConstraints(pattern=r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")]
_REPOSITORY_PART = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?"
#: An image repository as the container runtime parses it (distribution/reference): an optional
#: registry host and port, then lowercase path components; no tag or digest (those are their own values).
Repository = Annotated[
    str,
    StringConstraints(
        pattern=rf"^({_DOMAIN_PART}(\.{_DOMAIN_PART})*(:[0-9]+)?/)?{_REPOSITORY_PART}(/{_REPOSITORY_PART})*$"
    ),
]
Port = Annotated[
    int, Field(ge=1024, le=65535, description="Container and Service port (1024+: the pods run as non-root).")
]


class _Values(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class Image(_Values):
    """The Slipway image (see the repository's Dockerfile): the code server, run and step pods, MLflow."""

    repository: Repository = Field(description="Image repository (registry.example.com/team/slipway; no tag).")
    tag: str = Field(
        pattern=r"^([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$", description="Image tag; the chart's appVersion when empty."
    )
    digest: str = Field(
        pattern=r"^(sha256:[a-f0-9]{64})?$", description="Image digest (sha256:…); used instead of the tag when set."
    )
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(description="Kubernetes imagePullPolicy.")


class ServiceAccount(_Values):
    """The service account of the code server, MLflow, and the run and step pods."""

    create: bool = Field(description="Create it; otherwise use an existing one named `name`.")
    name: ObjectName = Field(description="Its name; the release's full name when empty.")
    annotations: dict[LabelKey, str] = Field(description="Annotations, e.g. a cloud IAM role for S3 access.")


class Rbac(_Values):
    """The Role that lets run pods launch one Job per step (k8s_job orchestrator), in this namespace only."""

    create: bool = Field(description="Create the Role and RoleBinding.")


class SecurityContext(_Values):
    """The user every Slipway container runs as. Never root: runAsNonRoot, no privilege escalation, no capabilities."""

    run_as_user: int = Field(ge=1, description="UID (the image's `slipway` user is 10001).")
    run_as_group: int = Field(ge=1, description="GID.")
    fs_group: int = Field(ge=1, description="Group owning mounted volumes.")
    read_only_root_filesystem: bool = Field(
        description="Read-only image file system; /tmp and SLIPWAY_HOME are emptyDir volumes."
    )


class SecretRef(_Values):
    """One key of an existing Secret (the chart never holds a secret's value)."""

    name: ObjectName = Field(description="Secret name; empty: not used.")
    key: SecretKey = Field(description="Key inside the Secret.")


class S3Secret(_Values):
    """An existing Secret with S3 credentials, exposed as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."""

    name: ObjectName = Field(description="Secret name; empty: credentials come from the pod's IAM role.")
    access_key_id_key: SecretKey = Field(description="Key holding the access key id.")
    secret_access_key_key: SecretKey = Field(description="Key holding the secret access key.")


class SecretEnv(_Values):
    """An environment variable read from an existing Secret."""

    env: EnvName = Field(description="Environment variable name.")
    name: ObjectName = Field(min_length=1, description="Secret name.")
    key: SecretKey = Field(description="Key inside the Secret.")


class Secrets(_Values):
    """Secrets by reference; each is given to the code server and to every run and step pod."""

    postgres: SecretRef = Field(
        description="Password of the Dagster instance's PostgreSQL (stack instance.storage: postgres), "
        "exposed as stack instance.password_env."
    )
    s3: S3Secret = Field(description="Credentials of the S3-compatible store (artifact store and MLflow artifacts).")
    alert_webhook: SecretRef = Field(
        description="Webhook URL (stack alerter.type: webhook), exposed as stack alerter.url_env."
    )
    extra: list[SecretEnv] = Field(description="More environment variables from Secrets.")


class ResourceRequests(_Values):
    """Requested resources: what the scheduler reserves."""

    cpu: Quantity = Field(description="CPU (e.g. 250m).")
    memory: Quantity = Field(description="Memory (e.g. 512Mi).")


class ResourceLimits(_Values):
    """Resource limits: memory always (an out-of-memory pod is killed, not its node); cpu if wanted."""

    cpu: Quantity | None = Field(default=None, description="CPU limit; none when unset (or set to null).")
    memory: Quantity = Field(description="Memory limit.")


class Resources(_Values):
    """Container resources (every Slipway container has requests and limits)."""

    requests: ResourceRequests
    limits: ResourceLimits


class Service(_Values):
    """A component's Service."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(description="Service type.")
    annotations: dict[LabelKey, str] = Field(description="Service annotations.")


class Toleration(_Values):
    """A pod toleration (Kubernetes' fields: key, operator, value, effect, tolerationSeconds)."""

    key: str = Field(
        default="", pattern=rf"^({_LABEL_KEY})?$", description="Taint key; empty with operator Exists: every taint."
    )
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Exists, or Equal to `value`.")
    value: LabelValue = Field(default="", description="Taint value (operator Equal).")
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(
        default="", description="Taint effect; empty: every effect."
    )
    toleration_seconds: int | None = Field(default=None, description="How long a NoExecute taint is tolerated.")


class Scheduling(_Values):
    """Where a component's pods may run."""

    node_selector: dict[LabelKey, LabelValue] = Field(description="Pod nodeSelector.")
    tolerations: list[Toleration] = Field(description="Pod tolerations.")


class CodeServer(Scheduling):
    """The Dagster code server (``dagster api grpc``) serving this project's code location."""

    replicas: int = Field(ge=0, le=20, description="Pods.")
    port: Port
    location_name: str = Field(
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$",
        description="Code location name (the dg project's name; the Dagster workspace refers to it).",
    )
    module: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$", description="Module of the definitions."
    )
    attribute: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="The @dg.definitions function in it.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(description="Code server log level.")
    startup_seconds: int = Field(
        ge=10, le=3600, description="Time the code may take to load before the liveness probe counts."
    )
    resources: Resources
    service: Service


class RunPods(_Values):
    """Run and step pods launched by Dagster for this code location (through the container context)."""

    resources: Resources = Field(description="Defaults; an asset's own `resources` in its definition win.")
    labels: dict[LabelKey, LabelValue] = Field(description="Labels on every run and step pod.")


class MlflowBackendStore(_Values):
    """The MLflow server's database, as a SQLAlchemy URL in an existing Secret."""

    secret_name: ObjectName = Field(min_length=1, description="Secret name.")
    key: SecretKey = Field(description="Key holding the URL (postgresql+psycopg2://user:password@host:5432/mlflow).")


class MlflowArtifacts(_Values):
    """Where the MLflow server keeps artifacts (it proxies them: clients need no S3 credentials)."""

    bucket: str = Field(
        min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$", description="S3 bucket."
    )
    prefix: str = Field(
        pattern=r"^([A-Za-z0-9!_.*()-]+(/[A-Za-z0-9!_.*()-]+)*)?$",
        description="Key prefix in the bucket (S3's safe characters; no leading, trailing or double /).",
    )
    endpoint_url: str = Field(
        pattern=r"^(https?://[!-~]+)?$",
        description="S3 API endpoint (MinIO, Ceph); when empty, the stack's s3 artifact_store endpoint_url, else AWS.",
    )
    region: str = Field(
        pattern=r"^[A-Za-z0-9_-]*$",
        description="S3 region; when empty, the stack's s3 artifact_store region, else the default.",
    )


class Mlflow(Scheduling):
    """The MLflow tracking server (``mlflow server``)."""

    enabled: bool = Field(description="Deploy it (off: the stack names another tracking server).")
    replicas: int = Field(ge=0, le=20, description="Pods.")
    port: Port
    workers: int = Field(ge=1, le=32, description="Server worker processes per pod.")
    backend_store: MlflowBackendStore
    artifacts: MlflowArtifacts
    allowed_hosts: list[Annotated[str, StringConstraints(pattern=r"^[-A-Za-z0-9.*:\[\]]+$")]] = Field(
        description="Host headers accepted beyond the Service's own names (e.g. an Ingress host); "
        "MLflow refuses others (DNS-rebinding protection)."
    )
    resources: Resources
    service: Service


#: The Secrets a stack component cannot run without: (stack key path, its value, key under ``secrets``).
#: ``(component, tag, value, variable key, secret)``: a stack whose ``component.tag`` is ``value``
#: and that names a variable in ``component.<variable key>`` reads it from ``secrets.<secret>``.
SECRET_NEEDS: list[tuple[str, str, str, str, str]] = [
    ("instance", "storage", "postgres", "password_env", "postgres"),
    ("alerter", "type", "webhook", "url_env", "alertWebhook"),
]


def _secret_conditions(schema: dict[str, Any]) -> None:
    """The schema side of :meth:`ChartValues._needed_secrets`, so that ``helm lint`` checks it too."""
    schema["allOf"] = [
        {
            "if": json_schema.nested(
                ("stack", component),
                {"properties": {tag: {"const": value}, var: {"type": "string"}}, "required": [tag, var]},
            ),
            "then": json_schema.nested(("secrets", key, "name"), {"minLength": 1}),
        }
        for component, tag, value, var, key in SECRET_NEEDS
    ]


class ServedModel(_Values):
    """A model the chart serves (``slipway serve``): a Deployment and a Service, ``slipway-serve-<pipeline>-<model>``.

    The stack's ``model_deployer: {type: kubernetes}`` shows that Service's URL on the model's
    Dagster page. Its ``serve:`` block (canary, shadow) comes from the definitions in the image.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$", description="The registered name, pipeline.model.")
    alias: str | None = Field(
        default=None, pattern=r"^[a-z][a-z0-9_]*$", description="The alias that answers; the model's serve.alias."
    )
    replicas: int = Field(default=1, ge=0, le=50, description="Pods.")
    resources: Resources


class ChartValues(_Values):
    """The values of the ``slipway`` Helm chart."""

    model_config = ConfigDict(json_schema_extra=_secret_conditions)

    name_override: NameOverride = Field(description="Replaces the chart name in object names.")
    fullname_override: NameOverride = Field(description="Replaces the release-and-chart full name.")
    image: Image
    image_pull_secrets: list[Annotated[ObjectName, StringConstraints(min_length=1)]] = Field(
        description="Names of existing image pull Secrets."
    )
    service_account: ServiceAccount
    rbac: Rbac
    security_context: SecurityContext
    env: dict[EnvName, str] = Field(description="Plain (non-secret) environment variables for every Slipway pod.")
    secrets: Secrets
    stack: StackFields = Field(
        description="The stack (stacks/*.yaml schema), mounted at /etc/slipway/stack.yaml as SLIPWAY_STACK."
    )
    code_server: CodeServer
    run_pods: RunPods
    mlflow: Mlflow
    served_models: list[ServedModel] = Field(
        description="Models served in the cluster, each following its alias (empty: none)."
    )
    global_: dict[str, Any] = Field(
        default_factory=dict, alias="global", description="Helm's global values (when used as a subchart)."
    )

    @model_validator(mode="after")
    def _needed_secrets(self) -> ChartValues:
        stack = self.stack.model_dump(by_alias=True)
        for component, tag, value, var, secret in SECRET_NEEDS:
            named = stack[component][tag] == value and stack[component].get(var) is not None
            if named and not getattr(self.secrets, _snake(secret)).name:
                raise ValueError(
                    f"secrets.{secret}.name: stack.{component}.{tag} is {value}; name the existing Secret it reads"
                )
        return self


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def values_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12, which Helm 4 validates) of the chart's values."""
    schema = ChartValues.model_json_schema(by_alias=True, mode="validation")
    json_schema.tagged_unions(schema)
    json_schema.closed_maps(schema)
    json_schema.drop_titles(schema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_text() -> str:
    """:func:`values_schema` as the committed file's text."""
    return json.dumps(values_schema(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the schema, write it (``--write``) or check the committed file (``--check``)."""
    parser = argparse.ArgumentParser(prog="python -m stacks.chart", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help=f"write {SCHEMA_PATH}")
    group.add_argument("--check", action="store_true", help="exit 1 when the committed schema is stale")
    args = parser.parse_args(argv)
    text = schema_text()
    if args.write:
        SCHEMA_PATH.write_text(text)
    elif args.check:
        if not SCHEMA_PATH.exists() or SCHEMA_PATH.read_text() != text:
            print(f"{SCHEMA_PATH} is stale: run `python -m stacks.chart --write`", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
