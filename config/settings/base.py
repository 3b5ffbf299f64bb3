"""Settings shared by every environment. Everything that differs between machines comes from the environment."""

from pathlib import Path
from urllib.parse import urlsplit

from csp.constants import NONCE, NONE, SELF
from kombu import Queue

import environ
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
env.read_env(str(BASE_DIR / ".env"), overwrite=False)
# Local state for the embedded run: SQLite file, folder broker, beat schedule, stored files.
VAR_DIR = Path(env("VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")  # local and test set their own; production requires it
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
# The public address of the portal, used for links in e-mails and PDFs (no request is at hand there).
# The public address in e-mails, PDFs and pay links. Locally it follows PORT, as the run command's web server does.
SITE_URL = env("SITE_URL", default=f"http://localhost:{env('PORT', default='8000')}").rstrip("/")

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'billpay.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Persistent connections, checked before reuse: a new PostgreSQL connection per request costs more than the page
# itself. This is the one documented choice (docs/performance.md); CONN_MAX_AGE=0 in the environment turns it off.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", env.bool("CONN_HEALTH_CHECKS", default=True))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL plus a busy timeout lets web, worker and beat share one SQLite file in the embedded run.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "accounts.apps.StaffAdminConfig",  # django.contrib.admin, signed in through allauth with a second factor
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "csp",
    "django_prometheus",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "accounts",
    "billing",
    "notifications",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "config.observability.RequestIdMiddleware",
    "config.proxy.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "billing.middleware.BillerTimeZoneMiddleware",  # the admin shows times on the biller's clock
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "billing.context_processors.biller",
            ],
        },
    },
]

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",  # permissions (and management commands)
    "allauth.account.auth_backends.AuthenticationBackend",  # every sign-in: payers and staff
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/me/"

# Payer sign-in (django-allauth): e-mail is the identifier, verified before first sign-in; a one-time code by e-mail
# works instead of a password; optional TOTP two-factor with recovery codes. allauth's rate limits and enumeration
# prevention stay at their defaults (on).
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"  # allauth's e-mails as the biller's, on SITE_URL
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_LOGIN_BY_CODE_ENABLED = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = ""
ACCOUNT_REAUTHENTICATION_TIMEOUT = 300
ACCOUNT_REAUTHENTICATION_REQUIRED = True  # changing the login e-mail asks for the password again
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env("MFA_TOTP_ISSUER", default="Billpay")
# Staff sign in to /admin/ through allauth too (accounts/admin_site.py), with TOTP required for every staff login.
# A staff session holds refund powers, so it ends sooner than a payer's (SESSION_COOKIE_AGE, two weeks).
STAFF_SESSION_COOKIE_AGE = env.int("STAFF_SESSION_COOKIE_AGE", default=8 * 60 * 60)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", _("English")),
    ("es", _("Spanish")),
    ("ar", _("Arabic")),
    ("fa", _("Persian")),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = env("MEDIA_ROOT", default=str(VAR_DIR / "media"))
