"""Production: every secret comes from the environment with no default, and `manage.py check --deploy` passes.

Several web and worker machines share one PostgreSQL, one Redis and one S3-compatible bucket, so production refuses
to start without DATABASE_URL, REDIS_URL and S3_BUCKET: without them each machine would quietly keep its own SQLite
file, folder broker, cache (and so its own rate limits) and files. docs/deploy.md maps this onto machines.
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import DATABASES, LOGGING, env

_REQUIRED = {
    "DATABASE_URL": "the PostgreSQL every machine shares, e.g. postgres://billpay:…@db:5432/billpay",
    "REDIS_URL": "the Redis every machine shares (Celery broker, cache, rate limits), e.g. redis://redis:6379/0",
    "S3_BUCKET": "the private S3-compatible bucket for bill PDFs and uploads, e.g. billpay-private",
}
for _name, _what in _REQUIRED.items():
    if not env.str(_name, default=""):
        raise ImproperlyConfigured(f"{_name} is not set. Production needs {_what}.")

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")

# PostgreSQL connections, one of three ways (DATABASE_CONNECTIONS):
# - "persistent" (default): each process keeps its connection open for CONN_MAX_AGE seconds, checked before reuse;
# - "pool": Django's own pool (psycopg-pool) in each process; it needs CONN_MAX_AGE=0;
# - "pgbouncer": DATABASE_URL points at pgbouncer in transaction mode, which cannot keep server-side cursors open.
DATABASE_CONNECTIONS = env("DATABASE_CONNECTIONS", default="persistent")
if DATABASE_CONNECTIONS == "persistent":
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
elif DATABASE_CONNECTIONS == "pool":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False  # the pool checks its own connections
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=8),
        "timeout": env.int("DATABASE_POOL_TIMEOUT", default=10),
    }
elif DATABASE_CONNECTIONS == "pgbouncer":
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)  # pgbouncer checks its own
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
else:
    raise ImproperlyConfigured("DATABASE_CONNECTIONS must be persistent, pool or pgbouncer.")

# Files every machine shares: a private bucket. Nothing is public: PDFs and uploads are streamed through views that
# check access; anything that needs a link gets a signed one that expires.
_S3_OPTIONS = {
    "bucket_name": env("S3_BUCKET"),
    "endpoint_url": env("S3_ENDPOINT_URL", default="") or None,  # empty: AWS; else MinIO, Ceph, moto, …
    "region_name": env("S3_REGION", default="") or None,
    # Empty keys: boto3's own chain (instance role, AWS_* variables, ~/.aws).
    "access_key": env("S3_ACCESS_KEY_ID", default="") or None,
    "secret_key": env("S3_SECRET_ACCESS_KEY", default="") or None,
    "default_acl": "private",
    "signature_version": "s3v4",
    "querystring_auth": True,
    "querystring_expire": env.int("S3_SIGNED_URL_SECONDS", default=300),
    "file_overwrite": False,
    "addressing_style": env("S3_ADDRESSING_STYLE", default="") or None,
}
STORAGES = {
    "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**_S3_OPTIONS, "location": "media"}},
    "private": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**_S3_OPTIONS, "location": "private"}},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
STATIC_ROOT = env("STATIC_ROOT", default=str(STATIC_ROOT))  # noqa: F405

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# The load balancer probes /healthz/ and Prometheus scrapes /metrics on each web process over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz/", r"^metrics$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")

# Static files served by the app itself, compressed and cache-busted (runserver serves them in local runs).
MIDDLEWARE = [*MIDDLEWARE]  # noqa: F405
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, "whitenoise.middleware.WhiteNoiseMiddleware"
)

# Payment keys have no defaults in production.
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY")
STRIPE_PUBLISHABLE_KEY = env("STRIPE_PUBLISHABLE_KEY")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET")

# Text messages through Twilio need its credentials, with no defaults.
if env("SMS_BACKEND", default="console") == "twilio":
    TWILIO_ACCOUNT_SID = env("TWILIO_ACCOUNT_SID")
    TWILIO_AUTH_TOKEN = env("TWILIO_AUTH_TOKEN")
    if not (env("TWILIO_FROM_NUMBER", default="") or env("TWILIO_MESSAGING_SERVICE_SID", default="")):
        raise ImproperlyConfigured("Set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID for SMS_BACKEND=twilio.")

# One JSON object per log line, with the request id; Celery keeps Django's logging instead of its own.
LOGGING["handlers"]["console"]["formatter"] = env("LOG_FORMAT", default="json")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Errors to Sentry only when a DSN is given, scrubbed of card data, IBANs, tokens and message bodies (config/sentry.py).
SENTRY_DSN = env("SENTRY_DSN", default="")
if SENTRY_DSN:
    from config.sentry import sentry_init

    sentry_init(
        dsn=SENTRY_DSN,
        environment=env("SENTRY_ENVIRONMENT", default="production"),
        release=env("SENTRY_RELEASE", default=""),
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
    )
