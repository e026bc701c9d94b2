# syntax=docker/dockerfile:1
# The tradewarden daemon: `docker build -t tradewarden .` from the repository root, or
# `docker compose up -d --build` (docker-compose.yml: the daemon and its PostgreSQL).
# Every dependency installs from a manylinux wheel (ta-lib's wheel bundles the TA-Lib C
# library), so the build needs no compiler.

# ---- build: a virtual environment with tradewarden and the PostgreSQL driver -------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/warden \
 && /opt/warden/bin/pip install --upgrade pip \
 && /opt/warden/bin/pip install --only-binary=:all: ".[postgres]"

# ---- run: the environment, a non-root user, /config and /data ----------------------------
FROM python:3.11-slim
RUN groupadd --system --gid 10001 warden \
 && useradd --system --uid 10001 --gid warden --create-home --home-dir /home/warden \
      --shell /usr/sbin/nologin warden \
 && mkdir -p /config /data \
 && chown warden:warden /data
COPY --from=build /opt/warden /opt/warden
# the lock of a server ledger and the candle cache live on the /data volume
ENV PATH=/opt/warden/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TRADEWARDEN_CONFIG=/config/warden.toml \
    TRADEWARDEN_STATE_DIR=/data/state \
    TRADEWARDEN_CACHE=/data/cache
USER warden
WORKDIR /data
VOLUME ["/config", "/data"]
# healthy while a daemon holds the ledger's lock and its last heartbeat (every 60 s) is
# under 180 s old: `warden daemon status --json`, judged by tradewarden.ops.service_files
HEALTHCHECK --interval=60s --timeout=45s --start-period=300s --retries=3 \
  CMD ["python", "-c", "import sys; from tradewarden.ops.service_files import healthcheck; sys.exit(healthcheck('/config/warden.toml'))"]
# SIGTERM (docker stop) finishes the bar in progress: give it time (`docker stop -t 300`,
# compose: stop_grace_period)
STOPSIGNAL SIGTERM
ENTRYPOINT ["warden"]
CMD ["daemon", "start", "--foreground", "--config", "/config/warden.toml"]
