"""A step pod that cannot start fails its step naming why (stacks/k8s_steps.py), offline.

The pods are the API's JSON as a 1.20 cluster returned it for each case; the cluster tier
(tests/cluster) shows one of them for real: a step whose image cannot be pulled.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from stacks.k8s_steps import PodStartWatch, problem

IMAGE = "registry.example/slipway:3f2a"


def pod(
    *, waiting: dict | None = None, phase: str = "Pending", conditions: list | None = None, uid: str = "u1"
) -> dict:
    status: dict = {"phase": phase, "conditions": conditions or []}
    if waiting is not None:
        status["containerStatuses"] = [{"name": "dagster", "image": IMAGE, "state": {"waiting": waiting}}]
    return {
        "metadata": {"name": "dagster-step-abc-xyz", "uid": uid, "creationTimestamp": "2026-12-06T12:00:00Z"},
        "spec": {"containers": [{"name": "dagster", "image": IMAGE}]},
        "status": status,
    }


PULL = {
    "reason": "ErrImagePull",
    "message": 'rpc error: code = Unknown desc = failed to pull and unpack image "registry.example/slipway:3f2a":'
    " failed to resolve reference: dial tcp: lookup registry.example: no such host",
}
BACK_OFF = {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{IMAGE}"'}


def unschedulable(message: str) -> list[dict]:
    return [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]


def test_an_image_that_cannot_be_pulled_is_named():
    kind, line, at_once = problem(pod(waiting=PULL))
    assert (kind, at_once) == ("image", False)  # the registry may come back: the watch waits
    assert line.startswith(f"image {IMAGE} cannot be pulled (ErrImagePull: rpc error") and "no such host" in line
    assert problem(pod(waiting=BACK_OFF)) == (
        "image", f'image {IMAGE} cannot be pulled (ImagePullBackOff: Back-off pulling image "{IMAGE}")', False
    )  # fmt: skip


@pytest.mark.parametrize("reason", ["InvalidImageName", "ErrImageNeverPull"])
def test_an_image_name_that_can_never_resolve_fails_at_once(reason):
    assert problem(pod(waiting={"reason": reason, "message": "no"})) == (
        "image", f"image {IMAGE} cannot be pulled ({reason}: no)", True
    )  # fmt: skip


def test_a_missing_secret_is_named():
    waiting = {"reason": "CreateContainerConfigError", "message": 'secret "slipway-s3" not found'}
    assert problem(pod(waiting=waiting)) == (
        "config", 'its container cannot be created (CreateContainerConfigError: secret "slipway-s3" not found)', False
    )  # fmt: skip


def test_a_pod_no_node_can_take_is_named_but_one_waiting_for_room_is_not():
    selector = "0/1 nodes are available: 1 node(s) didn't match node selector."
    assert problem(pod(conditions=unschedulable(selector))) == (
        "unschedulable", f"no node can take it ({selector})", False
    )  # fmt: skip
    # Queueing: the run's other steps or an autoscaler free room.
    for room in (
        "0/1 nodes are available: 1 Insufficient memory.",
        "0/3 nodes are available: 2 Insufficient cpu, 1 Too many pods.",
    ):
        assert problem(pod(conditions=unschedulable(room))) is None
    mixed = (
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had taint {gpu: true}, that the pod didn't tolerate."
    )
    assert problem(pod(conditions=unschedulable(mixed)))[0] == "unschedulable"
    gated = [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]  # held on purpose (1.26+)
    assert problem(pod(conditions=gated)) is None


def test_pulling_scheduling_and_running_are_not_problems():
    assert problem(pod(waiting={"reason": "ContainerCreating"})) is None  # a large image being pulled
    assert problem(pod(waiting=PULL, phase="Running")) is None
    assert problem(pod(phase="Failed")) is None  # its Job says how it ended
    assert problem(pod(conditions=[{"type": "PodScheduled", "status": "True"}])) is None


def test_the_line_is_one_line_short_and_names_no_secret():
    message = "pull https://robot:hunter2@registry.example/v2/ failed\n" + "x" * 2000
    _, line, _ = problem(pod(waiting={"reason": "ErrImagePull", "message": message}))
    assert "hunter2" not in line and "\n" not in line and len(line) < 400


class _Api:
    """dagster-k8s's API client, as far as the watch uses it: the step's pods, and deleting its Job."""

    def __init__(self, pods: list[dict]) -> None:
        self.pods, self.deleted, self.selectors, self.down = pods, [], [], False

        def list_namespaced_pod(namespace: str, label_selector: str) -> SimpleNamespace:
            if self.down:
                raise ConnectionError("the API server did not answer")
            self.selectors.append((namespace, label_selector))
            items = [
                SimpleNamespace(metadata=SimpleNamespace(name=p["metadata"]["name"], uid=p["metadata"]["uid"]), raw=p)
                for p in self.pods
            ]
            return SimpleNamespace(items=items)

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

    def launch_step(self, context: object):
        yield "launched"


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watched(pods: list[dict], healthy: bool = True, timeout: float = 60) -> tuple[PodStartWatch, _Handler, _Clock]:
    handler, clock = _Handler(pods, healthy), _Clock()
    watch = PodStartWatch(handler, timeout=timeout, clock=clock)
    assert list(watch.launch_step(object())) == ["launched"]  # dagster-k8s's launch, the Job remembered
    return watch, handler, clock


def test_a_stuck_pod_fails_its_step_once_the_problem_lasted_the_timeout_and_its_job_is_deleted():
    watch, handler, clock = watched([pod(waiting=PULL)])
    assert watch.check_step_health(object()).is_healthy  # first seen now
    clock.now += 30
    handler._api_client.pods = [pod(waiting=BACK_OFF)]  # kubelet alternates: one problem
    assert watch.check_step_health(object()).is_healthy
    clock.now += 31
    result = watch.check_step_health(object())
    assert not result.is_healthy
    assert result.unhealthy_reason.startswith(
        f"step pod dagster-step-abc-xyz cannot start: image {IMAGE} cannot be pulled"
    )
    assert handler._api_client.selectors[-1] == ("ml", "job-name=dagster-step-abc")
    assert handler._api_client.deleted == [("ml", "dagster-step-abc")]  # it must not start later on its own
    assert watch.name == "K8sStepHandler"  # the rest is dagster-k8s's


def test_an_old_pod_whose_problem_just_appeared_is_given_the_whole_timeout():
    """A pod that pulled a large image for ten minutes, then hit one passing error, is not failed."""
    watch, handler, clock = watched([pod(waiting={"reason": "ContainerCreating"})])
    clock.now += 600
    assert watch.check_step_health(object()).is_healthy
    handler._api_client.pods = [
        pod(waiting={"reason": "CreateContainerError", "message": "failed to reserve container name"})
    ]
    assert watch.check_step_health(object()).is_healthy
    handler._api_client.pods = [pod(waiting={"reason": "ContainerCreating"})]  # it cleared
    clock.now += 59
    assert watch.check_step_health(object()).is_healthy
    handler._api_client.pods = [pod(waiting={"reason": "CreateContainerError", "message": "again"})]
    clock.now += 30  # back: counted from zero again
    assert watch.check_step_health(object()).is_healthy and handler._api_client.deleted == []


def test_a_name_that_can_never_resolve_fails_at_the_first_look():
    watch, handler, _ = watched([pod(waiting={"reason": "InvalidImageName", "message": "bad"})], timeout=600)
    assert not watch.check_step_health(object()).is_healthy


def test_an_api_that_does_not_answer_and_a_failed_job_leave_dagster_k8s_s_verdict():
    watch, handler, clock = watched([pod(waiting=PULL)])
    handler._api_client.down = True
    clock.now += 3600
    assert watch.check_step_health(object()).is_healthy  # no exception escapes the health check
    failed, handler, _ = watched([pod(waiting=PULL)], healthy=False)
    assert failed.check_step_health(object()).unhealthy_reason == "job failed"
    assert handler._api_client.selectors == []  # its own verdict stands; no pod read


def test_jobs_it_did_not_launch_are_not_read():
    """A resumed run's earlier Jobs: dagster-k8s decides about them alone."""
    handler = _Handler([pod(waiting={"reason": "InvalidImageName", "message": "bad"})])
    watch = PodStartWatch(handler, timeout=60)
    assert watch.check_step_health(object()).is_healthy and handler._api_client.selectors == []