# Bill PDFs, uploaded import files and statements are private (STORAGES["private"], billing/storage.py): they are
# streamed through views that check access, never from MEDIA_URL. Locally both are folders; production puts both in
# an S3-compatible bucket so that every machine sees the same files.
PRIVATE_STORAGE_ROOT = env("PRIVATE_STORAGE_ROOT", default=str(VAR_DIR / "private"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "private": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": PRIVATE_STORAGE_ROOT, "base_url": None},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))  # for the file-based backend
EMAIL_URL = env.email_url("EMAIL_URL", default="smtp://localhost:25")
EMAIL_HOST = EMAIL_URL["EMAIL_HOST"]
EMAIL_PORT = EMAIL_URL["EMAIL_PORT"]
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Billpay <billing@example.com>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Celery. With no REDIS_URL the broker is a folder on disk, so the embedded run needs no server.
REDIS_URL = env("REDIS_URL", default="")
CELERY_BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
# Queues by kind, so a flood of one kind never delays another: payments (charges, reconcile), notifications (one
# message per notice), bulk (imports, invitation batches, the hourly planners) and default (the minute sweepers).
# A worker started without -Q consumes all four (the local run, the tests); scripts/cluster.sh splits them.
CELERY_TASK_QUEUES = [Queue(name) for name in ("payments", "notifications", "bulk", "default")]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_CREATE_MISSING_QUEUES = False
CELERY_TASK_ROUTES = {
    "billing.tasks.autopay_charge_task": {"queue": "payments"},
    "billing.tasks.autopay_charge_batch_task": {"queue": "payments"},
    "billing.tasks.payments_reconcile_task": {"queue": "payments"},
    "billing.tasks.credits_apply_task": {"queue": "payments"},
    "billing.tasks.payment*": {"queue": "payments"},
    "notifications.tasks.notification_send_task": {"queue": "notifications"},
    "notifications.tasks.notifications_send_batch_task": {"queue": "notifications"},
    "billing.tasks.bill_import_run_task": {"queue": "bulk"},
    "billing.tasks.statement_match_task": {"queue": "bulk"},
    "billing.tasks.autopay_plan_task": {"queue": "bulk"},
    "billing.tasks.plans_sweep_task": {"queue": "bulk"},
    "notifications.tasks.reminders_plan_task": {"queue": "bulk"},
    "accounts.tasks.invitation_batch_send_task": {"queue": "bulk"},
}

# A cache every process shares (web, worker), so rate limits hold across them: Redis when set, else files in VAR_DIR.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "config.cache.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(VAR_DIR / "cache")}}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 14 * 60
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Beat only runs short sweepers; long waits live in database rows, never in multi-day ETAs.
CELERY_BEAT_SCHEDULE = {
    # Kill Bill's janitor: settle online payments whose outcome we never heard (lost webhook, closed tab).
    "payments-reconcile": {
        "task": "billing.tasks.payments_reconcile_task",
        "schedule": 5 * 60,
        "options": {"expires": 4 * 60},
    },
    # Credit held on accounts whose bills owe something (normally applied at once when bills are issued).
    "credits-apply": {"task": "billing.tasks.credits_apply_task", "schedule": 60 * 60, "options": {"expires": 50 * 60}},
    # Reminders: plan outbox rows hourly (idempotent by unique key); sweep due rows every minute.
    "reminders-plan": {
        "task": "notifications.tasks.reminders_plan_task",
        "schedule": 60 * 60,
        "options": {"expires": 50 * 60},
    },
    "notifications-sweep": {
        "task": "notifications.tasks.notifications_sweep_task",
        "schedule": 60,
        "options": {"expires": 50},
    },
    # Autopay: plan one charge row per due bill hourly; claim due rows (first tries and retries) every minute.
    "autopay-plan": {"task": "billing.tasks.autopay_plan_task", "schedule": 60 * 60, "options": {"expires": 50 * 60}},
    "autopay-sweep": {"task": "billing.tasks.autopay_sweep_task", "schedule": 60, "options": {"expires": 50}},
    # Payment plans: mark late instalments, break plans past their grace days, let unanswered proposals lapse.
    "plans-sweep": {"task": "billing.tasks.plans_sweep_task", "schedule": 60 * 60, "options": {"expires": 50 * 60}},
}

# A claimed outbox row or autopay charge that no worker has started this long after its claim lost its task message
# (a Redis flush, a purged queue) or still waits in the queue: the minute sweeper enqueues it again. A worker starts
# a row with a conditional UPDATE, so a second message for it does nothing. Rows a worker started keep the long
# NOTIFICATIONS_SENDING_TIMEOUT_SECONDS / AUTOPAY_CHARGING_TIMEOUT_SECONDS: they may be mid-send or mid-charge.
NOTIFICATIONS_UNSTARTED_TIMEOUT_SECONDS = env.int("NOTIFICATIONS_UNSTARTED_TIMEOUT_SECONDS", default=60)
AUTOPAY_UNSTARTED_TIMEOUT_SECONDS = env.int("AUTOPAY_UNSTARTED_TIMEOUT_SECONDS", default=60)

# Notices: attempts per notice before it fails, seconds a claimed "sending" row waits before the sweeper reclaims it
# (longer than the send task's hard time limit), and the first retry delay (doubling after each failure, at most 6 h).
NOTIFICATIONS_MAX_ATTEMPTS = env.int("NOTIFICATIONS_MAX_ATTEMPTS", default=5)
NOTIFICATIONS_SENDING_TIMEOUT_SECONDS = env.int("NOTIFICATIONS_SENDING_TIMEOUT_SECONDS", default=600)
NOTIFICATIONS_RETRY_BASE_SECONDS = env.int("NOTIFICATIONS_RETRY_BASE_SECONDS", default=60)
# Attach the bill's PDF to bill e-mails.
NOTIFICATIONS_ATTACH_BILL_PDF = env.bool("NOTIFICATIONS_ATTACH_BILL_PDF", default=True)

# Autopay: seconds a "charging" row waits before it counts as lost (longer than the charge task's hard time limit);
# the biller-local hour charges are planned for; how many days late a missed due date is still charged; how many days
# ahead the "autopay will charge" notice goes out; and the least hours between two tries of one charge.
AUTOPAY_CHARGING_TIMEOUT_SECONDS = env.int("AUTOPAY_CHARGING_TIMEOUT_SECONDS", default=600)
# Autopay charges the sweeper's claimed rows in batches (billing.autopay.charging.autopay_charge_batch): rows per
# charge task, and the most seconds a batch confirms while it holds its accounts' locks before it commits what it
# has and takes them again for the rest (a payer paying one of those accounts by hand waits at most about this).
AUTOPAY_CHARGE_BATCH_SIZE = env.int("AUTOPAY_CHARGE_BATCH_SIZE", default=20)
AUTOPAY_BATCH_LOCK_SECONDS = env.float("AUTOPAY_BATCH_LOCK_SECONDS", default=2.0)
AUTOPAY_CHARGE_HOUR = env.int("AUTOPAY_CHARGE_HOUR", default=8)
AUTOPAY_CATCH_UP_DAYS = env.int("AUTOPAY_CATCH_UP_DAYS", default=2)
AUTOPAY_UPCOMING_NOTICE_DAYS = env.int("AUTOPAY_UPCOMING_NOTICE_DAYS", default=3)
AUTOPAY_MIN_RETRY_GAP_HOURS = env.int("AUTOPAY_MIN_RETRY_GAP_HOURS", default=12)

# Days an e-mailed invitation link stays valid.
INVITATION_VALID_DAYS = env.int("INVITATION_VALID_DAYS", default=14)

# Sessions are read from the shared cache (Redis, or the file cache when embedded) and written through to the
# database, so a page does not query for its session and a session outlives a cache flush (docs/performance.md).
# Payer pages kept rendered in the shared cache, served while every row they read is unchanged (billing/pagecache.py):
# how long a rendered page may be kept. 0 turns the page cache off.
PAGE_CACHE_SECONDS = env.int("PAGE_CACHE_SECONDS", default=300)
SESSION_ENGINE = env("SESSION_ENGINE", default="django.contrib.sessions.backends.cached_db")
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Bill import: rows are validated and written in chunks of this size; progress is saved after each chunk.
BILL_IMPORT_CHUNK_SIZE = env.int("BILL_IMPORT_CHUNK_SIZE", default=500)
# A bank statement with at most this many lines is matched during the upload; a bigger one by a worker, with progress.
STATEMENT_MATCH_INLINE_LINES = env.int("STATEMENT_MATCH_INLINE_LINES", default=200)
# Statement matching (billing.banking.statements.statement_match) on PostgreSQL: how many connections match a
# statement's chunks at once, from one run (each is one more database connection while a statement is matched).
STATEMENT_MATCH_CONNECTIONS = env.int("STATEMENT_MATCH_CONNECTIONS", default=2)

# Every log line carries the request id (X-Request-ID from the proxy, or a new one), in web requests and in the
# Celery tasks they enqueued (config/observability.py). Production writes one JSON object per line (LOG_FORMAT=json).
LOG_FORMAT = env("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.observability.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "config.observability.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}

# The client address used for rate limits and consent records is REMOTE_ADDR. Only when the request comes from one
# of these proxies (IPs or networks, e.g. the load balancer's) is it taken from X-Forwarded-For instead
# (config/proxy.py). Empty: headers are never trusted. docs/deploy.md shows nginx's side.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
# Who may read /metrics (config/metrics.py): the monitoring network.
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])

