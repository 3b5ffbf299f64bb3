# syntax=docker/dockerfile:1
# Billpay's production image: one image for web (gunicorn), Celery workers and beat; compose.yaml shows the topology.
# Multi-stage: wheels are built in the first stage, the runtime stage carries no compiler. Runs as a non-root user.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY requirements.txt .
RUN pip wheel --wheel-dir /wheels -r requirements.txt

FROM python:3.11-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    STATIC_ROOT=/app/staticfiles \
    VAR_DIR=/app/var \
    GUNICORN_BIND=0.0.0.0:8000
# WeasyPrint (bill and receipt PDFs) needs Pango from the system.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       libpango-1.0-0=1.50.12+ds-1 libpangoft2-1.0-0=1.50.12+ds-1 fonts-dejavu-core=2.37-6 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 billpay \
    && useradd --system --uid 10001 --gid billpay --home-dir /app --shell /usr/sbin/nologin billpay
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels /wheels/* && rm -rf /wheels
WORKDIR /app
COPY --chown=10001:10001 . .
# Static files are collected at build time. Production settings refuse to load without their servers and secrets,
# so the build gives throwaway values; nothing is connected to here.
RUN DJANGO_SECRET_KEY=build-only DJANGO_ALLOWED_HOSTS=build DATABASE_URL=postgres://build@build/build \
    REDIS_URL=redis://build:6379/0 S3_BUCKET=build STRIPE_SECRET_KEY=build STRIPE_PUBLISHABLE_KEY=build \
    STRIPE_WEBHOOK_SECRET=build python manage.py collectstatic --noinput -v 0 \
    && mkdir -p /app/var && chown -R 10001:10001 /app/var /app/staticfiles
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz/live/', timeout=4).status != 200)"]
CMD ["gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi"]
