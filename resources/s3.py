"""S3 clients (one per endpoint and settings, shared by threads) and S3 errors as one line that names no secret."""

from __future__ import annotations

import os
import threading
from typing import Any

from resources.errors import ResourceError
from resources.redact import redact

_CLIENTS: dict[tuple[Any, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def s3_client(endpoint_url: str | None, region: str | None, attempts: int, timeout: float) -> Any:
    """One boto3 S3 client per configuration and process (clients are thread-safe; building one costs ~50 ms).

    Credentials are boto3's own chain: the environment, a web identity (a Kubernetes service
    account's role), an instance profile. Retries are boto3's standard mode, bounded.
    """
    wanted = (os.getpid(), endpoint_url, region, attempts, timeout)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(wanted)
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                retries={"max_attempts": attempts, "mode": "standard"},
                connect_timeout=timeout,
                read_timeout=timeout,
                # Path-style: MinIO, Ceph and moto serve every bucket on one host name.
                s3={"addressing_style": "path"},
            )
            client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
            _CLIENTS[wanted] = client
        return client


#: botocore's errors for an endpoint that did not answer (retried, up to ``attempts`` in all).
_UNANSWERED = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "ProxyConnectionError",
}


def s3_error(
    exc: BaseException, what: str, bucket: str, endpoint_url: str | None, attempts: int | None = None
) -> ResourceError:
    """A one-line :class:`ResourceError` for a failed S3 request, naming the endpoint and bucket, never a secret."""
    endpoint = redact(endpoint_url or "AWS S3")
    where = f"artifact store (s3): {endpoint}, bucket {bucket}"
    name = type(exc).__name__
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return ResourceError(
            f"{where}: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(from a Kubernetes secret in a cluster), or give the pod an IAM role"
        )
    if code == "NoSuchBucket":
        return ResourceError(f"{where}: the bucket does not exist; create it, or set artifact_store.bucket")
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
        return ResourceError(f"{where}: access denied ({code}) to {what}: check the credentials and the bucket policy")
    if code is not None:
        return ResourceError(f"{where}: cannot {what}: {code}")
    detail = f"{name}: {redact(str(exc)).splitlines()[0][:200] if str(exc) else ''}"
    if name in _UNANSWERED:
        tries = f"{attempts} attempts" if attempts else "the retries"
        return ResourceError(f"{where}: cannot {what} (no answer after {tries}): {detail}")
    return ResourceError(f"{where}: cannot {what}: {detail}")
