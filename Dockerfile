# expctl as a container image: docs/install.md#the-container-image
#
#   docker build -t expctl:0.2.0 .
#   docker run --rm -v "$PWD:/work" -e DATABASE_URL -e REDIS_URL -e BYOK_ENCRYPTION_KEY expctl:0.2.0 plan
#
# The base is pinned by exact tag (Python 3.11.14, Debian bookworm, slim). Pin it by digest too where the
# registry can be reached: docker buildx imagetools inspect python:3.11.14-slim-bookworm, then
# FROM python:3.11.14-slim-bookworm@sha256:<index digest> in both stages.
# Dependencies come only from requirements/expctl.lock, every file checked against its sha256
# (--require-hashes); expctl itself is installed with --no-deps, so nothing unpinned gets in.

FROM python:3.11.14-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/expctl
COPY requirements/expctl.lock /tmp/expctl.lock
RUN /opt/expctl/bin/pip install --no-cache-dir --require-hashes -r /tmp/expctl.lock
COPY pyproject.toml README.md LICENSE /src/
COPY src /src/src
RUN /opt/expctl/bin/pip install --no-cache-dir --no-deps /src \
    && /opt/expctl/bin/expctl --version

FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="expctl" \
      org.opencontainers.image.description="Model experiments as code: plan and reconcile into PostgreSQL and Redis" \
      org.opencontainers.image.licenses="MIT"
ENV PATH=/opt/expctl/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/expctl /opt/expctl
RUN useradd --system --uid 10001 --user-group --home-dir /home/expctl --create-home expctl
USER 10001:10001
# The manifests repository is mounted here (experiments.d/, expctl.toml); relative secret paths resolve
# against it, /run/secrets is an allowed root for from_file.
WORKDIR /work
ENTRYPOINT ["expctl"]
CMD ["--help"]
