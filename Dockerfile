# The Arena application image. One image for every role; docker-compose.yml picks the command:
#   web     uvicorn config.asgi:application ...          (the default CMD)
#   worker  celery -A config worker --pool threads ...
#   beat    celery -A config beat ...
#   migrate python manage.py migrate && python manage.py models_sync
# Everything is installed and collected at build time; containers only run.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN groupadd --system --gid 10001 arena \
    && useradd --system --uid 10001 --gid arena --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin arena

WORKDIR /app

# Runtime dependencies only (pyproject's [project].dependencies; the test extras stay out), at the
# versions frozen in requirements.lock. A layer of its own: code changes don't reinstall them.
COPY pyproject.toml requirements.lock ./
COPY docker/requirements_runtime.py docker/
RUN python docker/requirements_runtime.py > /tmp/requirements.txt \
    && pip install --no-cache-dir -c requirements.lock -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The source tree (see .dockerignore), owned by root: the app user can read it, not change it.
COPY . .

# Static files, hashed and compressed for whitenoise. The key exists only for this command.
RUN SECRET_KEY=build-only DEBUG=false python manage.py collectstatic --noinput

# The processes' Prometheus metric files (ARENA_METRICS_DIR's default): compose mounts one volume
# here in web and worker, which takes this ownership when it is first created.
RUN mkdir -p /tmp/arena-metrics && chown 10001:10001 /tmp/arena-metrics

USER 10001:10001

EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "/app/docker/healthcheck.py"]

CMD ["uvicorn", "config.asgi:application", "--host=0.0.0.0", "--port=8000", "--proxy-headers", "--ws-max-size=262144", "--ws-per-message-deflate=false", "--timeout-graceful-shutdown=20"]
