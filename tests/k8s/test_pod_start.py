"""A step pod that cannot start fails its step naming why (stacks/k8s_steps.py), offline.

The pods are the API's JSON as a 1.20 cluster returned it for each case; the cluster tier
(tests/cluster) shows one of them for real: a step whose image cannot be pulled.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from stacks.k8s_steps import PodStartWatch, cannot_start

NOW = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)
IMAGE = "registry.example/slipway:3f2a"


def pod(
    age: float, *, waiting: dict | None = None, phase: str = "Pending", conditions: list | None = None, now=NOW
) -> dict:
    created = (now - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status: dict = {"phase": phase, "conditions": conditions or []}
    if waiting is not None:
        status["containerStatuses"] = [{"name": "dagster", "image": IMAGE, "state": {"waiting": waiting}}]
    return {
        "metadata": {"name": "dagster-step-abc-xyz", "creationTimestamp": created},
        "spec": {"containers": [{"name": "dagster", "image": IMAGE}]},
        "status": status,
    }


PULL = {
    "reason": "ErrImagePull",
    "message": 'rpc error: code = Unknown desc = failed to pull and unpack image "registry.example/slipway:3f2a":'
    " failed to resolve reference: dial tcp: lookup registry.example: no such host",
}


def test_an_image_that_cannot_be_pulled_is_named_once_the_timeout_passed():
    assert cannot_start(pod(10, waiting=PULL), timeout=60, now=NOW) is None  # the registry may come back
    said = cannot_start(pod(61, waiting=PULL), timeout=60, now=NOW)
    assert said is not None and said.startswith(f"image {IMAGE} cannot be pulled (ErrImagePull: rpc error")
    assert "no such host" in said and "\n" not in said
    back_off = {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{IMAGE}"'}
    assert cannot_start(pod(61, waiting=back_off), timeout=60, now=NOW) == (
        f'image {IMAGE} cannot be pulled (ImagePullBackOff: Back-off pulling image "{IMAGE}")'
    )


@pytest.mark.parametrize("reason", ["InvalidImageName", "ErrImageNeverPull"])
def test_an_image_name_that_can_never_resolve_fails_at_once(reason):
    said = cannot_start(pod(1, waiting={"reason": reason, "message": "no"}), timeout=600, now=NOW)
    assert said == f"image {IMAGE} cannot be pulled ({reason}: no)"


def test_a_missing_secret_is_named():
    waiting = {"reason": "CreateContainerConfigError", "message": 'secret "slipway-s3" not found'}
    assert cannot_start(pod(5, waiting=waiting), timeout=30, now=NOW) is None
    assert cannot_start(pod(31, waiting=waiting), timeout=30, now=NOW) == (
        'its container cannot be created (CreateContainerConfigError: secret "slipway-s3" not found)'
    )


def test_a_pod_no_node_can_take_is_named_with_the_scheduler_s_message():
    unschedulable = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient memory.",
        }
    ]
    assert cannot_start(pod(20, conditions=unschedulable), timeout=120, now=NOW) is None  # an autoscaler may add one
    assert cannot_start(pod(121, conditions=unschedulable), timeout=120, now=NOW) == (
        "no node can take it (0/1 nodes are available: 1 Insufficient memory.)"
    )


def test_pulling_scheduling_and_running_are_never_cut_short():
    creating = {"reason": "ContainerCreating"}  # a large image being pulled: slow is not stuck
    assert cannot_start(pod(3600, waiting=creating), timeout=60, now=NOW) is None
    assert cannot_start(pod(3600, waiting=PULL, phase="Running"), timeout=60, now=NOW) is None
    assert cannot_start(pod(3600, phase="Failed"), timeout=60, now=NOW) is None  # its Job says how it ended
    scheduled = [{"type": "PodScheduled", "status": "True"}]
    assert cannot_start(pod(3600, conditions=scheduled), timeout=60, now=NOW) is None


def test_the_line_is_one_line_short_and_names_no_secret():
    message = "pull https://robot:hunter2@registry.example/v2/ failed\n" + "x" * 2000
    said = cannot_start(pod(90, waiting={"reason": "ErrImagePull", "message": message}), timeout=60, now=NOW)
    assert said is not None and "hunter2" not in said and "\n" not in said and len(said) < 400


class _Api:
    """dagster-k8s's API client, as far as the watch uses it: the step's pods, and deleting its Job."""

    def __init__(self, pods: list[dict]) -> None:
        self.pods, self.deleted, self.selectors = pods, [], []
        listing = SimpleNamespace(
            items=[SimpleNamespace(metadata=SimpleNamespace(name=p["metadata"]["name"]), raw=p) for p in pods]
        )

        def list_namespaced_pod(namespace: str, label_selector: str) -> SimpleNamespace:
            self.selectors.append((namespace, label_selector))
            return listing

        serializer = SimpleNamespace(sanitize_for_serialization=lambda p: p.raw)
        self.core_api = SimpleNamespace(list_namespaced_pod=list_namespaced_pod, api_client=serializer)

    def delete_job(self, job_name: str, namespace: str) -> None:
        self.deleted.append((namespace, job_name))


class _Handler:
    """dagster-k8s's K8sStepHandler, reduced to what the watch reads."""

    name = "K8sStepHandler"

    def __init__(self, pods: list[dict], healthy: bool = True) -> None:
        self._api_client = _Api(pods)
        self.healthy = healthy

    def check_step_health(self, context: object) -> SimpleNamespace:
        return SimpleNamespace(is_healthy=self.healthy, unhealthy_reason=None if self.healthy else "job failed")

    def _get_k8s_step_job_name(self, context: object) -> str:
        return "dagster-step-abc"

    def _get_container_context(self, context: object) -> SimpleNamespace:
        return SimpleNamespace(namespace="ml")

    def launch_step(self, context: object) -> str:
        return "launched"


def test_a_stuck_pod_fails_its_step_and_its_job_is_deleted():
    handler = _Handler([pod(90, waiting=PULL, now=datetime.now(UTC))])
    watch = PodStartWatch(handler, timeout=60)
    result = watch.check_step_health(object())
    assert not result.is_healthy
    assert result.unhealthy_reason.startswith(
        f"step pod dagster-step-abc-xyz cannot start: image {IMAGE} cannot be pulled"
    )
    assert handler._api_client.selectors == [("ml", "job-name=dagster-step-abc")]
    assert handler._api_client.deleted == [("ml", "dagster-step-abc")]  # it must not start later on its own
    assert watch.launch_step(object()) == "launched" and watch.name == "K8sStepHandler"  # the rest is dagster-k8s's


def test_a_pod_that_may_yet_start_and_a_failed_job_are_left_to_dagster_k8s():
    waiting = PodStartWatch(_Handler([pod(5, waiting=PULL, now=datetime.now(UTC))]), timeout=60)
    assert waiting.check_step_health(object()).is_healthy
    assert waiting._handler._api_client.deleted == []
    failed = PodStartWatch(_Handler([pod(90, waiting=PULL)], healthy=False), timeout=60)
    assert failed.check_step_health(object()).unhealthy_reason == "job failed"
    assert failed._handler._api_client.selectors == []  # its own verdict stands; no pod read