# The biller this portal serves (its slug). Empty means the first biller in the database.
BILLPAY_BILLER_SLUG = env("BILLPAY_BILLER_SLUG", default="")

# Stripe. Tests and the local run point STRIPE_API_BASE at localstripe; real Stripe is https://api.stripe.com.
STRIPE_API_BASE = env("STRIPE_API_BASE", default="https://api.stripe.com").rstrip("/")
# True when talking to real Stripe (test or live mode): only then are parameters localstripe rejects sent.
STRIPE_LIVE_API = urlsplit(STRIPE_API_BASE).hostname == "api.stripe.com"
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
STRIPE_JS_URL = env("STRIPE_JS_URL", default="https://js.stripe.com/v3/")
# Gateway requests per second, all web and worker processes together (counted in the shared cache, so it holds only
# with Redis when several processes run). Stripe's live-mode limit is 100 per second; 0 turns the limit off.
GATEWAY_RATE_LIMIT_PER_SECOND = env.int("GATEWAY_RATE_LIMIT_PER_SECOND", default=100)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# Content-Security-Policy (django-csp) on every payer page: our own origin and Stripe's, nothing inline without this
# response's nonce. Card fields live in Stripe's frames, so card data never touches our pages or server.
# The staff admin is left to Django's own defaults (it is not a payment page and uses inline styles).
STRIPE_ORIGINS = sorted({_origin(STRIPE_JS_URL), _origin(STRIPE_API_BASE)})
if STRIPE_LIVE_API:
    STRIPE_ORIGINS = sorted({*STRIPE_ORIGINS, "https://js.stripe.com", "https://hooks.stripe.com", "https://api.stripe.com"})
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/admin/"],
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE, *STRIPE_ORIGINS],
        "style-src": [SELF, NONCE, *STRIPE_ORIGINS],
        "frame-src": [*STRIPE_ORIGINS],
        "connect-src": [SELF, *STRIPE_ORIGINS],
        "img-src": [SELF, "data:", *STRIPE_ORIGINS],
        "font-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    },
}

