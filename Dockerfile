# syntax=docker/dockerfile:1
# The Slipway image: the Dagster code server (the default command), the run and step pods Dagster
# launches from it, and the MLflow tracking server (helm/slipway runs `mlflow server` in it).
# Installed from the lock file, as CI installs it: `uv sync --frozen --no-dev`.
#
#   docker build -t registry.example.com/slipway:0.1.0 .
#
# BASE and UV_IMAGE name the registry images by default; where no registry can be reached,
# tests/cluster/image.sh makes both from Debian packages and the PyPI uv wheel.
ARG BASE=python:3.11-slim
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

FROM ${BASE} AS build
COPY --from=uv /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first, in a layer of their own: it is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev --no-install-project
# Then the project (installed editable, so that dg finds pyproject.toml beside the code), and
# its own modules compiled now: the pods' file system is read-only.
COPY definitions/ definitions/
COPY assets/ assets/
COPY resources/ resources/
COPY stacks/ stacks/
# The partitioned example, as a second code location a release may serve (env SLIPWAY_DEFS).
COPY examples/partitions/ examples/partitions/
COPY examples/sweep/ examples/sweep/
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev \
    && python -m compileall -q definitions assets resources stacks

FROM ${BASE}
# LightGBM's OpenMP runtime (the diabetes example's estimator): not in the slim base images.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
# A fixed non-root UID/GID (helm/slipway values securityContext.runAsUser) and no login shell.
RUN groupadd --system --gid 10001 slipway \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/slipway --shell /usr/sbin/nologin slipway \
    && install -d -o 10001 -g 10001 /var/lib/slipway
# Owned by root and read-only to the slipway user: the code cannot be changed by what it runs.
COPY --from=build /app /app
WORKDIR /app
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SLIPWAY_HOME=/var/lib/slipway
USER 10001:10001
EXPOSE 3030
# CMD, not ENTRYPOINT: Dagster starts run and step pods from this image with their own
# arguments (`dagster api execute_run …`) and no command, which an ENTRYPOINT would swallow.
CMD ["dagster", "api", "grpc", "--module-name", "definitions.definitions", "--attribute", "defs", \
     "--location-name", "slipway", "--host", "0.0.0.0", "--port", "3030"]
