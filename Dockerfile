# syntax=docker/dockerfile:1
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY policies ./policies
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /data --create-home dmgate
COPY --from=build /install /usr/local
USER dmgate
WORKDIR /data
ENV DMGATE_HOST=0.0.0.0 \
    DMGATE_PORT=8080 \
    DMGATE_DATABASE_URL=sqlite:////data/dmgate.db \
    DMGATE_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s \
  CMD ["python", "-c", "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["dmgate"]
CMD ["serve"]