# Text messages. SMS_BACKEND: console (default), file (one file per message under SMS_FILE_PATH), locmem (tests),
# or twilio. TWILIO_API_BASE is a setting so tests can point the real SDK at a local stub of Twilio's API.
SMS_BACKEND = env("SMS_BACKEND", default="console")
SMS_FILE_PATH = env("SMS_FILE_PATH", default=str(VAR_DIR / "sms"))
TWILIO_ACCOUNT_SID = env("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env("TWILIO_AUTH_TOKEN", default="")
TWILIO_FROM_NUMBER = env("TWILIO_FROM_NUMBER", default="")
TWILIO_MESSAGING_SERVICE_SID = env("TWILIO_MESSAGING_SERVICE_SID", default="")
TWILIO_API_BASE = env("TWILIO_API_BASE", default="https://api.twilio.com").rstrip("/")
# Seconds one Twilio API call may take; the address Twilio reports delivery to (empty: none).
TWILIO_TIMEOUT = env.float("TWILIO_TIMEOUT", default=10)
TWILIO_STATUS_CALLBACK_URL = env("TWILIO_STATUS_CALLBACK_URL", default="")
# The sender name or number on text messages; empty means TWILIO_FROM_NUMBER, else "Billpay".
SMS_FROM = env("SMS_FROM", default="")
