"""The Helm chart helm/slipway, rendered offline with helm 4 and checked as Kubernetes would.

Rendered manifests are pinned by golden files under ``tests/golden/helm/``; run with
``SLIPWAY_REGENERATE_GOLDEN=1`` to write them anew (then read the diff before committing).
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from k8s_tools import helm, manifest_name, manifest_shape, manifest_strings, split_documents, validate_manifests
from pydantic import ValidationError

from stacks.chart import SCHEMA_PATH, ChartValues, schema_text
from stacks.config import COMPONENT_TYPES, StackFields, WebhookAlerterConfig
from stacks.instances import PostgresInstance

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "slipway"
PRODUCTION = CHART / "ci" / "production-values.yaml"
GOLDEN = REPO / "tests" / "golden" / "helm"
REGENERATE = os.environ.get("SLIPWAY_REGENERATE_GOLDEN") == "1"
RELEASE, NAMESPACE = "slipway", "ml"
VALUE_SETS = {"default": (), "production": ("-f", str(PRODUCTION))}
CONTEXT_VAR = "DAGSTER_CLI_API_GRPC_CONTAINER_CONTEXT"


@functools.cache
def render_text(*args: str) -> str:
    result = helm("template", RELEASE, CHART, "--namespace", NAMESPACE, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(*args: str) -> list[dict[str, Any]]:
    return split_documents(render_text(*args))


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name} in {[manifest_name(d) for d in docs]}"
    return found[0]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def code_server(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Deployment", f"{RELEASE}-code-server")["spec"]["template"]["spec"]


def container_context(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return json.loads(env_of(code_server(docs)["containers"][0])[CONTEXT_VAR]["value"])


def stack_file(docs: list[dict[str, Any]]) -> str:
    return one(docs, "ConfigMap", f"{RELEASE}-stack")["data"]["stack.yaml"]


# --- the schema: generated from the models that validate stacks -----------------------------------


def test_the_committed_schema_is_generated_from_the_models():
    assert SCHEMA_PATH.read_text() == schema_text(), "stale values.schema.json: run `python -m stacks.chart --write`"


def test_the_schema_is_the_same_on_every_machine(monkeypatch, tmp_path):
    # No default expanded for the machine that generated it (a clone elsewhere must agree).
    monkeypatch.setenv("SLIPWAY_HOME", str(tmp_path / "elsewhere"))
    assert schema_text() == SCHEMA_PATH.read_text()
    assert "${SLIPWAY_HOME}" in SCHEMA_PATH.read_text()


def test_the_stack_section_is_the_stack_model_with_every_component_type():
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    stack = schema["$defs"][schema["properties"]["stack"]["$ref"].rsplit("/", 1)[-1]]
    assert set(stack["properties"]) == set(StackFields.model_fields)
    assert stack["additionalProperties"] is False
    for role, types in COMPONENT_TYPES.items():
        assert set(stack["properties"][role]["properties"]["storage" if role == "instance" else "type"]["enum"]) == set(
            types
        )


def test_the_default_stack_is_stacks_k8s_yaml():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["stack"] == yaml.safe_load((REPO / "stacks" / "k8s.yaml").read_text())


def test_values_yaml_is_valid_and_documents_every_key():
    text = (CHART / "values.yaml").read_text()
    ChartValues.model_validate(yaml.safe_load(text))  # every field is required: values.yaml holds them all
    undocumented, previous = [], ""
    for number, line in enumerate(text.splitlines(), 1):
        key = re.match(r"^\s*([A-Za-z_][\w-]*):", line)
        if key and not previous.lstrip().startswith("#"):
            undocumented.append(f"values.yaml:{number}: {key.group(1)}")
        if line.strip():
            previous = line
    assert undocumented == []


# --- helm lint and template: good values pass, bad ones are named -------------------------------


@pytest.mark.parametrize("values", VALUE_SETS)
def test_helm_lint_passes(values: str):
    result = helm("lint", "--strict", CHART, "--namespace", NAMESPACE, *VALUE_SETS[values])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout + result.stderr


BAD_VALUES = {
    "workers": (["--set", "mlflow.workers=many"], "at '/mlflow/workers': got string, want integer"),
    "unknown key": (["--set", "codeServer.bogus=1"], "at '/codeServer': additional properties 'bogus' not allowed"),
    "orchestrator": (
        ["--set", "stack.orchestrator.type=kubernetes"],
        "at '/stack/orchestrator/type': value must be one of",
    ),
    "stack key": (
        ["--set", "stack.instance.portt=5432"],
        "at '/stack/instance': additional properties 'portt' not allowed",
    ),
    "stack bound": (
        ["--set", "stack.instance.port=70000"],
        "at '/stack/instance/port': maximum: got 70,000, want 65,535",
    ),
    "quantity": (["--set", "codeServer.resources.limits.memory=lots"], "at '/codeServer/resources/limits/memory'"),
    "root": (["--set", "securityContext.runAsUser=0"], "at '/securityContext/runAsUser': minimum: got 0, want 1"),
    "digest": (["--set", "image.digest=latest"], "at '/image/digest': 'latest' does not match pattern"),
    "webhook secret": (
        ["--set", "secrets.alertWebhook.name="],
        "at '/secrets/alertWebhook/name': minLength: got 0, want 1",
    ),
    "postgres secret": (["--set", "secrets.postgres.name="], "at '/secrets/postgres/name': minLength: got 0, want 1"),
    # Input the schema let through: a newline in the tag added a key to both containers; the others
    # rendered names Kubernetes refuses (helm lint passed them, or failed naming no value).
    "newline in tag": (
        ["--set-json", 'image.tag="1\\n          lifecycle: {postStart: {exec: {command: [sh, -c, id]}}}"'],
        "at '/image/tag': '1\\n          lifecycle: {postStart: {exec: {command: [sh, -c, id]}}}' does not match pattern",
    ),
    "repository": (
        ["--set", "image.repository=registry.example.com/slipway:1.0"],
        "at '/image/repository': 'registry.example.com/slipway:1.0' does not match pattern",
    ),
    "name": (["--set", "fullnameOverride=ML_Slipway"], "at '/fullnameOverride': 'ML_Slipway' does not match pattern"),
    "env key": (
        ["--set-json", 'env={"mlflow-timeout": "60"}'],
        "at '/env': additional properties 'mlflow-timeout' not allowed",
    ),
}


@pytest.mark.parametrize("case", BAD_VALUES)
def test_bad_values_fail_lint_and_template_naming_the_value(case: str):
    args, message = BAD_VALUES[case]
    for command in (["lint", "--strict", CHART], ["template", RELEASE, CHART]):
        result = helm(*command, "--namespace", NAMESPACE, *args)
        assert result.returncode != 0, f"helm {command[0]} accepted {args}"
        assert message in result.stdout + result.stderr


# What the schema cannot see (the release namespace), or what it checks first: `helm template`
# fails with the value's path. (`helm lint` only logs a template's `fail`.)
TEMPLATE_CHECKS = {
    "job namespace": (
        ["--set", "stack.orchestrator.job_namespace=other"],
        'stack.orchestrator.job_namespace: "other" is not the release namespace "ml", where the chart\'s Role',
    ),
    "webhook secret": (
        ["--skip-schema-validation", "--set", "secrets.alertWebhook.name="],
        "secrets.alertWebhook.name: stack.alerter.type is webhook; name the existing Secret holding its URL",
    ),
    "postgres secret": (
        ["--skip-schema-validation", "--set", "secrets.postgres.name="],
        "secrets.postgres.name: stack.instance.storage is postgres; name the existing Secret holding its password",
    ),
    # A request above its limit passes the schema; a 1.20 API server refused it naming the
    # Deployment's field (spec.template.spec.containers[0].resources.requests), not the value.
    "request above limit": (
        ["--set", "codeServer.resources.requests.memory=4Gi", "--set", "codeServer.resources.limits.memory=1Gi"],
        "codeServer.resources.requests.memory: 4Gi is above codeServer.resources.limits.memory (1Gi)",
    ),
    "cpu request above limit": (
        ["--set", "runPods.resources.requests.cpu=1500m", "--set", "runPods.resources.limits.cpu=1"],
        "runPods.resources.requests.cpu: 1500m is above runPods.resources.limits.cpu (1)",
    ),
    "number above limit": (  # Helm holds a YAML number of a million or more as 3e+09
        ["--set", "codeServer.resources.requests.memory=3000000000", "--set", "codeServer.resources.limits.memory=2Gi"],
        "codeServer.resources.requests.memory: 3000000000 is above codeServer.resources.limits.memory (2Gi)",
    ),
    "served request above limit": (
        [
            "--set-json",
            'servedModels=[{"name": "a.b", "resources": {"requests": {"cpu": "1", "memory": "2G"}, "limits": {"memory": "1Gi"}}}]',
        ],
        "servedModels[0].resources.requests.memory: 2G is above servedModels[0].resources.limits.memory (1Gi)",
    ),
}


@pytest.mark.parametrize("case", TEMPLATE_CHECKS)
def test_the_templates_check_what_the_schema_cannot(case: str):
    args, message = TEMPLATE_CHECKS[case]
    result = helm("template", RELEASE, CHART, "--namespace", NAMESPACE, *args)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_requests_within_their_limits_in_other_units_or_as_numbers_render():
    """1Gi = 1024Mi, 0.5 = 500m, 1Gi below 2147483648 (a number Helm holds as 2.147483648e+09),
    and a served model's null limit (no limit) are not refused."""
    sets = ["codeServer.resources.requests.memory=1Gi", "codeServer.resources.limits.memory=1024Mi",
            "mlflow.resources.requests.cpu=0.5", "mlflow.resources.limits.cpu=500m",
            "runPods.resources.requests.memory=1Gi", "runPods.resources.limits.memory=2147483648"]  # fmt: skip
    served = [
        {
            "name": "a.b",
            "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"cpu": None, "memory": "1Gi"}},
        }
    ]
    result = helm(
        "template", RELEASE, CHART, "--namespace", NAMESPACE, *[a for s in sets for a in ("--set", s)],
        "--set-json", f"servedModels={json.dumps(served)}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_a_quantity_the_parser_does_not_know_fails_the_render_naming_it():
    sets = ["codeServer.resources.requests.memory=1Qi", "codeServer.resources.limits.memory=1Gi"]
    args = ["--skip-schema-validation", *[a for s in sets for a in ("--set", s)]]
    result = helm("template", RELEASE, CHART, "--namespace", NAMESPACE, *args)
    assert result.returncode != 0 and '"1Qi" is not a Kubernetes quantity' in result.stderr, result.stderr


def test_the_models_refuse_a_stack_without_the_secret_it_reads():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    values["secrets"]["alertWebhook"]["name"] = ""
    with pytest.raises(
        ValidationError,
        match=re.escape("secrets.alertWebhook.name: stack.alerter.type is webhook; name the existing Secret it reads"),
    ):
        ChartValues.model_validate(values)


def test_a_bad_stack_type_lists_the_valid_ones():
    result = helm("template", RELEASE, CHART, "--set", "stack.orchestrator.type=kubernetes")
    listed = re.search(r"'/stack/orchestrator/type': value must be one of (.*)", result.stderr)
    assert listed is not None, result.stderr
    assert set(re.findall(r"'(\w+)'", listed.group(1))) == set(COMPONENT_TYPES["orchestrator"])


# --- hostile values: every string is quoted in the manifests or refused with its path ----------
#
# A newline in image.tag once added a `lifecycle.postStart` command to both containers, and helm
# lint and template accepted it. Each string in values.yaml and ci/production-values.yaml (nested,
# in lists, and the keys of maps whose keys reach a manifest) is set in turn to each hostile form
# below: helm must refuse it naming the value's path, or render manifests of the same structure
# (kinds, keys at every level, list lengths, scalar types), the string whole where it was before.

#: The attacks, each built around a harmless value (``base``) that renders: a newline and YAML
#: that would add a key at a container's indentation; a template (values are never templates);
#: quotes that would end a quoted scalar or start one, ``: `` and `` #`` that split a plain one.
HOSTILE = {
    "newline": lambda base: base + "\n          lifecycle: {postStart: {exec: {command: [sh, -c, id]}}}",
    "template": lambda base: "{{ .Release.Name }}" + base,
    "quotes": lambda base: "'\"" + base + "\"': x #y",
}
#: Harmless stand-ins for the values that are empty by default (empty often means "leave it out",
#: which renders a different structure than any value would).
EMPTY_SAMPLES = {
    "nameOverride": "slipway",
    "fullnameOverride": "ml-slipway",
    "image.tag": "1.2.3",
    "image.digest": "sha256:" + "0" * 64,
    "serviceAccount.name": "slipway-runner",
    "mlflow.artifacts.endpointUrl": "http://minio.minio:9000",
    "mlflow.artifacts.region": "us-east-1",
}
ValuePath = tuple[str | int, ...]


@functools.cache
def _values_file(name: str) -> dict[str, Any]:
    """values.yaml ("default") or ci/production-values.yaml, parsed once (never changed: see _with)."""
    return yaml.safe_load((PRODUCTION if name == "production" else CHART / "values.yaml").read_text())


def _at(node: Any, path: ValuePath) -> Any:
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _dotted(path: ValuePath) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _free_keys(path: ValuePath) -> bool:
    """A map whose keys are the user's (env, labels, annotations, nodeSelector, params), not the chart's."""
    default = _at(_values_file("default"), path)
    return default == {} or (default is None and bool(path) and isinstance(path[-1], str))


def _string_targets(node: Any, path: ValuePath = ()) -> list[tuple[ValuePath, bool]]:
    """``(path, is a map key)`` of every string value, and of every key of a user's map, under ``node``."""
    if isinstance(node, str):
        return [(path, False)]
    found: list[tuple[ValuePath, bool]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if _free_keys(path):
                found.append(((*path, key), True))
            found += _string_targets(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _string_targets(value, (*path, index))
    return found


def _hostile_targets() -> list[Any]:
    """The default values' strings, then the production values' others (each path and kind once)."""
    seen, params = set(), []
    for name in VALUE_SETS:
        for path, key in _string_targets(_values_file(name)):
            if (path, key) not in seen:
                seen.add((path, key))
                params.append(pytest.param(name, path, key, id=f"{name}:{_dotted(path)}{' (key)' if key else ''}"))
    return params


def _with(values: dict[str, Any], path: ValuePath, key: bool, text: str) -> dict[str, Any]:
    """A copy of ``values`` with the string (or the map key) at ``path`` replaced by ``text``."""
    values = json.loads(json.dumps(values))
    parent = _at(values, path[:-1])
    if key:
        parent[text] = parent.pop(path[-1])
    else:
        parent[path[-1]] = text
    return values


@functools.cache
def _render_values(text: str) -> tuple[int, str, str]:
    """``helm template`` with one values file holding ``text``: (exit status, stdout, stderr)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        file.write(text)
        file.flush()
        result = helm("template", RELEASE, CHART, "--namespace", NAMESPACE, "-f", file.name)
    return result.returncode, result.stdout, result.stderr


def _expanded(docs: list[dict[str, Any]]) -> list[Any]:
    """The manifests with the documents they carry parsed: the stack file and the container context."""

    def expand(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("name") == CONTEXT_VAR and "value" in node:
                return {**node, "value": json.loads(node["value"])}
            return {k: yaml.safe_load(v) if k == "stack.yaml" else expand(v) for k, v in node.items()}
        if isinstance(node, list):
            return [expand(v) for v in node]
        return node

    return expand(docs)


def test_the_hostile_walk_reaches_every_map_and_list_and_replaces_every_empty_string():
    defaults, production = _values_file("default"), _values_file("production")
    empty = [p for p, key in _string_targets(defaults) if not key and _at(defaults, p) == ""]
    assert sorted(map(_dotted, empty)) == sorted(EMPTY_SAMPLES)
    # Every map and list that is empty by default has an item in the production values, so the
    # walk reaches its keys and items too.

    def empties(node: Any, path: ValuePath = ()) -> list[ValuePath]:
        if node in ({}, []):
            return [path]
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        return [p for k, v in items for p in empties(v, (*path, k))]

    assert [_dotted(p) for p in empties(defaults) if not _at(production, p)] == []


@pytest.mark.slow
@pytest.mark.parametrize(("values", "path", "key"), _hostile_targets())
def test_a_hostile_string_is_refused_with_its_path_or_stays_one_string(values: str, path: ValuePath, key: bool):
    source = _values_file(values)
    base = path[-1] if key else _at(source, path) or EMPTY_SAMPLES[_dotted(path)]
    assert isinstance(base, str)
    status, out, err = _render_values(yaml.safe_dump(_with(source, path, key, base)))
    assert status == 0, err
    baseline = _expanded(split_documents(out))
    shown = any(base in s for s in manifest_strings(baseline))
    # The error names the value (a map key: its map), as the schema does (at '/a/b') or a template's
    # fail does (...yaml:1:4): a.b: ...).
    where = path[:-1] if key else path
    pointer = "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in where)
    named = re.compile(re.escape(f"at '{pointer}") + "['/]|" + re.escape(f"): {_dotted(where)}:"))
    for attack, make in HOSTILE.items():
        hostile = make(base)
        status, out, err = _render_values(yaml.safe_dump(_with(source, path, key, hostile)))
        if status != 0:
            assert named.search(err), f"{attack}: refused without naming {_dotted(where)}: {err}"
            continue
        docs = _expanded(split_documents(out))
        assert manifest_shape(docs, {hostile: base}) == manifest_shape(baseline), f"{attack}: {hostile!r}"
        if shown:
            assert any(hostile in s for s in manifest_strings(docs)), f"{attack}: {hostile!r} not kept whole"


def test_a_newline_in_the_tag_adds_nothing_even_without_the_schema():
    # The templates quote every string: what the schema would refuse is still one string.
    tag = "1\n          lifecycle: {postStart: {exec: {command: [sh, -c, id]}}}"
    docs = render("--skip-schema-validation", "--set-json", f"image.tag={json.dumps(tag)}")
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert "lifecycle" not in container and container["image"] == f"registry.example.com/slipway:{tag}"


# --- the manifests --------------------------------------------------------------------------------


@pytest.mark.parametrize("k8s", ["1.31", "1.35"])
@pytest.mark.parametrize("values", VALUE_SETS)
def test_every_manifest_is_valid_kubernetes(values: str, k8s: str):
    docs = render(*VALUE_SETS[values])
    assert {d["kind"] for d in docs} == {
        "ServiceAccount", "ConfigMap", "Role", "RoleBinding", "Deployment", "Service"
    }  # fmt: skip
    assert validate_manifests(docs, k8s) == []


def test_validate_manifests_names_the_object_and_the_field():
    deployment = one(render(), "Deployment", f"{RELEASE}-mlflow")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    broken["spec"]["replicas"] = "two"
    (error,) = validate_manifests([broken])
    assert error.startswith(f"Deployment/{RELEASE}-mlflow: spec.")
    assert validate_manifests(
        [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "x"}}]
    ) == [
        "Application/x: <root>: Couldn't find schema for kind Application with api version argoproj.io/v1alpha1 for kubernetes version 1.31"
    ]


@pytest.mark.parametrize("values", VALUE_SETS)
def test_rendered_chart_equals_its_golden_file(values: str):
    text = render_text(*VALUE_SETS[values])
    path = GOLDEN / f"{values}.yaml"
    if REGENERATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}: run with SLIPWAY_REGENERATE_GOLDEN=1"
    assert text == path.read_text()


SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|WEBHOOK|BACKEND_STORE_URI|CREDENTIAL")


@pytest.mark.parametrize("values", VALUE_SETS)
def test_no_manifest_holds_a_secret_value(values: str):
    docs = render(*VALUE_SETS[values])
    text = render_text(*VALUE_SETS[values])
    assert "Secret" not in {d["kind"] for d in docs}
    assert re.search(r"://[^/\s:@\"]+:[^/\s@\"]+@", text) is None  # no user:password@ in any URL
    envs = [
        e
        for d in docs
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
        for e in c["env"]
    ]
    envs += container_context(docs)["k8s"]["env"]
    secret_envs = [e for e in envs if SECRET_NAME.search(e["name"])]
    assert secret_envs, "expected secret environment variables to check"
    for env in secret_envs:
        assert "value" not in env and set(env["valueFrom"]) == {"secretKeyRef"}, env


@pytest.mark.parametrize("values", VALUE_SETS)
def test_every_container_runs_non_root_with_resources_and_probes(values: str):
    deployments = [d for d in render(*VALUE_SETS[values]) if d["kind"] == "Deployment"]
    served = yaml.safe_load(PRODUCTION.read_text())["servedModels"] if values == "production" else []
    assert len(deployments) == 2 + len(served)
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True and security["runAsUser"] > 0
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert "memory" in container["resources"]["limits"]
            if container["name"] == "serve":  # ready once a version holds the alias; alive while it answers
                assert container["readinessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}
                assert container["livenessProbe"]["tcpSocket"] == container["startupProbe"]["tcpSocket"]
            else:
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    assert set(container[probe]) & {"grpc", "httpGet"}, (manifest_name(deployment), probe)
            assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}


def _dagster_k8s_calls() -> set[tuple[str, str, str]]:
    """(API group, resource, verb) of every Kubernetes API call in dagster_k8s/client.py."""
    import dagster_k8s.client

    verbs = {
        "read": "get",
        "list": "list",
        "create": "create",
        "delete": "delete",
        "patch": "patch",
        "replace": "update",
    }
    calls = set()
    source = Path(dagster_k8s.client.__file__).read_text()
    for api, verb, kind, sub in re.findall(
        r"(core_api|batch_api)\.(\w+?)_namespaced_([a-z]+?)(_status|_log)?\(", source
    ):
        resource = f"{kind}s" + (f"/{sub[1:]}" if sub else "")
        calls.add(("batch" if api == "batch_api" else "", resource, verbs[verb]))
    assert re.search(r"\bwatch\b", source) is None, "dagster-k8s now watches: grant `watch`"
    return calls


def test_the_role_grants_exactly_the_calls_dagster_k8s_makes():
    docs = render()
    assert not [d for d in docs if d["kind"].startswith("Cluster")]
    role = one(docs, "Role", RELEASE)
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == _dagster_k8s_calls()
    assert granted == {
        ("batch", "jobs", "create"), ("batch", "jobs", "list"), ("batch", "jobs", "delete"),
        ("batch", "jobs/status", "get"),
        ("", "pods", "get"), ("", "pods", "list"), ("", "pods", "delete"),
        ("", "pods/log", "get"),
        ("", "events", "list"),
    }  # fmt: skip
    binding = one(docs, "RoleBinding", RELEASE)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": RELEASE}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}]


# --- the code server, its container context, and the pods it leads to -----------------------------


def test_the_code_server_serves_the_code_location_with_its_stack_and_context():
    docs = render()
    pod = code_server(docs)
    (container,) = pod["containers"]
    assert container["command"] == ["dagster", "api", "grpc"]
    assert container["args"][:3] == [
        "--module-name=definitions.definitions",
        "--attribute=defs",
        "--location-name=slipway",
    ]
    env = env_of(container)
    assert env["SLIPWAY_STACK"]["value"] == "/etc/slipway/stack.yaml"
    assert env["DAGSTER_CURRENT_IMAGE"]["value"] == container["image"] == "registry.example.com/slipway:0.1.0"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/etc/slipway"]]["configMap"]["name"] == f"{RELEASE}-stack"
    assert {"emptyDir": {}}.items() <= volumes[mounts["/var/lib/slipway"]].items()
    k8s = container_context(docs)["k8s"]
    assert k8s["namespace"] == NAMESPACE and k8s["service_account_name"] == RELEASE
    assert k8s["volumes"] == pod["volumes"] and k8s["volume_mounts"] == container["volumeMounts"]
    assert k8s["env"] == [e for e in container["env"] if e["name"] not in {"DAGSTER_CURRENT_IMAGE", CONTEXT_VAR}]
    assert k8s["security_context"] == container["securityContext"]
    assert k8s["run_k8s_config"]["pod_spec_config"]["security_context"] == pod["securityContext"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": 3030, "service": "DagsterApi"}


def test_before_kubernetes_1_24_the_code_server_is_probed_without_grpc():
    """1.20 refuses a `grpc` probe field: the start-up probe runs Dagster's health check, then TCP."""
    (container,) = code_server(render("--kube-version", "1.20.2"))["containers"]
    assert container["startupProbe"]["exec"]["command"] == ["dagster", "api", "grpc-health-check", "--port=3030"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["tcpSocket"] == {"port": "grpc"}
    assert "grpc" not in json.dumps(container["startupProbe"]).replace("grpc-health-check", "")
    (newer,) = code_server(render("--kube-version", "1.24.0"))["containers"]
    assert newer["startupProbe"]["grpc"] == {"port": 3030, "service": "DagsterApi"}


def test_the_chart_refuses_a_kubernetes_older_than_it_was_tested_on():
    result = helm("template", RELEASE, CHART, "--kube-version", "1.19.16")
    assert result.returncode != 0 and "kubeVersion: >=1.20.0-0" in result.stderr, result.stderr


@pytest.mark.slow
def test_a_step_job_built_by_dagster_k8s_from_the_context_gets_the_stack_env_and_secrets():
    import kubernetes
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job

    docs = render(*VALUE_SETS["production"])
    context = K8sContainerContext.create_from_config(container_context(docs))
    assert context.namespace == NAMESPACE
    job_config = DagsterK8sJobConfig(job_image="ghcr.io/acme/slipway:1", dagster_home="/opt/dagster/dagster_home")
    job = construct_dagster_k8s_job(
        job_config,
        ["dagster", "api", "execute_step"],
        "dagster-step-1",
        context.run_k8s_config,
        component="step_worker",
    )
    manifest = kubernetes.client.ApiClient().sanitize_for_serialization(job)
    assert validate_manifests([manifest]) == []
    pod = manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = env_of(container)
    assert env["SLIPWAY_STACK"]["value"] == "/etc/slipway/stack.yaml"
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "dagster-postgresql", "key": "postgres-password"}
    }
    assert env["SLACK_WEBHOOK_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "slack-webhook", "key": "url", "optional": True}
    }
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "minio-credentials"
    assert {"name": "slipway-stack", "configMap": {"name": f"{RELEASE}-stack"}} in pod["volumes"]
    assert pod["serviceAccountName"] == RELEASE and pod["imagePullSecrets"] == [{"name": "ghcr-pull"}]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    assert manifest["metadata"]["labels"]["team"] == "ml"


@pytest.mark.parametrize("values", VALUE_SETS)
def test_the_rendered_stack_is_one_slipway_loads(values: str, home: Path, tmp_path: Path):
    from stacks.loader import load_stack

    path = tmp_path / "stack.yaml"
    path.write_text(stack_file(render(*VALUE_SETS[values])))
    stack = load_stack(str(path)).stack
    dumped = stack.model_dump(by_alias=True)
    assert (dumped["orchestrator"]["type"], dumped["instance"]["storage"]) == ("k8s_job", "postgres")
    assert (dumped["experiment_tracker"]["type"], dumped["artifact_store"]["type"]) == ("mlflow_server", "s3")


def test_env_names_follow_the_stack():
    docs = render("--set", "stack.alerter.type=webhook", "--set", "secrets.alertWebhook.name=hook")
    env = env_of(code_server(docs)["containers"][0])
    # Optional, as the stack declares it: without the Secret, alerts are only logged.
    hook = {"name": "hook", "key": "url", "optional": True}
    assert env[WebhookAlerterConfig().url_env]["valueFrom"]["secretKeyRef"] == hook
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "slipway-postgres"
    docs = render("--set", "stack.instance.password_env=PGPASSWORD")
    assert "PGPASSWORD" in env_of(code_server(docs)["containers"][0])


def test_a_secret_is_referenced_only_where_the_stack_reads_it():
    # Switching a type: the old type's keys are set to null (Helm merges values map by map).
    docs = render("--set", "stack.alerter.type=log", "--set", "stack.alerter.url_env=null")
    env = env_of(code_server(docs)["containers"][0])
    assert "SLIPWAY_ALERT_WEBHOOK" not in env and "DAGSTER_PG_PASSWORD" in env


def test_pods_that_share_no_disk_are_refused_a_sqlite_record():
    keys = ("hostname", "db_name", "username", "password_env")
    nulls = [arg for key in keys for arg in ("--set", f"stack.instance.{key}=null")]
    result = helm("template", RELEASE, CHART, "--set", "stack.instance.storage=sqlite", *nulls)
    assert result.returncode == 1
    assert "at '/stack/instance/storage': value must be 'postgres'" in result.stderr, result.stderr


# --- MLflow ---------------------------------------------------------------------------------------


def test_mlflow_serves_artifacts_from_s3_with_its_database_from_a_secret():
    docs = render(*VALUE_SETS["production"])
    (container,) = one(docs, "Deployment", f"{RELEASE}-mlflow")["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["mlflow", "server"]
    args = container["args"]
    assert {"--host=0.0.0.0", "--port=5000", "--workers=4", "--serve-artifacts"} <= set(args)
    assert "--artifacts-destination=s3://acme-ml/mlflow" in args
    assert not [a for a in args if "backend-store-uri" in a]  # read from the environment instead
    allowed = next(a for a in args if a.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    assert {f"{RELEASE}-mlflow", f"{RELEASE}-mlflow:*", "mlflow.acme.example"} <= set(allowed)
    env = env_of(container)
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"] == {"secretKeyRef": {"name": "slipway-mlflow-db", "key": "uri"}}
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == "http://minio.minio.svc.cluster.local:9000"  # the stack's
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]["value"] == "false"  # OOM-killed at 1536Mi with it
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    defaults = one(render(), "Deployment", f"{RELEASE}-mlflow")["spec"]["template"]["spec"]["containers"][0]
    assert "--workers=2" in defaults["args"] and "MLFLOW_S3_ENDPOINT_URL" not in env_of(defaults)


def test_mlflow_can_be_left_out():
    kinds = {manifest_name(d) for d in render("--set", "mlflow.enabled=false")}
    assert not [k for k in kinds if "mlflow" in k] and f"Deployment/{RELEASE}-code-server" in kinds


def test_the_default_stack_tracks_to_this_release_s_mlflow_service():
    docs = render()
    service = one(docs, "Service", f"{RELEASE}-mlflow")
    uri = urlsplit(yaml.safe_load(stack_file(docs))["experiment_tracker"]["tracking_uri"])
    assert (uri.hostname, uri.port) == (service["metadata"]["name"], service["spec"]["ports"][0]["port"])


# --- around the chart: the Dagster chart's values, Argo CD, the image ------------------------------


def test_dagster_values_wire_the_official_chart_to_this_one():
    values = yaml.safe_load((REPO / "helm" / "dagster-values.yaml").read_text())
    ours = yaml.safe_load((CHART / "values.yaml").read_text())
    service = one(render(), "Service", f"{RELEASE}-code-server")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    # The pool rule of Slipway's own instance (one training per registered model at a time).
    from stacks.build import instance_config
    from stacks.config import StackFields

    pools = instance_config(StackFields())["concurrency"]["pools"]
    assert values["concurrency"]["pools"] == {
        "defaultLimit": pools["default_limit"],
        "granularity": pools["granularity"],
    }
    # The Dagster chart writes workspace.yaml only when dagster-user-deployments is enabled; the
    # subchart (its own code-server Deployments) stays off.
    assert values["dagster-user-deployments"] == {"enabled": True, "enableSubchart": False}
    assert values["dagsterWebserver"]["workspace"] == {
        "enabled": True,
        "servers": [
            {
                "host": service["metadata"]["name"],
                "port": service["spec"]["ports"][0]["port"],
                "name": ours["codeServer"]["locationName"],
            }
        ],
    }
    postgres, instance = values["postgresql"], ours["stack"]["instance"]
    assert postgres["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    assert (
        postgres["postgresqlHost"],
        postgres["postgresqlUsername"],
        postgres["postgresqlDatabase"],
        postgres["service"]["port"],
    ) == (
        instance["hostname"],
        instance["username"],
        instance["db_name"],
        instance.get("port", PostgresInstance.model_fields["port"].default),
    )
    # Run and step pods open the instance the daemon hands them with the image's driver: the
    # scheme Slipway's own instance names (plain postgresql:// means psycopg 3, not installed).
    assert (
        postgres["postgresqlScheme"]
        == PostgresInstance().dagster_storage()["storage"]["postgres"]["postgres_db"]["scheme"]
    )
    # One Secret for both charts: the Dagster chart reads the key postgresql-password.
    assert values["global"]["postgresqlSecretName"] == ours["secrets"]["postgres"]["name"]
    assert ours["secrets"]["postgres"]["key"] == "postgresql-password"


def test_the_argocd_applications_deploy_both_charts_with_automated_sync():
    apps = {
        a["metadata"]["name"]: a
        for a in split_documents((REPO / "examples" / "argocd" / "application.yaml").read_text())
    }
    assert {a["apiVersion"] for a in apps.values()} == {"argoproj.io/v1alpha1"}
    assert {a["kind"] for a in apps.values()} == {"Application"}
    for app in apps.values():
        assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        assert app["spec"]["destination"]["namespace"] == NAMESPACE
    source = apps["slipway"]["spec"]["source"]
    assert source["path"] == "helm/slipway" and (REPO / source["path"] / "Chart.yaml").exists()
    assert source["helm"]["releaseName"] == RELEASE
    chart, values = apps["slipway-dagster"]["spec"]["sources"]
    assert (chart["chart"], chart["targetRevision"]) == ("dagster", version("dagster"))
    (values_file,) = chart["helm"]["valueFiles"]
    assert values_file.startswith(f"${values['ref']}/") and (REPO / values_file.split("/", 1)[1]).exists()


def test_the_dockerfile_installs_from_the_lock_as_the_chart_s_user():
    dockerfile = (REPO / "Dockerfile").read_text()
    ignored = {
        line.rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    }
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert dockerfile.startswith("# syntax=docker/dockerfile:1") and "ARG BASE=python:3.11-slim" in dockerfile
    # Both stages on the base the build argument names (tests/cluster/image.sh makes one from Debian).
    assert re.findall(r"^FROM (\S+)", dockerfile, re.M) == ["${UV_IMAGE}", "${BASE}", "${BASE}"]
    assert "uv sync --frozen --no-dev" in dockerfile
    copied = [p for line in re.findall(r"^COPY (?!--from)(.*) \S+$", dockerfile, re.M) for p in line.split()]
    assert {"pyproject.toml", "uv.lock"} <= set(copied)
    for path in copied:
        assert (REPO / path).exists(), path
        assert path.rstrip("/") not in ignored, path
    assert {".git", ".venv", "tests", ".env"} <= ignored
    assert f"USER {values['securityContext']['runAsUser']}:{values['securityContext']['runAsGroup']}" in dockerfile
    assert f"EXPOSE {values['codeServer']['port']}" in dockerfile
    # Run and step pods get args and no command: an ENTRYPOINT would swallow them.
    assert re.search(r"^ENTRYPOINT", dockerfile, re.M) is None
    cmd = json.loads(re.search(r"^CMD (\[.*?\])", dockerfile, re.M | re.S).group(1).replace("\\\n", ""))
    assert cmd[:3] == ["dagster", "api", "grpc"] and values["codeServer"]["module"] in cmd


def test_install_notes_warn_when_the_tracking_uri_names_another_release():
    # A release whose name lacks "slipway" gets it appended to its objects' names.
    for release, fullname, warned in ((RELEASE, RELEASE, False), ("other", "other-slipway", True)):
        result = helm("install", release, CHART, "--namespace", NAMESPACE, "--dry-run=client")
        assert result.returncode == 0, result.stderr
        assert f"{fullname}-code-server.{NAMESPACE}:3030 (gRPC)" in result.stdout
        assert ("WARNING: stack.experiment_tracker.tracking_uri" in result.stdout) is warned


def test_each_served_model_gets_a_deployment_and_a_service_where_the_deployer_says():
    docs = render(*VALUE_SETS["production"])
    deployment = one(docs, "Deployment", "slipway-serve-churn-churn-classifier")
    service = one(docs, "Service", "slipway-serve-churn-churn-classifier")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["slipway", "serve"]
    assert container["args"] == ["churn.churn_classifier", "--alias=champion", "--host=0.0.0.0", "--port=8080"]
    assert deployment["spec"]["replicas"] == 2
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert env_of(container)["SLIPWAY_STACK"] == env_of(code_server(docs)["containers"][0])["SLIPWAY_STACK"]
    # The URL the kubernetes deployer shows on the model's Dagster page names this Service.
    from stacks.deployers import KubernetesDeployer

    assert (
        KubernetesDeployer().url("churn.churn_classifier", 0)
        == "http://slipway-serve-churn-churn-classifier:8080/invocations"
    )
    # Another port in the stack's deployer moves both.
    other = render(*VALUE_SETS["production"], "--set", "stack.model_deployer.port=9000")
    assert one(other, "Service", "slipway-serve-churn-churn-classifier")["spec"]["ports"][0]["port"] == 9000
    for k8s in ("1.31", "1.35"):
        assert validate_manifests(docs, k8s) == []


def test_a_served_model_name_that_is_not_pipeline_dot_model_is_refused_by_the_schema():
    result = helm("template", RELEASE, CHART, "--set-json", 'servedModels=[{"name": "Churn/Clf", "resources": {}}]')
    assert result.returncode != 0 and "servedModels" in result.stderr


def test_two_served_models_that_would_share_a_service_name_are_refused():
    resources = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
    served = [{"name": "shop_eu.clf", "resources": resources}, {"name": "shop.eu_clf", "resources": resources}]
    result = helm("template", RELEASE, CHART, "--set-json", f"servedModels={json.dumps(served)}")
    assert result.returncode != 0
    assert (
        "servedModels: shop_eu.clf and shop.eu_clf would both be served as slipway-serve-shop-eu-clf" in result.stderr
    )
