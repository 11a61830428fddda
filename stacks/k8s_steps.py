"""Step pods that cannot start: the step fails naming why, instead of the run waiting for ever.

dagster-k8s's ``k8s_job_executor`` finds a step unhealthy only once its Job has *failed*. A pod
whose image cannot be pulled, whose Secret or ConfigMap is missing, or that the scheduler
cannot place for a reason other than room never fails its Job: it stays Pending, and the run
with it. Here each health check (every 20 s, Dagster's step-delegating executor) also reads the
pods of the step Jobs this handler launched; when one has shown the same problem for
``pod_start_timeout`` seconds, the step fails with one line (``step pod dagster-step-… cannot
start: image … cannot be pulled (ErrImagePull: …)``) and its Job is deleted, so that the pod
does not start later on its own.

What is never cut short: a pod being scheduled or pulling its image (however long), a pod
waiting for room (``Insufficient cpu``/``memory``: other steps or an autoscaler free it; a step
larger than every node waits too, as with dagster-k8s alone), and a problem that clears. The
time counts from when the problem was first seen, on this process's clock; a name that can
never resolve (``InvalidImageName``, ``ErrImageNeverPull``) fails at the first look. A quota
that refuses the pod leaves no pod to read: such a step still waits.
"""

from __future__ import annotations

import time
from typing import Any

from resources.redact import redact

# Waiting reasons of a container that has not started and will not without a change.
_IMAGE = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
_CONFIG = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
_AT_ONCE = {"InvalidImageName", "ErrImageNeverPull"}
_MESSAGE = 300  # characters of the kubelet's or scheduler's message kept in the line


def _short(message: str | None) -> str:
    """The first line of ``message``, redacted and cut to a length a log line holds."""
    text = (message or "").strip()
    line = redact(text.splitlines()[0]) if text else ""
    return line if len(line) <= _MESSAGE else line[: _MESSAGE - 1] + "…"


def _waiting_for_room(message: str) -> bool:
    """True when every reason the scheduler gives is a lack of room ("1 Insufficient memory")."""
    _, _, reasons = message.partition(":")
    parts = [p.strip().rstrip(".") for p in reasons.split(",") if p.strip()]
    return bool(parts) and all("Insufficient " in p or "Too many pods" in p for p in parts)


def problem(pod: dict[str, Any]) -> tuple[str, str, bool] | None:
    """What keeps ``pod`` (the API's JSON form) from starting: ``(kind, line, at_once)``, or None.

    ``kind`` groups what alternates (``ErrImagePull`` and ``ImagePullBackOff`` are one
    problem); ``at_once`` is true when waiting cannot help.
    """
    status = pod.get("status", {})
    if status.get("phase") not in (None, "Pending"):
        return None  # running or finished: the Job says how it ended
    images = {c.get("name"): c.get("image") for c in pod.get("spec", {}).get("containers", [])}
    for container in status.get("initContainerStatuses", []) + status.get("containerStatuses", []):
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        message = _short(waiting.get("message"))
        detail = f"{reason}: {message}" if message else str(reason)
        if reason in _IMAGE:
            image = container.get("image") or images.get(container.get("name"), "?")
            return "image", f"image {image} cannot be pulled ({detail})", reason in _AT_ONCE
        if reason in _CONFIG:
            return "config", f"its container cannot be created ({detail})", False
    for condition in status.get("conditions", []):
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
            said = _short(condition.get("message"))
            if _waiting_for_room(said):
                return None  # queueing for room, which running steps or an autoscaler free
            return "unschedulable", f"no node can take it ({said or 'unschedulable'})", False
    return None


class PodStartWatch:
    """dagster-k8s's step handler, whose health check also fails a step whose pod cannot start.

    Only the Jobs this handler launched are read (a resumed run's earlier Jobs are dagster-k8s's
    alone). Everything else (terminating, the handler's name) is the wrapped handler's.
    """

    def __init__(self, handler: Any, timeout: float, clock: Any = time.monotonic) -> None:
        self._handler = handler
        self._timeout = timeout
        self._clock = clock
        self._launched: set[str] = set()
        self._first_seen: dict[tuple[str, str], float] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handler, name)

    def launch_step(self, step_handler_context: Any) -> Any:
        """dagster-k8s's launch, remembering the Job's name."""
        self._launched.add(self._handler._get_k8s_step_job_name(step_handler_context))
        yield from self._handler.launch_step(step_handler_context)

    def check_step_health(self, step_handler_context: Any) -> Any:
        """dagster-k8s's verdict on the step's Job; when healthy, whether its pod can start."""
        from resources.dagster_private import unhealthy_step

        result = self._handler.check_step_health(step_handler_context)
        handler = self._handler
        try:
            job_name = handler._get_k8s_step_job_name(step_handler_context)
            if not result.is_healthy or job_name not in self._launched:
                return result
            namespace = handler._get_container_context(step_handler_context).namespace
            api = handler._api_client
            pods = api.core_api.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items
            found = [(pod.metadata, problem(api.core_api.api_client.sanitize_for_serialization(pod))) for pod in pods]
        except Exception:  # the API did not answer this time: dagster-k8s's verdict stands
            return result
        now = self._clock()
        seen = set()
        for metadata, stuck in found:
            if stuck is None:
                continue
            kind, line, at_once = stuck
            key = (str(metadata.uid), kind)
            seen.add(key)
            first = self._first_seen.setdefault(key, now)
            if at_once or now - first >= self._timeout:
                try:  # gone, so that it does not start later on its own (an image pushed, a fix)
                    api.delete_job(job_name=job_name, namespace=namespace)
                except Exception:
                    pass  # the step fails all the same; the pod stays Pending
                self._launched.discard(job_name)
                return unhealthy_step(f"step pod {metadata.name} cannot start: {line}")
        # A problem that cleared starts again from zero if it comes back.
        for key in [k for k in self._first_seen if k[0] in {str(m.uid) for m, _ in found} and k not in seen]:
            del self._first_seen[key]
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
