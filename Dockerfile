# syntax=docker/dockerfile:1
# dmgate container image. Linted in CI: hadolint --failure-threshold warning Dockerfile
#
#   docker build -t dmgate .
#   docker run -p 8080:8080 -v dmgate-data:/data -e DMGATE_REVIEW_TOKENS=me:$(openssl rand -hex 24) dmgate

# ---- build: a virtualenv with dmgate and its dependencies, nothing else -----------------
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# PyICU (look-alike letters, UTS #39) builds against ICU: headers and a compiler here,
# the library alone in the runtime. Unpinned: Debian's stable security updates, not a
# frozen patch level, are what an image should get.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libicu-dev pkg-config g++ \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/dmgate
WORKDIR /src
# Only what the package needs: no tests, benchmarks, deploy files or VCS metadata.
COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY policies ./policies
# pip byte-compiles while installing: the non-root runtime cannot write __pycache__.
RUN /opt/dmgate/bin/pip install .

# ---- runtime ---------------------------------------------------------------------------
FROM python:3.11.11-slim-bookworm
LABEL org.opencontainers.image.title="dmgate" \
      org.opencontainers.image.description="HTTP proxy that holds or blocks automated DMs for human review" \
      org.opencontainers.image.licenses="Apache-2.0"
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libicu72 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 dmgate \
    && useradd --system --uid 10001 --gid dmgate --home-dir /data --create-home \
       --shell /usr/sbin/nologin dmgate
COPY --from=build /opt/dmgate /opt/dmgate
ENV PATH=/opt/dmgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DMGATE_HOST=0.0.0.0 \
    DMGATE_PORT=8080 \
    DMGATE_DATABASE_URL=sqlite:////data/dmgate.db \
    DMGATE_LOG_FORMAT=json
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# /healthz answers while the process serves; /readyz (store reachable) is for load balancers.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DMGATE_PORT', '8080') + '/healthz', timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["dmgate"]
CMD ["serve"]
