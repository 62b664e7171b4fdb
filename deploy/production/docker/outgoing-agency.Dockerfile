# The outgoing agency (转出地经办机构): one image, two processes.
#   API + Kafka consumer (default):  docker run IMAGE
#   Temporal worker:                 docker run IMAGE worker
# The worker is the same code, configuration and dependencies as the API, started with
# another sub-command of `python -m services.outgoing_agency`, so it is this image with a
# different command rather than an image of its own: one build, one scan, one version.
#
# Build from the repository root (the context is filtered by /.dockerignore):
#   docker build -f deploy/production/docker/outgoing-agency.Dockerfile -t medtransfer/outgoing-agency:0.1.0 .
#
# Base image: pinned by version and by the digest of its multi-architecture index. The
# digest was taken from public records of that tag, not pulled on the machine that wrote
# this file (it has no Docker engine). Check or refresh it, in every Dockerfile here, with:
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm --format '{{json .Manifest.Digest}}'

# ---- build: wheels of the runtime dependencies, every version fixed by requirements.lock
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /build
COPY pyproject.toml requirements.lock ./
# The runtime dependencies of pyproject.toml (not the dev extra) as a requirements file; the
# lock constrains them and everything they pull in. The venv is installed from the built
# wheels only (--no-index), which proves the wheelhouse is complete.
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('requirements.runtime.txt', 'w').write(chr(10).join(deps) + chr(10))" \
 && pip wheel --wheel-dir /wheels --constraint requirements.lock --requirement requirements.runtime.txt \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --find-links /wheels --constraint requirements.lock --requirement requirements.runtime.txt

# ---- runtime: the venv, the code and the reference data; no compiler, no pip cache
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS runtime
# tini as PID 1 passes SIGTERM on to the service (PID 1 ignores signals it has no handler
# for) and reaps zombies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 medtransfer \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin medtransfer \
 && mkdir -p /var/lib/medtransfer /run/medtransfer/keys /run/medtransfer/calendar \
 && chown 10001:10001 /var/lib/medtransfer /run/medtransfer/calendar
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MEDTRANSFER_DATA_DIR=/var/lib/medtransfer \
    MEDTRANSFER_KEYS_DIR=/run/medtransfer/keys
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The code stays a source tree under /app (not installed into site-packages): the settings'
# defaults find data/ (regions, policy table, calendar) beside the packages.
COPY domain/ domain/
COPY contracts/ contracts/
COPY workflows/ workflows/
COPY services/ services/
COPY data/ data/
COPY deploy/production/docker/entrypoint.sh deploy/production/docker/healthcheck.py /usr/local/lib/medtransfer/
# Compiled once here, owned by root: the service user can read the code, never change it,
# and a read-only root filesystem costs no start-up time.
RUN python -m compileall -q /app
# No secret in the image: database URLs and API keys come as files in /run/secrets (see
# entrypoint.sh), region signing keys as a read-only mount on /run/medtransfer/keys.
USER 10001:10001
EXPOSE 8002
# The API's health route. Run as the worker, override it with the worker's metrics URL
# (compose.yaml does): healthcheck.py http://127.0.0.1:<metrics port>/metrics
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "/usr/local/lib/medtransfer/healthcheck.py", "http://127.0.0.1:8002/health"]
ENTRYPOINT ["/usr/bin/tini", "--", "/bin/sh", "/usr/local/lib/medtransfer/entrypoint.sh", "python", "-m", "services.outgoing_agency"]
CMD ["api", "--host", "0.0.0.0", "--port", "8002"]
