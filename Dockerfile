# agenttrail: OTLP receivers (gRPC 4317, HTTP 4318) and the REST API (8000) in one process.
#
#   docker build -t agenttrail .
#   docker run -p 4317:4317 -p 4318:4318 -p 8000:8000 -e AGENTTRAIL_API_KEYS=... agenttrail
#
# Without AGENTTRAIL_STORAGE the embedded engine keeps its files in the /var/lib/agenttrail
# volume; docker-compose.yml points it at a ClickHouse server instead.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
# Wheels first, so the runtime image gets the installed package and none of the sources.
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AGENTTRAIL_HOST=0.0.0.0 \
    AGENTTRAIL_DATA_DIR=/var/lib/agenttrail
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels agenttrail \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /var/lib/agenttrail --create-home agenttrail
USER agenttrail
WORKDIR /var/lib/agenttrail
VOLUME ["/var/lib/agenttrail"]
EXPOSE 4317 4318 8000
# slim has no curl: ask the API's /health with the standard library (503 when storage is down).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=5 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('AGENTTRAIL_API_PORT', '8000'), timeout=4)"
ENTRYPOINT ["agenttrail"]
CMD ["serve", "--host", "0.0.0.0"]
