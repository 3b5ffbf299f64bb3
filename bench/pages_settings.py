"""Settings for bench/bench_pages.py's gunicorn: the test settings (no debug, the same middleware and templates),
its own database, the shared cache on Redis when REDIS_URL is set (as in production), and a URLconf that adds the
bare view beside the project's pages."""

import os

from config.settings.test import *  # noqa: F403
from config.settings.test import DATABASES, REDIS_URL

ROOT_URLCONF = "bench.pages_urls"
DATABASES["default"]["NAME"] = os.environ["BENCH_DATABASE_NAME"]
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "config.cache.RedisCache", "LOCATION": REDIS_URL}}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
