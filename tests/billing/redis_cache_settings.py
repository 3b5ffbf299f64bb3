"""Test settings with the shared cache on real Redis (REDIS_URL), as production has it: for processes that must share
one cache (the gateway rate limit test starts two)."""

from config.settings.test import *  # noqa: F403
from config.settings.test import REDIS_URL

CACHES = {"default": {"BACKEND": "config.cache.RedisCache", "LOCATION": REDIS_URL}}
