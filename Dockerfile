# syntax=docker/dockerfile:1
# One image for the operator (`sundial run`) and the built-in deployers (`sundial deploy kubernetes|ecs`).
#   docker build -t ghcr.io/sundial-dev/sundial:0.1.0 --build-arg VERSION=0.1.0 .
# Stage 1 installs Sundial and its dependencies into a virtualenv; stage 2 is the slim base plus that
# virtualenv and nothing else: no pip, no compiler, no build tree.

# TODO: pin both FROM lines by digest (python:3.11-slim@sha256:...). The digest has to be read from the
# registry, which the machine this file was last changed on cannot reach; a digest written without reading
# it would be a guess. Until then the tag is what is pinned, and a rebuild may get a newer 3.11 patch.
FROM python:3.11-slim AS build
WORKDIR /src
# Every dependency ships a wheel for CPython 3.11 on x86_64 and arm64, so nothing is compiled. The
# virtualenv has no pip of its own: the build stage's pip installs into it (--python) and stays behind.
RUN python -m venv --without-pip /opt/sundial
# The runtime dependencies exactly as locked (`make lock`): every version pinned and every file checked
# against its recorded hashes. Copied before the source, so that a code change reuses this layer.
COPY requirements/runtime.lock ./requirements/
RUN pip --python /opt/sundial/bin/python install --no-cache-dir --disable-pip-version-check \
        --root-user-action=ignore --require-hashes -r requirements/runtime.lock
# The build backend as locked, into the build stage's own Python (not the virtualenv, which ships): Sundial
# is built into a wheel with it (--no-build-isolation, so pip fetches no unpinned setuptools), then installed.
COPY requirements/build.lock ./requirements/
RUN pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore --require-hashes \
        -r requirements/build.lock
COPY pyproject.toml README.md ./
COPY operator ./operator
# --no-deps: everything Sundial needs is installed above; nothing is resolved again here.
RUN pip wheel --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation \
        --wheel-dir /tmp/wheels . \
    && pip --python /opt/sundial/bin/python install --no-cache-dir --disable-pip-version-check \
        --root-user-action=ignore --no-deps /tmp/wheels/sundial-*.whl \
    && /opt/sundial/bin/sundial --version

FROM python:3.11-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="sundial" \
      org.opencontainers.image.description="A Kubernetes operator that deploys software at a chosen moment, in the team's own time zone." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# The base image's own pip, setuptools and wheel are build tools the operator never uses.
RUN python -m pip uninstall --yes --root-user-action=ignore pip setuptools wheel \
    && rm -rf /root/.cache
COPY --from=build /opt/sundial /opt/sundial
# PYTHONTZPATH set and empty: zoneinfo then searches no system directory and reads the tzdata wheel that
# is pinned with Sundial. Otherwise it prefers the base image's /usr/share/zoneinfo, which ages with the
# Debian release (2025b here while the wheel was 2026f), and a rule change a stale database misses moves
# a deploy by an hour. The wheel is upgraded with Sundial's dependencies; the tests read the same one.
ENV PATH="/opt/sundial/bin:${PATH}" \
    PYTHONTZPATH="" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# A numeric non-root user, so that runAsNonRoot can verify it without an /etc/passwd entry.
USER 65532:65532
ENTRYPOINT ["sundial"]
CMD ["run", "--in-cluster", "--all-namespaces"]
