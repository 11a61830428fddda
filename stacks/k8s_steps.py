"""Step pods that cannot start: the step fails naming why, instead of the run waiting for ever.

dagster-k8s's ``k8s_job_executor`` finds a step unhealthy only once its Job has *failed*. A pod
whose image cannot be pulled, whose Secret or ConfigMap is missing, or that no node can take
never fails its Job: it stays Pending, and the run with it. Here each health check (every 20 s,
Dagster's step-delegating executor) also reads the step's pod; when it cannot start, the step
fails with one line (``step pod dagster-step-… cannot start: image … cannot be pulled
(ErrImagePull: …)``), and its Job is deleted so that the pod does not start later on its own.

A pod that is still being scheduled or pulling its image is never cut short: only a waiting
*error* (or ``Unschedulable``) that lasts ``pod_start_timeout`` seconds fails the step, since
a registry or a cluster autoscaler may yet resolve it; a name that can never resolve
(``InvalidImageName``, ``ErrImageNeverPull``) fails it at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from resources.redact import redact

# Waiting reasons of a container that has not started and will not without a change.
_IMAGE = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
_CONFIG = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
_AT_ONCE = {"InvalidImageName", "ErrImageNeverPull"}
_MESSAGE = 300  # characters of the kubelet's or scheduler's message kept in the line


def _short(message: str | None) -> str:
    """The first line of ``message``, redacted and cut to a length a log line holds."""
    line = redact((message or "").strip().splitlines()[0] if (message or "").strip() else "")
    return line if len(line) <= _MESSAGE else line[: _MESSAGE - 1] + "…"


def _age(pod: dict[str, Any], now: datetime) -> float:
    created = pod.get("metadata", {}).get("creationTimestamp")
    if not created:
        return 0.0
    return (now - datetime.fromisoformat(str(created).replace("Z", "+00:00"))).total_seconds()


def cannot_start(pod: dict[str, Any], timeout: float, now: datetime | None = None) -> str | None:
    """Why ``pod`` (the API's JSON form) cannot start, in one line; ``None`` while it may yet.

    ``timeout``: seconds a waiting error or an unschedulable pod is given to resolve itself.
    """
    now = now or datetime.now(UTC)
    status = pod.get("status", {})
    if status.get("phase") not in (None, "Pending"):
        return None  # running or finished: the Job says how it ended
    expired = _age(pod, now) >= timeout
    images = {c.get("name"): c.get("image") for c in pod.get("spec", {}).get("containers", [])}
    for container in status.get("initContainerStatuses", []) + status.get("containerStatuses", []):
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        message = _short(waiting.get("message"))
        detail = f"{reason}: {message}" if message else reason
        if reason in _IMAGE and (expired or reason in _AT_ONCE):
            image = container.get("image") or images.get(container.get("name"), "?")
            return f"image {image} cannot be pulled ({detail})"
        if reason in _CONFIG and expired:
            return f"its container cannot be created ({detail})"
    for condition in status.get("conditions", []):
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False" and expired:
            said = _short(condition.get("message")) or condition.get("reason") or "unschedulable"
            return f"no node can take it ({said})"
    return None


class PodStartWatch:
    """dagster-k8s's step handler, whose health check also fails a step whose pod cannot start.

    Everything else (launching, terminating, the handler's name) is the wrapped handler's.
    """

    def __init__(self, handler: Any, timeout: float) -> None:
        self._handler = handler
        self._timeout = timeout

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handler, name)

    def check_step_health(self, step_handler_context: Any) -> Any:
        """dagster-k8s's verdict on the step's Job; when healthy, whether its pod can start."""
        from resources.dagster_private import unhealthy_step

        result = self._handler.check_step_health(step_handler_context)
        if not result.is_healthy:
            return result
        handler = self._handler
        job_name = handler._get_k8s_step_job_name(step_handler_context)
        namespace = handler._get_container_context(step_handler_context).namespace
        api = handler._api_client
        pods = api.core_api.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items
        for pod in pods:
            why = cannot_start(api.core_api.api_client.sanitize_for_serialization(pod), self._timeout)
            if why is not None:
                # Gone, so that it does not start later on its own (an image pushed, a node added).
                api.delete_job(job_name=job_name, namespace=namespace)
                return unhealthy_step(f"step pod {pod.metadata.name} cannot start: {why}")
        return result


def executor(config: dict[str, Any], pod_start_timeout: float) -> Any:
    """dagster-k8s's ``k8s_job_executor`` configured with ``config``, watching its pods start."""
    import dagster as dg
    from dagster_k8s import k8s_job_executor

    from resources.dagster_private import wrap_step_handler

    def create(init_context: Any) -> Any:
        created = k8s_job_executor.executor_creation_fn(init_context)  # type: ignore[misc]
        return wrap_step_handler(created, lambda handler: PodStartWatch(handler, pod_start_timeout))

    watched = dg.ExecutorDefinition(
        name="k8s_job",
        config_schema=k8s_job_executor.config_schema.as_field(),
        requirements=k8s_job_executor.get_requirements,
        executor_creation_fn=create,
        description=k8s_job_executor.description,
    )
    return watched.configured(config, name="k8s_job")
